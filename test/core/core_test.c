/*
 * core_test.c
 *		Unit tests of the numeric core: tokeniser, lower-casing, hashed
 *		features, TF-IDF, the Bayesian classifier and the pool embedding.
 *		No server needed.
 *
 * Run with "make check-core".  Prints one line per failed check and a last
 * line "N passed, M failed"; the exit status is 1 when any check failed.
 */
#include <assert.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "features.h"
#include "hl_alloc.h"
#include "metrics.h"
#include "model_classifier.h"
#include "crf_lattice.h"
#include "disagreement.h"
#include "embedding.h"
#include "model_crf.h"
#include "span_tags.h"
#include "novelty.h"
#include "pool_embedding.h"
#include "self_training.h"
#include "span_features.h"
#include "tokenize.h"

static int	n_passed = 0;
static int	n_failed = 0;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)

/* Count a check and print it when it failed. */
static void
check(int ok, const char *what, const char *file, int line)
{
	if (ok)
		n_passed++;
	else
	{
		n_failed++;
		printf("FAILED %s:%d: %s\n", file, line, what);
	}
}

static void
test_tokenize_ascii_offsets(void)
{
	const char *text = "Hello, world 42!";
	HlToken		tok[8];
	uint32_t	n = hl_tokenize(text, strlen(text), tok, 8);

	CHECK(n == 3);
	CHECK(tok[0].byte_start == 0);
	CHECK(tok[0].byte_end == 5);
	CHECK(tok[1].byte_start == 7);
	CHECK(tok[1].byte_end == 12);
	CHECK(tok[2].byte_start == 13);
	CHECK(tok[2].byte_end == 15);
	CHECK(tok[2].char_start == 13);
	CHECK(tok[2].char_end == 15);
}

static void
test_tokenize_utf8_offsets(void)
{
	/* "wörld café": ö and é are two bytes each. */
	const char *text = "w\xc3\xb6rld caf\xc3\xa9";
	HlToken		tok[4];
	uint32_t	n = hl_tokenize(text, strlen(text), tok, 4);

	CHECK(n == 2);
	CHECK(tok[0].byte_start == 0);
	CHECK(tok[0].byte_end == 6);
	CHECK(tok[0].char_start == 0);
	CHECK(tok[0].char_end == 5);
	CHECK(tok[1].byte_start == 7);
	CHECK(tok[1].byte_end == 12);
	CHECK(tok[1].char_start == 6);
	CHECK(tok[1].char_end == 10);
}

static void
test_tokenize_separators(void)
{
	HlToken		tok[4];

	/* Em dash U+2014, no-break space U+00A0, ideographic full stop U+3002. */
	CHECK(hl_tokenize("a\xe2\x80\x94" "b", 5, tok, 4) == 2);
	CHECK(hl_tokenize("a\xc2\xa0" "b", 4, tok, 4) == 2);
	CHECK(hl_tokenize("\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x82", 9, tok, 4) == 1);
	CHECK(tok[0].char_start == 0);
	CHECK(tok[0].char_end == 2);

	/* Emoji (4 bytes) count as letters. */
	CHECK(hl_tokenize("\xf0\x9f\x98\x80", 4, tok, 4) == 1);
	CHECK(hl_tokenize("", 0, tok, 4) == 0);
	CHECK(hl_tokenize(" ,.!? ", 6, tok, 4) == 0);
}

static void
test_tokenize_invalid_bytes(void)
{
	HlToken		tok[4];

	/* A stray 0xFF byte separates and counts as one character. */
	CHECK(hl_tokenize("ab\xff" "cd", 5, tok, 4) == 2);
	CHECK(tok[1].byte_start == 3);
	CHECK(tok[1].char_start == 3);
	CHECK(tok[1].char_end == 5);

	/* Overlong '/' (C0 AF), a surrogate (ED A0 80), a truncated sequence. */
	CHECK(hl_tokenize("a\xc0\xaf" "b", 4, tok, 4) == 2);
	CHECK(tok[1].char_start == 3);
	CHECK(hl_tokenize("a\xed\xa0\x80" "b", 5, tok, 4) == 2);
	CHECK(hl_tokenize("ab\xc3", 3, tok, 4) == 1);
	CHECK(tok[0].byte_end == 2);
}

static void
test_tokenize_max_tokens(void)
{
	HlToken		tok[2];

	/* Returns the full count but writes only max_tokens. */
	CHECK(hl_tokenize("a b c d", 7, tok, 2) == 4);
	CHECK(tok[1].byte_start == 2);
	CHECK(hl_tokenize("a b c d", 7, NULL, 0) == 4);
}

/* Return whether lower-casing in gives exactly expected. */
static int
lowers_to(const char *in, const char *expected)
{
	char		out[64];
	size_t		n = hl_lower_utf8(in, strlen(in), out);

	return n == strlen(expected) && memcmp(out, expected, n) == 0;
}

static void
test_lower_scripts(void)
{
	CHECK(lowers_to("Hello WORLD 42", "hello world 42"));
	/* Latin-1: À É Î Ø Þ; × is not a letter and stays. */
	CHECK(lowers_to("\xc3\x80\xc3\x89\xc3\x8e\xc3\x98\xc3\x9e\xc3\x97",
					"\xc3\xa0\xc3\xa9\xc3\xae\xc3\xb8\xc3\xbe\xc3\x97"));
	/* Latin Extended-A: Ł Ś Ž, Ÿ to ÿ, İ to i (shorter). */
	CHECK(lowers_to("\xc5\x81\xc5\x9a\xc5\xbd", "\xc5\x82\xc5\x9b\xc5\xbe"));
	CHECK(lowers_to("\xc5\xb8", "\xc3\xbf"));
	CHECK(lowers_to("\xc4\xb0" "X", "ix"));
	/* Greek: Α Σ Ω and accented Ά. */
	CHECK(lowers_to("\xce\x91\xce\xa3\xce\xa9\xce\x86",
					"\xce\xb1\xcf\x83\xcf\x89\xce\xac"));
	/* Cyrillic: П Я Ё Ѣ. */
	CHECK(lowers_to("\xd0\x9f\xd0\xaf\xd0\x81\xd1\xa2",
					"\xd0\xbf\xd1\x8f\xd1\x91\xd1\xa3"));
	/* Invalid bytes and 3-byte characters pass through unchanged. */
	CHECK(lowers_to("A\xff\xe6\x97\xa5", "a\xff\xe6\x97\xa5"));
}

/* Featurise text with config into vec (counts only). */
static void
featurize(const HlFeatureConfig *config, const char *text, HlSparseVec *vec)
{
	HlFeaturizer *f = hl_featurizer_create(config);

	hl_featurize_counts(f, text, strlen(text), vec);
	hl_featurizer_destroy(f);
}

/* Return whether vec has strictly increasing indices below dim. */
static int
strictly_increasing(const HlSparseVec *vec, uint32_t dim)
{
	for (uint32_t i = 0; i < vec->nnz; i++)
	{
		if (vec->index[i] >= dim)
			return 0;
		if (i > 0 && vec->index[i] <= vec->index[i - 1])
			return 0;
	}
	return 1;
}

static void
test_features_deterministic(void)
{
	HlFeatureConfig config;
	HlSparseVec a;
	HlSparseVec b;
	HlFeaturizer *f;
	const char *text = "I lost my card, please block my card!";
	float		total = 0.0f;

	hl_feature_config_default(&config);
	CHECK(hl_feature_config_check(&config) == NULL);
	hl_sparse_init(&a);
	hl_sparse_init(&b);
	featurize(&config, text, &a);

	/* A second featuriser, used twice, gives the same vector. */
	f = hl_featurizer_create(&config);
	hl_featurize_counts(f, "something else entirely", 23, &b);
	hl_featurize_counts(f, text, strlen(text), &b);
	hl_featurizer_destroy(f);
	CHECK(a.nnz == b.nnz);
	CHECK(a.nnz > 0);
	CHECK(memcmp(a.index, b.index, a.nnz * sizeof(uint32_t)) == 0);
	CHECK(memcmp(a.value, b.value, a.nnz * sizeof(float)) == 0);
	CHECK(strictly_increasing(&a, 1u << config.hash_bits));

	/* Upper-case and punctuation do not change the features. */
	featurize(&config, "i LOST my card please block MY card", &b);
	CHECK(a.nnz == b.nnz);
	CHECK(a.nnz > 0 && memcmp(a.index, b.index, a.nnz * sizeof(uint32_t)) == 0);

	/* Words only: 8 unigrams and 7 bigrams, with "my" and "card" twice. */
	config.char_ngram_min = 0;
	config.char_ngram_max = 0;
	featurize(&config, text, &a);
	for (uint32_t i = 0; i < a.nnz; i++)
		total += a.value[i];
	CHECK(total == 15.0f);
	CHECK(a.nnz <= 13);

	hl_sparse_free(&a);
	hl_sparse_free(&b);
}

static void
test_features_empty_text(void)
{
	HlFeatureConfig config;
	HlSparseVec v;

	hl_feature_config_default(&config);
	hl_sparse_init(&v);
	featurize(&config, "", &v);
	CHECK(v.nnz == 0);
	featurize(&config, " ?! ... \xff", &v);
	CHECK(v.nnz == 0);
	hl_sparse_free(&v);
}

static void
test_feature_config_check(void)
{
	HlFeatureConfig config;

	hl_feature_config_default(&config);
	config.hash_bits = 9;
	CHECK(hl_feature_config_check(&config) != NULL);
	config.hash_bits = 23;
	CHECK(hl_feature_config_check(&config) != NULL);
	hl_feature_config_default(&config);
	config.char_ngram_min = 4;
	config.char_ngram_max = 3;
	CHECK(hl_feature_config_check(&config) != NULL);
	config.char_ngram_min = 0;
	config.char_ngram_max = 0;
	config.word_ngram_max = 0;
	CHECK(hl_feature_config_check(&config) != NULL);
	config.word_ngram_max = 1;
	CHECK(hl_feature_config_check(&config) == NULL);
}

static void
test_tfidf(void)
{
	uint32_t	df[4] = {0, 1, 3, 0};
	float		idf[4];
	uint32_t	index[2] = {1, 2};
	float		value[2] = {1.0f, (float) M_E};
	HlSparseVec v = {2, 2, index, value};
	HlSparseVec empty = {0, 0, NULL, NULL};

	/* idf = ln((1 + n) / (1 + df)) + 1 with n = 3. */
	hl_idf_from_df(df, 3, 4, idf);
	CHECK(fabsf(idf[0] - (logf(4.0f) + 1.0f)) < 1e-6f);
	CHECK(fabsf(idf[1] - (logf(2.0f) + 1.0f)) < 1e-6f);
	CHECK(fabsf(idf[2] - 1.0f) < 1e-6f);

	/* tf 1 and e give 1 and 2 before idf; then L2 norm 1. */
	idf[1] = 1.0f;
	idf[2] = 1.0f;
	hl_tfidf_apply(idf, &v);
	CHECK(fabsf(v.value[0] - 1.0f / sqrtf(5.0f)) < 1e-5f);
	CHECK(fabsf(v.value[1] - 2.0f / sqrtf(5.0f)) < 1e-5f);
	CHECK(fabsf(v.value[0] * v.value[0] + v.value[1] * v.value[1] - 1.0f) < 1e-5f);

	/* An empty vector stays empty. */
	hl_tfidf_apply(idf, &empty);
	CHECK(empty.nnz == 0);

	/* df counts each bucket once per document. */
	memset(df, 0, sizeof(df));
	hl_df_accumulate(df, &v);
	hl_df_accumulate(df, &v);
	CHECK(df[1] == 2 && df[2] == 2 && df[0] == 0);
}

/* A small labelled corpus turned into TF-IDF rows. */
typedef struct Corpus
{
	HlFeatureConfig config;
	HlFeaturizer *featurizer;
	float	   *idf;
	HlDataset	data;
	uint64_t   *row_start;
	uint32_t   *index;
	float	   *value;
	int32_t    *label;
} Corpus;

/* Featurise texts with idf from the same texts; labels as given. */
static void
corpus_build(Corpus *c, const char *const *texts, const int32_t *labels,
			 uint32_t n, uint32_t n_classes)
{
	HlSparseVec *vecs = calloc(n, sizeof(HlSparseVec));
	uint32_t	dim;
	uint32_t   *df;
	uint64_t	nnz = 0;

	hl_feature_config_default(&c->config);
	c->config.hash_bits = 12;
	dim = 1u << c->config.hash_bits;
	c->featurizer = hl_featurizer_create(&c->config);
	df = calloc(dim, sizeof(uint32_t));
	c->idf = calloc(dim, sizeof(float));
	for (uint32_t i = 0; i < n; i++)
	{
		hl_sparse_init(&vecs[i]);
		hl_featurize_counts(c->featurizer, texts[i], strlen(texts[i]), &vecs[i]);
		hl_df_accumulate(df, &vecs[i]);
		nnz += vecs[i].nnz;
	}
	hl_idf_from_df(df, n, dim, c->idf);

	c->row_start = calloc(n + 1, sizeof(uint64_t));
	c->index = calloc(nnz + 1, sizeof(uint32_t));
	c->value = calloc(nnz + 1, sizeof(float));
	c->label = calloc(n + 1, sizeof(int32_t));
	for (uint32_t i = 0; i < n; i++)
	{
		hl_tfidf_apply(c->idf, &vecs[i]);
		c->row_start[i + 1] = c->row_start[i] + vecs[i].nnz;
		memcpy(c->index + c->row_start[i], vecs[i].index, vecs[i].nnz * sizeof(uint32_t));
		memcpy(c->value + c->row_start[i], vecs[i].value, vecs[i].nnz * sizeof(float));
		c->label[i] = labels[i];
		hl_sparse_free(&vecs[i]);
	}
	free(vecs);
	free(df);

	c->data.n_rows = n;
	c->data.dim = dim;
	c->data.n_classes = n_classes;
	c->data.row_start = c->row_start;
	c->data.index = c->index;
	c->data.value = c->value;
	c->data.label = c->label;
	c->data.weight = NULL;
	c->data.group = NULL;
}

static void
corpus_free(Corpus *c)
{
	hl_featurizer_destroy(c->featurizer);
	free(c->idf);
	free(c->row_start);
	free(c->index);
	free(c->value);
	free(c->label);
}

/* Predict text with model and corpus features. */
static void
predict_text(const Corpus *c, const HlClassifier *model, const char *text,
			 float *proba, HlPrediction *pred)
{
	HlSparseVec x;
	float	   *ws = calloc(hl_classifier_workspace_size(model), sizeof(float));

	hl_sparse_init(&x);
	hl_featurize_counts(c->featurizer, text, strlen(text), &x);
	hl_tfidf_apply(c->idf, &x);
	hl_classifier_predict(model, &x, proba, pred, ws);
	hl_sparse_free(&x);
	free(ws);
}

static const char *const separable_texts[] = {
	"refund my money please", "I want a refund", "money back refund now",
	"please refund the charge", "refund refund money",
	"my card is lost", "lost card stolen", "card stolen help",
	"I lost my card yesterday", "stolen card block it",
};
static const int32_t separable_labels[] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

static void
test_fit_separable_and_empty_class(void)
{
	Corpus		c;
	HlClassifier model;
	HlFitOptions options;
	HlFitReport report;
	HlPrediction pred;
	HlPrediction pred_seen;
	HlPrediction pred_unseen;
	float		proba[3];
	char		err[128];
	float		max_abs = 0.0f;

	/* Three classes, class 2 has no rows. */
	corpus_build(&c, separable_texts, separable_labels, 10, 3);
	hl_classifier_alloc(&model, c.data.dim, 3);
	hl_fit_options_default(&options);
	CHECK(hl_classifier_fit(&c.data, &options, &model, &report, err, sizeof(err)) == 0);
	CHECK(report.train_accuracy == 1.0);
	CHECK(report.heldout_rows == 0);
	CHECK(isnan(report.heldout_nll));
	CHECK(isnan(report.heldout_accuracy));
	CHECK(report.iterations > 0);
	CHECK(report.prior_precision > 0.0);
	/* Without a split the temperature comes from out-of-fold logits. */
	CHECK(report.temperature >= 0.5);
	CHECK(report.temperature <= 20.0);

	/* Weights of the empty class stay at the prior mean 0. */
	for (uint32_t j = 0; j < model.dim; j++)
		max_abs = fmaxf(max_abs, fabsf(model.mean[(size_t) j * 3 + 2]));
	CHECK(max_abs == 0.0f);

	predict_text(&c, &model, "refund my money", proba, &pred);
	CHECK(pred.label == 0);
	CHECK(proba[2] < proba[0]);
	CHECK(fabsf(proba[0] + proba[1] + proba[2] - 1.0f) < 1e-4f);
	predict_text(&c, &model, "card stolen", proba, &pred);
	CHECK(pred.label == 1);

	/* Words no labelled row had give a larger mutual information. */
	predict_text(&c, &model, "refund money refund", proba, &pred_seen);
	predict_text(&c, &model, "zebra xylophone quokka", proba, &pred_unseen);
	CHECK(pred_unseen.mutual_information > pred_seen.mutual_information);
	CHECK(pred_unseen.entropy > pred_seen.entropy);

	/* MI is a part of the predictive entropy. */
	CHECK(pred_seen.mutual_information <= pred_seen.entropy + 1e-6f);
	CHECK(pred_unseen.mutual_information <= pred_unseen.entropy + 1e-6f);

	hl_classifier_free(&model);
	corpus_free(&c);
}

static void
test_predict_empty_vector(void)
{
	Corpus		c;
	HlClassifier model;
	HlFitReport report;
	HlPrediction pred;
	HlSparseVec x = {0, 0, NULL, NULL};
	float		proba[3];
	float	   *ws;
	char		err[128];

	corpus_build(&c, separable_texts, separable_labels, 10, 3);
	hl_classifier_alloc(&model, c.data.dim, 3);
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);
	ws = calloc(hl_classifier_workspace_size(&model), sizeof(float));
	hl_classifier_predict(&model, &x, proba, &pred, ws);
	CHECK(!isnan(pred.probability) && pred.probability > 0.0f && pred.probability <= 1.0f);
	CHECK(!isnan(pred.entropy) && !isnan(pred.mutual_information));
	CHECK(fabsf(proba[0] + proba[1] + proba[2] - 1.0f) < 1e-4f);

	/* Predicting without a proba array also works. */
	hl_classifier_predict(&model, &x, NULL, &pred, ws);
	CHECK(pred.label >= 0 && pred.label < 3);
	free(ws);
	hl_classifier_free(&model);
	corpus_free(&c);
}

/* A fit started from an earlier solution reaches the same weights sooner. */
static void
test_fit_warm_start(void)
{
	Corpus		c;
	HlClassifier cold;
	HlClassifier warm;
	HlFitOptions options;
	HlFitReport cold_report;
	HlFitReport warm_report;
	char		err[128];
	float		max_diff = 0.0f;

	corpus_build(&c, separable_texts, separable_labels, 10, 3);
	hl_fit_options_default(&options);
	options.prior_precision = 0.1;
	hl_classifier_alloc(&cold, c.data.dim, 3);
	CHECK(hl_classifier_fit(&c.data, &options, &cold, &cold_report, err, sizeof(err)) == 0);

	options.init_mean = cold.mean;
	options.init_bias_mean = cold.bias_mean;
	hl_classifier_alloc(&warm, c.data.dim, 3);
	CHECK(hl_classifier_fit(&c.data, &options, &warm, &warm_report, err, sizeof(err)) == 0);
	CHECK(warm_report.iterations < cold_report.iterations);

	for (size_t t = 0; t < (size_t) c.data.dim * 3; t++)
		max_diff = fmaxf(max_diff, fabsf(warm.mean[t] - cold.mean[t]));
	CHECK(max_diff < 0.05f);
	/* The empty class stays at the prior mean from any start. */
	max_diff = 0.0f;
	for (uint32_t j = 0; j < c.data.dim; j++)
		max_diff = fmaxf(max_diff, fabsf(warm.mean[(size_t) j * 3 + 2]));
	CHECK(max_diff == 0.0f);

	hl_classifier_free(&cold);
	hl_classifier_free(&warm);
	corpus_free(&c);
}

static void
test_one_class_with_phantom(void)
{
	static const char *const texts[] = {
		"refund my money please", "I want a refund", "money back refund now",
		"please refund the charge", "refund refund money",
	};
	static const int32_t labels[] = {0, 0, 0, 0, 0};
	Corpus		c;
	HlClassifier model;
	HlFitReport report;
	HlPrediction seen;
	HlPrediction unseen;
	float		proba[2];
	char		err[128];

	/* The caller adds class 1 as a phantom without rows. */
	corpus_build(&c, texts, labels, 5, 2);
	hl_classifier_alloc(&model, c.data.dim, 2);
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);

	predict_text(&c, &model, "refund my money", proba, &seen);
	CHECK(seen.label == 0);
	CHECK(proba[0] < 1.0f);
	CHECK(proba[0] > 0.5f);
	predict_text(&c, &model, "zebra xylophone quokka", proba, &unseen);
	CHECK(proba[0] < 1.0f);
	CHECK(unseen.mutual_information > 1e-3f);
	CHECK(unseen.mutual_information > seen.mutual_information);

	hl_classifier_free(&model);
	corpus_free(&c);
}

static void
test_fit_tiny_row_counts(void)
{
	Corpus		c;
	HlClassifier model;
	HlFitReport report;
	HlPrediction pred;
	float		proba[2];
	char		err[128];

	/* 1, 2 and 5 rows all fit and predict finite values. */
	for (uint32_t n = 1; n <= 5; n += (n == 2 ? 3 : 1))
	{
		corpus_build(&c, separable_texts + 3, separable_labels + 3, n, 2);
		hl_classifier_alloc(&model, c.data.dim, 2);
		CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);
		predict_text(&c, &model, "refund card", proba, &pred);
		CHECK(!isnan(proba[0]) && !isnan(proba[1]));
		CHECK(!isnan(pred.mutual_information));
		CHECK(report.heldout_rows == 0);
		hl_classifier_free(&model);
		corpus_free(&c);
	}

	/* No rows at all: the prior, uniform prediction. */
	corpus_build(&c, separable_texts, separable_labels, 0, 2);
	hl_classifier_alloc(&model, c.data.dim, 2);
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);
	predict_text(&c, &model, "refund", proba, &pred);
	CHECK(fabsf(proba[0] - 0.5f) < 1e-4f);
	hl_classifier_free(&model);
	corpus_free(&c);
}

static void
test_fit_rejects_bad_input(void)
{
	Corpus		c;
	HlClassifier model;
	HlFitReport report;
	char		err[128] = "";
	float		weight[10];

	corpus_build(&c, separable_texts, separable_labels, 10, 2);
	hl_classifier_alloc(&model, c.data.dim, 2);

	c.label[3] = 2;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	CHECK(strstr(err, "label 2 of row 3") != NULL);
	c.label[3] = -1;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	c.label[3] = 0;

	for (int i = 0; i < 10; i++)
		weight[i] = 1.0f;
	weight[4] = -1.0f;
	c.data.weight = weight;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	CHECK(strstr(err, "weight") != NULL);
	weight[4] = NAN;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);

	/* Weight 0 drops a row; the rest still fits. */
	weight[4] = 0.0f;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);
	c.data.weight = NULL;

	c.index[0] = c.data.dim;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	CHECK(strstr(err, "feature index") != NULL);
	hl_classifier_free(&model);

	/* Shape mismatch and a single class. */
	hl_classifier_alloc(&model, c.data.dim, 3);
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	hl_classifier_free(&model);
	c.data.n_classes = 1;
	hl_classifier_alloc(&model, c.data.dim, 1);
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == -1);
	CHECK(strstr(err, "n_classes") != NULL);
	hl_classifier_free(&model);
	corpus_free(&c);
}

/* Three words of each of four intents, for corpora of short requests. */
static const char *const intent_words[4][3] = {
	{"refund", "money", "charge"},
	{"card", "lost", "stolen"},
	{"transfer", "account", "bank"},
	{"pin", "code", "locked"},
};

/* Write request i of intent cl: three of its words and a filler token. */
static void
intent_text(char *buf, size_t size, int cl, int i)
{
	snprintf(buf, size, "%s %s %s item%d", intent_words[cl][i % 3],
			 intent_words[cl][(i / 3) % 3], intent_words[cl][(i / 7) % 3], i % 11);
}

static void
test_fit_heldout_split_with_groups(void)
{
	enum
	{
		N = 120
	};
	const char *texts[N];
	char		buf[N][64];
	int32_t		labels[N];
	uint32_t	group[N];
	Corpus		c;
	HlClassifier model;
	HlFitOptions options;
	HlFitReport report;
	HlFitReport again;
	char		err[128];

	/* 60 items of two rows each, four classes, with varied word order. */
	for (int i = 0; i < N; i++)
	{
		int			cl = (i / 2) % 4;

		intent_text(buf[i], sizeof(buf[i]), cl, i);
		texts[i] = buf[i];
		labels[i] = cl;
		group[i] = (uint32_t) (i / 2) * 7919u;
	}
	corpus_build(&c, texts, labels, N, 4);
	c.data.group = group;
	hl_classifier_alloc(&model, c.data.dim, 4);
	hl_fit_options_default(&options);
	options.seed = 42;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &report, err, sizeof(err)) == 0);

	/* About a fifth of the items are held out, two rows each. */
	CHECK(report.heldout_rows >= 16 && report.heldout_rows <= 30);
	CHECK(report.heldout_rows % 2 == 0);
	CHECK(!isnan(report.heldout_nll) && report.heldout_nll >= 0.0);
	CHECK(report.heldout_accuracy > 0.9);
	CHECK(report.temperature > 0.0 && report.variance_scale >= 0.0);
	CHECK(report.train_accuracy > 0.95);

	/* The same seed gives the same fit. */
	CHECK(hl_classifier_fit(&c.data, &options, &model, &again, err, sizeof(err)) == 0);
	CHECK(again.heldout_rows == report.heldout_rows);
	CHECK(again.prior_precision == report.prior_precision);
	CHECK(again.heldout_nll == report.heldout_nll);

	hl_classifier_free(&model);
	corpus_free(&c);
}

/* Largest corpus intent_corpus builds. */
#define INTENT_CORPUS_MAX 160

/* Build a corpus of n rows of four intents in turn, as the split tests use. */
static void
intent_corpus(Corpus *c, int n)
{
	const char *texts[INTENT_CORPUS_MAX];
	char		buf[INTENT_CORPUS_MAX][64];
	int32_t		labels[INTENT_CORPUS_MAX];

	assert(n <= INTENT_CORPUS_MAX);
	for (int i = 0; i < n; i++)
	{
		intent_text(buf[i], sizeof(buf[i]), i % 4, i);
		texts[i] = buf[i];
		labels[i] = i % 4;
	}
	corpus_build(c, texts, labels, (uint32_t) n, 4);
}

static void
test_fit_keep_calibration(void)
{
	enum
	{
		N = 120
	};
	Corpus		c;
	HlClassifier cold;
	HlClassifier warm;
	HlFitOptions options;
	HlFitReport cold_report;
	HlFitReport warm_report;
	char		err[128];

	intent_corpus(&c, N);
	hl_classifier_alloc(&cold, c.data.dim, 4);
	hl_fit_options_default(&options);
	options.seed = 3;
	CHECK(hl_classifier_fit(&c.data, &options, &cold, &cold_report, err, sizeof(err)) == 0);
	CHECK(cold_report.heldout_rows > 0);

	/* A warm start that keeps T and c fits all rows, with no split. */
	options.prior_precision = cold_report.prior_precision;
	options.init_mean = cold.mean;
	options.init_bias_mean = cold.bias_mean;
	options.max_iterations = 5;
	options.keep_calibration = true;
	hl_classifier_alloc(&warm, c.data.dim, 4);
	CHECK(hl_classifier_fit(&c.data, &options, &warm, &warm_report, err, sizeof(err)) == 0);
	CHECK(warm_report.heldout_rows == 0);
	CHECK(isnan(warm_report.heldout_accuracy));
	CHECK(warm_report.iterations <= 5);
	CHECK(warm_report.temperature == 1.0);
	CHECK(warm_report.prior_precision == cold_report.prior_precision);
	CHECK(warm_report.train_accuracy == cold_report.train_accuracy);

	hl_classifier_free(&cold);
	hl_classifier_free(&warm);
	corpus_free(&c);
}

static void
test_fit_prior_hint(void)
{
	enum
	{
		N = 120
	};
	Corpus		c;
	HlClassifier model;
	HlFitOptions options;
	HlFitReport plain;
	HlFitReport strongest;
	HlFitReport weakest;
	char		err[128];

	intent_corpus(&c, N);
	hl_classifier_alloc(&model, c.data.dim, 4);
	hl_fit_options_default(&options);
	options.seed = 3;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &plain, err, sizeof(err)) == 0);

	/* A hint at the strongest point leaves the path as it was. */
	options.prior_hint = 1.0;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &strongest, err, sizeof(err)) == 0);
	CHECK(strongest.prior_precision == plain.prior_precision);
	CHECK(strongest.iterations == plain.iterations);
	CHECK(strongest.heldout_nll == plain.heldout_nll);

	/* A hint at the weakest point leaves two points: 0.01 and 0.003. */
	options.prior_hint = 0.003;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &weakest, err, sizeof(err)) == 0);
	CHECK(weakest.prior_precision == 0.01 || weakest.prior_precision == 0.003);
	CHECK(weakest.heldout_rows == plain.heldout_rows);

	hl_classifier_free(&model);
	corpus_free(&c);
}

static void
test_self_training_keeps_split(void)
{
	enum
	{
		N = 160,
		LABELLED = 100
	};
	Corpus		c;
	HlDataset	labelled;
	HlSparseRows unlabelled;
	HlSelfTrainingSet extended;
	HlClassifier model;
	HlClassifier split_model;
	HlClassifier refit;
	HlFitOptions options;
	HlFitReport report;
	HlFitReport again;
	uint32_t	final_rows = 0;
	uint32_t	split_rows = 0;
	char		err[128];

	intent_corpus(&c, N);
	labelled = c.data;
	labelled.n_rows = LABELLED;
	unlabelled.n_rows = N - LABELLED;
	unlabelled.row_start = c.row_start + LABELLED;
	unlabelled.index = c.index;
	unlabelled.value = c.value;
	unlabelled.group = NULL;

	/* The labelled fit also returns the fit of its split's training side. */
	hl_classifier_alloc(&model, c.data.dim, 4);
	hl_classifier_alloc(&split_model, c.data.dim, 4);
	hl_fit_options_default(&options);
	options.seed = 7;
	options.split_model = &split_model;
	CHECK(hl_classifier_fit(&labelled, &options, &model, &report, err, sizeof(err)) == 0);
	CHECK(report.heldout_rows > 0);
	CHECK(split_model.temperature == (float) report.temperature);
	CHECK(split_model.prior_precision == model.prior_precision);

	/* Pseudo-labelled rows come after the labelled ones, weighted. */
	hl_self_training_extend(&split_model, &model, &labelled, &unlabelled, 0.5, 0.3f, &extended);
	CHECK(extended.n_pseudo > 0);
	CHECK(extended.n_pseudo <= N - LABELLED);
	CHECK(extended.n_split_pseudo <= N - LABELLED);
	for (uint32_t i = 0; i < extended.data.n_rows; i++)
	{
		bool		pseudo = i >= LABELLED;
		uint8_t		stage = extended.row_stage[i];

		CHECK(pseudo ? stage != HL_ROW_ANY : stage == HL_ROW_ANY);
		CHECK(extended.data.weight[i] == (pseudo ? 0.3f : 1.0f));
		CHECK(extended.data.group[i] == i);
		final_rows += stage == HL_ROW_TRAIN || stage == HL_ROW_FINAL_ONLY;
		split_rows += stage == HL_ROW_TRAIN || stage == HL_ROW_SPLIT_ONLY;
	}
	CHECK(final_rows == extended.n_pseudo);
	CHECK(split_rows == extended.n_split_pseudo);

	/* Pseudo-labelled rows are never held out: the split is the labelled fit's. */
	options.row_stage = extended.row_stage;
	options.split_model = NULL;
	hl_classifier_alloc(&refit, c.data.dim, 4);
	CHECK(hl_classifier_fit(&extended.data, &options, &refit, &again, err, sizeof(err)) == 0);
	CHECK(again.heldout_rows == report.heldout_rows);

	hl_self_training_free(&extended);
	hl_classifier_free(&refit);
	hl_classifier_free(&split_model);
	hl_classifier_free(&model);
	corpus_free(&c);
}

/* Rows of a stage take part in the split's training side or the final fit only. */
static void
test_fit_row_stages(void)
{
	static const char *const texts[] = {
		"refund my money", "money back please", "card is lost", "my card was stolen",
		"refund my money", "card is lost",
	};

	/* The last two rows repeat two others with the other label. */
	static const int32_t labels[] = {0, 0, 1, 1, 1, 0};
	static const uint8_t final_only[] = {HL_ROW_ANY, HL_ROW_ANY, HL_ROW_ANY, HL_ROW_ANY,
	HL_ROW_FINAL_ONLY, HL_ROW_FINAL_ONLY};
	static const uint8_t split_only[] = {HL_ROW_ANY, HL_ROW_ANY, HL_ROW_ANY, HL_ROW_ANY,
	HL_ROW_SPLIT_ONLY, HL_ROW_SPLIT_ONLY};
	Corpus		c;
	HlClassifier model;
	HlFitOptions options;
	HlFitReport plain;
	HlFitReport report;
	char		err[128];

	corpus_build(&c, texts, labels, 6, 2);
	hl_classifier_alloc(&model, c.data.dim, 2);
	hl_fit_options_default(&options);

	/* Too few rows for a split: T comes from out-of-fold fits. */
	c.data.n_rows = 4;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &plain, err, sizeof(err)) == 0);
	CHECK(plain.heldout_rows == 0);
	c.data.n_rows = 6;

	/* Final-only rows change the final fit, not the out-of-fold T. */
	options.row_stage = final_only;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &report, err, sizeof(err)) == 0);
	CHECK(fabs(report.temperature - plain.temperature) < 0.05 * plain.temperature);
	CHECK(report.train_accuracy < 1.0);

	/* Split-only rows are left out of the final fit. */
	options.row_stage = split_only;
	CHECK(hl_classifier_fit(&c.data, &options, &model, &report, err, sizeof(err)) == 0);
	CHECK(report.train_accuracy == 1.0);

	hl_classifier_free(&model);
	corpus_free(&c);
}

static int	interrupt_calls;
static int	interrupt_limit;
static jmp_buf interrupt_jump;

/* Interrupt hook of the tests: counts calls, jumps out at interrupt_limit. */
static void
count_interrupts(void)
{
	interrupt_calls++;
	if (interrupt_limit > 0 && interrupt_calls >= interrupt_limit)
		longjmp(interrupt_jump, 1);
}

static void
test_fit_interrupt_hook(void)
{
	enum
	{
		N = 120
	};
	const char *texts[N];
	char		buf[N][64];
	int32_t		labels[N];
	Corpus		c;
	HlClassifier model;
	HlFitReport report;
	HlFitReport again;
	char		err[128];

	for (int i = 0; i < N; i++)
	{
		int			cl = i % 4;

		snprintf(buf[i], sizeof(buf[i]), "%s %s item%d", intent_words[cl][i % 3],
				 intent_words[cl][(i / 5) % 3], i % 13);
		texts[i] = buf[i];
		labels[i] = cl;
	}
	corpus_build(&c, texts, labels, N, 4);
	hl_classifier_alloc(&model, c.data.dim, 4);

	/* A hook that returns is called, and the fit is unchanged by it. */
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &report, err, sizeof(err)) == 0);
	interrupt_calls = 0;
	interrupt_limit = 0;
	hl_interrupt_hook = count_interrupts;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &again, err, sizeof(err)) == 0);
	CHECK(interrupt_calls >= (int) again.iterations);
	CHECK(again.heldout_nll == report.heldout_nll);

	/* A hook that jumps out ends the fit; the next fit still works. */
	interrupt_calls = 0;
	interrupt_limit = 3;
	if (setjmp(interrupt_jump) == 0)
	{
		hl_classifier_fit(&c.data, NULL, &model, &again, err, sizeof(err));
		CHECK(!"fit returned after the hook jumped");
	}
	CHECK(interrupt_calls == 3);
	hl_interrupt_hook = NULL;
	CHECK(hl_classifier_fit(&c.data, NULL, &model, &again, err, sizeof(err)) == 0);
	CHECK(again.heldout_nll == report.heldout_nll);

	hl_classifier_free(&model);
	corpus_free(&c);
}

static void
test_alloc_array_zeroes(void)
{
	uint32_t   *a = hl_alloc_array(1000, sizeof(uint32_t));
	int			zero = 1;

	for (int i = 0; i < 1000; i++)
		zero &= a[i] == 0;
	CHECK(zero);
	hl_free(a);
	hl_free(NULL);
}

/* Four rows of two classes: three right, one wrong, known metric values. */
static void
test_metrics_known_values(void)
{
	const float proba[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.7f, 0.6f, 0.4f};
	const int32_t label[] = {0, 0, 1, 1};
	const float confidence[] = {0.9f, 0.8f, 0.7f, 0.6f};
	HlScoredRows rows = {4, 2, proba, label, NULL, confidence};
	HlClassMetrics per_class[2];
	HlMetrics	m;

	hl_metrics_compute(&rows, 0.75, &m, per_class);
	CHECK(fabs(m.accuracy - 0.75) < 1e-9);
	CHECK(fabs(m.nll - (-(log(0.9) + log(0.8) + log(0.7) + log(0.4)) / 4)) < 1e-6);
	CHECK(fabs(m.brier - (0.02 + 0.08 + 0.18 + 0.72) / 4) < 1e-6);
	/* Bins of 1/15: each row alone, |correct - confidence| = 0.1, 0.2, 0.3, 0.6. */
	CHECK(fabs(m.ece - (0.1 + 0.2 + 0.3 + 0.6) / 4) < 1e-6);
	CHECK(fabs(m.coverage - 0.5) < 1e-9);
	CHECK(fabs(m.automatic_accuracy - 1.0) < 1e-9);
	CHECK(fabs(per_class[0].precision - 2.0 / 3.0) < 1e-9);
	CHECK(fabs(per_class[1].recall - 0.5) < 1e-9);
	CHECK(fabs(m.macro_f1 - (0.8 + 2.0 / 3.0) / 2) < 1e-9);
}

/* Thresholds for a target accuracy and a target coverage. */
static void
test_abstention_threshold(void)
{
	const float proba[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.7f, 0.6f, 0.4f};
	const int32_t label[] = {0, 0, 1, 1};
	const float confidence[] = {0.9f, 0.8f, 0.7f, 0.6f};
	HlScoredRows rows = {4, 2, proba, label, NULL, confidence};

	/* The first three rows are all right: the lowest threshold meeting 1.0 - eps is 0.7. */
	CHECK(hl_abstention_threshold(&rows, 0.99, 0.0) == 0.7f);
	/* All four rows are 75% right. */
	CHECK(hl_abstention_threshold(&rows, 0.75, 0.0) == 0.6f);
	CHECK(hl_abstention_threshold(&rows, 0.0, 0.5) == 0.8f);
	CHECK(hl_abstention_threshold(&rows, 0.0, 0.51) == 0.7f);
}

/*
 * Confidences that differ in the last bits, as out-of-fold models of the
 * same texts give, tie: no coverage between none and all of them.
 */
static void
test_abstention_near_ties(void)
{
	const float proba[] = {0.9f, 0.1f, 0.9f, 0.1f, 0.1f, 0.9f, 0.1f, 0.9f};
	const int32_t label[] = {0, 0, 1, 1};
	const float confidence[] = {
		0.9f, nextafterf(0.9f, 0.0f), nextafterf(nextafterf(0.9f, 0.0f), 0.0f), 0.9000001f
	};
	HlScoredRows rows = {4, 2, proba, label, NULL, confidence};
	float		lowest = confidence[2];

	CHECK(hl_abstention_threshold(&rows, 0.0, 0.5) == lowest);
	CHECK(hl_abstention_threshold(&rows, 0.0, 0.9) == lowest);
}

/*
 * Confidences 6e-6 apart are distinct: a threshold may sit between them.
 * The second row is predicted wrong.
 */
static void
test_abstention_close_not_tied(void)
{
	const float proba[] = {0.9f, 0.1f, 0.9f, 0.1f, 0.1f, 0.9f, 0.1f, 0.9f};
	const int32_t label[] = {0, 1, 1, 1};
	const float confidence[] = {0.999990f, 0.999984f, 0.999978f, 0.999972f};
	HlScoredRows rows = {4, 2, proba, label, NULL, confidence};

	CHECK(hl_abstention_threshold(&rows, 0.0, 0.25) == confidence[0]);
	CHECK(hl_abstention_threshold(&rows, 0.99, 0.0) == confidence[0]);
}

/* Wilson intervals: known value, the edges and no rows. */
static void
test_wilson_interval(void)
{
	double		low;
	double		high;

	hl_wilson_interval(8, 10, 1.959964, &low, &high);
	CHECK(fabs(low - 0.4902) < 1e-3);
	CHECK(fabs(high - 0.9433) < 1e-3);
	hl_wilson_interval(5, 5, 1.959964, &low, &high);
	CHECK(high == 1.0);
	CHECK(low > 0.5);
	CHECK(low < 0.6);
	hl_wilson_interval(0, 0, 1.959964, &low, &high);
	CHECK(low == 0.0);
	CHECK(high == 1.0);
}

static void
test_tokenize_punctuation_offsets(void)
{
	/* "Björk, on last.fm!": ö is two bytes, so byte and character offsets part. */
	const char *text = "Bj\xc3\xb6rk, on last.fm!";
	HlToken		tok[16];
	uint32_t	n = hl_tokenize_with_punctuation(text, strlen(text), tok, 16);

	CHECK(n == 7);
	CHECK(tok[0].char_start == 0);
	CHECK(tok[0].char_end == 5);
	CHECK(tok[0].byte_end == 6);
	CHECK(tok[1].char_start == 5);
	CHECK(tok[1].char_end == 6);
	CHECK(tok[2].char_start == 7);
	CHECK(tok[3].char_start == 10);
	CHECK(tok[3].char_end == 14);
	CHECK(tok[4].char_start == 14);
	CHECK(tok[4].char_end == 15);
	CHECK(tok[5].char_end == 17);
	CHECK(tok[6].char_start == 17);
	CHECK(tok[6].byte_start == 18);
}

static void
test_tokenize_punctuation_spaces(void)
{
	/* A no-break space (U+00A0) separates; an invalid byte is dropped. */
	const char *text = "a\xc2\xa0" "b \xff c";
	HlToken		tok[8];
	uint32_t	n = hl_tokenize_with_punctuation(text, strlen(text), tok, 8);

	CHECK(n == 3);
	CHECK(tok[1].char_start == 2);
	CHECK(tok[2].char_start == 6);
	CHECK(hl_tokenize_with_punctuation("", 0, tok, 8) == 0);
	CHECK(hl_tokenize_with_punctuation(" \t\n", 3, tok, 8) == 0);
}

static void
test_span_features_rows(void)
{
	const char *text = "play Daft Punk";
	HlSentenceFeatures f;
	HlSparseVec row;
	int			normalised = 1;
	int			increasing = 1;

	hl_sentence_features_init(&f);
	hl_span_featurize(text, strlen(text), 12, NULL, &f);
	CHECK(f.n_tokens == 3);
	for (uint32_t t = 0; t < f.n_tokens; t++)
	{
		double		norm = 0.0;

		hl_sentence_row(&f, t, &row);
		for (uint32_t e = 0; e < row.nnz; e++)
		{
			norm += (double) row.value[e] * row.value[e];
			if (e > 0 && row.index[e] <= row.index[e - 1])
				increasing = 0;
		}
		if (fabs(norm - 1.0) > 1e-5)
			normalised = 0;
	}
	CHECK(normalised);
	CHECK(increasing);
	hl_sentence_features_free(&f);
}

static void
test_tags_from_spans(void)
{
	const char *text = "play daft punk on spotify";
	HlToken		tok[8];
	uint32_t	n = hl_tokenize_with_punctuation(text, strlen(text), tok, 8);
	HlCharSpan	spans[3] = {{5, 14, 0}, {18, 25, 1}, {20, 22, 2}};
	int32_t		tags[8];

	/* The third span lies inside the second's token, which keeps it. */
	CHECK(hl_tags_from_spans(tok, n, spans, 3, tags) == 1);
	CHECK(tags[0] == HL_TAG_OUTSIDE);
	CHECK(tags[1] == hl_tag_begin(0));
	CHECK(tags[2] == hl_tag_inside(0));
	CHECK(tags[3] == HL_TAG_OUTSIDE);
	CHECK(tags[4] == hl_tag_begin(1));
}

static void
test_spans_from_tags(void)
{
	/* Two labels: O B-1 I-1 O B-0 B-0 I-0. */
	const int32_t tags[7] = {HL_TAG_OUTSIDE, 3, 4, HL_TAG_OUTSIDE, 1, 1, 2};
	HlTagSpan	spans[7];
	uint32_t	n_spans = hl_spans_from_tags(tags, 7, spans);

	CHECK(n_spans == 3);
	CHECK(spans[0].first_token == 1);
	CHECK(spans[0].end_token == 3);
	CHECK(spans[0].label == 1);
	CHECK(spans[1].first_token == 4);
	CHECK(spans[1].end_token == 5);
	CHECK(spans[1].label == 0);
	CHECK(spans[2].first_token == 5);
	CHECK(spans[2].end_token == 7);
	CHECK(spans[2].label == 0);
}

/*
 * A 60 x 40 matrix of rank 3: row r is sum_c a_rc s_c v_c for three
 * orthonormal directions v_c (disjoint supports) and scales s = 9, 4, 1.
 */
#define SVD_ROWS 60
#define SVD_DIM 40
#define SVD_RANK 3

static void
build_low_rank(uint64_t *row_start, uint32_t *index, float *value)
{
	static const float scale[SVD_RANK] = {9.0f, 4.0f, 1.0f};
	uint64_t	state = 7;

	for (uint32_t r = 0; r < SVD_ROWS; r++)
	{
		row_start[r] = (uint64_t) r * SVD_DIM;
		for (uint32_t j = 0; j < SVD_DIM; j++)
		{
			index[r * SVD_DIM + j] = j;
			value[r * SVD_DIM + j] = 0.0f;
		}
		for (uint32_t c = 0; c < SVD_RANK; c++)
		{
			double		a;

			state = state * UINT64_C(6364136223846793005) + 1442695040888963407;
			a = (double) (state >> 11) / 9007199254740992.0 - 0.5;

			/* v_c is 1/sqrt(8) on buckets 8c .. 8c + 7, with alternating signs. */
			for (uint32_t j = 8 * c; j < 8 * c + 8; j++)
				value[r * SVD_DIM + j] += (float) (a * scale[c] * ((j % 2) ? -1.0 : 1.0) / sqrt(8.0));
		}
	}
	row_start[SVD_ROWS] = (uint64_t) SVD_ROWS * SVD_DIM;
}

static void
test_pool_svd_low_rank(void)
{
	uint64_t	row_start[SVD_ROWS + 1];
	uint32_t   *index = malloc(SVD_ROWS * SVD_DIM * sizeof(uint32_t));
	float	   *value = malloc(SVD_ROWS * SVD_DIM * sizeof(float));
	float		projection[SVD_DIM * SVD_RANK];
	float		singular[SVD_RANK];
	char		errbuf[128];
	double		frobenius2 = 0.0;
	double		sigma2 = 0.0;
	double		max_gram_error = 0.0;
	double		max_residual = 0.0;

	build_low_rank(row_start, index, value);
	CHECK(hl_pool_embedding_fit(SVD_ROWS, SVD_DIM, row_start, index, value,
								SVD_RANK, 2, 1, 1, projection, singular,
								errbuf, sizeof(errbuf)) == 0);

	/* P^T P is the identity. */
	for (int a = 0; a < SVD_RANK; a++)
		for (int b = 0; b < SVD_RANK; b++)
		{
			double		dot = 0.0;

			for (int j = 0; j < SVD_DIM; j++)
				dot += (double) projection[j * SVD_RANK + a] * projection[j * SVD_RANK + b];
			max_gram_error = fmax(max_gram_error, fabs(dot - (a == b ? 1.0 : 0.0)));
		}
	CHECK(max_gram_error < 1e-4);

	/* Every row is reconstructed by P P^T x, and sum sigma^2 = ||A||_F^2. */
	for (int r = 0; r < SVD_ROWS; r++)
	{
		const float *x = value + r * SVD_DIM;
		double		coef[SVD_RANK] = {0};

		for (int c = 0; c < SVD_RANK; c++)
			for (int j = 0; j < SVD_DIM; j++)
				coef[c] += (double) x[j] * projection[j * SVD_RANK + c];
		for (int j = 0; j < SVD_DIM; j++)
		{
			double		rebuilt = 0.0;

			for (int c = 0; c < SVD_RANK; c++)
				rebuilt += coef[c] * projection[j * SVD_RANK + c];
			max_residual = fmax(max_residual, fabs(rebuilt - x[j]));
			frobenius2 += (double) x[j] * x[j];
		}
	}
	for (int c = 0; c < SVD_RANK; c++)
		sigma2 += (double) singular[c] * singular[c];
	CHECK(max_residual < 1e-4);
	CHECK(fabs(sigma2 - frobenius2) < 1e-3 * frobenius2);
	CHECK(singular[0] >= singular[1]);
	CHECK(singular[1] >= singular[2]);
	CHECK(singular[2] > 0.0f);

	/* The same seed gives the same projection. */
	{
		float		again[SVD_DIM * SVD_RANK];

		hl_pool_embedding_fit(SVD_ROWS, SVD_DIM, row_start, index, value,
							  SVD_RANK, 2, 1, 1, again, NULL, errbuf, sizeof(errbuf));
		CHECK(memcmp(again, projection, sizeof(again)) == 0);
	}
	free(index);
	free(value);
}

static void
test_pool_svd_more_components_than_rank(void)
{
	uint64_t	row_start[SVD_ROWS + 1];
	uint32_t   *index = malloc(SVD_ROWS * SVD_DIM * sizeof(uint32_t));
	float	   *value = malloc(SVD_ROWS * SVD_DIM * sizeof(float));
	float		projection[SVD_DIM * 8];
	float		singular[8];
	char		errbuf[128];
	double		max_gram_error = 0.0;

	/* k = 8 on a rank-3 matrix: the extra columns are still orthonormal. */
	build_low_rank(row_start, index, value);
	CHECK(hl_pool_embedding_fit(SVD_ROWS, SVD_DIM, row_start, index, value,
								8, 4, 2, 3, projection, singular,
								errbuf, sizeof(errbuf)) == 0);
	for (int a = 0; a < 8; a++)
		for (int b = 0; b < 8; b++)
		{
			double		dot = 0.0;

			for (int j = 0; j < SVD_DIM; j++)
				dot += (double) projection[j * 8 + a] * projection[j * 8 + b];
			max_gram_error = fmax(max_gram_error, fabs(dot - (a == b ? 1.0 : 0.0)));
		}
	CHECK(max_gram_error < 1e-4);
	CHECK(singular[3] < 1e-2f * singular[2]);
	free(index);
	free(value);
}

static void
test_pool_svd_rejects_bad_k(void)
{
	uint64_t	row_start[2] = {0, 1};
	uint32_t	index[1] = {0};
	float		value[1] = {1.0f};
	float		projection[16];
	char		errbuf[128] = "";

	CHECK(hl_pool_embedding_fit(1, 4, row_start, index, value, 0, 2, 1, 1,
								projection, NULL, errbuf, sizeof(errbuf)) == -1);
	CHECK(strstr(errbuf, "out of range") != NULL);
	CHECK(hl_pool_embedding_fit(1, 4, row_start, index, value, 5, 2, 1, 1,
								projection, NULL, errbuf, sizeof(errbuf)) == -1);
}

/* Set v to the n entries of index and value, in new arrays. */
static void
sparse_from(HlSparseVec *v, uint32_t n, const uint32_t *index, const float *value)
{
	hl_sparse_init(v);
	v->index = hl_alloc_array(n, sizeof(uint32_t));
	v->value = hl_alloc_array(n, sizeof(float));
	v->capacity = n;
	v->nnz = n;
	memcpy(v->index, index, sizeof(uint32_t) * n);
	memcpy(v->value, value, sizeof(float) * n);
}

static void
test_pool_embedding_append(void)
{
	/* dim 4, k 2: P has the loadings of e0 + e1 and e2. */
	const float projection[4 * 2] = {
		0.7071068f, 0.0f,
		0.7071068f, 0.0f,
		0.0f, 1.0f,
		0.0f, 0.0f,
	};
	float		scratch[2];
	HlSparseVec x;
	HlSparseVec empty;
	double		norm2 = 0.0;

	sparse_from(&x, 2, (const uint32_t[]) {0, 2}, (const float[]) {0.6f, 0.8f});

	hl_pool_embedding_append(projection, 4, 2, 0.5f, &x, scratch);
	CHECK(x.nnz == 4);
	CHECK(x.index[0] == 0);
	CHECK(x.index[1] == 2);
	CHECK(x.index[2] == 4);
	CHECK(x.index[3] == 5);
	norm2 = (double) x.value[2] * x.value[2] + (double) x.value[3] * x.value[3];
	CHECK(fabs(sqrt(norm2) - 0.5) < 1e-6);
	CHECK(fabs(x.value[3] / x.value[2] - 0.8 / (0.6 * 0.7071068)) < 1e-4);

	/* Appending again replaces the embedding instead of adding a second. */
	hl_pool_embedding_append(projection, 4, 2, 0.5f, &x, scratch);
	CHECK(x.nnz == 4);
	CHECK(x.index[3] == 5);

	/* A vector only on bucket 3 embeds to zero and gets no entries. */
	sparse_from(&empty, 1, (const uint32_t[]) {3}, (const float[]) {1.0f});
	hl_pool_embedding_append(projection, 4, 2, 0.5f, &empty, scratch);
	CHECK(empty.nnz == 1);

	hl_sparse_free(&x);
	hl_sparse_free(&empty);
}

/* Rows of three topics over 48 buckets: each row has 4 buckets of its topic's 16. */
enum
{
	NOVELTY_DIM = 48,
	NOVELTY_PER_TOPIC = 60,
	NOVELTY_NNZ = 4
};

/* Write rows of the given topics, NOVELTY_PER_TOPIC each, in CSR form. */
static uint32_t
novelty_rows(const int *topics, int n_topics, uint64_t *state, uint64_t *row_start,
			 uint32_t *index, float *value, int32_t *label)
{
	uint32_t	n = 0;

	row_start[0] = 0;
	for (int t = 0; t < n_topics; t++)
		for (int r = 0; r < NOVELTY_PER_TOPIC; r++)
		{
			uint64_t	start = row_start[n];

			for (int e = 0; e < NOVELTY_NNZ; e++)
			{
				/* Distinct, increasing buckets: one from each quarter of the topic's 16. */
				*state = *state * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
				index[start + e] = (uint32_t) (topics[t] * 16 + e * 4 + (int) ((*state >> 33) % 4));
				value[start + e] = 0.5f;
			}
			if (label)
				label[n] = topics[t];
			row_start[n + 1] = start + NOVELTY_NNZ;
			n++;
		}
	return n;
}

static void
test_novelty_unlabelled_topic(void)
{
	const int	labelled_topics[2] = {0, 1};
	const int	pool_topics[3] = {0, 1, 2};
	uint64_t	state = 7;
	uint64_t	lab_start[2 * NOVELTY_PER_TOPIC + 1];
	uint32_t	lab_index[2 * NOVELTY_PER_TOPIC * NOVELTY_NNZ];
	float		lab_value[2 * NOVELTY_PER_TOPIC * NOVELTY_NNZ];
	int32_t		lab_label[2 * NOVELTY_PER_TOPIC];
	uint64_t	pool_start[3 * NOVELTY_PER_TOPIC + 1];
	uint32_t	pool_index[3 * NOVELTY_PER_TOPIC * NOVELTY_NNZ];
	float		pool_value[3 * NOVELTY_PER_TOPIC * NOVELTY_NNZ];
	HlSparseRows labelled;
	HlSparseRows pool;
	HlSparseRows empty;
	HlNovelty	novelty;
	char		errbuf[128];
	float		scratch[2 * 6];
	double		mean[3] = {0.0, 0.0, 0.0};

	labelled.n_rows = novelty_rows(labelled_topics, 2, &state, lab_start, lab_index, lab_value, lab_label);
	labelled.row_start = lab_start;
	labelled.index = lab_index;
	labelled.value = lab_value;
	labelled.group = NULL;
	pool.n_rows = novelty_rows(pool_topics, 3, &state, pool_start, pool_index, pool_value, NULL);
	pool.row_start = pool_start;
	pool.index = pool_index;
	pool.value = pool_value;
	pool.group = NULL;
	CHECK(hl_novelty_fit(&pool, &labelled, lab_label, NULL, 2, NOVELTY_DIM, 6, 1, &novelty,
						 errbuf, sizeof(errbuf)) == 0);

	/* Rows of the unlabelled topic are far more novel than labelled ones. */
	for (uint32_t r = 0; r < pool.n_rows; r++)
	{
		HlSparseVec x;

		x.nnz = (uint32_t) (pool_start[r + 1] - pool_start[r]);
		x.capacity = x.nnz;
		x.index = pool_index + pool_start[r];
		x.value = pool_value + pool_start[r];
		mean[r / NOVELTY_PER_TOPIC] += hl_novelty_score(&novelty, &x, scratch) / NOVELTY_PER_TOPIC;
	}
	CHECK(fabs(mean[0]) < 2.0);
	CHECK(fabs(mean[1]) < 2.0);
	CHECK(mean[2] > mean[0] + 3.0);
	CHECK(mean[2] > mean[1] + 3.0);
	hl_novelty_free(&novelty);

	/* Too few pool rows, or no labelled row, is an error, not a crash. */
	empty.n_rows = 0;
	empty.row_start = lab_start;
	empty.index = lab_index;
	empty.value = lab_value;
	empty.group = NULL;
	CHECK(hl_novelty_fit(&empty, &labelled, lab_label, NULL, 2, NOVELTY_DIM, 6, 1, &novelty,
						 errbuf, sizeof(errbuf)) == -1);
	CHECK(hl_novelty_fit(&pool, &empty, lab_label, NULL, 2, NOVELTY_DIM, 6, 1, &novelty,
						 errbuf, sizeof(errbuf)) == -1);
	CHECK(strstr(errbuf, "no labelled rows") != NULL);

	/* Six labelled rows, fewer than the folds need, use in-sample distances. */
	labelled.n_rows = 6;
	CHECK(hl_novelty_fit(&pool, &labelled, lab_label, NULL, 2, NOVELTY_DIM, 6, 1, &novelty,
						 errbuf, sizeof(errbuf)) == 0);
	CHECK(isfinite(novelty.center));
	CHECK(novelty.spread > 0.0f);
	hl_novelty_free(&novelty);
}

/* A tiny CRF problem: 2 labels (5 tags), 8 features, 4 sentences. */
enum
{
	TINY_DIM = 8,
	TINY_TAGS = 5,
	TINY_TOKENS = 11
};
static const uint32_t tiny_sentence_start[5] = {0, 3, 6, 8, 11};
static const int32_t tiny_tag[TINY_TOKENS] = {0, 1, 2, 3, 4, 0, 1, 0, 0, 3, 0};
static uint64_t tiny_row_start[TINY_TOKENS + 1];
static uint32_t tiny_index[TINY_TOKENS * 2];
static float tiny_value[TINY_TOKENS * 2];
static const float tiny_weight[4] = {1.0f, 0.5f, 2.0f, 1.0f};

static HlCrfData
tiny_crf_data(void)
{
	HlCrfData	data;

	for (uint32_t t = 0; t < TINY_TOKENS; t++)
	{
		tiny_row_start[t] = 2 * t;
		tiny_index[2 * t] = (t * 3) % TINY_DIM;
		tiny_index[2 * t + 1] = (t * 5 + 1) % TINY_DIM;
		if (tiny_index[2 * t + 1] == tiny_index[2 * t])
			tiny_index[2 * t + 1] = (tiny_index[2 * t] + 1) % TINY_DIM;
		tiny_value[2 * t] = 0.8f;
		tiny_value[2 * t + 1] = 0.6f;
	}
	tiny_row_start[TINY_TOKENS] = 2 * TINY_TOKENS;
	data = (HlCrfData) {4, TINY_DIM, TINY_TAGS, tiny_sentence_start, tiny_row_start,
		tiny_index, tiny_value, tiny_tag, tiny_weight};
	return data;
}

static void
test_crf_gradient_matches_differences(void)
{
	HlCrfData	data = tiny_crf_data();
	size_t		n = hl_crf_param_count(&data);
	double	   *theta = calloc(n, sizeof(double));
	double	   *grad = calloc(n, sizeof(double));
	double	   *unused = calloc(n, sizeof(double));
	double		worst = 0.0;
	uint64_t	state = 7;

	CHECK(n > (size_t) TINY_TAGS + (TINY_TAGS + 1) * TINY_TAGS);
	for (size_t i = 0; i < n; i++)
	{
		state = state * 6364136223846793005ULL + 1442695040888963407ULL;
		theta[i] = ((double) (state >> 11) / 9007199254740992.0 - 0.5) * 2.0;
	}
	hl_crf_objective(&data, 0.3, theta, grad);
	for (size_t i = 0; i < n; i++)
	{
		double		saved = theta[i];
		double		up;
		double		down;

		theta[i] = saved + 1e-5;
		up = hl_crf_objective(&data, 0.3, theta, unused);
		theta[i] = saved - 1e-5;
		down = hl_crf_objective(&data, 0.3, theta, unused);
		theta[i] = saved;
		if (fabs((up - down) / 2e-5 - grad[i]) > worst)
			worst = fabs((up - down) / 2e-5 - grad[i]);
	}
	CHECK(worst < 1e-5);
	free(theta);
	free(grad);
	free(unused);
}

/* Return the score of tags under transitions a and emissions psi, or -INFINITY if invalid. */
static double
path_score(const double *a, const double *psi, const int32_t *tags, uint32_t n, uint32_t k)
{
	double		score = 0.0;

	for (uint32_t t = 0; t < n; t++)
	{
		uint32_t	prev = t == 0 ? k : (uint32_t) tags[t - 1];

		if (!hl_crf_transition_allowed(k, prev, (uint32_t) tags[t]))
			return -INFINITY;
		score += a[(size_t) prev * k + tags[t]] + psi[(size_t) t * k + tags[t]];
	}
	return score;
}

static void
test_crf_forward_backward_exact(void)
{
	enum
	{
		K = 5,
		T = 4
	};
	double		a[(K + 1) * K];
	float		af[(K + 1) * K];
	double		psi[T * K];
	double		marginal[T * K] = {0};
	double		z = 0.0;
	double		log_z;
	CrfLattice	lat;
	CrfPass		pass = {0};
	int32_t		tags[T];
	double		best = -INFINITY;
	int32_t		best_tags[T] = {0};
	double		score[T * K];
	int32_t		back[T * K];
	int32_t		decoded[T];
	double		row_max[K];

	for (int i = 0; i < (K + 1) * K; i++)
		af[i] = (float) (a[i] = sin(1.7 * i) * 1.5);
	for (int i = 0; i < T * K; i++)
		psi[i] = cos(0.9 * i) * 2.0;

	/* Brute force over all K^T tag sequences. */
	for (int code = 0; code < K * K * K * K; code++)
	{
		double		s;

		for (int t = 0, c = code; t < T; t++, c /= K)
			tags[t] = c % K;
		s = path_score(a, psi, tags, T, K);
		if (s == -INFINITY)
			continue;
		z += exp(s);
		for (int t = 0; t < T; t++)
			marginal[t * K + tags[t]] += exp(s);
		if (s > best)
		{
			best = s;
			memcpy(best_tags, tags, sizeof(tags));
		}
	}

	crf_lattice_init(&lat, K);
	crf_lattice_fill_double(&lat, a);
	crf_pass_reserve(&pass, T, K, lat.n_dense);
	log_z = crf_forward_backward(&lat, psi, T, &pass);
	CHECK(fabs(log_z - log(z)) < 1e-9);
	for (int t = 0; t < T; t++)
	{
		double		sum = 0.0;

		for (int j = 0; j < K; j++)
		{
			double		p = pass.alpha[t * K + j] * pass.beta[t * K + j];

			sum += p;
			CHECK(fabs(p - marginal[t * K + j] / z) < 1e-9);
		}
		CHECK(fabs(sum - 1.0) < 1e-9);
	}

	crf_viterbi(af, K, psi, T, score, back, decoded, row_max);
	for (int t = 0; t < T; t++)
		CHECK(decoded[t] == best_tags[t]);

	crf_pass_free(&pass);
	crf_lattice_free(&lat);
}

static void
test_crf_viterbi_matches_brute_force(void)
{
	enum
	{
		K = 5,
		T = 4
	};
	double		a[(K + 1) * K];
	float		af[(K + 1) * K];
	double		psi[T * K];
	double		score[T * K];
	int32_t		back[T * K];
	int32_t		decoded[T];
	int32_t		tags[T];
	double		row_max[K];
	uint64_t	state = 5;
	int			matches = 0;

	for (int round = 0; round < 100; round++)
	{
		double		best = -INFINITY;

		/* Wide transition and emission ranges exercise the row pruning. */
		for (int i = 0; i < (K + 1) * K; i++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			af[i] = (float) (((state >> 11) % 2000) / 100.0 - 10.0);
			a[i] = af[i];
		}
		for (int i = 0; i < T * K; i++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			psi[i] = ((state >> 11) % 2000) / 100.0 - 10.0;
		}
		for (int code = 0; code < K * K * K * K; code++)
		{
			double		s;

			for (int t = 0, c = code; t < T; t++, c /= K)
				tags[t] = c % K;
			s = path_score(a, psi, tags, T, K);
			if (s > best)
				best = s;
		}
		crf_viterbi(af, K, psi, T, score, back, decoded, row_max);
		if (fabs(path_score(a, psi, decoded, T, K) - best) < 1e-9)
			matches++;
	}
	CHECK(matches == 100);
}

static void
test_crf_viterbi_keeps_bio(void)
{
	enum
	{
		K = 7,
		T = 12
	};
	float		a[(K + 1) * K];
	double		psi[T * K];
	double		score[T * K];
	int32_t		back[T * K];
	int32_t		tags[T];
	uint64_t	state = 99;
	int			valid = 1;
	double		row_max[K];

	for (int round = 0; round < 200; round++)
	{
		for (int i = 0; i < (K + 1) * K; i++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			a[i] = (float) (((state >> 11) % 1000) / 100.0 - 5.0);
		}
		/* I tags score highest everywhere, so only the constraints stop them. */
		for (int i = 0; i < T * K; i++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			psi[i] = ((state >> 11) % 1000) / 100.0 + (crf_is_inside(i % K) ? 20.0 : 0.0);
		}
		crf_viterbi(a, K, psi, T, score, back, tags, row_max);
		for (int t = 0; t < T; t++)
			if (!hl_crf_transition_allowed(K, t == 0 ? K : (uint32_t) tags[t - 1], (uint32_t) tags[t]))
				valid = 0;
	}
	CHECK(valid);
}

static void
test_crf_learns_spans(void)
{
	static const char *const names[4] = {"adele", "queen", "abba", "bjork"};
	static const char *const places[3] = {"spotify", "deezer", "youtube"};
	enum
	{
		N = 48
	};
	char		texts[N][64];
	HlSentenceFeatures f;
	uint32_t	sentence_start[N + 1];
	uint64_t	row_start[N * 8 + 1];
	uint32_t	index[N * 8 * 24];
	float		value[N * 8 * 24];
	int32_t		tag[N * 8];
	uint32_t	rows = 0;
	HlCrfData	data;
	HlClassifier emission;
	HlCrfTransitions transitions;
	HlCrfFitReport report;
	HlTaggerOutput out;
	char		err[128];
	const char *probe = "play abba on youtube";
	int32_t		bad_tag[N * 8];

	hl_sentence_features_init(&f);
	row_start[0] = 0;
	for (int i = 0; i < N; i++)
	{
		const char *name = names[i % 4];
		const char *place = places[i % 3];
		HlCharSpan	spans[2];

		snprintf(texts[i], sizeof(texts[i]), "play %s on %s", name, place);
		spans[0] = (HlCharSpan) {5, 5 + (uint32_t) strlen(name), 0};
		spans[1] = (HlCharSpan) {9 + (uint32_t) strlen(name),
			9 + (uint32_t) (strlen(name) + strlen(place)), 1};
		hl_span_featurize(texts[i], strlen(texts[i]), 12, NULL, &f);
		sentence_start[i] = rows;
		hl_tags_from_spans(f.tokens, f.n_tokens, spans, 2, tag + rows);
		for (uint32_t t = 0; t < f.n_tokens; t++)
		{
			uint64_t	a = f.row_start[t];
			uint64_t	b = f.row_start[t + 1];

			memcpy(index + row_start[rows], f.index + a, sizeof(uint32_t) * (b - a));
			memcpy(value + row_start[rows], f.value + a, sizeof(float) * (b - a));
			row_start[rows + 1] = row_start[rows] + (b - a);
			rows++;
		}
	}
	sentence_start[N] = rows;
	data = (HlCrfData) {N, 1u << 12, 5, sentence_start, row_start, index, value, tag, NULL};
	hl_classifier_alloc(&emission, data.dim, data.n_tags);
	hl_crf_transitions_alloc(&transitions, data.n_tags);
	CHECK(hl_crf_fit(&data, 1.0, 100, &emission, &transitions, &report, err, sizeof(err)) == 0);
	CHECK(report.train_token_accuracy == 1.0);
	CHECK(transitions.precision[0] > 0.0f);
	CHECK(transitions.precision[(5 + 1) * 5 - 1] == 0.0f);	/* start -> I-1 is forbidden */
	hl_crf_prepare(&emission, &transitions);

	hl_tagger_output_init(&out);
	hl_span_featurize(probe, strlen(probe), 12, NULL, &f);
	hl_crf_predict(&emission, &transitions, 2, &f, &out);
	CHECK(out.n_spans == 2);
	if (out.n_spans == 2)
	{
		CHECK(f.tokens[out.spans[0].first_token].char_start == 5);
		CHECK(f.tokens[out.spans[0].end_token - 1].char_end == 9);
		CHECK(out.spans[0].label == 0);
		CHECK(out.spans[1].label == 1);
		CHECK(out.spans[0].probability > 0.5f);
		CHECK(out.spans[0].probability <= 1.0f);
		CHECK(out.spans[0].mutual_information >= 0.0f);
	}
	for (uint32_t t = 0; t < out.n_tokens; t++)
	{
		float		sum = 0.0f;

		for (uint32_t j = 0; j < 5; j++)
			sum += out.proba[t * 5 + j];
		CHECK(fabsf(sum - 1.0f) < 1e-4f);
		CHECK(out.mutual_information[t] <= out.entropy[t] + 1e-6f);
	}

	/*
	 * A temperature fitted on held-out sentences: the first half trains,
	 * the second half (48 spans) calibrates.  With every held-out span
	 * decoded right there is nothing to fit, and T stays 1.  Once the gold
	 * labels of eight sentences are swapped, 16 confident spans are wrong,
	 * which calls for T above 1.  T must not move the decoded spans.
	 */
	{
		HlCrfData	fit = data;
		HlCrfData	heldout = data;
		HlCrfCalibration calibration;
		HlTagSpan	before[2];
		int32_t		swapped_tag[N * 8];

		fit.n_sentences = N / 2;
		heldout.n_sentences = N / 2;
		heldout.sentence_start = sentence_start + N / 2;
		CHECK(hl_crf_fit(&fit, 1.0, 100, &emission, &transitions, &report, err, sizeof(err)) == 0);
		emission.variance_scale = 0.01f;
		hl_crf_prepare(&emission, &transitions);
		hl_crf_predict(&emission, &transitions, 2, &f, &out);
		CHECK(out.n_spans == 2);
		memcpy(before, out.spans, sizeof(before));

		hl_crf_fit_temperature(&emission, &transitions, 2, &heldout, &calibration);
		CHECK(calibration.sentences == N / 2);
		CHECK(calibration.gold_spans == N);
		CHECK(calibration.predicted_spans == N);
		CHECK(calibration.correct_spans == N);
		CHECK(!calibration.fitted);
		CHECK(calibration.temperature == 1.0);
		CHECK(transitions.draws == NULL);

		/* B-0 and B-1 are tags 1 and 3, I-0 and I-1 tags 2 and 4. */
		memcpy(swapped_tag, tag, sizeof(int32_t) * rows);
		for (uint32_t i = sentence_start[N / 2]; i < sentence_start[N / 2 + 8]; i++)
			if (swapped_tag[i] != 0)
				swapped_tag[i] = swapped_tag[i] <= 2 ? swapped_tag[i] + 2 : swapped_tag[i] - 2;
		heldout.tag = swapped_tag;
		hl_crf_fit_temperature(&emission, &transitions, 2, &heldout, &calibration);
		CHECK(calibration.correct_spans == N - 16);
		CHECK(calibration.fitted);
		CHECK(calibration.temperature > 1.0);
		CHECK(calibration.temperature <= 3.0);
		CHECK(emission.temperature == (float) calibration.temperature);
		CHECK(calibration.nll_after <= calibration.nll_before);
		CHECK(transitions.draws == NULL);

		hl_crf_prepare(&emission, &transitions);
		hl_crf_predict(&emission, &transitions, 2, &f, &out);
		CHECK(out.n_spans == 2);
		for (uint32_t i = 0; i < out.n_spans && i < 2; i++)
		{
			CHECK(out.spans[i].first_token == before[i].first_token);
			CHECK(out.spans[i].end_token == before[i].end_token);
			CHECK(out.spans[i].probability <= before[i].probability);
		}
		hl_crf_release(&transitions);

		/*
		 * The full fit started from the half fit needs no more iterations
		 * than one from zero, and learns the same.
		 */
		{
			HlClassifier full_emission;
			HlCrfTransitions full_transitions;
			HlCrfFitReport scratch;
			HlCrfFitReport warm;

			hl_classifier_alloc(&full_emission, data.dim, data.n_tags);
			hl_crf_transitions_alloc(&full_transitions, data.n_tags);
			CHECK(hl_crf_fit(&data, 1.0, 100, &full_emission, &full_transitions, &scratch,
							 err, sizeof(err)) == 0);
			CHECK(hl_crf_fit_from(&data, 1.0, 100, &emission, &transitions, &full_emission,
								  &full_transitions, &warm, err, sizeof(err)) == 0);
			CHECK(warm.iterations <= scratch.iterations);
			CHECK(warm.train_token_accuracy == 1.0);
			CHECK(fabs(warm.objective - scratch.objective) < 1e-3 * fabs(scratch.objective) + 1e-6);
			CHECK(hl_crf_fit_from(&data, 1.0, 100, &full_emission, NULL, &emission, &transitions,
								  &warm, err, sizeof(err)) == -1);
			hl_classifier_free(&full_emission);
			hl_crf_transitions_free(&full_transitions);
		}

		/* Below HL_CRF_MIN_CALIBRATION_SPANS decoded spans T stays 1. */
		heldout.n_sentences = 4;
		hl_crf_fit_temperature(&emission, &transitions, 2, &heldout, &calibration);
		CHECK(calibration.temperature == 1.0);
		CHECK(emission.temperature == 1.0f);
		hl_crf_release(&transitions);
	}

	/* Tags that break BIO are rejected with a message. */
	memcpy(bad_tag, tag, sizeof(int32_t) * rows);
	bad_tag[0] = 2;
	data.tag = bad_tag;
	CHECK(hl_crf_fit(&data, 1.0, 5, &emission, &transitions, &report, err, sizeof(err)) == -1);
	CHECK(strstr(err, "BIO") != NULL);

	hl_tagger_output_free(&out);
	hl_sentence_features_free(&f);
	hl_classifier_free(&emission);
	hl_crf_transitions_free(&transitions);
}

/* Set row i of x (dim 4) to the unit vector along (a, b, c, d). */
static void
set_unit4(float *x, int i, double a, double b, double c, double d)
{
	double		norm = sqrt(a * a + b * b + c * c + d * d);

	x[i * 4 + 0] = (float) (a / norm);
	x[i * 4 + 1] = (float) (b / norm);
	x[i * 4 + 2] = (float) (c / norm);
	x[i * 4 + 3] = (float) (d / norm);
}

static void
test_disagreement_pairs(void)
{
	float		x[6 * 4];
	int32_t		label[6] = {0, 1, 0, 0, 2, 2};
	HlDisagreement d;

	/* Points 0 and 1 are near twins with labels 0 and 1, the rest agree. */
	set_unit4(x, 0, 1, 0, 0, 0);
	set_unit4(x, 1, 0.99, 0.14, 0, 0);
	set_unit4(x, 2, 0, 1, 0, 0);
	set_unit4(x, 3, 0, 0.99, 0.14, 0);
	set_unit4(x, 4, 0, 0, 0, 1);
	set_unit4(x, 5, 0, 0, 0.14, 0.99);
	hl_disagreement_fit(x, 6, 4, label, 3, &d);

	CHECK(d.points[0] == 3);
	CHECK(d.points[1] == 1);
	CHECK(d.points[2] == 2);
	CHECK(d.n_pairs == 1);
	CHECK(fabs(hl_disagreement_rate(&d, 0, 1) - 2.0 / (3 + 1 + HL_DISAGREEMENT_PRIOR)) < 1e-12);
	CHECK(hl_disagreement_rate(&d, 1, 0) == hl_disagreement_rate(&d, 0, 1));
	CHECK(hl_disagreement_rate(&d, 0, 2) == 0.0);
	CHECK(hl_disagreement_rate(&d, 1, 1) == 0.0);
	CHECK(hl_disagreement_rate(&d, -1, 0) == 0.0);
	CHECK(hl_disagreement_rate(&d, 0, 3) == 0.0);
	hl_disagreement_free(&d);

	/* Two labels of one text: identical points, each the other's neighbour. */
	set_unit4(x, 1, 1, 0, 0, 0);
	label[1] = 2;
	hl_disagreement_fit(x, 2, 4, label, 3, &d);
	CHECK(fabs(hl_disagreement_rate(&d, 0, 2) - 2.0 / (2 + HL_DISAGREEMENT_PRIOR)) < 1e-12);
	hl_disagreement_free(&d);

	/* No points, and a single point without a neighbour. */
	hl_disagreement_fit(x, 0, 4, label, 3, &d);
	CHECK(d.n_pairs == 0);
	CHECK(hl_disagreement_rate(&d, 0, 2) == 0.0);
	hl_disagreement_free(&d);
	hl_disagreement_fit(x, 1, 4, label, 3, &d);
	CHECK(d.n_pairs == 0);
	CHECK(d.points[0] == 1);
	hl_disagreement_free(&d);
}

/* Across several blocks of the similarity matrix, the counts match a plain search. */
static void
test_disagreement_blocks(void)
{
	enum
	{
		N = 600, DIM = 8, CLASSES = 5
	};
	float	   *x = hl_alloc_array(N * DIM, sizeof(float));
	int32_t		label[N];
	uint32_t	expected[CLASSES][CLASSES];
	uint64_t	state = 42;
	HlDisagreement d;
	int			mismatches = 0;

	memset(expected, 0, sizeof(expected));
	for (int i = 0; i < N; i++)
	{
		double		norm = 0.0;

		for (int k = 0; k < DIM; k++)
		{
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			x[i * DIM + k] = (float) ((double) (state >> 11) / 9007199254740992.0 - 0.5);
			norm += (double) x[i * DIM + k] * x[i * DIM + k];
		}
		for (int k = 0; k < DIM; k++)
			x[i * DIM + k] /= (float) sqrt(norm);
		label[i] = (int32_t) ((state >> 20) % CLASSES);
	}
	for (int i = 0; i < N; i++)
	{
		int			best = -1;
		float		best_sim = 0.0f;

		for (int j = 0; j < N; j++)
		{
			float		sim = 0.0f;

			for (int k = 0; k < DIM; k++)
				sim += x[i * DIM + k] * x[j * DIM + k];
			if (j != i && (best < 0 || sim > best_sim))
			{
				best = j;
				best_sim = sim;
			}
		}
		if (label[best] != label[i])
			expected[label[i] < label[best] ? label[i] : label[best]]
				[label[i] < label[best] ? label[best] : label[i]]++;
	}

	hl_disagreement_fit(x, N, DIM, label, CLASSES, &d);
	for (int a = 0; a < CLASSES; a++)
		for (int b = a + 1; b < CLASSES; b++)
		{
			double		denominator = d.points[a] + d.points[b] + HL_DISAGREEMENT_PRIOR;
			double		rate = expected[a][b] / denominator;

			/* sgemm sums in another order, so one near tie may go the other way. */
			if (fabs(hl_disagreement_rate(&d, a, b) - rate) > 1.0 / denominator + 1e-12)
				mismatches++;
		}
	CHECK(mismatches == 0);
	hl_disagreement_free(&d);
	hl_free(x);
}

/* The wide embedding is a unit vector and the same for the same input. */
static void
test_embed_wide(void)
{
	HlSparseVec v;
	float		a[HL_WIDE_EMBED_DIM];
	float		b[HL_WIDE_EMBED_DIM];
	float		narrow[HL_EMBED_DIM];
	double		norm2 = 0.0;

	sparse_from(&v, 3, (const uint32_t[]) {5, 900, 16000}, (const float[]) {0.6f, 0.48f, 0.64f});

	hl_embed_wide(&v, a);
	hl_embed_wide(&v, b);
	hl_embed(&v, narrow);
	for (int d = 0; d < HL_WIDE_EMBED_DIM; d++)
		norm2 += (double) a[d] * a[d];
	CHECK(fabs(norm2 - 1.0) < 1e-5);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(fabs(hl_embed_dot(narrow, narrow) - 1.0) < 1e-5);

	/* An empty vector embeds to zeros. */
	v.nnz = 0;
	hl_embed_wide(&v, a);
	norm2 = 0.0;
	for (int d = 0; d < HL_WIDE_EMBED_DIM; d++)
		norm2 += (double) a[d] * a[d];
	CHECK(norm2 == 0.0);
	hl_sparse_free(&v);
}

int
main(void)
{
	test_alloc_array_zeroes();
	test_tokenize_ascii_offsets();
	test_tokenize_utf8_offsets();
	test_tokenize_separators();
	test_tokenize_invalid_bytes();
	test_tokenize_max_tokens();
	test_tokenize_punctuation_offsets();
	test_tokenize_punctuation_spaces();
	test_span_features_rows();
	test_tags_from_spans();
	test_spans_from_tags();
	test_crf_gradient_matches_differences();
	test_crf_forward_backward_exact();
	test_crf_viterbi_keeps_bio();
	test_crf_viterbi_matches_brute_force();
	test_crf_learns_spans();
	test_lower_scripts();
	test_features_deterministic();
	test_features_empty_text();
	test_feature_config_check();
	test_tfidf();
	test_fit_separable_and_empty_class();
	test_fit_warm_start();
	test_predict_empty_vector();
	test_one_class_with_phantom();
	test_fit_tiny_row_counts();
	test_fit_rejects_bad_input();
	test_fit_heldout_split_with_groups();
	test_fit_keep_calibration();
	test_fit_prior_hint();
	test_self_training_keeps_split();
	test_fit_row_stages();
	test_fit_interrupt_hook();
	test_metrics_known_values();
	test_abstention_threshold();
	test_abstention_near_ties();
	test_abstention_close_not_tied();
	test_wilson_interval();
	test_pool_svd_low_rank();
	test_pool_svd_more_components_than_rank();
	test_pool_svd_rejects_bad_k();
	test_pool_embedding_append();
	test_novelty_unlabelled_topic();
	test_disagreement_pairs();
	test_disagreement_blocks();
	test_embed_wide();

	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed == 0 ? 0 : 1;
}

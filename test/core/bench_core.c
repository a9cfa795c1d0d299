/*
 * bench_core.c
 *		Benchmark of the numeric core on a labelled CSV data set (banking77).
 *
 * Build and run (test/core/bench_core.sh does both):
 *
 *	 cc -O2 -iquote src $(pkg-config --cflags openblas) -o test/core/bench_core \
 *		 test/core/bench_core.c src/hl_alloc.c src/tokenize.c src/features.c \
 *		 src/model_classifier.c $(pkg-config --libs openblas) -lm
 *	 test/core/bench_core TRAIN.csv TEST.csv [HASH_BITS [WORD_MAX [CHAR_MIN CHAR_MAX]]]
 *
 * Both files are CSV with the header "text,category"; quoted fields may
 * contain commas, line breaks and doubled quotes.  The document frequencies
 * come from the texts of both files, labelled or not, as in the extension,
 * which counts every text of the source table.  The fit time covers
 * featurisation, document frequencies and the whole fit including the
 * choice of the prior precision.  The prediction rate covers featurisation,
 * TF-IDF and hl_classifier_predict per test row.  OpenBLAS runs on one
 * thread, as in the server.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "features.h"
#include "hl_alloc.h"
#include "model_classifier.h"

#define ECE_BINS 15

typedef struct Csv
{
	size_t		n;
	char	  **text;
	size_t	   *len;
	char	  **category;
} Csv;

/* Return the current monotonic time in seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Read one CSV field starting at *pos into a fresh string; returns its length. */
static size_t
read_field(const char *buf, size_t size, size_t *pos, char **out)
{
	size_t		p = *pos;
	char	   *field = malloc(size - p + 1);
	size_t		n = 0;

	if (p < size && buf[p] == '"')
	{
		/* Quoted: "" is a quote, the field ends at a lone quote. */
		p++;
		while (p < size)
		{
			if (buf[p] == '"')
			{
				if (p + 1 < size && buf[p + 1] == '"')
				{
					field[n++] = '"';
					p += 2;
					continue;
				}
				p++;
				break;
			}
			field[n++] = buf[p++];
		}
	}
	else
	{
		while (p < size && buf[p] != ',' && buf[p] != '\n' && buf[p] != '\r')
			field[n++] = buf[p++];
	}
	field[n] = '\0';
	*pos = p;
	*out = field;
	return n;
}

/* Load a text,category CSV file; exits with a message on failure. */
static void
load_csv(const char *path, Csv *csv)
{
	FILE	   *fp = fopen(path, "rb");
	char	   *buf;
	long		size;
	size_t		pos = 0;
	size_t		cap = 1024;

	if (fp == NULL)
	{
		fprintf(stderr, "bench_core: could not open \"%s\"\n", path);
		exit(2);
	}
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(size + 1);
	if (fread(buf, 1, size, fp) != (size_t) size)
	{
		fprintf(stderr, "bench_core: could not read \"%s\"\n", path);
		exit(2);
	}
	fclose(fp);

	/* Skip the header line. */
	while (pos < (size_t) size && buf[pos] != '\n')
		pos++;
	pos++;

	csv->n = 0;
	csv->text = malloc(cap * sizeof(char *));
	csv->len = malloc(cap * sizeof(size_t));
	csv->category = malloc(cap * sizeof(char *));
	while (pos < (size_t) size)
	{
		if (buf[pos] == '\n' || buf[pos] == '\r')
		{
			pos++;
			continue;
		}
		if (csv->n == cap)
		{
			cap *= 2;
			csv->text = realloc(csv->text, cap * sizeof(char *));
			csv->len = realloc(csv->len, cap * sizeof(size_t));
			csv->category = realloc(csv->category, cap * sizeof(char *));
		}
		csv->len[csv->n] = read_field(buf, size, &pos, &csv->text[csv->n]);
		if (pos >= (size_t) size || buf[pos] != ',')
		{
			fprintf(stderr, "bench_core: missing category in \"%s\" at record %zu\n",
					path, csv->n + 1);
			exit(2);
		}
		pos++;
		read_field(buf, size, &pos, &csv->category[csv->n]);
		csv->n++;
	}
	free(buf);
}

/* Return the id of category name in names (appending it when new). */
static int
category_id(char ***names, int *n_names, const char *name)
{
	for (int c = 0; c < *n_names; c++)
		if (strcmp((*names)[c], name) == 0)
			return c;
	*names = realloc(*names, (*n_names + 1) * sizeof(char *));
	(*names)[*n_names] = strdup(name);
	return (*n_names)++;
}

int
main(int argc, char **argv)
{
	Csv			train;
	Csv			test;
	HlFeatureConfig config;
	HlFeaturizer *featurizer;
	HlSparseVec *vecs;
	uint32_t   *df;
	float	   *idf;
	uint64_t   *row_start;
	uint32_t   *index;
	float	   *value;
	int32_t    *label;
	int32_t    *test_label;
	char	  **names = NULL;
	int			n_names = 0;
	HlDataset	data;
	HlFitOptions options;
	HlClassifier model;
	HlFitReport report;
	char		errbuf[256];
	double		t0;
	double		fit_seconds;
	double		predict_seconds;
	size_t		n_docs;
	uint64_t	nnz = 0;
	double		nll = 0.0;
	double		correct = 0.0;
	double		brier = 0.0;
	double		bin_conf[ECE_BINS] = {0};
	double		bin_correct[ECE_BINS] = {0};
	double		bin_count[ECE_BINS] = {0};
	double		ece = 0.0;
	double		macro_f1 = 0.0;
	double		mean_mi = 0.0;
	int		   *tp;
	int		   *fp;
	int		   *fn;
	float	   *proba;
	float	   *workspace;
	HlSparseVec x;

	if (argc < 3)
	{
		fprintf(stderr, "usage: bench_core TRAIN.csv TEST.csv [HASH_BITS [WORD_MAX [CHAR_MIN CHAR_MAX]]]\n");
		return 2;
	}
	openblas_set_num_threads(1);

	hl_feature_config_default(&config);
	if (argc > 3)
		config.hash_bits = (uint8_t) atoi(argv[3]);
	if (argc > 4)
		config.word_ngram_max = (uint8_t) atoi(argv[4]);
	if (argc > 6)
	{
		config.char_ngram_min = (uint8_t) atoi(argv[5]);
		config.char_ngram_max = (uint8_t) atoi(argv[6]);
	}
	if (hl_feature_config_check(&config) != NULL)
	{
		fprintf(stderr, "bench_core: invalid feature settings: %s\n",
				hl_feature_config_check(&config));
		return 2;
	}

	load_csv(argv[1], &train);
	load_csv(argv[2], &test);
	n_docs = train.n + test.n;
	label = malloc(train.n * sizeof(int32_t));
	test_label = malloc(test.n * sizeof(int32_t));
	for (size_t i = 0; i < train.n; i++)
		label[i] = category_id(&names, &n_names, train.category[i]);
	for (size_t i = 0; i < test.n; i++)
		test_label[i] = category_id(&names, &n_names, test.category[i]);

	/* Timed: featurise every text, document frequencies, TF-IDF, fit. */
	t0 = now();
	featurizer = hl_featurizer_create(&config);
	vecs = calloc(n_docs, sizeof(HlSparseVec));
	df = calloc((size_t) 1 << config.hash_bits, sizeof(uint32_t));
	idf = malloc(((size_t) 1 << config.hash_bits) * sizeof(float));
	for (size_t i = 0; i < n_docs; i++)
	{
		const Csv  *src = i < train.n ? &train : &test;
		size_t		r = i < train.n ? i : i - train.n;

		hl_sparse_init(&vecs[i]);
		hl_featurize_counts(featurizer, src->text[r], src->len[r], &vecs[i]);
		hl_df_accumulate(df, &vecs[i]);
	}
	hl_idf_from_df(df, n_docs, (uint32_t) 1 << config.hash_bits, idf);

	row_start = malloc((train.n + 1) * sizeof(uint64_t));
	row_start[0] = 0;
	for (size_t i = 0; i < train.n; i++)
		row_start[i + 1] = row_start[i] + vecs[i].nnz;
	nnz = row_start[train.n];
	index = malloc(nnz * sizeof(uint32_t));
	value = malloc(nnz * sizeof(float));
	for (size_t i = 0; i < train.n; i++)
	{
		hl_tfidf_apply(idf, &vecs[i]);
		memcpy(index + row_start[i], vecs[i].index, vecs[i].nnz * sizeof(uint32_t));
		memcpy(value + row_start[i], vecs[i].value, vecs[i].nnz * sizeof(float));
	}
	{
		double		t_feat = now() - t0;

		fprintf(stderr, "featurised %zu texts in %.3f s (%.0f texts/s), %.1f nonzeros per training row\n",
				n_docs, t_feat, n_docs / t_feat, (double) nnz / train.n);
	}

	data.n_rows = (uint32_t) train.n;
	data.dim = (uint32_t) 1 << config.hash_bits;
	data.n_classes = (uint32_t) n_names;
	data.row_start = row_start;
	data.index = index;
	data.value = value;
	data.label = label;
	data.weight = NULL;
	data.group = NULL;
	hl_fit_options_default(&options);
	if (getenv("HL_PRIOR_PRECISION"))
		options.prior_precision = atof(getenv("HL_PRIOR_PRECISION"));
	hl_classifier_alloc(&model, data.dim, data.n_classes);
	if (hl_classifier_fit(&data, &options, &model, &report, errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "bench_core: fit failed: %s\n", errbuf);
		return 1;
	}
	fit_seconds = now() - t0;

	/* Timed: featurise and predict every test row from its text. */
	proba = malloc(model.n_classes * sizeof(float));
	workspace = malloc(hl_classifier_workspace_size(&model) * sizeof(float));
	tp = calloc(n_names, sizeof(int));
	fp = calloc(n_names, sizeof(int));
	fn = calloc(n_names, sizeof(int));
	hl_sparse_init(&x);
	t0 = now();
	for (size_t i = 0; i < test.n; i++)
	{
		HlPrediction pred;
		int			y = test_label[i];
		int			bin;

		hl_featurize_counts(featurizer, test.text[i], test.len[i], &x);
		hl_tfidf_apply(idf, &x);
		hl_classifier_predict(&model, &x, proba, &pred, workspace);

		nll -= log(fmax(proba[y], 1e-30));
		for (int c = 0; c < n_names; c++)
		{
			double		d = proba[c] - (c == y ? 1.0 : 0.0);

			brier += d * d;
		}
		bin = (int) (pred.probability * ECE_BINS);
		if (bin >= ECE_BINS)
			bin = ECE_BINS - 1;
		bin_conf[bin] += pred.probability;
		bin_count[bin] += 1;
		mean_mi += pred.mutual_information;
		if (pred.label == y)
		{
			correct += 1;
			bin_correct[bin] += 1;
			tp[y]++;
		}
		else
		{
			fp[pred.label]++;
			fn[y]++;
		}
	}
	predict_seconds = now() - t0;

	for (int b = 0; b < ECE_BINS; b++)
		if (bin_count[b] > 0)
			ece += fabs(bin_correct[b] - bin_conf[b]) / test.n;
	for (int c = 0; c < n_names; c++)
	{
		double		denom = 2.0 * tp[c] + fp[c] + fn[c];

		macro_f1 += denom > 0 ? 2.0 * tp[c] / denom : 0.0;
	}
	macro_f1 /= n_names;

	printf("{\n");
	printf("  \"hash_bits\": %d, \"word_ngram_max\": %d, \"char_ngram_min\": %d, \"char_ngram_max\": %d,\n",
		   config.hash_bits, config.word_ngram_max, config.char_ngram_min,
		   config.char_ngram_max);
	printf("  \"accuracy\": %.4f,\n", correct / test.n);
	printf("  \"macro_f1\": %.4f,\n", macro_f1);
	printf("  \"nll\": %.4f,\n", nll / test.n);
	printf("  \"ece\": %.4f,\n", ece);
	printf("  \"brier\": %.4f,\n", brier / test.n);
	printf("  \"mean_mutual_information\": %.4f,\n", mean_mi / test.n);
	printf("  \"fit_seconds\": %.3f,\n", fit_seconds);
	printf("  \"predict_rows_per_second\": %.0f,\n", test.n / predict_seconds);
	printf("  \"iterations\": %u,\n", report.iterations);
	printf("  \"heldout_rows\": %u, \"heldout_nll\": %.4f, \"heldout_accuracy\": %.4f,\n",
		   report.heldout_rows, report.heldout_nll, report.heldout_accuracy);
	printf("  \"train_nll\": %.4f, \"train_accuracy\": %.4f,\n",
		   report.train_nll, report.train_accuracy);
	printf("  \"prior_precision\": %g, \"temperature\": %.4f, \"variance_scale\": %g\n",
		   report.prior_precision, report.temperature, report.variance_scale);
	printf("}\n");

	hl_sparse_free(&x);
	for (size_t i = 0; i < n_docs; i++)
		hl_sparse_free(&vecs[i]);
	hl_featurizer_destroy(featurizer);
	hl_classifier_free(&model);
	return 0;
}

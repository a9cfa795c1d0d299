/*
 * bench_core.c
 *		Benchmark of the numeric core on a labelled CSV data set (banking77).
 *
 * Build and run (test/core/bench_core.sh does both):
 *
 *	 cc -O2 -iquote src $(pkg-config --cflags openblas) -o test/core/bench_core \
 *		 test/core/bench_core.c src/hl_alloc.c src/tokenize.c src/features.c \
 *		 src/model_classifier.c src/pool_embedding.c src/novelty.c src/self_training.c \
 *		 $(pkg-config --libs openblas) -lm
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
 *
 * Active-learning mode, for the mutual information (MI) measurements:
 *
 *	 HL_BENCH_LABELS=N	   train on N random training rows; the other
 *						   training rows are scored as the unlabelled pool
 *	 HL_BENCH_CLASSES=K	   keep only the K most frequent training classes
 *						   (in both files)
 *	 HL_BENCH_SEED=S	   seed of the random labelled subset (default 1)
 *	 HL_PRIOR_PRECISION=L  fix the prior precision at L, with no path
 *	 HL_PRIOR_HINT=L	   start the path one point above L, as a training
 *						   after an earlier choice of L does
 *	 HL_BENCH_TEMPERATURE=T, HL_BENCH_VARIANCE_SCALE=C
 *						   replace the fitted temperature or variance scale
 *						   before prediction (C near 0 scores the MAP weights)
 *	 HL_BENCH_EMBED=K	   append a K-component pool embedding (LSA: truncated
 *						   SVD of the TF-IDF vectors of both files) to every
 *						   row; the fit time then includes the SVD
 *	 HL_BENCH_EMBED_WEIGHT=W
 *						   length of the appended embedding (default 1; the
 *						   TF-IDF part has length 1)
 *
 * Out-of-scope mode, for the novelty score (src/novelty.c):
 *
 *	 HL_BENCH_HOLDOUT=A,B,...  leave the training rows of these categories
 *						   unlabelled, and their test rows are the unknown ones
 *	 HL_BENCH_NOVELTY=K	   fit the novelty score with K latent dimensions
 *						   on the training texts (the pool) and the
 *						   labelled rows
 *	 HL_BENCH_NOVELTY_SHRINKAGE=S
 *						   shrink its covariances by S instead of the default
 *	 HL_BENCH_NOVELTY_POOL=labelled
 *						   fit its latent space and pool Gaussian on the
 *						   labelled rows only, as if the held-out
 *						   categories were not in the relation
 *	 HL_BENCH_SELF_TRAINING=W[,P]
 *						   self-training as the model option self_training
 *						   does it: unlabelled training rows predicted with
 *						   probability P (default 0.7) or more join a
 *						   second fit with weight W
 *
 * It adds to the output the AUROC of each uncertainty score for telling
 * unknown from known test rows, and the share of unknown rows above the
 * score that keeps 95% of the known rows automatic.
 *
 * For the pool and the test rows the output gives the median MI, the share
 * of rows whose MI is within 1% of the largest MI of that set (saturation),
 * the share whose MI exceeds the entropy of the calibrated predictive, and
 * the AUROC of MI for telling misclassified from correct rows.
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
#include "novelty.h"
#include "pool_embedding.h"
#include "self_training.h"

#define ECE_BINS 15

/* Oversampling and power iterations of the pool embedding's SVD. */
#define EMBED_OVERSAMPLING 10
#define EMBED_POWER_ITERATIONS 2

/* Wall time of the embedding's SVD, 0 without one. */
static double svd_seconds = 0.0;

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

/* Keep only the rows of csv whose category is in keep (n_keep names). */
static void
filter_csv(Csv *csv, char **keep, int n_keep)
{
	size_t		out = 0;

	for (size_t i = 0; i < csv->n; i++)
	{
		for (int c = 0; c < n_keep; c++)
		{
			if (strcmp(csv->category[i], keep[c]) == 0)
			{
				csv->text[out] = csv->text[i];
				csv->len[out] = csv->len[i];
				csv->category[out] = csv->category[i];
				out++;
				break;
			}
		}
	}
	csv->n = out;
}

/* Uncertainty of one scored row, for the MI statistics. */
typedef struct Scored
{
	float		mi;
	float		entropy;
	int			wrong;
} Scored;

/* qsort order of floats, ascending. */
static int
compare_floats(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/* qsort order of scored rows by MI, ascending. */
static int
compare_scored(const void *a, const void *b)
{
	return compare_floats(&((const Scored *) a)->mi, &((const Scored *) b)->mi);
}

/*
 * Print the MI statistics of n scored rows as one JSON member: median MI,
 * saturation share, share with MI above the entropy, and the AUROC of MI
 * for misclassified (positive) against correct rows, ties counted half
 * (Mann-Whitney U).  Sorts rows.
 */
static void
print_mi_stats(const char *name, Scored *rows, size_t n, int n_classes)
{
	float	   *mi = malloc((n > 0 ? n : 1) * sizeof(float));
	float		max_mi = 0.0f;
	size_t		saturated = 0;
	size_t		above_entropy = 0;
	double		n_pos = 0;
	double		n_neg = 0;
	double		rank_sum = 0.0;
	double		auroc;

	for (size_t i = 0; i < n; i++)
	{
		mi[i] = rows[i].mi;
		if (rows[i].mi > max_mi)
			max_mi = rows[i].mi;
		if (rows[i].mi > rows[i].entropy + 1e-6f)
			above_entropy++;
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].mi >= 0.99f * max_mi)
			saturated++;
	qsort(mi, n, sizeof(float), compare_floats);

	/* Ranks with ties averaged, summed over the positives. */
	qsort(rows, n, sizeof(Scored), compare_scored);
	for (size_t i = 0; i < n;)
	{
		size_t		j = i;
		double		pos = 0;
		double		avg_rank;

		while (j < n && rows[j].mi == rows[i].mi)
			pos += rows[j++].wrong;
		avg_rank = (i + 1 + j) / 2.0;
		rank_sum += pos * avg_rank;
		n_pos += pos;
		n_neg += (j - i) - pos;
		i = j;
	}
	auroc = n_pos > 0 && n_neg > 0 ?
		(rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg) : NAN;

	printf("  \"%s\": {\"rows\": %zu, \"errors\": %.0f, \"median_mi\": %.4f, \"max_mi\": %.4f, \"ln_k\": %.4f, "
		   "\"saturated_share\": %.4f, \"mi_above_entropy_share\": %.4f, \"mi_error_auroc\": %.4f},\n",
		   name, n, n_pos, n > 0 ? mi[n / 2] : NAN, max_mi, log((double) n_classes),
		   n > 0 ? (double) saturated / n : NAN,
		   n > 0 ? (double) above_entropy / n : NAN, auroc);
	free(mi);
}

/* A test row's uncertainty scores and whether its category was held out. */
typedef struct OosRow
{
	float		score;
	int			unknown;
} OosRow;

static int
compare_oos(const void *a, const void *b)
{
	float		x = ((const OosRow *) a)->score;
	float		y = ((const OosRow *) b)->score;

	return (x > y) - (x < y);
}

/*
 * Print the AUROC of score for telling unknown rows from known ones (ties
 * count half) and the share of unknown rows above the known rows' 95th
 * percentile.  Sorts rows.
 */
static void
print_oos(const char *name, OosRow *rows, size_t n, int last)
{
	size_t		n_unknown = 0;
	size_t		n_known = 0;
	double		rank_sum = 0.0;
	float	   *known;
	size_t		k = 0;
	float		threshold;
	size_t		flagged = 0;

	qsort(rows, n, sizeof(OosRow), compare_oos);
	for (size_t i = 0; i < n;)
	{
		size_t		j = i;

		while (j < n && rows[j].score == rows[i].score)
			j++;
		for (size_t t = i; t < j; t++)
			if (rows[t].unknown)
				rank_sum += (i + 1 + j) / 2.0;
		i = j;
	}
	for (size_t i = 0; i < n; i++)
		n_unknown += rows[i].unknown != 0;
	n_known = n - n_unknown;
	known = malloc((n_known > 0 ? n_known : 1) * sizeof(float));
	for (size_t i = 0; i < n; i++)
		if (!rows[i].unknown)
			known[k++] = rows[i].score;

	/* The rows are sorted, so the known scores are too. */
	threshold = n_known > 0 ? known[(size_t) floor(0.95 * (n_known - 1))] : 0.0f;
	for (size_t i = 0; i < n; i++)
		if (rows[i].unknown && rows[i].score > threshold)
			flagged++;
	printf("  \"oos_%s\": {\"auroc\": %.4f, \"flagged\": %.4f}%s\n", name,
		   (rank_sum - n_unknown * (n_unknown + 1) / 2.0) / ((double) n_unknown * n_known),
		   (double) flagged / (n_unknown > 0 ? n_unknown : 1), last ? "" : ",");
	free(known);
}

/*
 * Fit the pool embedding on the TF-IDF vectors of every text (as the
 * extension does with the texts of the source relation) and append it to
 * each vector.  Exits on failure.
 */
static void
fit_embedding(HlSparseVec *vecs, size_t n_docs, uint32_t dim, uint32_t k,
			  float weight, float **projection_out)
{
	uint64_t   *row_start = malloc((n_docs + 1) * sizeof(uint64_t));
	uint32_t   *index;
	float	   *value;
	float	   *projection = malloc((size_t) dim * k * sizeof(float));
	float	   *singular = malloc(k * sizeof(float));
	float	   *scratch = malloc(k * sizeof(float));
	char		errbuf[256];
	double		t0;

	row_start[0] = 0;
	for (size_t i = 0; i < n_docs; i++)
		row_start[i + 1] = row_start[i] + vecs[i].nnz;
	index = malloc((row_start[n_docs] + 1) * sizeof(uint32_t));
	value = malloc((row_start[n_docs] + 1) * sizeof(float));
	for (size_t i = 0; i < n_docs; i++)
	{
		memcpy(index + row_start[i], vecs[i].index, vecs[i].nnz * sizeof(uint32_t));
		memcpy(value + row_start[i], vecs[i].value, vecs[i].nnz * sizeof(float));
	}

	t0 = now();
	if (hl_pool_embedding_fit((uint32_t) n_docs, dim, row_start, index, value,
							  k, EMBED_OVERSAMPLING, EMBED_POWER_ITERATIONS, 1,
							  projection, singular, errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "bench_core: embedding failed: %s\n", errbuf);
		exit(1);
	}
	svd_seconds = now() - t0;
	fprintf(stderr, "SVD of %zu x %u (k %u) in %.3f s, singular values %.2f .. %.2f\n",
			n_docs, dim, k, svd_seconds, singular[0], singular[k - 1]);

	for (size_t i = 0; i < n_docs; i++)
		hl_pool_embedding_append(projection, dim, k, weight, &vecs[i], scratch);
	free(row_start);
	free(index);
	free(value);
	free(singular);
	free(scratch);
	*projection_out = projection;
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
	int32_t    *train_label;
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
	size_t	   *labelled;
	size_t		n_labelled;
	char	   *is_labelled;
	Scored	   *test_scored;
	Scored	   *pool_scored;
	size_t		n_pool = 0;
	uint32_t	embed_k = getenv("HL_BENCH_EMBED") ? (uint32_t) atoi(getenv("HL_BENCH_EMBED")) : 0;
	float		embed_weight = getenv("HL_BENCH_EMBED_WEIGHT") ? (float) atof(getenv("HL_BENCH_EMBED_WEIGHT")) : 1.0f;
	float	   *projection = NULL;
	float	   *embed_scratch = malloc((embed_k > 0 ? embed_k : 1) * sizeof(float));
	char	   *holdout = getenv("HL_BENCH_HOLDOUT") ? strdup(getenv("HL_BENCH_HOLDOUT")) : NULL;
	uint32_t	novelty_k = getenv("HL_BENCH_NOVELTY") ? (uint32_t) atoi(getenv("HL_BENCH_NOVELTY")) : 0;
	float		self_training_weight = 0.0f;
	double		self_training_threshold = HL_SELF_TRAINING_THRESHOLD;
	uint32_t	pseudo_rows = 0;
	HlClassifier split_model;
	double		self_training_seconds = 0.0;
	int			n_known;
	size_t		n_scored = 0;
	HlNovelty	novelty;
	float	   *novelty_scratch = NULL;
	OosRow	   *oos[6];
	const char *oos_names[6] = {"one_minus_probability", "entropy", "mutual_information", "novelty",
	"probability_novelty_0.1", "probability_novelty_0.2"};

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

	/* Optional: only the most frequent training classes. */
	if (getenv("HL_BENCH_SELF_TRAINING"))
		sscanf(getenv("HL_BENCH_SELF_TRAINING"), "%f,%lf", &self_training_weight,
			   &self_training_threshold);
	if (getenv("HL_BENCH_CLASSES"))
	{
		int			n_keep = atoi(getenv("HL_BENCH_CLASSES"));
		char	  **all_names = NULL;
		int			n_all = 0;
		int		   *count;
		char	  **keep = calloc(n_keep > 0 ? n_keep : 1, sizeof(char *));

		for (size_t i = 0; i < train.n; i++)
			category_id(&all_names, &n_all, train.category[i]);
		count = calloc(n_all, sizeof(int));
		for (size_t i = 0; i < train.n; i++)
			count[category_id(&all_names, &n_all, train.category[i])]++;
		for (int t = 0; t < n_keep && t < n_all; t++)
		{
			int			best = -1;

			for (int c = 0; c < n_all; c++)
				if (count[c] >= 0 && (best < 0 || count[c] > count[best]))
					best = c;
			keep[t] = all_names[best];
			count[best] = -1;
		}
		filter_csv(&train, keep, n_keep < n_all ? n_keep : n_all);
		filter_csv(&test, keep, n_keep < n_all ? n_keep : n_all);
		free(count);
	}
	n_docs = train.n + test.n;

	/* Known categories get the first ids, so the classifier has only them. */
	if (holdout)
	{
		char	  **held = NULL;
		int			n_held = 0;

		for (char *name = strtok(holdout, ","); name != NULL; name = strtok(NULL, ","))
			category_id(&held, &n_held, name);
		for (size_t i = 0; i < train.n; i++)
		{
			int			is_held = 0;

			for (int h = 0; h < n_held; h++)
				is_held |= strcmp(train.category[i], held[h]) == 0;
			if (!is_held)
				category_id(&names, &n_names, train.category[i]);
		}
	}
	n_known = n_names;
	label = malloc((train.n > 0 ? train.n : 1) * sizeof(int32_t));
	train_label = malloc((train.n > 0 ? train.n : 1) * sizeof(int32_t));
	test_label = malloc(test.n * sizeof(int32_t));
	for (size_t i = 0; i < train.n; i++)
		label[i] = train_label[i] = category_id(&names, &n_names, train.category[i]);
	for (size_t i = 0; i < test.n; i++)
		test_label[i] = category_id(&names, &n_names, test.category[i]);

	/* Labelled rows: all of train, or a random subset of HL_BENCH_LABELS. */
	labelled = malloc(train.n * sizeof(size_t));
	is_labelled = calloc(train.n, 1);
	for (size_t i = 0; i < train.n; i++)
		labelled[i] = i;
	n_labelled = train.n;
	if (getenv("HL_BENCH_LABELS") && (size_t) atol(getenv("HL_BENCH_LABELS")) < train.n)
	{
		uint64_t	state = getenv("HL_BENCH_SEED") ? strtoull(getenv("HL_BENCH_SEED"), NULL, 10) : 1;

		/* Partial Fisher-Yates shuffle driven by splitmix64. */
		n_labelled = (size_t) atol(getenv("HL_BENCH_LABELS"));
		for (size_t i = 0; i < n_labelled; i++)
		{
			uint64_t	h = (state += UINT64_C(0x9e3779b97f4a7c15));
			size_t		j;
			size_t		tmp;

			h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
			h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
			h ^= h >> 31;
			j = i + (size_t) (h % (train.n - i));
			tmp = labelled[i];
			labelled[i] = labelled[j];
			labelled[j] = tmp;
		}
	}
	if (holdout)
	{
		size_t		kept = 0;

		for (size_t r = 0; r < n_labelled; r++)
			if (label[labelled[r]] < n_known)
				labelled[kept++] = labelled[r];
		n_labelled = kept;
	}
	else
		n_known = n_names;
	for (size_t r = 0; r < n_labelled; r++)
		is_labelled[labelled[r]] = 1;

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
	for (size_t i = 0; i < n_docs; i++)
		hl_tfidf_apply(idf, &vecs[i]);
	if (embed_k > 0)
		fit_embedding(vecs, n_docs, (uint32_t) 1 << config.hash_bits, embed_k,
					  embed_weight, &projection);

	row_start = malloc((n_labelled + 1) * sizeof(uint64_t));
	row_start[0] = 0;
	for (size_t r = 0; r < n_labelled; r++)
		row_start[r + 1] = row_start[r] + vecs[labelled[r]].nnz;
	nnz = row_start[n_labelled];
	index = malloc((nnz > 0 ? nnz : 1) * sizeof(uint32_t));
	value = malloc((nnz > 0 ? nnz : 1) * sizeof(float));
	for (size_t r = 0; r < n_labelled; r++)
	{
		const HlSparseVec *v = &vecs[labelled[r]];

		memcpy(index + row_start[r], v->index, v->nnz * sizeof(uint32_t));
		memcpy(value + row_start[r], v->value, v->nnz * sizeof(float));
		label[r] = train_label[labelled[r]];
	}
	{
		double		t_feat = now() - t0;

		fprintf(stderr, "featurised %zu texts in %.3f s (%.0f texts/s), %.1f nonzeros per training row\n",
				n_docs, t_feat, n_docs / t_feat, (double) nnz / (n_labelled > 0 ? n_labelled : 1));
	}

	data.n_rows = (uint32_t) n_labelled;
	data.dim = ((uint32_t) 1 << config.hash_bits) + embed_k;
	data.n_classes = (uint32_t) n_known;
	data.row_start = row_start;
	data.index = index;
	data.value = value;
	data.label = label;
	data.weight = NULL;
	data.group = NULL;
	hl_fit_options_default(&options);
	if (getenv("HL_PRIOR_PRECISION"))
		options.prior_precision = atof(getenv("HL_PRIOR_PRECISION"));
	if (getenv("HL_PRIOR_HINT"))
		options.prior_hint = atof(getenv("HL_PRIOR_HINT"));
	hl_classifier_alloc(&model, data.dim, data.n_classes);
	if (self_training_weight > 0.0f)
	{
		hl_classifier_alloc(&split_model, data.dim, data.n_classes);
		options.split_model = &split_model;
	}
	if (hl_classifier_fit(&data, &options, &model, &report, errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "bench_core: fit failed: %s\n", errbuf);
		return 1;
	}
	fit_seconds = now() - t0;

	/* Self-training as hl_train does it, on the unlabelled training rows. */
	if (self_training_weight > 0.0f && report.heldout_rows > 0)
	{
		HlSparseRows unlabelled;
		HlSelfTrainingSet extended;
		HlFitOptions again = options;
		HlFitReport refit_report;
		HlClassifier refit;
		uint64_t   *rest_start = malloc((train.n + 1) * sizeof(uint64_t));
		uint32_t   *rest_index = malloc((train.n * 64 + 1) * sizeof(uint32_t));
		float	   *rest_value;
		size_t		n_rest = 0;
		size_t		cap = train.n * 64 + 1;

		/* The training rows without a label, as TF-IDF rows. */
		t0 = now();
		rest_value = malloc(cap * sizeof(float));
		rest_start[0] = 0;
		for (size_t i = 0; i < train.n; i++)
		{
			const HlSparseVec *v = &vecs[i];

			if (is_labelled[i])
				continue;
			if (rest_start[n_rest] + v->nnz > cap)
			{
				cap = 2 * (cap + v->nnz);
				rest_index = realloc(rest_index, cap * sizeof(uint32_t));
				rest_value = realloc(rest_value, cap * sizeof(float));
			}
			memcpy(rest_index + rest_start[n_rest], v->index, v->nnz * sizeof(uint32_t));
			memcpy(rest_value + rest_start[n_rest], v->value, v->nnz * sizeof(float));
			rest_start[n_rest + 1] = rest_start[n_rest] + v->nnz;
			n_rest++;
		}
		unlabelled.n_rows = (uint32_t) n_rest;
		unlabelled.row_start = rest_start;
		unlabelled.index = rest_index;
		unlabelled.value = rest_value;
		unlabelled.group = NULL;

		hl_self_training_extend(&split_model, &model, &data, &unlabelled, self_training_threshold,
								self_training_weight, &extended);
		again.prior_precision = report.prior_precision;
		again.init_mean = split_model.mean;
		again.init_bias_mean = split_model.bias_mean;
		again.max_iterations = 20;
		again.row_stage = extended.row_stage;
		again.split_model = NULL;
		hl_classifier_alloc(&refit, data.dim, data.n_classes);
		if (hl_classifier_fit(&extended.data, &again, &refit, &refit_report, errbuf, sizeof(errbuf)) != 0)
		{
			fprintf(stderr, "bench_core: self-training fit failed: %s\n", errbuf);
			return 1;
		}
		if (refit_report.heldout_accuracy < report.heldout_accuracy)
			hl_classifier_free(&refit);
		else
		{
			hl_classifier_free(&model);
			model = refit;
			report = refit_report;
			pseudo_rows = extended.n_pseudo;
		}
		self_training_seconds = now() - t0;
		hl_self_training_free(&extended);
		free(rest_start);
		free(rest_index);
		free(rest_value);
	}

	/* The novelty score: the training texts are the pool. */
	if (novelty_k > 0)
	{
		int			labelled_pool = getenv("HL_BENCH_NOVELTY_POOL") &&
			strcmp(getenv("HL_BENCH_NOVELTY_POOL"), "labelled") == 0;
		size_t		n_rows = labelled_pool ? n_labelled : train.n;
		uint64_t   *pool_start = malloc((n_rows + 1) * sizeof(uint64_t));
		uint32_t   *pool_index;
		float	   *pool_value;
		HlSparseRows pool;
		HlSparseRows labelled_rows = {(uint32_t) n_labelled, row_start, index, value, NULL};

		pool_start[0] = 0;
		for (size_t r = 0; r < n_rows; r++)
			pool_start[r + 1] = pool_start[r] + vecs[labelled_pool ? labelled[r] : r].nnz;
		pool_index = malloc((pool_start[n_rows] + 1) * sizeof(uint32_t));
		pool_value = malloc((pool_start[n_rows] + 1) * sizeof(float));
		for (size_t r = 0; r < n_rows; r++)
		{
			const HlSparseVec *v = &vecs[labelled_pool ? labelled[r] : r];

			memcpy(pool_index + pool_start[r], v->index, v->nnz * sizeof(uint32_t));
			memcpy(pool_value + pool_start[r], v->value, v->nnz * sizeof(float));
		}
		pool.n_rows = (uint32_t) n_rows;
		pool.row_start = pool_start;
		pool.index = pool_index;
		pool.value = pool_value;
		pool.group = NULL;
		if (getenv("HL_BENCH_NOVELTY_SHRINKAGE"))
			hl_novelty_shrinkage = atof(getenv("HL_BENCH_NOVELTY_SHRINKAGE"));
		t0 = now();
		if (hl_novelty_fit(&pool, &labelled_rows, label, NULL, (uint32_t) n_known,
						   (uint32_t) 1 << config.hash_bits, novelty_k, 1, &novelty,
						   errbuf, sizeof(errbuf)) != 0)
		{
			fprintf(stderr, "bench_core: novelty fit failed: %s\n", errbuf);
			return 1;
		}
		fprintf(stderr, "novelty (k %u) fitted on %zu pool rows in %.3f s\n", novelty_k, n_rows, now() - t0);
		novelty_scratch = malloc(2 * novelty_k * sizeof(float));
		free(pool_start);
		free(pool_index);
		free(pool_value);
	}
	for (int s = 0; s < 6; s++)
		oos[s] = calloc(test.n > 0 ? test.n : 1, sizeof(OosRow));

	if (getenv("HL_BENCH_VARIANCE_SCALE"))
		model.variance_scale = (float) atof(getenv("HL_BENCH_VARIANCE_SCALE"));
	if (getenv("HL_BENCH_TEMPERATURE"))
		model.temperature = (float) atof(getenv("HL_BENCH_TEMPERATURE"));

	/* Timed: featurise and predict every test row from its text. */
	proba = malloc(model.n_classes * sizeof(float));
	workspace = malloc(hl_classifier_workspace_size(&model) * sizeof(float));
	tp = calloc(n_names, sizeof(int));
	fp = calloc(n_names, sizeof(int));
	fn = calloc(n_names, sizeof(int));
	test_scored = calloc(test.n > 0 ? test.n : 1, sizeof(Scored));
	pool_scored = calloc(train.n > 0 ? train.n : 1, sizeof(Scored));
	hl_sparse_init(&x);
	t0 = now();
	for (size_t i = 0; i < test.n; i++)
	{
		HlPrediction pred;
		int			y = test_label[i];
		int			bin;

		hl_featurize_counts(featurizer, test.text[i], test.len[i], &x);
		hl_tfidf_apply(idf, &x);
		if (embed_k > 0)
			hl_pool_embedding_append(projection, (uint32_t) 1 << config.hash_bits,
									 embed_k, embed_weight, &x, embed_scratch);
		hl_classifier_predict(&model, &x, proba, &pred, workspace);
		if (holdout)
		{
			float		nov = novelty_k > 0 ? hl_novelty_score(&novelty, &x, novelty_scratch) : 0.0f;
			float		scores[6] = {1.0f - pred.probability, pred.entropy, pred.mutual_information, nov,
			1.0f - pred.probability + 0.1f * nov, 1.0f - pred.probability + 0.2f * nov};

			for (int s = 0; s < 6; s++)
			{
				oos[s][i].score = scores[s];
				oos[s][i].unknown = y >= n_known;
			}
			if (y >= n_known)
				continue;
		}
		n_scored++;

		nll -= log(fmax(proba[y], 1e-30));
		for (int c = 0; c < n_known; c++)
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
		test_scored[i].mi = pred.mutual_information;
		test_scored[i].entropy = pred.entropy;
		test_scored[i].wrong = pred.label != y;
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

	/* The pool: training rows left unlabelled, scored from their vectors. */
	for (size_t i = 0; i < train.n; i++)
	{
		HlPrediction pred;

		if (is_labelled[i])
			continue;
		hl_classifier_predict(&model, &vecs[i], proba, &pred, workspace);
		pool_scored[n_pool].mi = pred.mutual_information;
		pool_scored[n_pool].entropy = pred.entropy;
		pool_scored[n_pool].wrong = pred.label != train_label[i];
		n_pool++;
	}

	for (int b = 0; b < ECE_BINS; b++)
		if (bin_count[b] > 0)
			ece += fabs(bin_correct[b] - bin_conf[b]) / n_scored;
	for (int c = 0; c < n_known; c++)
	{
		double		denom = 2.0 * tp[c] + fp[c] + fn[c];

		macro_f1 += denom > 0 ? 2.0 * tp[c] / denom : 0.0;
	}
	macro_f1 /= n_known;

	printf("{\n");
	printf("  \"hash_bits\": %d, \"word_ngram_max\": %d, \"char_ngram_min\": %d, \"char_ngram_max\": %d,\n",
		   config.hash_bits, config.word_ngram_max, config.char_ngram_min,
		   config.char_ngram_max);
	printf("  \"embed_components\": %u, \"embed_weight\": %g, \"svd_seconds\": %.3f,\n",
		   embed_k, embed_weight, svd_seconds);
	printf("  \"labelled_rows\": %zu, \"classes\": %d,\n", n_labelled, n_known);
	if (holdout && novelty_k > 0)
	{
		float	   *known = malloc(test.n * sizeof(float));
		size_t		n_known_rows = 0;

		/* The median novelty of new texts of known classes, near 0 when standardised well. */
		for (size_t i = 0; i < test.n; i++)
			if (!oos[3][i].unknown)
				known[n_known_rows++] = oos[3][i].score;
		qsort(known, n_known_rows, sizeof(float), compare_floats);
		printf("  \"novelty_known_test_median\": %.3f,\n", n_known_rows > 0 ? known[n_known_rows / 2] : 0.0);
		free(known);
	}
	if (holdout)
		for (int s = 0; s < 6; s++)
			if (s != 3 || novelty_k > 0)
				print_oos(oos_names[s], oos[s], test.n, 0);
	print_mi_stats("test_mi", test_scored, test.n, n_names);
	if (n_pool > 0)
		print_mi_stats("pool_mi", pool_scored, n_pool, n_names);
	printf("  \"accuracy\": %.4f,\n", correct / n_scored);
	printf("  \"macro_f1\": %.4f,\n", macro_f1);
	printf("  \"nll\": %.4f,\n", nll / n_scored);
	printf("  \"ece\": %.4f,\n", ece);
	printf("  \"brier\": %.4f,\n", brier / n_scored);
	printf("  \"mean_mutual_information\": %.4f,\n", mean_mi / n_scored);
	printf("  \"fit_seconds\": %.3f,\n", fit_seconds);
	printf("  \"pseudo_labelled_rows\": %u, \"self_training_seconds\": %.3f,\n",
		   pseudo_rows, self_training_seconds);
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

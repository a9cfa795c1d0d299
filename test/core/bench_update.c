/*
 * bench_update.c
 *		Accuracy of the fast update against a full refit, without a server.
 *
 * Build and run (test/core/bench_update.sh does both):
 *
 *	 test/core/bench_update.sh POOL.tsv TEST.tsv [INITIAL [UPDATES]]
 *
 * Each line of both files is "category<TAB>text".  POOL.tsv lists the pool
 * in the order in which its rows get labelled.  The first INITIAL rows
 * (1,000 by default) train the first model.  Each of the next UPDATES rows
 * (500 by default) is then applied alone with hl_classifier_update, as the
 * worker does for single-label commits.  bench_worker.py labels the
 * banking77 training rows in the order of Python's random.Random(7).shuffle
 * of their numbers 1..n, and the same order written to POOL.tsv replays it.  The document frequencies come from
 * every pool row, as the extension counts every row of its relation.  The
 * program prints the test accuracy of the first model, of the updated one,
 * and of a full refit on the same INITIAL + UPDATES rows, and the mean time
 * of one update.  test/bench/bench_worker.py measures the same through the
 * server; this program only makes trying an update rule quick.
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
#include "model_update.h"

#define UPDATE_STEPS 5

typedef struct Rows
{
	size_t		n;
	char	  **category;
	char	  **text;
} Rows;

/* Return the current monotonic time in seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Read "category<TAB>text" lines from path.  Exit on a malformed line. */
static void
read_rows(const char *path, Rows *rows)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	size_t		alloc = 1024;

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	rows->n = 0;
	rows->category = malloc(alloc * sizeof(char *));
	rows->text = malloc(alloc * sizeof(char *));
	while ((len = getline(&line, &cap, f)) > 0)
	{
		char	   *tab = strchr(line, '\t');

		if (tab == NULL)
		{
			fprintf(stderr, "%s: line %zu has no tab\n", path, rows->n + 1);
			exit(2);
		}
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		*tab = '\0';
		if (rows->n == alloc)
		{
			alloc *= 2;
			rows->category = realloc(rows->category, alloc * sizeof(char *));
			rows->text = realloc(rows->text, alloc * sizeof(char *));
		}
		rows->category[rows->n] = strdup(line);
		rows->text[rows->n] = strdup(tab + 1);
		rows->n++;
	}
	free(line);
	fclose(f);
}

/* Compare two strings through pointers, for qsort. */
static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Return the class number of name among the sorted names, or -1. */
static int32_t
class_of(char **names, size_t n_names, const char *name)
{
	char	  **found = bsearch(&name, names, n_names, sizeof(char *), compare_names);

	return found ? (int32_t) (found - names) : -1;
}

/* Build the dataset of rows first .. first + n - 1 of vecs. */
static void
make_dataset(const HlSparseVec *vecs, const int32_t *label, size_t first, size_t n,
			 uint32_t dim, uint32_t n_classes, HlDataset *data)
{
	uint64_t   *row_start = malloc((n + 1) * sizeof(uint64_t));
	uint64_t	nnz = 0;
	uint32_t   *index;
	float	   *value;

	row_start[0] = 0;
	for (size_t r = 0; r < n; r++)
		row_start[r + 1] = row_start[r] + vecs[first + r].nnz;
	nnz = row_start[n];
	index = malloc((nnz > 0 ? nnz : 1) * sizeof(uint32_t));
	value = malloc((nnz > 0 ? nnz : 1) * sizeof(float));
	for (size_t r = 0; r < n; r++)
	{
		memcpy(index + row_start[r], vecs[first + r].index, vecs[first + r].nnz * sizeof(uint32_t));
		memcpy(value + row_start[r], vecs[first + r].value, vecs[first + r].nnz * sizeof(float));
	}
	memset(data, 0, sizeof(*data));
	data->n_rows = (uint32_t) n;
	data->dim = dim;
	data->n_classes = n_classes;
	data->row_start = row_start;
	data->index = index;
	data->value = value;
	data->label = label + first;
}

/* Return the test accuracy of model. */
static double
accuracy(HlClassifier *model, const HlSparseVec *test, const int32_t *truth, size_t n)
{
	float	   *workspace = malloc(hl_classifier_workspace_size(model) * sizeof(float));
	size_t		correct = 0;

	hl_classifier_cache_variance(model);
	for (size_t i = 0; i < n; i++)
	{
		HlPrediction out;

		hl_classifier_predict(model, &test[i], NULL, &out, workspace);
		correct += out.label == truth[i];
	}
	free(model->variance);
	model->variance = NULL;
	free(workspace);
	return (double) correct / n;
}

/* Fit a model on data with the extension's default options. */
static void
fit(const HlDataset *data, HlClassifier *model)
{
	HlFitOptions options;
	HlFitReport report;
	char		errbuf[256];

	hl_fit_options_default(&options);
	options.seed = 20261204;
	hl_classifier_alloc(model, data->dim, data->n_classes);
	if (hl_classifier_fit(data, &options, model, &report, errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "fit failed: %s\n", errbuf);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	Rows		pool;
	Rows		test;
	size_t		initial = argc > 3 ? (size_t) atol(argv[3]) : 1000;
	size_t		updates = argc > 4 ? (size_t) atol(argv[4]) : 500;
	HlFeatureConfig config;
	HlFeaturizer *featurizer;
	HlSparseVec *vecs;
	HlSparseVec *test_vecs;
	uint32_t   *df;
	float	   *idf;
	uint32_t	dim;
	char	  **names;
	size_t		n_names = 0;
	int32_t    *label;
	int32_t    *test_label;
	HlDataset	data;
	HlClassifier model;
	HlClassifier refit;
	double		start_accuracy;
	double		update_seconds = 0.0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: bench_update POOL.tsv TEST.tsv [INITIAL [UPDATES]]\n");
		return 2;
	}
	openblas_set_num_threads(1);
	read_rows(argv[1], &pool);
	read_rows(argv[2], &test);
	if (initial + updates > pool.n)
	{
		fprintf(stderr, "the pool has %zu rows, fewer than %zu + %zu\n", pool.n, initial, updates);
		return 2;
	}

	/* Classes: the sorted names of the labelled rows, as the extension numbers them. */
	names = malloc(pool.n * sizeof(char *));
	for (size_t i = 0; i < initial + updates; i++)
		names[n_names++] = pool.category[i];
	qsort(names, n_names, sizeof(char *), compare_names);
	{
		size_t		unique = 0;

		for (size_t i = 0; i < n_names; i++)
			if (unique == 0 || strcmp(names[unique - 1], names[i]) != 0)
				names[unique++] = names[i];
		n_names = unique;
	}
	label = malloc(pool.n * sizeof(int32_t));
	test_label = malloc(test.n * sizeof(int32_t));
	for (size_t i = 0; i < pool.n; i++)
		label[i] = class_of(names, n_names, pool.category[i]);
	for (size_t i = 0; i < test.n; i++)
		test_label[i] = class_of(names, n_names, test.category[i]);

	/* Features with the idf of the whole pool. */
	hl_feature_config_default(&config);
	dim = (uint32_t) 1 << config.hash_bits;
	featurizer = hl_featurizer_create(&config);
	vecs = calloc(pool.n, sizeof(HlSparseVec));
	test_vecs = calloc(test.n, sizeof(HlSparseVec));
	df = calloc(dim, sizeof(uint32_t));
	idf = malloc(dim * sizeof(float));
	for (size_t i = 0; i < pool.n; i++)
	{
		hl_sparse_init(&vecs[i]);
		hl_featurize_counts(featurizer, pool.text[i], strlen(pool.text[i]), &vecs[i]);
		hl_df_accumulate(df, &vecs[i]);
	}
	hl_idf_from_df(df, pool.n, dim, idf);
	for (size_t i = 0; i < pool.n; i++)
		hl_tfidf_apply(idf, &vecs[i]);
	for (size_t i = 0; i < test.n; i++)
	{
		hl_sparse_init(&test_vecs[i]);
		hl_featurize_counts(featurizer, test.text[i], strlen(test.text[i]), &test_vecs[i]);
		hl_tfidf_apply(idf, &test_vecs[i]);
	}

	/* The first model, then one update per row. */
	make_dataset(vecs, label, 0, initial, dim, (uint32_t) n_names, &data);
	fit(&data, &model);
	start_accuracy = accuracy(&model, test_vecs, test_label, test.n);
	for (size_t r = initial; r < initial + updates; r++)
	{
		HlDataset	one;
		char		errbuf[256];
		double		t0;

		make_dataset(vecs, label, r, 1, dim, (uint32_t) n_names, &one);
		t0 = now();
		if (hl_classifier_update(&model, &one, UPDATE_STEPS, errbuf, sizeof(errbuf)) != 0)
		{
			fprintf(stderr, "update of row %zu failed: %s\n", r, errbuf);
			return 1;
		}
		update_seconds += now() - t0;
	}

	make_dataset(vecs, label, 0, initial + updates, dim, (uint32_t) n_names, &data);
	fit(&data, &refit);

	{
		double		updated = accuracy(&model, test_vecs, test_label, test.n);
		double		refitted = accuracy(&refit, test_vecs, test_label, test.n);

		printf("first model (%zu rows)\t%.4f\n", initial, start_accuracy);
		printf("after %zu updates\t%.4f\n", updates, updated);
		printf("full refit (%zu rows)\t%.4f\n", initial + updates, refitted);
		printf("difference\t%+.2f points\n", 100 * (updated - refitted));
		printf("mean update\t%.3f ms\n", 1000 * update_seconds / (updates > 0 ? updates : 1));
	}
	return 0;
}

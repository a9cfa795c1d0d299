/*
 * evaluate.c
 *		Scoring labelled rows for evaluation: out-of-fold predictions by
 *		k-fold cross-validation, and predictions of a trained version on a
 *		labelled relation.
 *
 * Cross-validation refits the whole model k times, each time on the rows of
 * k - 1 folds, with the options of full training: the prior precision,
 * temperature and variance scale are chosen again inside each fit from the
 * training folds alone, so no fold's predictions have seen its labels.  The
 * idf is the one of the whole relation, which uses no label.  It costs about
 * k full trainings.
 */
#include "compat.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "evaluate.h"

/* Labels of unknown classes listed by name in a relation evaluation. */
#define HL_MAX_UNKNOWN_LABELS 20
#define HL_FETCH_ROWS 1000
#define HL_FOLD_SEED UINT64_C(0x9e3779b97f4a7c15)

void
hl_check_task_evaluable(const HlModelDef *def, const char *what)
{
	if (strcmp(def->task, "classification") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s of a model of task \"%s\" is not supported", what, def->task),
				 errdetail("Model \"%s\" has task \"%s\"; only classification models have cross-validation and abstention rules so far.",
						   def->name, def->task),
				 strcmp(def->task, "spans") == 0 ?
				 errhint("Measure a span model on a labelled relation: hl_evaluate('%s', 'schema.table').",
						 def->name) : 0));
}

/* An item, its first class and a pseudo-random rank, for fold assignment. */
typedef struct HlFoldItem
{
	uint32		item;
	int32		label;
	uint32		rank;
} HlFoldItem;

static int
hl_compare_fold_items(const void *a, const void *b)
{
	const HlFoldItem *x = a;
	const HlFoldItem *y = b;

	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->item < y->item ? -1 : (x->item > y->item);
}

/*
 * Assign each item to one of k folds: items sorted by class, then by a
 * hash of the item number, are dealt out in turn, so every class is spread
 * evenly and the split is the same on every run.
 */
static int32 *
hl_assign_folds(const HlTrainingData *training, int k)
{
	const HlDataset *data = &training->data;
	uint32		n_items = training->n_items;
	HlFoldItem *items = palloc(sizeof(HlFoldItem) * n_items);
	int32	   *fold_of_item = palloc(sizeof(int32) * n_items);
	int32	   *fold_of_row = palloc(sizeof(int32) * Max(data->n_rows, 1));

	for (uint32 i = 0; i < n_items; i++)
	{
		items[i].item = i;
		items[i].label = INT32_MAX;
		items[i].rank = (uint32) hash_bytes_uint32_extended(i, HL_FOLD_SEED);
	}
	for (uint32 r = 0; r < data->n_rows; r++)
	{
		HlFoldItem *item = &items[data->group[r]];

		if (item->label == INT32_MAX)
			item->label = data->label[r];
	}
	qsort(items, n_items, sizeof(HlFoldItem), hl_compare_fold_items);
	for (uint32 i = 0; i < n_items; i++)
		fold_of_item[items[i].item] = (int32) (i % k);
	for (uint32 r = 0; r < data->n_rows; r++)
		fold_of_row[r] = fold_of_item[data->group[r]];

	pfree(items);
	pfree(fold_of_item);
	return fold_of_row;
}

/* Copy the rows of data outside fold into subset, arrays palloc'd. */
static void
hl_fold_training_rows(const HlDataset *data, const int32 *fold_of_row, int fold,
					  HlDataset *subset)
{
	uint64		nnz = 0;
	uint32		n = 0;
	uint64	   *row_start;
	uint32	   *index;
	float	   *value;
	int32	   *label;
	float	   *weight;
	uint32	   *group;

	for (uint32 r = 0; r < data->n_rows; r++)
	{
		if (fold_of_row[r] == fold)
			continue;
		n++;
		nnz += data->row_start[r + 1] - data->row_start[r];
	}

	row_start = palloc_extended(sizeof(uint64) * (n + 1), MCXT_ALLOC_HUGE);
	index = palloc_extended(sizeof(uint32) * Max(nnz, 1), MCXT_ALLOC_HUGE);
	value = palloc_extended(sizeof(float) * Max(nnz, 1), MCXT_ALLOC_HUGE);
	label = palloc_extended(sizeof(int32) * Max(n, 1), MCXT_ALLOC_HUGE);
	weight = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);
	group = palloc_extended(sizeof(uint32) * Max(n, 1), MCXT_ALLOC_HUGE);

	row_start[0] = 0;
	n = 0;
	for (uint32 r = 0; r < data->n_rows; r++)
	{
		uint64		len = data->row_start[r + 1] - data->row_start[r];

		if (fold_of_row[r] == fold)
			continue;
		memcpy(index + row_start[n], data->index + data->row_start[r], sizeof(uint32) * len);
		memcpy(value + row_start[n], data->value + data->row_start[r], sizeof(float) * len);
		label[n] = data->label[r];
		weight[n] = data->weight ? data->weight[r] : 1.0f;
		group[n] = data->group ? data->group[r] : r;
		row_start[n + 1] = row_start[n] + len;
		n++;
	}

	*subset = *data;
	subset->n_rows = n;
	subset->row_start = row_start;
	subset->index = index;
	subset->value = value;
	subset->label = label;
	subset->weight = weight;
	subset->group = group;
}

/* Free the arrays hl_fold_training_rows made. */
static void
hl_fold_free(HlDataset *subset)
{
	pfree((void *) subset->row_start);
	pfree((void *) subset->index);
	pfree((void *) subset->value);
	pfree((void *) subset->label);
	pfree((void *) subset->weight);
	pfree((void *) subset->group);
}

/*
 * Store the prediction of row r, keeping only the real classes: a phantom
 * class (one real label) is never the predicted label, as in scoring.c.
 */
static void
hl_store_prediction(HlScoredSet *out, uint32 r, const float *proba,
					const HlPrediction *prediction)
{
	float	   *dest = out->proba + (size_t) r * out->n_classes;

	memcpy(dest, proba, sizeof(float) * out->n_classes);
	out->prediction[r] = *prediction;
	if (prediction->label >= (int32) out->n_classes)
	{
		int32		best = 0;

		for (uint32 c = 1; c < out->n_classes; c++)
			if (dest[c] > dest[best])
				best = c;
		out->prediction[r].label = best;
		out->prediction[r].probability = dest[best];
	}
}

/* Allocate the arrays of out for n rows of n_classes. */
static void
hl_scored_set_alloc(HlScoredSet *out, uint32 n, uint32 n_classes)
{
	memset(out, 0, sizeof(*out));
	out->n_rows = n;
	out->n_classes = n_classes;
	out->proba = palloc_extended(sizeof(float) * Max((Size) n * n_classes, 1), MCXT_ALLOC_HUGE);
	out->label = palloc_extended(sizeof(int32) * Max(n, 1), MCXT_ALLOC_HUGE);
	out->weight = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);
	out->prediction = palloc_extended(sizeof(HlPrediction) * Max(n, 1), MCXT_ALLOC_HUGE);
}

void
hl_cross_validate(const HlModelDef *def, const HlTrainingData *training,
				  int k, HlScoredSet *out)
{
	const HlDataset *data = &training->data;
	int32	   *fold_of_row = hl_assign_folds(training, k);
	HlFitOptions options;
	float	   *proba = palloc(sizeof(float) * data->n_classes);

	float	   *novelty_scratch = training->novelty.k > 0 ?
		palloc(sizeof(float) * 2 * training->novelty.k) : NULL;

	hl_training_fit_options(def, &options);
	hl_scored_set_alloc(out, data->n_rows, training->n_labels);
	for (uint32 r = 0; r < data->n_rows; r++)
	{
		out->label[r] = data->label[r];
		out->weight[r] = data->weight ? data->weight[r] : 1.0f;
	}

	for (int fold = 0; fold < k; fold++)
	{
		HlDataset	subset;
		HlClassifier classifier;
		HlFitReport report;
		HlNovelty	fold_novelty;
		char		errbuf[256];
		float	   *workspace;

		/*
		 * NOTE: folds fit the labelled rows alone, also for a model with the
		 * option self_training, so they estimate a model without its
		 * pseudo-labels.
		 */
		CHECK_FOR_INTERRUPTS();
		hl_fold_training_rows(data, fold_of_row, fold, &subset);
		hl_classifier_alloc(&classifier, data->dim, data->n_classes);
		if (hl_classifier_fit(&subset, &options, &classifier, &report, errbuf, sizeof(errbuf)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not fit fold %d of model \"%s\": %s", fold + 1, def->name, errbuf)));

		/* The novelty score's classes without this fold, so its rows are new to it. */
		memset(&fold_novelty, 0, sizeof(fold_novelty));
		if (novelty_scratch != NULL)
		{
			HlSparseRows rows = {subset.n_rows, subset.row_start, subset.index, subset.value,
			subset.group};

			if (hl_novelty_refit_classes(&training->novelty, &rows, subset.label, subset.weight,
										 data->n_classes, false, &fold_novelty, errbuf,
										 sizeof(errbuf)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not fit the novelty score of fold %d of model \"%s\": %s",
								fold + 1, def->name, errbuf)));
		}
		hl_fold_free(&subset);
		hl_classifier_cache_variance(&classifier);
		workspace = palloc(sizeof(float) * hl_classifier_workspace_size(&classifier));

		for (uint32 r = 0; r < data->n_rows; r++)
		{
			HlSparseVec x;
			HlPrediction prediction;

			if (fold_of_row[r] != fold)
				continue;
			x.nnz = (uint32) (data->row_start[r + 1] - data->row_start[r]);
			x.capacity = x.nnz;
			x.index = (uint32 *) data->index + data->row_start[r];
			x.value = (float *) data->value + data->row_start[r];
			hl_classifier_predict(&classifier, &x, proba, &prediction, workspace);

			if (novelty_scratch != NULL)
				prediction.novelty = hl_novelty_score(&fold_novelty, &x, novelty_scratch);
			hl_store_prediction(out, r, proba, &prediction);
		}

		pfree(workspace);
		hl_classifier_free(&classifier);
		if (fold_novelty.k > 0)
			hl_novelty_free(&fold_novelty);
	}

	pfree(proba);
	pfree(fold_of_row);
}

static int
hl_compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Return a JSON object of the unknown labels with their row counts, the
 * HL_MAX_UNKNOWN_LABELS most frequent ones (ties by name).
 */
static char *
hl_unknown_labels_json(char **labels, uint64 n)
{
	StringInfoData json;
	char	  **names = palloc(sizeof(char *) * Max(n, 1));
	int64	   *counts = palloc(sizeof(int64) * Max(n, 1));
	uint64		n_names = 0;

	qsort(labels, n, sizeof(char *), hl_compare_strings);
	for (uint64 i = 0; i < n; i++)
	{
		if (n_names > 0 && strcmp(names[n_names - 1], labels[i]) == 0)
			counts[n_names - 1]++;
		else
		{
			names[n_names] = labels[i];
			counts[n_names++] = 1;
		}
	}

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	for (int listed = 0; listed < HL_MAX_UNKNOWN_LABELS; listed++)
	{
		int64		best = -1;

		for (uint64 i = 0; i < n_names; i++)
			if (counts[i] > 0 && (best < 0 || counts[i] > counts[best]))
				best = (int64) i;
		if (best < 0)
			break;
		if (listed > 0)
			appendStringInfoString(&json, ", ");
		escape_json(&json, names[best]);
		appendStringInfo(&json, ": " INT64_FORMAT, counts[best]);
		counts[best] = 0;
	}
	appendStringInfoChar(&json, '}');
	return json.data;
}

void
hl_score_relation(HlModel *model, Oid relation, const char *text_column,
				  const char *label_column, HlScoredSet *out)
{
	MemoryContext outer = CurrentMemoryContext;
	char	   *query;
	Portal		portal;
	uint32		max_rows = 1024;
	uint32		n = 0;
	uint64		max_unknown = 64;
	char	  **unknown = palloc(sizeof(char *) * max_unknown);
	float	   *proba;

	query = psprintf("SELECT %s::text, %s::text FROM %s",
					 quote_identifier(text_column), quote_identifier(label_column),
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relation)),
												get_rel_name(relation)));

	hl_scored_set_alloc(out, max_rows, model->n_labels);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext spi = MemoryContextSwitchTo(outer);
			char	   *label = SPI_getvalue(tuple, desc, 2);
			char	   *body = SPI_getvalue(tuple, desc, 1);
			HlPrediction prediction;
			int32		y;

			CHECK_FOR_INTERRUPTS();
			if (label == NULL)
			{
				out->unlabelled_rows++;
				MemoryContextSwitchTo(spi);
				continue;
			}
			y = hl_model_find_label(model, label);
			if (y < 0)
			{
				if (out->unknown_label_rows == max_unknown)
				{
					max_unknown *= 2;
					unknown = repalloc_huge(unknown, sizeof(char *) * max_unknown);
				}
				unknown[out->unknown_label_rows++] = label;
				if (body != NULL)
					pfree(body);
				MemoryContextSwitchTo(spi);
				continue;
			}

			if (n == max_rows)
			{
				max_rows *= 2;
				out->proba = repalloc_huge(out->proba, sizeof(float) * (Size) max_rows * out->n_classes);
				out->label = repalloc_huge(out->label, sizeof(int32) * max_rows);
				out->weight = repalloc_huge(out->weight, sizeof(float) * max_rows);
				out->prediction = repalloc_huge(out->prediction, sizeof(HlPrediction) * max_rows);
			}

			if (body != NULL)
				hl_check_text_length(strlen(body), "text of an evaluation row");
			hl_model_score(model, body != NULL ? body : "", body != NULL ? strlen(body) : 0,
						   &prediction);
			proba = model->proba;
			memcpy(out->proba + (Size) n * out->n_classes, proba, sizeof(float) * out->n_classes);
			out->prediction[n] = prediction;
			out->label[n] = y;
			out->weight[n] = 1.0f;
			n++;

			pfree(label);
			if (body != NULL)
				pfree(body);
			MemoryContextSwitchTo(spi);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();

	out->n_rows = n;
	out->unknown_labels = hl_unknown_labels_json(unknown, out->unknown_label_rows);
}

void
hl_scored_rows(const HlScoredSet *set, const HlConfidenceScore *score, HlScoredRows *rows)
{
	float	   *confidence = NULL;

	if (score != NULL)
	{
		confidence = palloc(sizeof(float) * Max(set->n_rows, 1));
		for (uint32 r = 0; r < set->n_rows; r++)
			confidence[r] = hl_confidence(*score, &set->prediction[r]);
	}
	rows->n_rows = set->n_rows;
	rows->n_classes = set->n_classes;
	rows->proba = set->proba;
	rows->label = set->label;
	rows->weight = set->weight;
	rows->confidence = confidence;
}

/*
 * train.c
 *		Full training: fit a model's posterior to all its labelled rows and
 *		store it as a new version.  hl_train and the background worker share
 *		it.
 *
 * One pass over the model's relation featurises every row: all rows count
 * towards the document frequencies (unlabelled text too, so the idf
 * reflects the whole pool), and labelled rows keep their feature vectors
 * for the fit.  An item with several labels becomes one training row per
 * distinct label, weighted by that label's share of the item's labels, so
 * two votes for "card" and one for "fees" train 2/3 towards "card".
 *
 * The model's catalog row is locked FOR NO KEY UPDATE first, so concurrent
 * hl_train calls on one model run one after the other.  The new version is
 * written in the caller's transaction, so an error or a rollback leaves the
 * previous version current.
 */
#include "compat.h"

#include <ctype.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "abstention.h"
#include "catalog.h"
#include "model_cache.h"
#include "posterior_io.h"
#include "self_training.h"
#include "text_source.h"
#include "train.h"

/* Warm starts: fewest items the prior precision was chosen on, and growth. */
#define HL_WARM_MIN_ROWS 200
#define HL_WARM_GROWTH 1.25

/*
 * Iterations of a warm fit on all rows, as many as a cold fit spends on
 * its training split after the search (which gets 10 per point).
 */
#define HL_WARM_ITERATIONS 20

#define HL_FETCH_ROWS 1000
#define HL_TRAIN_SEED 20261204

/*
 * Rows of the relation the novelty score is fitted on, and the seed of its
 * SVD.  NOTE: these are the first rows in id order, not a sample, so a
 * larger relation's later rows do not shape the score.
 */
#define HL_NOVELTY_MAX_POOL_ROWS 50000
#define HL_NOVELTY_SEED 42

/*
 * Unlabelled rows self-training predicts.  NOTE: the first by the id as
 * text, not a sample, as for the novelty score.
 */
#define HL_SELF_TRAINING_MAX_ROWS 50000

/*
 * Iterations of the fit with pseudo-labelled rows on the training side of
 * the split, started from the labelled fit: as many as a warm start spends.
 */
#define HL_SELF_TRAINING_ITERATIONS 20

/* Labelled rows gathered for the fit, in compressed sparse row form. */
typedef struct HlTrainingSet
{
	uint32		n_rows;
	uint32		max_rows;
	uint64	   *row_start;
	int32	   *label;			/* provisional class ids until sorted */
	float	   *weight;
	uint32	   *group;

	uint64		nnz;
	uint64		max_nnz;
	uint32	   *index;
	float	   *value;

	uint32		n_items;		/* labelled items */
	uint64		n_docs;			/* all rows read */
} HlTrainingSet;

/* A label name and its class id. */
typedef struct HlLabelEntry
{
	char	   *name;			/* hash key: the pointer, hashed by contents */
	int32		id;
} HlLabelEntry;

typedef struct HlLabelSet
{
	HTAB	   *table;
	uint32		n;
	uint32		max;
	char	  **names;			/* by provisional id */
} HlLabelSet;

/* Hash the string a key points to. */
static uint32
hl_label_hash(const void *key, Size keysize)
{
	const char *name = *(char *const *) key;

	return string_hash(name, strlen(name) + 1);
}

/* Compare the strings two keys point to. */
static int
hl_label_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

/* Create an empty label set in the current memory context. */
static void
hl_labels_init(HlLabelSet *labels)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(HlLabelEntry);
	ctl.hash = hl_label_hash;
	ctl.match = hl_label_match;
	ctl.hcxt = CurrentMemoryContext;
	labels->table = hash_create("humanloop labels", 64, &ctl,
								HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	labels->n = 0;
	labels->max = 64;
	labels->names = palloc(sizeof(char *) * labels->max);
}

/* Return the provisional id of name, adding it if new. */
static int32
hl_labels_id(HlLabelSet *labels, char *name)
{
	HlLabelEntry *entry;
	bool		found;

	entry = hash_search(labels->table, &name, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->id;

	if (labels->n >= 100000)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model has more than 100000 distinct labels")));

	name = pstrdup(name);
	entry = hash_search(labels->table, &name, HASH_ENTER, &found);
	entry->name = name;
	entry->id = labels->n;
	if (labels->n == labels->max)
	{
		labels->max *= 2;
		labels->names = repalloc(labels->names, sizeof(char *) * labels->max);
	}
	labels->names[labels->n++] = name;
	return entry->id;
}

/* Append one labelled row whose features are counts. */
static void
hl_training_append(HlTrainingSet *set, const HlSparseVec *counts,
				   int32 label, float weight, uint32 group)
{
	if (set->n_rows == set->max_rows)
	{
		set->max_rows = Max(1024, set->max_rows * 2);
		if (set->row_start == NULL)
		{
			set->row_start = palloc_extended(sizeof(uint64) * (set->max_rows + 1), MCXT_ALLOC_HUGE);
			set->label = palloc_extended(sizeof(int32) * set->max_rows, MCXT_ALLOC_HUGE);
			set->weight = palloc_extended(sizeof(float) * set->max_rows, MCXT_ALLOC_HUGE);
			set->group = palloc_extended(sizeof(uint32) * set->max_rows, MCXT_ALLOC_HUGE);
			set->row_start[0] = 0;
		}
		else
		{
			set->row_start = repalloc_huge(set->row_start, sizeof(uint64) * (set->max_rows + 1));
			set->label = repalloc_huge(set->label, sizeof(int32) * set->max_rows);
			set->weight = repalloc_huge(set->weight, sizeof(float) * set->max_rows);
			set->group = repalloc_huge(set->group, sizeof(uint32) * set->max_rows);
		}
	}

	if (set->nnz + counts->nnz > set->max_nnz)
	{
		set->max_nnz = Max(Max(set->max_nnz * 2, 65536), set->nnz + counts->nnz);
		if (set->index == NULL)
		{
			set->index = palloc_extended(sizeof(uint32) * set->max_nnz, MCXT_ALLOC_HUGE);
			set->value = palloc_extended(sizeof(float) * set->max_nnz, MCXT_ALLOC_HUGE);
		}
		else
		{
			set->index = repalloc_huge(set->index, sizeof(uint32) * set->max_nnz);
			set->value = repalloc_huge(set->value, sizeof(float) * set->max_nnz);
		}
	}

	memcpy(set->index + set->nnz, counts->index, sizeof(uint32) * counts->nnz);
	memcpy(set->value + set->nnz, counts->value, sizeof(float) * counts->nnz);
	set->nnz += counts->nnz;

	set->label[set->n_rows] = label;
	set->weight[set->n_rows] = weight;
	set->group[set->n_rows] = group;
	set->n_rows++;
	set->row_start[set->n_rows] = set->nnz;
}

/*
 * Add the training rows of one labelled item: one row per distinct label,
 * weighted by its share.  labels arrive sorted, so equal ones are adjacent.
 */
static void
hl_training_add_item(HlTrainingSet *set, HlLabelSet *labels,
					 const HlSparseVec *counts, ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			n_given = 0;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			n_given++;
	if (n_given == 0)
		return;

	for (int i = 0; i < n;)
	{
		char	   *name;
		int			run = 1;

		if (nulls[i])
		{
			i++;
			continue;
		}
		while (i + run < n && !nulls[i + run] &&
			   DatumGetInt32(DirectFunctionCall2Coll(bttextcmp, C_COLLATION_OID,
												   elems[i], elems[i + run])) == 0)
			run++;

		name = TextDatumGetCString(elems[i]);
		hl_training_append(set, counts, hl_labels_id(labels, name),
						   (float) run / n_given, set->n_items);
		pfree(name);
		i += run;
	}
	set->n_items++;
	pfree(elems);
	pfree(nulls);
}

/* Turn the term counts of every row of set into TF-IDF rows, in place. */
static void
hl_training_apply_idf(const float *idf, HlTrainingSet *set)
{
	for (uint32 i = 0; i < set->n_rows; i++)
	{
		HlSparseVec row;

		row.nnz = (uint32) (set->row_start[i + 1] - set->row_start[i]);
		row.capacity = row.nnz;
		row.index = set->index + set->row_start[i];
		row.value = set->value + set->row_start[i];
		hl_tfidf_apply(idf, &row);
	}
}

/*
 * Read every row of the model's relation: count document frequencies and
 * keep the labelled rows' term counts.  When pool is not NULL, also keep
 * the term counts of the first HL_NOVELTY_MAX_POOL_ROWS rows, labelled or
 * not, and when unlabelled is not NULL those of the first
 * HL_SELF_TRAINING_MAX_ROWS rows without a label.
 */
static void
hl_training_read(const HlModelDef *def, HlFeaturizer *featurizer, uint32 *df,
				 HlTrainingSet *set, HlLabelSet *labels, HlTrainingSet *pool,
				 HlTrainingSet *unlabelled)
{
	MemoryContext train_context = CurrentMemoryContext;
	MemoryContext row_context;
	HlSparseVec counts;
	Portal		portal;
	char	   *query = hl_source_training_query_ordered(def);

	hl_sparse_init(&counts);
	row_context = AllocSetContextCreate(train_context, "humanloop row",
										ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext spi_context = MemoryContextSwitchTo(row_context);
			bool		isnull;
			Datum		doc = SPI_getbinval(tuple, desc, 2, &isnull);
			Datum		item_labels;
			const char *body = "";
			size_t		len = 0;

			CHECK_FOR_INTERRUPTS();

			if (!isnull)
			{
				text *t = DatumGetTextPP(doc);

				body = VARDATA_ANY(t);
				len = VARSIZE_ANY_EXHDR(t);
				if (len > (size_t) hl_max_text_bytes)
					hl_check_text_length(len, psprintf("text of row \"%s\"",
													   SPI_getvalue(tuple, desc, 1)));
			}

			/* Counts and the label set outlive the row; temporaries do not. */
			MemoryContextSwitchTo(train_context);
			hl_featurize_counts(featurizer, body, len, &counts);
			hl_df_accumulate(df, &counts);
			set->n_docs++;
			if (pool != NULL && pool->n_rows < HL_NOVELTY_MAX_POOL_ROWS)
				hl_training_append(pool, &counts, 0, 1.0f, 0);

			item_labels = SPI_getbinval(tuple, desc, 3, &isnull);
			if (!isnull)
			{
				ArrayType  *array;

				MemoryContextSwitchTo(row_context);
				array = DatumGetArrayTypeP(item_labels);
				MemoryContextSwitchTo(train_context);
				hl_training_add_item(set, labels, &counts, array);
			}
			else if (unlabelled != NULL && unlabelled->n_rows < HL_SELF_TRAINING_MAX_ROWS)
				hl_training_append(unlabelled, &counts, 0, 1.0f, 0);

			MemoryContextSwitchTo(spi_context);
			MemoryContextReset(row_context);
		}
		SPI_freetuptable(SPI_tuptable);
	}

	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(row_context);
	hl_sparse_free(&counts);
}

/*
 * Fit the novelty score of def on the pool's rows and the labelled rows of
 * set, or leave it empty with a WARNING when the pool is too small.
 */
static void
hl_training_fit_novelty(const HlModelDef *def, HlTrainingSet *set, HlTrainingSet *pool,
						const float *idf, uint32 dim, uint32 n_classes, HlNovelty *novelty)
{
	HlSparseRows pool_rows;
	HlSparseRows labelled_rows;
	char		errbuf[256];

	if (pool->n_rows <= (uint32) def->novelty)
	{
		ereport(WARNING,
				(errmsg("model \"%s\" has no novelty score because its relation has only %u rows",
						def->name, pool->n_rows),
				 errdetail("A novelty score of %d dimensions needs more rows than dimensions. hl_classify returns NULL novelty, and the score probability_novelty uses the probability alone.",
						   def->novelty),
				 errhint("Lower the model option \"novelty\", or add rows.")));
		return;
	}
	labelled_rows.n_rows = set->n_rows;
	labelled_rows.row_start = set->row_start;
	labelled_rows.index = set->index;
	labelled_rows.value = set->value;
	labelled_rows.group = set->group;

	/*
	 * Labels do not change the idf, so an idf equal to the current
	 * version's means the same texts: their latent space and Gaussian are
	 * kept, and only the labelled classes are fitted again.
	 */
	if (def->current_version > 0)
	{
		HlModel    *current = hl_model_version(def->name, def->model_id, def->current_version);

		if (current->novelty.k == (uint32) def->novelty && current->novelty.dim == dim &&
			memcmp(current->idf, idf, sizeof(float) * dim) == 0)
		{
			if (hl_novelty_refit_classes(&current->novelty, &labelled_rows, set->label, set->weight,
										 n_classes, true, novelty, errbuf, sizeof(errbuf)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not fit the novelty score of model \"%s\": %s", def->name, errbuf)));
			return;
		}
	}

	hl_training_apply_idf(idf, pool);
	pool_rows.n_rows = pool->n_rows;
	pool_rows.row_start = pool->row_start;
	pool_rows.index = pool->index;
	pool_rows.value = pool->value;
	pool_rows.group = NULL;
	if (hl_novelty_fit(&pool_rows, &labelled_rows, set->label, set->weight, n_classes, dim,
					   (uint32) def->novelty, HL_NOVELTY_SEED, novelty, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not fit the novelty score of model \"%s\": %s", def->name, errbuf)));
}

/* qsort comparator for label names through an array of provisional ids. */
static const HlLabelSet *hl_sort_labels;

static int
hl_compare_label_ids(const void *a, const void *b)
{
	return strcmp(hl_sort_labels->names[*(const int32 *) a],
				  hl_sort_labels->names[*(const int32 *) b]);
}

/*
 * Sort the labels by name, so class numbers do not depend on row order,
 * and renumber the training rows.  Returns the names in class order.
 */
static char **
hl_labels_finish(HlLabelSet *labels, HlTrainingSet *set)
{
	int32	   *order = palloc(sizeof(int32) * labels->n);
	int32	   *class_of = palloc(sizeof(int32) * labels->n);
	char	  **names = palloc(sizeof(char *) * labels->n);

	for (uint32 i = 0; i < labels->n; i++)
		order[i] = i;
	hl_sort_labels = labels;
	qsort(order, labels->n, sizeof(int32), hl_compare_label_ids);
	for (uint32 k = 0; k < labels->n; k++)
	{
		class_of[order[k]] = k;
		names[k] = labels->names[order[k]];
	}
	for (uint32 i = 0; i < set->n_rows; i++)
		set->label[i] = class_of[set->label[i]];
	return names;
}

/* Append "key": value to a JSON object under construction; NaN becomes null. */
static void
hl_json_number(StringInfo json, const char *key, double value)
{
	appendStringInfo(json, "%s\"%s\": ", json->len > 1 ? ", " : "", key);
	if (isnan(value) || isinf(value))
		appendStringInfoString(json, "null");
	else
		appendStringInfo(json, "%.6g", value);
}

/* Raise an error unless the posterior of dim x n_classes fits in memory. */
static void
hl_check_model_size(const HlModelDef *def, uint32 dim, uint32 n_classes)
{
	double		bytes = 2.0 * sizeof(float) * dim * n_classes;

	if (bytes > 512.0 * 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model \"%s\" would need %.0f MB for %u classes and %u features",
						def->name, bytes / (1024 * 1024), n_classes, dim),
				 errdetail("A posterior is limited to 512 MB."),
				 errhint("Lower the model option \"hash_bits\" with a new model.")));
}

void
hl_training_fit_options(const HlModelDef *def, HlFitOptions *options)
{
	hl_fit_options_default(options);
	if (def->prior_precision > 0)
		options->prior_precision = def->prior_precision;
	options->seed = HL_TRAIN_SEED;
}

/*
 * Start a full training from the current version when the labels have
 * changed little since its prior precision was chosen.  The fit then keeps
 * that precision, starts from the current weights, and fits all rows at
 * once.  It skips the search over prior precisions, which takes most of
 * the iterations.  It also skips the held-out split, whose T and c it would
 * not keep.  Returns the labelled rows the precision was chosen on, or 0 to
 * train from scratch.
 *
 * Even when it returns 0, a choice on HL_WARM_MIN_ROWS items or more goes
 * into options as the hint of the cold fit's search
 * (HlFitOptions.prior_hint).  Models with self-training get no hint.
 *
 * The current weights were fitted on every row, the held-out rows too, so
 * a split fit started from them finds the held-out rows too easy: on
 * banking77 its held-out accuracy was 0.96 against 0.90 from scratch, and
 * the temperature fitted there made the model overconfident.  A warm
 * start therefore keeps the current temperature and variance scale, which
 * *calibration receives, and its held-out metrics are not reported.
 *
 * Conditions: the current version is a full one with the same features
 * and the same label names in the same order.  Its precision was chosen
 * on at least HL_WARM_MIN_ROWS items, and the labelled items are within a
 * factor HL_WARM_GROWTH of that count.  So the precision is chosen again
 * at least every 25% of growth.
 */
static int32
hl_training_warm_start(const HlModelDef *def, const HlTrainingData *training,
					   HlFitOptions *options, HlClassifier *calibration)
{
	HlModel    *current;
	int32		chosen_rows;
	double		lambda;

	/*
	 * A self-trained version would pick its own pseudo-labels again: a
	 * fit of a few iterations from it stays close to it.
	 */
	if (def->current_version <= 0 || training->n_labels < 2 || def->self_training > 0.0)
		return 0;
	if (!hl_catalog_prior_choice(def->model_id, def->current_version, &chosen_rows, &lambda))
		return 0;
	if (chosen_rows < HL_WARM_MIN_ROWS)
		return 0;

	/*
	 * A cold fit chooses the precision again, along a path that starts one
	 * point stronger than the last choice, which saves up to four of its
	 * six points.
	 */
	if (def->prior_precision <= 0.0)
		options->prior_hint = lambda;
	if (training->n_items > chosen_rows * HL_WARM_GROWTH ||
		training->n_items * HL_WARM_GROWTH < chosen_rows)
		return 0;

	current = hl_model_version(def->name, def->model_id, def->current_version);
	if (current->classifier.dim != training->data.dim ||
		current->classifier.n_classes != training->data.n_classes ||
		current->n_labels != training->n_labels ||
		current->features.hash_bits != def->features.hash_bits ||
		current->features.word_ngram_max != def->features.word_ngram_max ||
		current->features.char_ngram_min != def->features.char_ngram_min ||
		current->features.char_ngram_max != def->features.char_ngram_max)
		return 0;
	for (uint32 k = 0; k < training->n_labels; k++)
		if (strcmp(current->labels[k], training->labels[k]) != 0)
			return 0;

	calibration->temperature = current->classifier.temperature;
	calibration->variance_scale = current->classifier.variance_scale;
	options->init_mean = current->classifier.mean;
	options->init_bias_mean = current->classifier.bias_mean;
	options->max_iterations = HL_WARM_ITERATIONS;
	options->keep_calibration = true;
	if (def->prior_precision <= 0.0)
		options->prior_precision = lambda;
	return chosen_rows;
}

void
hl_training_load(const HlModelDef *def, bool for_fit, HlTrainingData *out)
{
	const char *name = def->name;
	HlFeaturizer *featurizer;
	HlTrainingSet set;
	HlTrainingSet pool;
	HlTrainingSet unlabelled;
	HlLabelSet labels;
	uint32		dim;
	uint32		n_classes;
	uint32	   *df;
	float	   *idf;
	char	  **names;

	/* Read and featurise every row. */
	dim = UINT32_C(1) << def->features.hash_bits;
	featurizer = hl_featurizer_create(&def->features);
	df = palloc_extended(sizeof(uint32) * dim, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	memset(&set, 0, sizeof(set));
	hl_labels_init(&labels);
	memset(&pool, 0, sizeof(pool));
	memset(&unlabelled, 0, sizeof(unlabelled));
	hl_training_read(def, featurizer, df, &set, &labels, def->novelty > 0 ? &pool : NULL,
					 for_fit && def->self_training > 0.0 ? &unlabelled : NULL);

	if (set.n_items == 0 && set.n_docs == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no labelled rows", name),
				 errdetail("Relation \"%s\" has no rows.", get_rel_name(def->relation)),
				 errhint("Insert the texts into \"%s\" and label some of them.",
						 get_rel_name(def->relation))));
	if (set.n_items == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no labelled rows", name),
				 errdetail("Relation \"%s\" has %llu rows and none of them has a label in column \"%s\".",
						   get_rel_name(OidIsValid(def->labels_relation) ? def->labels_relation : def->relation),
						   (unsigned long long) set.n_docs, def->label_column),
				 errhint("Label at least one row; SELECT * FROM hl_next_batch('%s', 20) suggests which.",
						 name)));

	names = hl_labels_finish(&labels, &set);
	n_classes = Max(2, labels.n);
	hl_check_model_size(def, dim, n_classes);

	/* TF-IDF with document frequencies of the whole relation. */
	idf = palloc_extended(sizeof(float) * dim, MCXT_ALLOC_HUGE);
	hl_idf_from_df(df, set.n_docs, dim, idf);
	hl_training_apply_idf(idf, &set);
	hl_training_apply_idf(idf, &unlabelled);
	out->unlabelled.n_rows = unlabelled.n_rows;
	out->unlabelled.row_start = unlabelled.row_start;
	out->unlabelled.index = unlabelled.index;
	out->unlabelled.value = unlabelled.value;
	out->unlabelled.group = NULL;

	memset(&out->novelty, 0, sizeof(out->novelty));
	if (def->novelty > 0)
		hl_training_fit_novelty(def, &set, &pool, idf, dim, n_classes, &out->novelty);

	out->data.n_rows = set.n_rows;
	out->data.dim = dim;
	out->data.n_classes = n_classes;
	out->data.row_start = set.row_start;
	out->data.index = set.index;
	out->data.value = set.value;
	out->data.label = set.label;
	out->data.weight = set.weight;
	out->data.group = set.group;
	out->n_items = set.n_items;
	out->n_docs = set.n_docs;
	out->n_labels = labels.n;
	out->labels = names;
	out->idf = idf;
}

/*
 * Fit classifier again with the unlabelled rows it predicts with
 * probability HL_SELF_TRAINING_THRESHOLD or more, labelled so and weighted
 * by the model option self_training.  options and report are those of the
 * labelled fit that made classifier and split_model (the fit of its
 * held-out split's training side), and report is replaced.  The refit keeps
 * the prior precision and fits T and c on the same held-out labelled rows.
 * Its split's training side takes the pseudo-labels of split_model, which
 * never saw those rows (see hl_self_training_extend).
 *
 * The refit replaces classifier and report only when its training side
 * scores at least the labelled fit's held-out accuracy: the pseudo-labels
 * must not make the model worse on labels a person gave.  Sets *n_pseudo
 * to the pseudo-labelled rows kept and returns what happened, for the
 * version's metrics.
 */
static const char *
hl_training_self_train(const HlModelDef *def, const HlTrainingData *training,
					   const HlFitOptions *options, const HlClassifier *split_model,
					   HlClassifier *classifier, HlFitReport *report, uint32 *n_pseudo)
{
	HlSelfTrainingSet extended;
	HlFitOptions again = *options;
	HlFitReport refit_report;
	HlClassifier refit;
	char		errbuf[256];

	*n_pseudo = 0;
	hl_self_training_extend(split_model, classifier, &training->data, &training->unlabelled,
							HL_SELF_TRAINING_THRESHOLD, (float) def->self_training, &extended);
	if (extended.n_pseudo == 0)
	{
		hl_self_training_free(&extended);
		return "no confident rows";
	}

	/*
	 * Start from the labelled fit's training side, at its prior precision:
	 * a start from the returned fit would carry the held-out labels.
	 */
	again.prior_precision = report->prior_precision;
	again.init_mean = split_model->mean;
	again.init_bias_mean = split_model->bias_mean;
	again.max_iterations = HL_SELF_TRAINING_ITERATIONS;
	again.row_stage = extended.row_stage;
	again.split_model = NULL;
	hl_classifier_alloc(&refit, classifier->dim, classifier->n_classes);
	if (hl_classifier_fit(&extended.data, &again, &refit, &refit_report, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not fit model \"%s\" with %u pseudo-labelled rows: %s",
						def->name, extended.n_pseudo, errbuf)));
	if (refit_report.heldout_accuracy < report->heldout_accuracy)
	{
		hl_self_training_free(&extended);
		hl_classifier_free(&refit);
		report->iterations += refit_report.iterations;
		return "rejected: lower held-out accuracy";
	}

	*n_pseudo = extended.n_pseudo;
	hl_self_training_free(&extended);
	hl_classifier_free(classifier);
	*classifier = refit;
	refit_report.iterations += report->iterations;
	*report = refit_report;
	return "kept";
}

void
hl_warn_padded_labels(const char *model, char **names, uint32 n)
{
	uint32		padded = 0;
	const char *first = NULL;

	for (uint32 i = 0; i < n; i++)
	{
		size_t		len = strlen(names[i]);

		if (len > 0 && (isspace((unsigned char) names[i][0]) ||
						isspace((unsigned char) names[i][len - 1])))
		{
			if (first == NULL)
				first = names[i];
			padded++;
		}
	}
	if (padded == 1)
		ereport(WARNING,
				(errmsg("model \"%s\" has a label with white space around it, \"%s\"", model, first),
				 errdetail("A label with white space around it is a label of its own, apart from the label without it."),
				 errhint("Trim the labels, for example with btrim(), and train again.")));
	else if (padded > 1)
		ereport(WARNING,
				(errmsg("model \"%s\" has %u labels with white space around them, such as \"%s\"",
						model, padded, first),
				 errdetail("A label with white space around it is a label of its own, apart from the label without it."),
				 errhint("Trim the labels, for example with btrim(), and train again.")));
}

/*
 * Train model def on all its labelled rows and store the new version as
 * current.  The caller holds the model's row lock.
 */
void
hl_train_model(const HlModelDef *def, HlTrainResult *result)
{
	const char *name = def->name;
	MemoryContext caller_context = CurrentMemoryContext;
	MemoryContext train_context;
	HlTrainingData training;
	HlClassifier classifier;
	HlClassifier calibration;
	HlFitOptions options;
	HlFitReport report;
	uint32		dim;
	uint32		n_classes;
	char	  **names;
	char		errbuf[256];
	bytea	   *posterior;
	Datum	   *label_datums;
	ArrayType  *label_array;
	StringInfoData metrics;
	instr_time	start;
	instr_time	elapsed;
	double		seconds;
	int32		version;
	int32		prior_chosen_rows;
	bool		warm;
	bool		split;
	HlClassifier split_model;
	uint32		n_pseudo = 0;
	const char *self_training_outcome = NULL;

	if (strcmp(def->task, "spans") == 0)
	{
		hl_train_spans(def, result);
		return;
	}

	INSTR_TIME_SET_CURRENT(start);
	train_context = AllocSetContextCreate(caller_context, "humanloop train",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(train_context);

	hl_training_load(def, true, &training);
	names = training.labels;
	dim = training.data.dim;
	n_classes = training.data.n_classes;
	hl_warn_padded_labels(name, names, training.n_labels);
	if (training.n_labels == 1)
		ereport(WARNING,
				(errmsg("model \"%s\" has labels of only one class, \"%s\"", name, names[0]),
				 errdetail("Predictions will be that class, with high uncertainty."),
				 errhint("Label rows of at least one other class.")));

	/* Fit the posterior, from the current version when it is close. */
	hl_training_fit_options(def, &options);
	memset(&calibration, 0, sizeof(calibration));
	/* This also sets the prior hint of a cold fit. */
	prior_chosen_rows = hl_training_warm_start(def, &training, &options, &calibration);
	warm = prior_chosen_rows > 0;
	if (!warm)
		prior_chosen_rows = (int32) training.n_items;
	hl_classifier_alloc(&classifier, dim, n_classes);
	if (def->self_training > 0.0)
	{
		hl_classifier_alloc(&split_model, dim, n_classes);
		options.split_model = &split_model;
	}
	if (hl_classifier_fit(&training.data, &options, &classifier, &report, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not fit model \"%s\": %s", name, errbuf)));
	split = report.heldout_rows > 0;
	if (warm)
	{
		classifier.temperature = calibration.temperature;
		classifier.variance_scale = calibration.variance_scale;
		report.temperature = calibration.temperature;
		report.variance_scale = calibration.variance_scale;
		report.heldout_rows = 0;
		report.heldout_accuracy = NAN;
		report.heldout_nll = NAN;
	}

	/*
	 * Self-training, once the labelled fit had held-out rows to calibrate
	 * on: without them the pseudo-labels' probabilities mean little.  With
	 * one class every row would take its label.
	 */
	if (def->self_training > 0.0)
	{
		if (training.n_labels < 2)
			self_training_outcome = "one class";
		else if (!split)
			self_training_outcome = "no held-out split";
		else if (training.unlabelled.n_rows == 0)
			self_training_outcome = "no unlabelled rows";
		else
			self_training_outcome = hl_training_self_train(def, &training, &options, &split_model,
														   &classifier, &report, &n_pseudo);
	}

	/* Store the new version. */
	posterior = hl_posterior_serialize(&def->features, training.idf, &classifier, names, training.n_labels,
									   &training.novelty);
	label_datums = palloc(sizeof(Datum) * training.n_labels);
	for (uint32 k = 0; k < training.n_labels; k++)
		label_datums[k] = CStringGetTextDatum(names[k]);
	label_array = construct_array(label_datums, training.n_labels, TEXTOID, -1, false, TYPALIGN_INT);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	seconds = INSTR_TIME_GET_DOUBLE(elapsed);

	initStringInfo(&metrics);
	appendStringInfoChar(&metrics, '{');
	hl_json_number(&metrics, "documents", (double) training.n_docs);
	hl_json_number(&metrics, "labelled_rows", training.n_items);
	hl_json_number(&metrics, "training_rows", training.data.n_rows);
	hl_json_number(&metrics, "train_accuracy", report.train_accuracy);
	hl_json_number(&metrics, "train_nll", report.train_nll);
	hl_json_number(&metrics, "heldout_rows", report.heldout_rows);
	hl_json_number(&metrics, "heldout_accuracy", report.heldout_accuracy);
	hl_json_number(&metrics, "heldout_nll", report.heldout_nll);
	hl_json_number(&metrics, "prior_precision", report.prior_precision);
	hl_json_number(&metrics, "temperature", report.temperature);
	hl_json_number(&metrics, "variance_scale", report.variance_scale);
	hl_json_number(&metrics, "iterations", report.iterations);
	hl_json_number(&metrics, "feature_buckets", dim);
	hl_json_number(&metrics, "novelty_dimensions", training.novelty.k);
	hl_json_number(&metrics, "pseudo_labelled_rows", n_pseudo);
	if (self_training_outcome != NULL)
		appendStringInfo(&metrics, ", \"self_training\": \"%s\"", self_training_outcome);
	hl_json_number(&metrics, "prior_chosen_rows", prior_chosen_rows);
	appendStringInfo(&metrics, ", \"warm_start\": %s", warm ? "true" : "false");

	/*
	 * A target for the abstention rule is met again by choosing the
	 * threshold anew for this version's labels.
	 */
	if ((def->abstention.target_accuracy > 0.0 || def->abstention.target_coverage > 0.0) &&
		training.n_items >= 2)
	{
		HlAbstentionEstimate estimate;

		hl_abstention_fit(def, &training, &estimate);
		appendStringInfoString(&metrics, ", \"abstention\": ");
		hl_abstention_json(&metrics, &estimate);
	}
	appendStringInfoChar(&metrics, '}');

	version = hl_catalog_add_version(def->model_id, "full", training.n_items, PointerGetDatum(label_array),
									 seconds, metrics.data, posterior, 0, 0);

	/* Copy the result to the caller's context, then free the rest. */
	MemoryContextSwitchTo(caller_context);
	result->version = version;
	result->labelled_rows = training.n_items;
	result->classes = training.n_labels;
	result->seconds = seconds;
	result->metrics_json = pstrdup(metrics.data);
	MemoryContextDelete(train_context);
}

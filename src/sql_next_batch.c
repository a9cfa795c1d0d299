/*
 * sql_next_batch.c
 *		hl_next_batch: the unlabelled rows whose labels would teach the model
 *		most, best first.
 *
 * The pool of unlabelled, unreserved rows is streamed once through a cursor.
 * Each row is featurised, scored by the strategy and embedded.  A min-heap
 * keeps the best candidates by uncertainty / cost^a, and a reservoir keeps
 * a uniform sample of embeddings.  Clustering the sample gives the centres
 * that define each candidate's density (how typical it is of the pool).
 * The batch is then chosen among the candidates only, so memory and time
 * grow with the pool linearly and with the batch size, never with pairs of
 * pool rows.  With the option disagreement, a sample of labelled rows is read
 * first, and its pairs give each pair of classes a disagreement rate.
 *
 * Concurrent annotators: the call takes a transaction-level advisory lock on
 * the model, skips rows another call reserved, and reserves what it returns
 * for humanloop.reservation_timeout.  Two calls at the same moment therefore
 * return disjoint batches once the first commits.  A reservation ends when
 * it expires; a labelled row leaves the pool anyway.
 */
#include "compat.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "acquisition.h"
#include "catalog.h"
#include "disagreement.h"
#include "model_cache.h"
#include "span_acquisition.h"
#include "text_source.h"

PG_FUNCTION_INFO_V1(hl_next_batch);

#define HL_MAX_BATCH 10000
#define HL_MAX_CANDIDATES 50000
#define HL_FETCH_ROWS 1000
#define HL_SAMPLE_ROWS 2000
#define HL_KMEANS_ITERATIONS 8
#define HL_LOCK_CLASS 0x686c	/* "hl": advisory lock class of humanloop */

/*
 * Strategies used when the call names none.  They measured best on the
 * learning curves of docs/active-learning.md (classification: banking77,
 * snips intents) and docs/spans.md (spans: snips slots, three seeds).
 */
#define HL_DEFAULT_CLASSIFICATION_STRATEGY "margin"
#define HL_DEFAULT_SPAN_STRATEGY "least_confidence"

/*
 * A span model's default also weights sentences by density.  With word
 * classes it reached 95% of the full-data F1 on snips 44 to 242 sentences
 * earlier on each of three seeds (docs/spans.md, measured before training
 * left any classes out).
 */
#define HL_DEFAULT_SPAN_DENSITY 1.0

/*
 * A classifier's default passes over rows between two classes that
 * annotators disagree on: the key is multiplied by (1 - rate)^3, where rate
 * is the disagreement of the row's two most probable classes.  The exponent
 * was chosen on banking77, where annotators label three in ten texts of ten
 * confused pairs of intents as the other intent of the pair
 * (docs/active-learning.md).
 */
#define HL_DEFAULT_DISAGREEMENT 3.0

/*
 * Unlabelled rows a call scores at most, about.  Scoring takes about 33 us a
 * row on banking77, 30 s for a million rows.  A larger pool is sampled by a
 * hash of the id, seed and version, and a batch of 50 still comes from the
 * most uncertain 0.05% of the sample.
 */
#define HL_DEFAULT_SAMPLE 100000

/*
 * Labelled points (a row counts once per distinct label) sampled to
 * estimate the disagreement.  The nearest neighbours take all pairs of
 * them: at 4,000 points 16 million dot products of HL_WIDE_EMBED_DIM floats.
 */
#define HL_DISAGREEMENT_MAX_POINTS 4000

#define HL_BATCH_OPTION_NAMES "density, diversity, cost, novelty, disagreement, epistemic, max_class_share, reserve, candidates, sample, seed, reduction (span models)"

static int	hl_reservation_timeout = 900;

/* Define the settings of this module. */
void
hl_next_batch_init(void)
{
	DefineCustomIntVariable("humanloop.reservation_timeout",
							"Sets how long rows returned by hl_next_batch stay reserved.",
							"Reserved rows are left out of other calls' batches until they are "
							"labelled or the time passes.  In seconds; 0 turns reservations off.",
							&hl_reservation_timeout,
							900, 0, 7 * 24 * 3600,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* Return whether key names a batch option. */
static bool
hl_is_batch_option(const char *key)
{
	static const char *const names[] = {
		"density", "diversity", "cost", "novelty", "disagreement", "epistemic",
		"max_class_share", "reserve", "candidates", "sample", "seed", "reduction"
	};

	for (size_t i = 0; i < lengthof(names); i++)
		if (strcmp(key, names[i]) == 0)
			return true;
	return false;
}

/* Fill options with the defaults, then the keys of the options jsonb. */
static void
hl_batch_options_parse(Jsonb *json, int n, HlBatchOptions *options)
{
	JsonbIterator *it;
	JsonbValue	value;
	JsonbIteratorToken token;

	options->epistemic = 0.5;
	options->density = 0.0;
	options->diversity = 0.0;
	options->cost = 0.0;
	options->novelty = 0.0;
	options->disagreement = 0.0;
	options->max_class_share = 1.0;
	options->reserve = true;
	options->candidates = (uint32) Min(Max(10 * n, 500), HL_MAX_CANDIDATES);
	options->sample = HL_DEFAULT_SAMPLE;
	options->seed = 0;
	options->reduction = HL_REDUCE_MAX;
	options->reduction_given = false;
	options->density_given = false;
	options->disagreement_given = false;

	if (json == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(json) || JB_ROOT_IS_SCALAR(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch options must be a JSON object"),
				 errhint("For example '{\"diversity\": 0.5}'.")));

	/* Name a misspelt key as unknown before any value of the wrong type. */
	it = JsonbIteratorInit(&json->root);
	while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
	{
		char	   *key;

		if (token != WJB_KEY)
			continue;
		key = pnstrdup(value.val.string.val, value.val.string.len);
		if (!hl_is_batch_option(key))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown batch option \"%s\"", key),
					 errhint("Valid options are: %s.", HL_BATCH_OPTION_NAMES)));
		pfree(key);
		(void) JsonbIteratorNext(&it, &value, true);
	}

	it = JsonbIteratorInit(&json->root);
	while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
	{
		char	   *key;
		double		number;

		if (token != WJB_KEY)
			continue;
		key = pnstrdup(value.val.string.val, value.val.string.len);
		token = JsonbIteratorNext(&it, &value, true);

		if (strcmp(key, "reserve") == 0)
		{
			if (value.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"reserve\" is %s, but must be true or false",
								hl_json_value_text(&value)),
						 errhint("Write true or false without quotes.")));
			options->reserve = value.val.boolean;
			continue;
		}
		if (strcmp(key, "candidates") == 0)
		{
			options->candidates = hl_option_int(key, &value, 1, HL_MAX_CANDIDATES);
			continue;
		}
		if (strcmp(key, "sample") == 0)
		{
			options->sample = (uint32) hl_option_int(key, &value, 0, INT_MAX);
			continue;
		}
		if (strcmp(key, "seed") == 0)
		{
			options->seed = (uint64) hl_option_int(key, &value, 0, INT_MAX);
			continue;
		}
		if (strcmp(key, "reduction") == 0)
		{
			char	   *name = value.type == jbvString ?
				pnstrdup(value.val.string.val, value.val.string.len) : NULL;

			if (name != NULL && strcmp(name, "sum") == 0)
				options->reduction = HL_REDUCE_SUM;
			else if (name != NULL && strcmp(name, "mean") == 0)
				options->reduction = HL_REDUCE_MEAN;
			else if (name != NULL && strcmp(name, "max") == 0)
				options->reduction = HL_REDUCE_MAX;
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"reduction\" is %s, but must be \"sum\", \"mean\" or \"max\"",
								name != NULL ? psprintf("\"%s\"", name) : "not a string"),
						 errhint("It sets how a span model's token uncertainties make a sentence score.")));
			options->reduction_given = true;
			continue;
		}

		number = hl_option_number(key, &value);
		if (strcmp(key, "density") == 0 || strcmp(key, "cost") == 0)
		{
			if (!(number >= 0.0 && number <= 10.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" is %s, but must be from 0 to 10",
								key, hl_json_number_text(&value)),
						 errhint("It is an exponent: 0 turns the factor off, 1 applies it as it is.")));
			if (key[0] == 'd')
			{
				options->density = number;
				options->density_given = true;
			}
			else
				options->cost = number;
		}
		else if (strcmp(key, "novelty") == 0)
		{
			if (!(number >= 0.0 && number <= 10.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"novelty\" is %s, but must be from 0 to 10",
								hl_json_number_text(&value)),
						 errhint("It is a weight: 1 lets the most novel rows count up to twice their uncertainty.")));
			options->novelty = number;
		}
		else if (strcmp(key, "disagreement") == 0)
		{
			if (!(number >= 0.0 && number <= 10.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"disagreement\" is %s, but must be from 0 to 10",
								hl_json_number_text(&value)),
						 errhint("It is an exponent: 0 turns the factor off, and the default strategy uses 3.")));
			options->disagreement = number;
			options->disagreement_given = true;
		}
		else if (strcmp(key, "epistemic") == 0)
		{
			if (!(number >= 0.0 && number <= 1.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"epistemic\" is %s, but must be from 0 to 1",
								hl_json_number_text(&value)),
						 errhint("Pass a number from 0 to 1, such as the default 0.5. At 0 the hybrid strategy ranks by the margin alone.")));
			options->epistemic = number;
		}
		else if (strcmp(key, "diversity") == 0)
		{
			if (!(number >= 0.0 && number <= 1.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"diversity\" is %s, but must be from 0 to 1",
								hl_json_number_text(&value)),
						 errhint("Pass a number from 0 to 1. 0 turns the penalty for similar rows off.")));
			options->diversity = number;
		}
		else if (strcmp(key, "max_class_share") == 0)
		{
			if (!(number > 0.0 && number <= 1.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"max_class_share\" is %s, but must be above 0 and at most 1",
								hl_json_number_text(&value)),
						 errhint("Pass a share of the batch, such as 0.34 for at most a third per predicted label, or 1 for no cap.")));
			options->max_class_share = number;
		}
		pfree(key);
	}

	if (options->candidates < (uint32) n)
		options->candidates = n;
	if (options->sample > 0 && options->sample < options->candidates)
		options->sample = options->candidates;
}

/* Streaming state of the first stage. */
typedef struct HlPoolScan
{
	HlCandidate *heap;			/* min-heap by key, worst at the root */
	int			size;
	int			capacity;
	float	   *sample;			/* reservoir of embeddings */
	uint32		sample_size;
	uint64		seen;
	uint64		rng;
} HlPoolScan;

/* Return whether a ranks below b in the first stage: lower key, or larger id. */
static bool
hl_key_worse(const HlCandidate *a, const HlCandidate *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	return strcmp(a->id, b->id) > 0;
}

/* Move heap[i] down until the heap property holds. */
static void
hl_heap_sift_down(HlCandidate *heap, int size, int i)
{
	for (;;)
	{
		int			worst = i;
		int			left = 2 * i + 1;
		int			right = left + 1;
		HlCandidate tmp;

		if (left < size && hl_key_worse(&heap[left], &heap[worst]))
			worst = left;
		if (right < size && hl_key_worse(&heap[right], &heap[worst]))
			worst = right;
		if (worst == i)
			return;
		tmp = heap[i];
		heap[i] = heap[worst];
		heap[worst] = tmp;
		i = worst;
	}
}

/* Move heap[i] up until the heap property holds. */
static void
hl_heap_sift_up(HlCandidate *heap, int i)
{
	while (i > 0)
	{
		int			parent = (i - 1) / 2;
		HlCandidate tmp;

		if (!hl_key_worse(&heap[i], &heap[parent]))
			return;
		tmp = heap[i];
		heap[i] = heap[parent];
		heap[parent] = tmp;
		i = parent;
	}
}

/* Offer a candidate to the heap; its id is copied only when it is kept. */
static void
hl_heap_offer(HlPoolScan *scan, HlCandidate *candidate, const char *id, size_t id_len)
{
	if (scan->size < scan->capacity)
	{
		candidate->id = pnstrdup(id, id_len);
		scan->heap[scan->size] = *candidate;
		hl_heap_sift_up(scan->heap, scan->size++);
		return;
	}

	/* Most rows lose to the worst kept one: compare before copying the id. */
	if (candidate->key < scan->heap[0].key)
		return;
	candidate->id = pnstrdup(id, id_len);
	if (!hl_key_worse(&scan->heap[0], candidate))
	{
		pfree(candidate->id);
		return;
	}
	pfree(scan->heap[0].id);
	scan->heap[0] = *candidate;
	hl_heap_sift_down(scan->heap, scan->size, 0);
}

/* Keep a uniform sample of the pool's embeddings (reservoir sampling, Algorithm R). */
static void
hl_sample_offer(HlPoolScan *scan, const float *embedding)
{
	uint64		slot;

	scan->seen++;
	if (scan->sample_size < HL_SAMPLE_ROWS)
		slot = scan->sample_size++;
	else
	{
		scan->rng = scan->rng * UINT64CONST(6364136223846793005) + UINT64CONST(1442695040888963407);
		slot = (scan->rng >> 11) % scan->seen;
		if (slot >= HL_SAMPLE_ROWS)
			return;
	}
	memcpy(scan->sample + slot * HL_EMBED_DIM, embedding, sizeof(float) * HL_EMBED_DIM);
}

/*
 * Estimate how much annotators disagree between each pair of the model's
 * classes, from a sample of the labelled rows.  A row with several distinct
 * labels counts once per label, so two different labels of the same text
 * are each other's nearest neighbour.  Labels the model has not seen and
 * texts without a feature are left out.
 *
 * NOTE: the sample query reads and sorts every labelled row on each call,
 * which is cheap for thousands of labels and not measured beyond 10,000.
 */
static void
hl_fit_disagreement(const HlModelDef *def, HlModel *model, HlDisagreement *out)
{
	MemoryContext batch_context = CurrentMemoryContext;
	size_t		capacity = 256;
	uint32		n = 0;
	float	   *x = palloc(sizeof(float) * HL_WIDE_EMBED_DIM * capacity);
	int32	   *label = palloc(sizeof(int32) * capacity);
	Portal		portal;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* Read through a cursor, so that long texts are not all in memory at once. */
	portal = SPI_cursor_open_with_args(NULL, hl_source_labelled_sample_query(def, HL_DISAGREEMENT_MAX_POINTS),
									   0, NULL, NULL, NULL, true, 0);

	while (n < HL_DISAGREEMENT_MAX_POINTS)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		for (uint64 r = 0; r < SPI_processed && n < HL_DISAGREEMENT_MAX_POINTS; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		doc = SPI_getbinval(tuple, desc, 2, &isnull);
			Datum		labels_datum;
			Datum	   *elems;
			int			n_elems;
			int32		previous = -1;
			text	   *body;
			size_t		len;
			float		embedding[HL_WIDE_EMBED_DIM];

			CHECK_FOR_INTERRUPTS();
			if (isnull)
				continue;
			labels_datum = SPI_getbinval(tuple, desc, 3, &isnull);
			if (isnull)
				continue;

			body = DatumGetTextPP(doc);
			len = VARSIZE_ANY_EXHDR(body);
			if (len > (size_t) hl_max_text_bytes)
				hl_check_text_length(len, psprintf("text of row \"%s\"", SPI_getvalue(tuple, desc, 1)));
			hl_model_featurize(model, VARDATA_ANY(body), len);
			if (model->vec.nnz == 0)
				continue;
			hl_embed_wide(&model->vec, embedding);

			/*
			 * The labels come sorted, so a label that several annotators
			 * gave is skipped after its first copy.  Twin points would be
			 * each other's neighbour and hide the row's real neighbour.
			 */
			deconstruct_array(DatumGetArrayTypeP(labels_datum), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &n_elems);
			for (int e = 0; e < n_elems && n < HL_DISAGREEMENT_MAX_POINTS; e++)
			{
				int32		k = hl_model_find_label(model, TextDatumGetCString(elems[e]));

				if (k < 0 || k == previous)
					continue;
				previous = k;
				if (n == capacity)
				{
					MemoryContext old = MemoryContextSwitchTo(batch_context);

					capacity *= 2;
					x = repalloc(x, sizeof(float) * HL_WIDE_EMBED_DIM * capacity);
					label = repalloc(label, sizeof(int32) * capacity);
					MemoryContextSwitchTo(old);
				}
				memcpy(x + (size_t) n * HL_WIDE_EMBED_DIM, embedding, sizeof(embedding));
				label[n++] = k;
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}

	SPI_cursor_close(portal);
	SPI_finish();

	hl_disagreement_fit(x, n, HL_WIDE_EMBED_DIM, label, model->n_labels, out);
	pfree(label);
	pfree(x);
}

/* Return the number of rows that query returns.  SPI must be connected. */
static uint64
hl_count_rows(const char *query, int nargs, Oid *argtypes, Datum *values)
{
	bool		isnull;

	if (SPI_execute_with_args(psprintf("SELECT pg_catalog.count(*) FROM (%s) q", query),
							  nargs, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count the unlabelled rows");
	return (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Stream the unlabelled, unreserved rows: score, embed and keep the best
 * candidates and a sample.  model is NULL before the first training, and
 * then rows are featurised with unit idf just for the embedding.
 */
static void
hl_scan_pool(const HlModelDef *def, HlModel *model, HlFeaturizer *featurizer,
			 const float *unit_idf, const HlBatchOptions *options,
			 const HlDisagreement *disagreement, HlPoolScan *scan)
{
	MemoryContext batch_context = CurrentMemoryContext;
	HlSparseVec counts;
	Portal		portal;
	Oid			argtypes[3] = {INT4OID, INT8OID, INT8OID};
	Datum		values[3];
	int			nargs = 1;
	char	   *query;

	hl_sparse_init(&counts);
	values[0] = Int32GetDatum(def->model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	query = hl_source_unlabelled_query(def, true);

	/*
	 * A pool above options->sample rows is sampled by a hash of the id, seed
	 * and version.  Each version samples other rows, so no row stays out for
	 * good.
	 */
	if (options->sample > 0)
	{
		uint64		rows = hl_count_rows(query, 1, argtypes, values);

		if (rows > options->sample)
		{
			values[1] = Int64GetDatum((int64) options->seed + ((int64) def->current_version << 32));
			values[2] = Int64GetDatum((int64) ((double) options->sample / rows * (INT64CONST(1) << 31)));
			query = psprintf("SELECT u.id, u.doc FROM (%s) u (id, doc)"
							 " WHERE pg_catalog.hashtextextended(u.id, $2)"
							 " OPERATOR(pg_catalog.&) 2147483647 OPERATOR(pg_catalog.<) $3",
							 query);
			nargs = 3;
		}
	}

	/* Not read-only: a fresh snapshot includes reservations made earlier in this statement. */
	portal = SPI_cursor_open_with_args(NULL, query, nargs, argtypes, values, NULL, false, 0);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext spi_context = MemoryContextSwitchTo(batch_context);
			HlCandidate candidate;
			HlPrediction prediction;
			bool		isnull;
			Datum		id_datum = SPI_getbinval(tuple, desc, 1, &isnull);
			Datum		doc;
			text	   *id;
			const char *body = "";
			size_t		len = 0;
			const HlSparseVec *vec;

			CHECK_FOR_INTERRUPTS();

			/* A row without an id could never be joined back; skip it. */
			if (isnull)
			{
				MemoryContextSwitchTo(spi_context);
				continue;
			}
			id = DatumGetTextPP(id_datum);

			doc = SPI_getbinval(tuple, desc, 2, &isnull);
			if (!isnull)
			{
				text	   *t = DatumGetTextPP(doc);

				body = VARDATA_ANY(t);
				len = VARSIZE_ANY_EXHDR(t);
				if (len > (size_t) hl_max_text_bytes)
					hl_check_text_length(len, psprintf("text of row \"%s\"", text_to_cstring(id)));
			}

			memset(&candidate, 0, sizeof(candidate));
			candidate.label = -1;
			candidate.disagreement = NAN;
			candidate.similarity = NAN;
			candidate.novelty = NAN;
			candidate.cost = hl_expected_cost(pg_mbstrlen_with_len(body, (int) len));
			if (model == NULL)
			{
				hl_featurize_counts(featurizer, body, len, &counts);
				hl_tfidf_apply(unit_idf, &counts);
				vec = &counts;
				candidate.uncertainty = 1.0;
			}
			else if (hl_model_is_spans(model))
			{
				/* The embedding reads the document features, as before training. */
				hl_featurize_counts(featurizer, body, len, &counts);
				hl_tfidf_apply(unit_idf, &counts);
				vec = &counts;
				hl_model_tag(model, body, len);
				candidate.uncertainty = hl_span_acquisition_score(options->strategy, &model->tagged,
																  VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id),
																  options, &prediction);
				candidate.probability = prediction.probability;
				candidate.entropy = prediction.entropy;
				candidate.mutual_information = prediction.mutual_information;
			}
			else
			{
				hl_model_score(model, body, len, &prediction);
				vec = &model->vec;
				candidate.uncertainty = hl_acquisition_score(options->strategy, &prediction,
															 model->proba, model->n_labels,
															 VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id),
															 options);
				candidate.label = prediction.label;
				candidate.probability = prediction.probability;
				candidate.entropy = prediction.entropy;
				candidate.mutual_information = prediction.mutual_information;
			}
			hl_embed(vec, candidate.embedding);
			hl_sample_offer(scan, candidate.embedding);

			/* Before training, keep a random subset of the pool as candidates. */
			if (model == NULL)
				candidate.key = hl_id_uniform(VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id), options->seed);
			else
				candidate.key = candidate.uncertainty / pow(candidate.cost, options->cost);

			/*
			 * The option novelty counts a row up to 1 + novelty times its
			 * uncertainty, rising with its novelty score above a typical
			 * labelled text.  On banking77 it lowered the learning curves,
			 * so it is off unless asked for.
			 */
			if (model != NULL && !hl_model_is_spans(model) && options->novelty > 0.0 &&
				!isnan(prediction.novelty))
			{
				candidate.novelty = prediction.novelty;
				candidate.key *= 1.0 + options->novelty * (1.0 - exp(-fmax(prediction.novelty, 0.0) / 2.0));
			}

			/*
			 * Between two classes that annotators disagree on, a label
			 * settles little however uncertain the row is.
			 */
			if (disagreement != NULL)
			{
				int32		second = hl_second_class(model->proba, model->n_labels, prediction.label);

				candidate.disagreement = hl_disagreement_rate(disagreement, prediction.label, second);
				candidate.key *= pow(1.0 - candidate.disagreement, options->disagreement);
			}

			/*
			 * A text without a single feature (NULL, empty, white space) is
			 * as uncertain as a row can be, yet gives a person nothing to
			 * read, so it goes last.
			 */
			if (model != NULL && vec->nnz == 0)
				candidate.key = 0.0;

			hl_heap_offer(scan, &candidate, VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id));
			MemoryContextSwitchTo(spi_context);
		}
		SPI_freetuptable(SPI_tuptable);
	}

	SPI_cursor_close(portal);
	SPI_finish();
	hl_sparse_free(&counts);
}

/* Set each candidate's density: cosine similarity to its nearest pool centre. */
static void
hl_compute_density(HlPoolScan *scan)
{
	uint32		k = Min(50, Max(1, scan->sample_size / 40));
	float	   *centres = palloc(sizeof(float) * HL_EMBED_DIM * k);
	uint32		found = hl_kmeans(scan->sample, scan->sample_size, k,
								  HL_KMEANS_ITERATIONS, 0x636c7573, centres);

	for (int i = 0; i < scan->size; i++)
	{
		HlCandidate *c = &scan->heap[i];
		double		best = 0.0;

		for (uint32 j = 0; j < found; j++)
			best = Max(best, hl_embed_dot(c->embedding, centres + (size_t) j * HL_EMBED_DIM));
		c->density = best;
	}
	pfree(centres);
}

/* Lock the model's batch selection until the end of the transaction. */
static void
hl_lock_model_batches(int32 model_id)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(HL_LOCK_CLASS), Int32GetDatum(model_id)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock model %d for batch selection", model_id);
	values[0] = Int32GetDatum(model_id);
	if (SPI_execute_with_args("DELETE FROM humanloop.reservations"
							  " WHERE model_id = $1 AND reserved_until <= pg_catalog.now()",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete expired reservations of model %d", model_id);
	SPI_finish();
}

/* Reserve the chosen rows for humanloop.reservation_timeout seconds. */
static void
hl_reserve_rows(int32 model_id, HlCandidate *candidates, const int *chosen, int count)
{
	Oid			argtypes[3] = {INT4OID, TEXTARRAYOID, INT4OID};
	Datum		values[3];
	Datum	   *ids = palloc(sizeof(Datum) * Max(count, 1));

	for (int i = 0; i < count; i++)
		ids[i] = CStringGetTextDatum(candidates[chosen[i]].id);
	values[0] = Int32GetDatum(model_id);
	values[1] = PointerGetDatum(construct_array(ids, count, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = Int32GetDatum(hl_reservation_timeout);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO humanloop.reservations (model_id, item_id, reserved_until)"
							  " SELECT $1, item, pg_catalog.now() + $3 * interval '1 second'"
							  " FROM pg_catalog.unnest($2) AS item"
							  " ON CONFLICT (model_id, item_id) DO UPDATE"
							  " SET reserved_until = excluded.reserved_until",
							  3, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not reserve rows of model %d", model_id);
	SPI_finish();
}

/* Warn when labels were given that the current version has never seen. */
static void
hl_warn_new_labels(const HlModelDef *def, HlModel *model)
{
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		values[1];
	Datum	   *labels = palloc(sizeof(Datum) * model->n_labels);
	StringInfoData list;

	for (uint32 k = 0; k < model->n_labels; k++)
		labels[k] = CStringGetTextDatum(model->labels[k]);
	values[0] = PointerGetDatum(construct_array(labels, model->n_labels, TEXTOID, -1, false, TYPALIGN_INT));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(hl_source_new_labels_query(def), 1, argtypes, values, NULL,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the labels of model \"%s\"", def->name);
	if (SPI_processed > 0)
	{
		initStringInfo(&list);
		for (uint64 i = 0; i < Min(SPI_processed, 5); i++)
			appendStringInfo(&list, "%s\"%s\"", i > 0 ? ", " : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		ereport(WARNING,
				(errmsg("model \"%s\" version %d has never seen the label%s %s%s",
						def->name, model->version, SPI_processed > 1 ? "s" : "", list.data,
						SPI_processed > 5 ? " and more" : ""),
				 errdetail("Scores and predicted labels come from a version trained before those labels were given."),
				 errhint("Run SELECT * FROM hl_train('%s'); to learn them.", def->name)));
	}
	SPI_finish();
}

/*
 * hl_next_batch(name, n, strategy, options) returns (id, score, label,
 * probability, entropy, mutual_information, uncertainty, density, cost,
 * disagreement)
 */
Datum
hl_next_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	int32		n;
	HlBatchOptions options;
	HlModelDef *def;
	HlModel    *model;
	int32		model_id;
	HlPoolScan	scan;
	HlDisagreement disagreement;
	bool		use_disagreement;
	HlFeaturizer *featurizer = NULL;
	float	   *unit_idf = NULL;
	int		   *chosen;
	int			count;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	MemoryContext batch_context;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	hl_require_model_name(fcinfo, 0);
	hl_require_arg(fcinfo, 1, "n",
				   psprintf("Pass the number of rows to return, from 1 to %d.", HL_MAX_BATCH));

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	n = PG_GETARG_INT32(1);
	if (n < 1 || n > HL_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size %d is out of range", n),
				 errhint("Ask for 1 to %d rows.", HL_MAX_BATCH)));
	/* A NULL strategy is the task's default, resolved once the model is known. */
	options.strategy = hl_strategy_parse(PG_ARGISNULL(2) ? HL_DEFAULT_CLASSIFICATION_STRATEGY
										 : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	hl_batch_options_parse(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), n, &options);

	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, false);
	hl_source_check(def);
	hl_lock_model_batches(def->model_id);

	model = hl_model_current(name, &model_id);

	/* Reject the options first, so no NOTICE comes before the error. */
	if (options.reduction_given && (model == NULL || !hl_model_is_spans(model)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"reduction\" applies to trained span models only, and model \"%s\" is not one", name),
				 errhint("Remove the option.")));
	if (options.reduction_given &&
		(options.strategy == HL_STRATEGY_COVERAGE || options.strategy == HL_STRATEGY_RANDOM))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"reduction\" does not apply to strategy \"%s\"",
						hl_strategy_name(options.strategy)),
				 errhint("Remove the option: it turns token uncertainties into a sentence score, and this strategy uses none.")));

	/* Sentences have no two most probable classes, and 0 (no factor) is harmless. */
	if (options.disagreement > 0.0 && strcmp(def->task, "spans") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"disagreement\" applies to classification models only, and model \"%s\" is a span model", name),
				 errhint("Remove the option.")));
	if (options.disagreement > 0.0 &&
		(options.strategy == HL_STRATEGY_COVERAGE || options.strategy == HL_STRATEGY_RANDOM))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"disagreement\" is %g, but does not apply to strategy \"%s\"",
						options.disagreement, hl_strategy_name(options.strategy)),
				 errhint("Remove the option or set it to 0: it discounts rows between two predicted classes, and this strategy does not rank by predictions.")));

	/* A sentence has no single predicted label to cap; 1, no cap, is harmless. */
	if (options.max_class_share < 1.0 && strcmp(def->task, "spans") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"max_class_share\" applies to classification models only, and model \"%s\" is a span model", name),
				 errhint("Remove the option; the options diversity and density spread a batch of sentences instead.")));

	/* Before the first training there is no score, and the cold start ignores the option. */
	if (options.novelty > 0.0 && model != NULL && (hl_model_is_spans(model) || model->novelty.k == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"novelty\" needs a novelty score, and model \"%s\" has none", name),
				 errhint("Create a classifier with the model option novelty, such as options => '{\"novelty\": 128}', and train it.")));

	if (model == NULL || options.strategy == HL_STRATEGY_COVERAGE)
	{
		if (model == NULL)
			ereport(NOTICE,
					(errmsg("model \"%s\" has not been trained yet; choosing up to %d rows to cover the pool",
							name, n),
					 errdetail("Strategy \"coverage\": k-means++ seeding over a sample of the unlabelled rows, favouring typical ones."),
					 errhint("After labelling them, run SELECT * FROM hl_train('%s');", name)));
		options.strategy = HL_STRATEGY_COVERAGE;
		model = NULL;
	}
	else if (!hl_model_is_spans(model))
	{
		hl_warn_new_labels(def, model);
		if (PG_ARGISNULL(2) && !options.disagreement_given)
			options.disagreement = HL_DEFAULT_DISAGREEMENT;
	}
	if (PG_ARGISNULL(2) && model != NULL && hl_model_is_spans(model))
	{
		options.strategy = hl_strategy_parse(HL_DEFAULT_SPAN_STRATEGY);
		if (!options.reduction_given)
		{
			options.reduction = HL_REDUCE_MAX;
			options.reduction_given = true;
		}
		if (!options.density_given)
			options.density = HL_DEFAULT_SPAN_DENSITY;
	}

	batch_context = AllocSetContextCreate(CurrentMemoryContext, "humanloop next batch",
										  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batch_context);

	if (model == NULL || hl_model_is_spans(model))
	{
		uint32		dim = UINT32_C(1) << def->features.hash_bits;

		featurizer = hl_featurizer_create(&def->features);
		unit_idf = palloc(sizeof(float) * dim);
		for (uint32 j = 0; j < dim; j++)
			unit_idf[j] = 1.0f;
	}

	/* Before the first stage, estimate which classes annotators disagree on. */
	use_disagreement = model != NULL && !hl_model_is_spans(model) && options.disagreement > 0.0;
	if (use_disagreement)
		hl_fit_disagreement(def, model, &disagreement);

	/* First stage: stream the pool. */
	memset(&scan, 0, sizeof(scan));
	scan.capacity = (int) options.candidates;
	scan.heap = palloc_extended(sizeof(HlCandidate) * scan.capacity, MCXT_ALLOC_HUGE);
	scan.sample = palloc(sizeof(float) * HL_EMBED_DIM * HL_SAMPLE_ROWS);
	scan.rng = options.seed + 1;
	hl_scan_pool(def, model, featurizer, unit_idf, &options,
				 use_disagreement ? &disagreement : NULL, &scan);

	if (scan.seen == 0)
		ereport(NOTICE,
				(errmsg("model \"%s\" has no unlabelled rows left to offer", name),
				 errdetail("Every row is labelled or reserved by an earlier hl_next_batch call.")));

	/* Second stage: density, then the batch among the candidates. */
	hl_compute_density(&scan);
	chosen = palloc(sizeof(int) * n);
	count = hl_select_from_candidates(scan.heap, scan.size, n, &options, chosen);
	if (options.reserve && hl_reservation_timeout > 0 && count > 0)
		hl_reserve_rows(def->model_id, scan.heap, chosen, count);

	MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(batch_context);

	for (int i = 0; i < count; i++)
	{
		Datum		values[12];
		bool		nulls[12] = {false};
		HlCandidate *c = &scan.heap[chosen[i]];

		values[0] = CStringGetTextDatum(c->id);
		values[1] = Float8GetDatum(c->score);
		if (model == NULL)
			nulls[2] = nulls[3] = nulls[4] = nulls[5] = nulls[6] = true;
		else
		{
			/* Sentences of span models have no single label. */
			if (c->label < 0)
				nulls[2] = true;
			else
				values[2] = CStringGetTextDatum(model->labels[c->label]);
			values[3] = Float8GetDatum(c->probability);
			values[4] = Float8GetDatum(c->entropy);
			values[5] = Float8GetDatum(c->mutual_information);
			values[6] = Float8GetDatum(c->uncertainty);
		}
		values[7] = Float8GetDatum(c->density);
		values[8] = Float8GetDatum(c->cost);
		if (isnan(c->disagreement))
			nulls[9] = true;
		else
			values[9] = Float8GetDatum(c->disagreement);
		if (isnan(c->similarity))
			nulls[10] = true;
		else
			values[10] = Float8GetDatum(c->similarity);
		if (isnan(c->novelty))
			nulls[11] = true;
		else
			values[11] = Float8GetDatum(c->novelty);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(batch_context);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}

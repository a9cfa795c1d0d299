/*
 * sql_next_batch.c
 *		hl_next_batch: the unlabelled rows whose labels would teach the model
 *		most, best first.
 *
 * The unlabelled rows are streamed through a cursor and scored one at a
 * time; a min-heap keeps the best n, so memory depends on n, not on the
 * pool.  Ties are broken by id, so the same pool and model give the same
 * batch.  A model that was never trained gets a cold-start batch chosen at
 * random (from a hash of each id), and a NOTICE says so.
 */
#include "compat.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "acquisition.h"
#include "catalog.h"
#include "model_cache.h"
#include "text_source.h"

PG_FUNCTION_INFO_V1(hl_next_batch);

#define HL_MAX_BATCH 10000
#define HL_FETCH_ROWS 1000

/* One candidate row. */
typedef struct HlCandidate
{
	double		score;
	char	   *id;
	int32		label;			/* -1 without a model */
	float		probability;
	float		entropy;
	float		mutual_information;
} HlCandidate;

/* Return whether a is a worse choice than b: lower score, or equal score and larger id. */
static bool
hl_candidate_worse(const HlCandidate *a, const HlCandidate *b)
{
	if (a->score != b->score)
		return a->score < b->score;
	return strcmp(a->id, b->id) > 0;
}

/* Restore the heap property below position i (worst candidate at the root). */
static void
hl_heap_sift_down(HlCandidate *heap, int size, int i)
{
	for (;;)
	{
		int			worst = i;
		int			left = 2 * i + 1;
		int			right = left + 1;
		HlCandidate tmp;

		if (left < size && hl_candidate_worse(&heap[left], &heap[worst]))
			worst = left;
		if (right < size && hl_candidate_worse(&heap[right], &heap[worst]))
			worst = right;
		if (worst == i)
			return;
		tmp = heap[i];
		heap[i] = heap[worst];
		heap[worst] = tmp;
		i = worst;
	}
}

/* Restore the heap property above position i. */
static void
hl_heap_sift_up(HlCandidate *heap, int i)
{
	while (i > 0)
	{
		int			parent = (i - 1) / 2;
		HlCandidate tmp;

		if (!hl_candidate_worse(&heap[i], &heap[parent]))
			return;
		tmp = heap[i];
		heap[i] = heap[parent];
		heap[parent] = tmp;
		i = parent;
	}
}

/* qsort comparator: best candidate first. */
static int
hl_candidate_compare(const void *a, const void *b)
{
	const HlCandidate *ca = a;
	const HlCandidate *cb = b;

	if (hl_candidate_worse(ca, cb))
		return 1;
	if (hl_candidate_worse(cb, ca))
		return -1;
	return 0;
}

/* Offer one scored row to the heap of the best n. */
static void
hl_heap_offer(HlCandidate *heap, int *size, int n, HlCandidate *candidate,
			  const char *id, size_t id_len)
{
	if (*size < n)
	{
		candidate->id = pnstrdup(id, id_len);
		heap[*size] = *candidate;
		hl_heap_sift_up(heap, (*size)++);
		return;
	}

	/* Compare before copying the id: most rows lose to the worst kept one. */
	if (candidate->score < heap[0].score)
		return;
	candidate->id = pnstrdup(id, id_len);
	if (!hl_candidate_worse(&heap[0], candidate))
	{
		pfree(candidate->id);
		return;
	}
	pfree(heap[0].id);
	heap[0] = *candidate;
	hl_heap_sift_down(heap, *size, 0);
}

/*
 * Score every unlabelled row and keep the best n in heap; model may be NULL
 * (cold start).  Returns the number kept and sets *pool to the rows seen.
 */
static int
hl_select_batch(const HlModelDef *def, HlModel *model, HlStrategy strategy,
				int n, HlCandidate *heap, uint64 *pool)
{
	MemoryContext batch_context = CurrentMemoryContext;
	Portal		portal;
	int			size = 0;

	*pool = 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, hl_source_unlabelled_query(def),
									   0, NULL, NULL, NULL, true, 0);

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
			text	   *id;
			Datum		doc;

			CHECK_FOR_INTERRUPTS();

			/* A row without an id could never be joined back; skip it. */
			if (isnull)
			{
				MemoryContextSwitchTo(spi_context);
				continue;
			}
			id = DatumGetTextPP(id_datum);
			(*pool)++;

			memset(&candidate, 0, sizeof(candidate));
			candidate.label = -1;
			if (model == NULL)
				candidate.score = hl_id_uniform(VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id));
			else
			{
				const char *body = "";
				size_t		len = 0;

				doc = SPI_getbinval(tuple, desc, 2, &isnull);
				if (!isnull)
				{
					text	   *t = DatumGetTextPP(doc);

					body = VARDATA_ANY(t);
					len = VARSIZE_ANY_EXHDR(t);
					if (len > (size_t) hl_max_text_bytes)
						hl_check_text_length(len, psprintf("text of row \"%s\"",
														   text_to_cstring(id)));
				}
				hl_model_score(model, body, len, &prediction);
				candidate.score = hl_acquisition_score(strategy, &prediction, model->proba,
													   model->n_labels, VARDATA_ANY(id),
													   VARSIZE_ANY_EXHDR(id));
				candidate.label = prediction.label;
				candidate.probability = prediction.probability;
				candidate.entropy = prediction.entropy;
				candidate.mutual_information = prediction.mutual_information;
			}

			hl_heap_offer(heap, &size, n, &candidate, VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id));
			MemoryContextSwitchTo(spi_context);
		}
		SPI_freetuptable(SPI_tuptable);
	}

	SPI_cursor_close(portal);
	SPI_finish();
	return size;
}

/*
 * hl_next_batch(name, n, strategy) returns (id, score, label, probability,
 * entropy, mutual_information)
 */
Datum
hl_next_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	int32		n;
	HlStrategy	strategy;
	HlModelDef *def;
	HlModel    *model;
	int32		model_id;
	HlCandidate *heap;
	int			size;
	uint64		pool;
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
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name, n and strategy must not be null")));

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	n = PG_GETARG_INT32(1);
	strategy = hl_strategy_parse(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (n < 1 || n > HL_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size %d is out of range", n),
				 errhint("Ask for 1 to %d rows.", HL_MAX_BATCH)));

	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, false);
	hl_source_check(def);

	model = hl_model_current(name, &model_id);
	if (model == NULL)
	{
		ereport(NOTICE,
				(errmsg("model \"%s\" has not been trained yet; choosing %d rows at random", name, n),
				 errhint("After labelling them, run SELECT * FROM hl_train('%s');", name)));
		strategy = HL_STRATEGY_RANDOM;
	}

	batch_context = AllocSetContextCreate(CurrentMemoryContext, "humanloop next batch",
										  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batch_context);
	heap = palloc(sizeof(HlCandidate) * n);
	size = hl_select_batch(def, model, strategy, n, heap, &pool);
	qsort(heap, size, sizeof(HlCandidate), hl_candidate_compare);

	if (pool == 0)
		ereport(NOTICE,
				(errmsg("model \"%s\" has no unlabelled rows", name)));

	MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(batch_context);

	for (int i = 0; i < size; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		HlCandidate *c = &heap[i];

		values[0] = CStringGetTextDatum(c->id);
		values[1] = Float8GetDatum(c->score);
		if (c->label < 0)
		{
			nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
		}
		else
		{
			values[2] = CStringGetTextDatum(model->labels[c->label]);
			values[3] = Float8GetDatum(c->probability);
			values[4] = Float8GetDatum(c->entropy);
			values[5] = Float8GetDatum(c->mutual_information);
		}
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(batch_context);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}

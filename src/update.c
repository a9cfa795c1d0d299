/*
 * update.c
 *		Incremental update of a model from its queued label changes.
 *
 * The background worker calls this for new labels between full retrains.
 * It takes a private copy of the current version from the model cache, which
 * usually saves reading the catalog.  It featurises the newly labelled items
 * with the version's own idf, applies the fast Bayesian update of
 * model_update.c and stores the touched rows as a patch version.  The
 * worker installs the copy in the cache once the transaction commits.  Items
 * the update cannot express (a label the version has never seen, several
 * labels on one item) make it give up, and the worker retrains in full.
 */
#include "compat.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "model_cache.h"
#include "model_update.h"
#include "posterior_io.h"
#include "text_source.h"
#include "update.h"

/* Damped Newton steps per update; see model_update.c. */
#define HL_UPDATE_STEPS 5

/* Patches in a row before an update stores the whole posterior again. */
#define HL_MAX_PATCH_DEPTH 20

/* Return the number of labelled items of def. */
static int32
hl_count_labelled(const HlModelDef *def)
{
	bool		isnull;
	int64		count;

	if (SPI_execute(hl_source_count_labelled_query(def), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count the labelled rows of model \"%s\"", def->name);
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return (int32) count;
}

/* Compare two uint32 for qsort. */
static int
hl_compare_uint32(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return (x > y) - (x < y);
}

/* Return the sorted, unique feature indices of nnz entries, in *n. */
static uint32 *
hl_touched_features(const uint32 *index, uint64 nnz, uint32 *n)
{
	uint32	   *touched = palloc(sizeof(uint32) * Max(nnz, 1));
	uint32		count = 0;

	memcpy(touched, index, sizeof(uint32) * nnz);
	qsort(touched, nnz, sizeof(uint32), hl_compare_uint32);
	for (uint64 e = 0; e < nnz; e++)
		if (count == 0 || touched[count - 1] != touched[e])
			touched[count++] = touched[e];
	*n = count;
	return touched;
}

bool
hl_update_model(const HlModelDef *def, int64 last_queue_id, HlTrainResult *result)
{
	MemoryContext caller_context = CurrentMemoryContext;
	MemoryContext update_context;
	HlModel    *base;
	HlModel    *model;
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		values[2];
	uint64	   *row_start;
	uint32	   *index;
	float	   *value;
	int32	   *label;
	uint64		nnz = 0;
	uint64		max_nnz = 4096;
	uint32		n_rows = 0;
	HlDataset	data;
	char		errbuf[256];
	bytea	   *posterior;
	Datum	   *label_datums;
	uint32	   *touched;
	uint32		n_touched;
	int32		depth;
	int32		labelled;
	instr_time	start;
	instr_time	elapsed;
	bool		ok = true;

	INSTR_TIME_SET_CURRENT(start);
	update_context = AllocSetContextCreate(caller_context, "humanloop update",
										   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(update_context);

	/* The current version, usually still cached from the last update. */
	base = hl_model_version(def->name, def->model_id, def->current_version);

	/* The queued items with their current labels. */
	values[0] = Int32GetDatum(def->model_id);
	values[1] = Int64GetDatum(last_queue_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(hl_source_queued_query(def), 2, argtypes, values, NULL,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the queued labels of model \"%s\"", def->name);

	/* The arrays below outlive SPI_finish, which frees SPI's own context. */
	MemoryContextSwitchTo(update_context);
	model = hl_model_cache_prepare_copy(base);
	row_start = palloc(sizeof(uint64) * (SPI_processed + 1));
	label = palloc(sizeof(int32) * Max(SPI_processed, 1));
	index = palloc(sizeof(uint32) * max_nnz);
	value = palloc(sizeof(float) * max_nnz);
	row_start[0] = 0;

	for (uint64 r = 0; r < SPI_processed && ok; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		labels_datum = SPI_getbinval(tuple, desc, 3, &isnull);
		Datum		doc;
		Datum	   *elems;
		int			n_elems;
		char	   *name;
		const char *body = "";
		size_t		len = 0;

		/* A label removed since it was queued: nothing to learn from the item. */
		if (isnull)
			continue;

		deconstruct_array(DatumGetArrayTypeP(labels_datum), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &n_elems);
		if (n_elems != 1)
		{
			ok = false;
			break;
		}
		name = TextDatumGetCString(elems[0]);
		label[n_rows] = hl_model_find_label(model, name);
		if (label[n_rows] < 0)
		{
			ok = false;
			break;
		}

		doc = SPI_getbinval(tuple, desc, 2, &isnull);
		if (!isnull)
		{
			text	   *t = DatumGetTextPP(doc);

			body = VARDATA_ANY(t);
			len = VARSIZE_ANY_EXHDR(t);
			if (len > (size_t) hl_max_text_bytes)
				hl_check_text_length(len, psprintf("text of row \"%s\"", SPI_getvalue(tuple, desc, 1)));
		}

		hl_model_featurize(model, body, len);

		if (nnz + model->vec.nnz > max_nnz)
		{
			max_nnz = Max(max_nnz * 2, nnz + model->vec.nnz);
			index = repalloc_huge(index, sizeof(uint32) * max_nnz);
			value = repalloc_huge(value, sizeof(float) * max_nnz);
		}
		memcpy(index + nnz, model->vec.index, sizeof(uint32) * model->vec.nnz);
		memcpy(value + nnz, model->vec.value, sizeof(float) * model->vec.nnz);
		nnz += model->vec.nnz;
		row_start[++n_rows] = nnz;
	}

	if (!ok)
	{
		SPI_finish();
		hl_model_cache_discard_pending();
		MemoryContextSwitchTo(caller_context);
		MemoryContextDelete(update_context);
		return false;
	}
	labelled = hl_count_labelled(def);
	SPI_finish();

	/* The fast Bayesian update of the private copy. */
	data.n_rows = n_rows;
	data.dim = model->classifier.dim;
	data.n_classes = model->classifier.n_classes;
	data.row_start = row_start;
	data.index = index;
	data.value = value;
	data.label = label;
	data.weight = NULL;
	data.group = NULL;
	if (hl_classifier_update(&model->classifier, &data, HL_UPDATE_STEPS, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not update model \"%s\": %s", def->name, errbuf)));

	/*
	 * Store only the touched rows as a patch over the current version, or
	 * the whole posterior when the chain of patches has grown long.
	 */
	touched = hl_touched_features(index, nnz, &n_touched);
	depth = base->patch_depth + 1;
	if (depth > HL_MAX_PATCH_DEPTH)
	{
		depth = 0;
		posterior = hl_posterior_serialize(&model->features, model->idf, &model->classifier,
										   model->labels, model->n_labels, &model->novelty);
	}
	else
		posterior = hl_posterior_serialize_patch(&model->classifier, touched, n_touched,
												 base->version, depth);
	model->patch_depth = depth;
	model->root_version = depth > 0 ? base->root_version : 0;

	label_datums = palloc(sizeof(Datum) * model->n_labels);
	for (uint32 k = 0; k < model->n_labels; k++)
		label_datums[k] = CStringGetTextDatum(model->labels[k]);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);

	result->labelled_rows = labelled;
	result->classes = model->n_labels;
	result->seconds = INSTR_TIME_GET_DOUBLE(elapsed);
	result->metrics_json = psprintf("{\"update_rows\": %u, \"base_version\": %d, \"labelled_rows\": %d,"
									" \"patched_features\": %u}",
									n_rows, def->current_version, labelled, depth > 0 ? n_touched : 0);
	result->version = hl_catalog_add_version(def->model_id, "update", labelled,
											 PointerGetDatum(construct_array(label_datums, model->n_labels,
																			 TEXTOID, -1, false, TYPALIGN_INT)),
											 result->seconds, result->metrics_json, posterior,
											 depth > 0 ? base->version : 0,
											 depth > 0 ? base->root_version : 0);
	if (depth == 0)
		model->root_version = result->version;

	MemoryContextSwitchTo(caller_context);
	result->metrics_json = pstrdup(result->metrics_json);
	MemoryContextDelete(update_context);
	return true;
}

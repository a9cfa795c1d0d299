/*
 * sql_status.c
 *		hl_status: whether labelling more rows is still likely to help.
 *
 * The rule is a stabilising-predictions stop: once two versions trained on
 * different numbers of labels predict the same label (or, in a span model,
 * the same spans) for nearly every unlabelled row, more labels of the same
 * kind are unlikely to change the predictions.  The agreement is measured
 * on a sample of the pool chosen by a hash of the row id, so the same rows
 * are compared on every call.
 *
 * NOTE: the 0.99 agreement and ten rows per label were chosen, then measured
 * on banking77 and snips only (docs/calibration.md, docs/spans.md).  The
 * recommendation can switch back and forth for a few updates.
 */
#include "compat.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "catalog.h"
#include "evaluate.h"
#include "model_cache.h"
#include "span_labels.h"
#include "text_source.h"

PG_FUNCTION_INFO_V1(hl_status);

/* Agreement between consecutive versions from which to recommend stopping. */
#define HL_STOP_AGREEMENT 0.99
/*
 * Fewest labelled rows per class (per span label in a span model) before
 * stopping is ever recommended.
 */
#define HL_STOP_MIN_LABELS_PER_CLASS 10

/*
 * Smallest share of the labelled rows by which the compared version must
 * fall short of the current one: 2% is 40 labels at 2,000, about the
 * rounds of 50 on which the rule was measured.
 */
#define HL_STOP_MIN_STEP 0.02
#define HL_Z95 1.959964
#define HL_STATUS_COLUMNS 15

/* The sampled texts of the pool. */
typedef struct HlPoolSample
{
	int			n;
	char	  **texts;
} HlPoolSample;

/* Read up to limit unlabelled texts, in the order of a hash of their id. */
static void
hl_sample_pool(const HlModelDef *def, int limit, HlPoolSample *sample)
{
	MemoryContext outer = CurrentMemoryContext;
	char	   *query = psprintf("SELECT pool.id, pool.doc FROM (%s) pool (id, doc) ORDER BY hashtext(pool.id), pool.id LIMIT %d",
								 hl_source_unlabelled_query(def, false), limit);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(query, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the unlabelled rows of model \"%s\"", def->name);
	sample->n = (int) SPI_processed;
	sample->texts = MemoryContextAlloc(outer, sizeof(char *) * Max(sample->n, 1));
	for (int i = 0; i < sample->n; i++)
	{
		char	   *text = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		/* The sample is scored as hl_next_batch scores the pool, with its length limit. */
		if (text != NULL && strlen(text) > (size_t) hl_max_text_bytes)
		{
			char	   *id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

			hl_check_text_length(strlen(text), psprintf("text of row \"%s\"", id ? id : "(null)"));
		}
		sample->texts[i] = MemoryContextStrdup(outer, text != NULL ? text : "");
	}
	SPI_finish();
}

/*
 * Return the newest version before current trained on at least
 * HL_STOP_MIN_STEP fewer labelled rows (and at least one fewer), or 0.
 * Sets *labelled to the current version's labelled rows.  The background
 * worker stores a version for every few labels, and two versions a label
 * apart nearly always agree, so the comparison needs a step of some size.
 */
static int32
hl_previous_version(int32 model_id, int32 current, int32 *labelled)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	int32		previous = 0;
	bool		isnull;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(current);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT c.labelled_rows,"
							  "       (SELECT max(p.version) FROM humanloop.model_versions p"
							  "         WHERE p.model_id = $1 AND p.version < $2"
							  "           AND p.labelled_rows < c.labelled_rows"
							  "           AND p.labelled_rows <= c.labelled_rows * (1 - " CppAsString2(HL_STOP_MIN_STEP) "))"
							  "  FROM humanloop.model_versions c WHERE c.model_id = $1 AND c.version = $2",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.model_versions");
	if (SPI_processed == 1)
	{
		*labelled = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		previous = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			previous = 0;
	}
	SPI_finish();
	return previous;
}

/*
 * Fetch the newest accuracy estimate of version: an hl_evaluate of a
 * relation other than the model's own, else a cross-validation, else the
 * held-out split of its training.  Return the source, or NULL when there
 * is none.  hl_next_batch chooses labels among the hardest rows, so the
 * last two sources underestimate.
 */
static const char *
hl_accuracy_estimate(int32 model_id, int32 version, double *accuracy,
					 double *low, double *high)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	const char *source = NULL;
	bool		isnull;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(version);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * A relation of the model's own contains its training labels, so
	 * scoring it measures the fit, not the accuracy on new rows.
	 */
	if (SPI_execute_with_args("SELECT (e.result->>'accuracy')::float8, (e.result->>'accuracy_low')::float8,"
							  "       (e.result->>'accuracy_high')::float8, e.method"
							  "  FROM humanloop.evaluations e JOIN humanloop.models m USING (model_id)"
							  " WHERE e.model_id = $1 AND e.version = $2"
							  "   AND e.result->>'accuracy' IS NOT NULL"
							  "   AND (e.method = 'cross_validation'"
							  "        OR (to_regclass(e.relation) IS DISTINCT FROM m.relation"
							  "            AND (m.labels_relation IS NULL"
							  "                 OR to_regclass(e.relation) IS DISTINCT FROM m.labels_relation)))"
							  " ORDER BY e.method = 'relation' DESC, e.evaluation_id DESC LIMIT 1",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.evaluations");
	if (SPI_processed == 1)
	{
		char	   *method = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);

		*accuracy = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*low = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		*high = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		source = strcmp(method, "relation") == 0 ? "relation" : "cross_validation";
	}
	else if (SPI_execute_with_args("SELECT (metrics->>'heldout_accuracy')::float8,"
								   "       (metrics->>'heldout_rows')::float8"
								   "  FROM humanloop.model_versions"
								   " WHERE model_id = $1 AND version = $2"
								   "   AND metrics->>'heldout_accuracy' IS NOT NULL",
								   2, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
			 SPI_processed == 1)
	{
		double		rows;

		*accuracy = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		rows = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		hl_wilson_interval(*accuracy * rows, rows, HL_Z95, low, high);
		source = "training_heldout";
	}
	SPI_finish();
	return source;
}

/*
 * Return the prediction of model for text as a string to compare between
 * versions: the label of a classifier, or a span model's decoded spans with
 * their character offsets and labels.  Sets the uncertainty left in the
 * row: a classifier's predictive entropy and mutual information, or a
 * sentence's mean over its tokens.  Sets confidence to a classifier's
 * probability of its predicted label, and to NaN for a span model.
 */
static char *
hl_status_predict(HlModel *model, const char *text, double *entropy,
				  double *mutual_information, double *confidence)
{
	const HlTaggerOutput *tagged = &model->tagged;
	const HlSentenceFeatures *sentence = &model->sentence;
	StringInfoData key;
	HlPrediction prediction;
	char	   *result;

	if (!hl_model_is_spans(model))
	{
		hl_model_score(model, text, strlen(text), &prediction);
		*entropy = prediction.entropy;
		*mutual_information = prediction.mutual_information;
		*confidence = prediction.probability;
		return pstrdup(model->labels[prediction.label]);
	}

	hl_model_tag(model, text, strlen(text));
	*confidence = NAN;
	*entropy = 0.0;
	*mutual_information = 0.0;
	for (uint32 t = 0; t < tagged->n_tokens; t++)
	{
		*entropy += tagged->entropy[t];
		*mutual_information += tagged->mutual_information[t];
	}
	if (tagged->n_tokens > 0)
	{
		*entropy /= tagged->n_tokens;
		*mutual_information /= tagged->n_tokens;
	}

	/*
	 * Label names, not indexes, because two versions may number labels
	 * differently.  The length before each name keeps any name unambiguous.
	 */
	initStringInfo(&key);
	for (uint32 i = 0; i < tagged->n_spans; i++)
	{
		const HlTagSpan *span = &tagged->spans[i];
		const char *label = model->labels[span->label];

		appendStringInfo(&key, "%u:%u:%zu:%s;",
						 sentence->tokens[span->first_token].char_start,
						 sentence->tokens[span->end_token - 1].char_end,
						 strlen(label), label);
	}

	/* The buffer starts at 1 kB, and a sample keeps one string per row. */
	result = pstrdup(key.data);
	pfree(key.data);
	return result;
}

/*
 * Count the labelled rows of each span label now, parsing the labels as
 * hl_train does, so a bad label raises the same error naming its row.  A
 * row counts once for each label among its spans.  Sets counts (indexed as
 * map) and returns the number of labels.
 */
static uint32
hl_count_span_label_rows(const HlModelDef *def, HlSpanLabelMap *map, int64 **counts)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext row_context = AllocSetContextCreate(outer, "humanloop status row",
													  ALLOCSET_DEFAULT_SIZES);
	uint32		capacity = 64;
	int64	   *last_row = palloc0(sizeof(int64) * capacity);
	int64		row_number = 0;
	Portal		portal;

	*counts = palloc0(sizeof(int64) * capacity);
	hl_span_label_map_init(map);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, hl_source_training_query(def), 0, NULL, NULL,
									   NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			TupleDesc	desc = SPI_tuptable->tupdesc;
			HeapTuple	tuple = SPI_tuptable->vals[r];
			MemoryContext spi_context = MemoryContextSwitchTo(row_context);
			bool		isnull;
			Datum		given = SPI_getbinval(tuple, desc, 3, &isnull);
			char	   *id;
			char	   *body;
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			CHECK_FOR_INTERRUPTS();
			row_number++;
			if (isnull)
			{
				MemoryContextSwitchTo(spi_context);
				continue;
			}
			id = SPI_getvalue(tuple, desc, 1);
			body = SPI_getvalue(tuple, desc, 2);
			if (body != NULL && strlen(body) > (size_t) hl_max_text_bytes)
				hl_check_text_length(strlen(body), psprintf("text of row \"%s\"", id ? id : "(null)"));
			deconstruct_array(DatumGetArrayTypeP(given), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &n);
			for (int i = 0; i < n; i++)
			{
				HlCharSpan *spans;
				uint32		n_spans;

				if (nulls[i])
					continue;
				spans = hl_span_labels_parse(TextDatumGetCString(elems[i]), id ? id : "(null)",
											 body, body != NULL ? strlen(body) : 0, def->allow_overlap,
											 map, &n_spans);
				for (uint32 k = 0; k < n_spans; k++)
				{
					int32		label = spans[k].label;

					/* The map grows as labels appear, and the counts with it. */
					while ((uint32) label >= capacity)
					{
						*counts = repalloc(*counts, sizeof(int64) * capacity * 2);
						memset(*counts + capacity, 0, sizeof(int64) * capacity);
						last_row = repalloc(last_row, sizeof(int64) * capacity * 2);
						memset(last_row + capacity, 0, sizeof(int64) * capacity);
						capacity *= 2;
					}
					/* Rows are numbered from 1, so a zero entry matches no row. */
					if (last_row[label] != row_number)
					{
						(*counts)[label]++;
						last_row[label] = row_number;
					}
				}
			}
			MemoryContextSwitchTo(spi_context);
			MemoryContextReset(row_context);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(row_context);
	return map->n;
}

/*
 * Find the label given to the fewest labelled rows now: its name, its row
 * count, and the number of labels in use.  A span model's labels are its
 * span labels, and a row counts for each label among its spans.  Returns
 * false when no row has a label (or, in a span model, a span).
 */
static bool
hl_fewest_label_rows(const HlModelDef *def, bool spans, char **label, int64 *rows,
					 int64 *labels_in_use)
{
	MemoryContext outer = CurrentMemoryContext;
	bool		found = false;
	bool		isnull;

	if (spans)
	{
		HlSpanLabelMap map;
		int64	   *counts;
		uint32		n = hl_count_span_label_rows(def, &map, &counts);

		for (uint32 k = 0; k < n; k++)
			if (!found || counts[k] < *rows ||
				(counts[k] == *rows && strcmp(map.names[k], *label) < 0))
			{
				*label = map.names[k];
				*rows = counts[k];
				found = true;
			}
		*labels_in_use = n;
		return found;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("SELECT c.label, c.rows, count(*) OVER () FROM"
							 " (SELECT l.label, count(DISTINCT s.id) AS rows"
							 "  FROM (%s) s (id, doc, labels), unnest(s.labels) l (label)"
							 "  WHERE l.label IS NOT NULL GROUP BY l.label) c"
							 " ORDER BY c.rows, c.label COLLATE \"C\" LIMIT 1",
							 hl_source_training_query(def)), true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count the labelled rows of model \"%s\"", def->name);
	if (SPI_processed == 1)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		*label = MemoryContextStrdup(outer, name != NULL ? name : "");
		*rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		*labels_in_use = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		found = true;
	}
	SPI_finish();
	return found;
}

/*
 * hl_status(name, sample) returns (labelled_rows, classes, version,
 * estimated_accuracy, accuracy_low, accuracy_high, accuracy_source,
 * compared_version, agreement, pool_sample, mean_entropy,
 * mean_mutual_information, mean_confidence, recommendation, reason)
 */
Datum
hl_status(PG_FUNCTION_ARGS)
{
	char	   *name;
	int32		sample_size = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
	HlModelDef *def;
	HlModel    *model;
	int32		model_id;
	int32		labelled = 0;
	int32		previous;
	uint32		classes;
	bool		spans;
	HlPoolSample sample;
	char	  **predicted;		/* current version's prediction of each sampled row */
	double		entropy_sum = 0.0;
	double		mi_sum = 0.0;
	double		confidence_sum = 0.0;
	double		agreement = NAN;
	double		accuracy = NAN;
	double		low = NAN;
	double		high = NAN;
	const char *source;
	const char *recommendation;
	char	   *reason;
	char	   *fewest_label = NULL;
	int64		fewest_rows = 0;
	int64		labels_in_use = 0;
	TupleDesc	tupdesc;
	Datum		values[HL_STATUS_COLUMNS];
	bool		nulls[HL_STATUS_COLUMNS];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	hl_require_model_name(fcinfo, 0);
	if (sample_size < 1 || sample_size > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pool sample size %d is out of range", sample_size),
				 errhint("Use a sample from 1 to 1000000 rows.")));

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, false);
	hl_source_check(def);
	model = hl_model_current(name, &model_id);
	if (model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has not been trained yet", name),
				 errhint("Label some rows, then run SELECT * FROM hl_train('%s');", name)));
	def->current_version = model->version;
	classes = model->n_labels;

	/* Loading another version may evict this one, so keep what is needed. */
	spans = hl_model_is_spans(model);

	previous = hl_previous_version(model_id, def->current_version, &labelled);
	source = hl_accuracy_estimate(model_id, def->current_version, &accuracy, &low, &high);

	/* Score the pool sample with the current version, then the previous one. */
	hl_sample_pool(def, sample_size, &sample);
	predicted = palloc(sizeof(char *) * Max(sample.n, 1));
	for (int i = 0; i < sample.n; i++)
	{
		double		entropy;
		double		mutual_information;
		double		confidence;

		CHECK_FOR_INTERRUPTS();
		model = hl_model_version(name, model_id, def->current_version);
		predicted[i] = hl_status_predict(model, sample.texts[i], &entropy, &mutual_information,
										 &confidence);
		entropy_sum += entropy;
		mi_sum += mutual_information;
		confidence_sum += confidence;
	}
	if (previous > 0 && sample.n > 0)
	{
		int			same = 0;

		for (int i = 0; i < sample.n; i++)
		{
			HlModel    *older = hl_model_version(name, model_id, previous);
			double		entropy;
			double		mutual_information;
			double		confidence;
			char	   *older_prediction;

			CHECK_FOR_INTERRUPTS();
			older_prediction = hl_status_predict(older, sample.texts[i], &entropy,
												 &mutual_information, &confidence);
			if (strcmp(older_prediction, predicted[i]) == 0)
				same++;
			pfree(older_prediction);
		}
		agreement = (double) same / sample.n;
	}

	/* The recommendation. */
	if (sample.n == 0)
	{
		recommendation = "stop";
		reason = pstrdup("every row is labelled, so there is nothing left to label");
	}
	else if (!hl_fewest_label_rows(def, spans, &fewest_label, &fewest_rows,
								   &labels_in_use) ||
			 labels_in_use < (spans ? 1 : 2))
	{
		/* A classifier needs two classes, a span model one span label. */
		recommendation = "keep labelling";
		if (spans)
			reason = pstrdup("no labelled row has a span yet");
		else if (labels_in_use == 1)
			reason = pstrdup("only one class is labelled; stopping is considered once two are");
		else
			reason = pstrdup("no row is labelled now");
	}
	else if (fewest_rows < HL_STOP_MIN_LABELS_PER_CLASS)
	{
		recommendation = "keep labelling";
		reason = psprintf("%s \"%s\" has only %lld labelled %s; stopping is considered once every %s has %d",
						  spans ? "span label" : "class", fewest_label,
						  (long long) fewest_rows, fewest_rows == 1 ? "row" : "rows",
						  spans ? "span label" : "class",
						  HL_STOP_MIN_LABELS_PER_CLASS);
	}
	else if (previous == 0)
	{
		recommendation = "keep labelling";
		reason = psprintf("no earlier version trained on at least %.0f%% fewer labels to compare with",
						  100.0 * HL_STOP_MIN_STEP);
	}
	else if (agreement >= HL_STOP_AGREEMENT)
	{
		recommendation = "stop";
		reason = psprintf("versions %d and %d agree on %.1f%% of %d pool rows: more labels are unlikely to change the predictions",
						  previous, def->current_version, 100.0 * agreement, sample.n);
	}
	else
	{
		recommendation = "keep labelling";
		reason = psprintf("versions %d and %d agree on only %.1f%% of %d pool rows, below %.0f%%",
						  previous, def->current_version, 100.0 * agreement, sample.n,
						  100.0 * HL_STOP_AGREEMENT);
	}

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(labelled);
	values[1] = Int32GetDatum((int32) classes);
	values[2] = Int32GetDatum(def->current_version);
	values[3] = Float8GetDatum(accuracy);
	values[4] = Float8GetDatum(low);
	values[5] = Float8GetDatum(high);
	nulls[3] = nulls[4] = nulls[5] = (source == NULL);
	values[6] = source != NULL ? CStringGetTextDatum(source) : (Datum) 0;
	nulls[6] = (source == NULL);
	values[7] = Int32GetDatum(previous);
	nulls[7] = (previous == 0);
	values[8] = Float8GetDatum(agreement);
	nulls[8] = isnan(agreement);
	values[9] = Int32GetDatum(sample.n);
	values[10] = Float8GetDatum(sample.n > 0 ? entropy_sum / sample.n : 0.0);
	values[11] = Float8GetDatum(sample.n > 0 ? mi_sum / sample.n : 0.0);
	nulls[10] = nulls[11] = (sample.n == 0);

	/* A span model has no single probability per row, so it gives none. */
	values[12] = Float8GetDatum(sample.n > 0 ? confidence_sum / sample.n : 0.0);
	nulls[12] = sample.n == 0 || spans;
	values[13] = CStringGetTextDatum(recommendation);
	values[14] = CStringGetTextDatum(reason);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

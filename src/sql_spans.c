/*
 * sql_spans.c
 *		SQL entry points of span models: hl_predict_spans tags a text and
 *		hl_evaluate_spans measures span precision, recall and F1 on a
 *		labelled relation.
 */
#include "compat.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "evaluate.h"
#include "model_cache.h"
#include "span_labels.h"
#include "text_source.h"

PG_FUNCTION_INFO_V1(hl_predict_spans);
PG_FUNCTION_INFO_V1(hl_evaluate_spans);

#define HL_FETCH_ROWS 1000

/* Raise an error unless model, named name, is a span model. */
static void
hl_require_spans(const HlModel *model, const char *name)
{
	if (!hl_model_is_spans(model))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is not a span model", name),
				 errhint("Use hl_classify or hl_predict with a classification model.")));
}

/*
 * hl_predict_spans(name, input) returns one row (start, end, label, text,
 * probability, mutual_information) per predicted span, in text order.
 * A NULL or empty text has no spans.
 */
Datum
hl_predict_spans(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HlModel    *model;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	const char *body = "";
	size_t		len = 0;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	hl_require_model_name(fcinfo, 0);

	model = hl_model_for_call(fcinfo, PG_GETARG_TEXT_PP(0));
	hl_require_spans(model, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (!PG_ARGISNULL(1))
	{
		text	   *input = PG_GETARG_TEXT_PP(1);

		body = VARDATA_ANY(input);
		len = VARSIZE_ANY_EXHDR(input);
		hl_check_text_length(len, "input text");
	}
	hl_model_tag(model, body, len);

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	for (uint32 i = 0; i < model->tagged.n_spans; i++)
	{
		const HlTagSpan *span = &model->tagged.spans[i];
		const HlToken *first = &model->sentence.tokens[span->first_token];
		const HlToken *last = &model->sentence.tokens[span->end_token - 1];
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = Int32GetDatum((int32) first->char_start);
		values[1] = Int32GetDatum((int32) last->char_end);
		values[2] = CStringGetTextDatum(model->labels[span->label]);
		values[3] = PointerGetDatum(cstring_to_text_with_len(body + first->byte_start,
															 last->byte_end - first->byte_start));
		values[4] = Float8GetDatum(span->probability);
		values[5] = Float8GetDatum(span->mutual_information);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}

/* Span counts of one label. */
typedef struct HlSpanCounts
{
	int64		gold;
	int64		predicted;
	int64		correct;
} HlSpanCounts;

/* Append a ratio, or null when its denominator is zero. */
static void
hl_append_ratio(StringInfo json, const char *key, int64 numerator, int64 denominator)
{
	appendStringInfo(json, "\"%s\": ", key);
	if (denominator > 0)
		appendStringInfo(json, "%.6g", (double) numerator / denominator);
	else
		appendStringInfoString(json, "null");
}

/*
 * Append "precision", "recall", "f1", "support" and "predicted" of counts.
 * Precision is null without predicted spans, recall without gold spans,
 * and F1 (2 correct / (gold + predicted)) without either.  A zero there
 * would read as a failed model where nothing was measured.
 */
static void
hl_append_scores(StringInfo json, const HlSpanCounts *c)
{
	hl_append_ratio(json, "precision", c->correct, c->predicted);
	appendStringInfoString(json, ", ");
	hl_append_ratio(json, "recall", c->correct, c->gold);
	appendStringInfoString(json, ", ");
	hl_append_ratio(json, "f1", 2 * c->correct, c->gold + c->predicted);
	appendStringInfo(json, ", \"support\": " INT64_FORMAT ", \"predicted\": " INT64_FORMAT,
					 c->gold, c->predicted);
}

/* Check a column of the relation to evaluate on, and return it quoted. */
static const char *
hl_eval_column(Oid relid, const char *column, const char *role, bool strings_only)
{
	hl_check_evaluation_column(relid, column, role, strings_only);
	return quote_identifier(column);
}

/*
 * Raise an error unless column of relid can hold span labels: json, jsonb
 * or a string type whose values are parsed as JSON.  Any other type would
 * fail on its first row with a message about that row.
 */
static void
hl_check_span_label_type(Oid relid, const char *column)
{
	Oid			type = getBaseType(get_atttype(relid, get_attnum(relid, column)));
	char		category;
	bool		preferred;

	get_type_category_preferred(type, &category, &preferred);
	if (type != JSONBOID && type != JSONOID && category != TYPCATEGORY_STRING)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label column \"%s\" has type %s, but span labels are JSON",
						column, format_type_be(type)),
				 errhint("Pass label_column => naming a jsonb column of span arrays such as '[{\"start\": 0, \"end\": 4, \"label\": \"artist\"}]'.")));
}

/* qsort order of label ids by name. */
static char **hl_sort_names;

static int
hl_compare_names(const void *a, const void *b)
{
	return strcmp(hl_sort_names[*(const int32 *) a], hl_sort_names[*(const int32 *) b]);
}

/*
 * hl_evaluate_spans(name, relation, text_column, label_column) returns
 * jsonb: exact-match span precision, recall and F1, micro-averaged over
 * every span and per label, on the rows of relation whose label is not
 * NULL.  A predicted span counts as correct when a gold span has the same
 * start, end and label.
 */
Datum
hl_evaluate_spans(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			relid;
	HlModelDef *def;
	HlModel    *model;
	int32		model_id;
	const char *text_column;
	const char *label_column;
	const char *id_expr;
	const char *relname;
	char	   *query;
	int32		version;
	HlSpanLabelMap labels;
	HlSpanCounts total = {0, 0, 0};
	HlSpanCounts *counts;
	uint32		max_counts;
	int64		rows = 0;
	Portal		portal;
	StringInfoData json;
	int32	   *order;
	MemoryContext call_context = CurrentMemoryContext;

	hl_require_model_name(fcinfo, 0);
	hl_require_arg(fcinfo, 1, "relation",
				   "Pass the table or view that contains the labelled texts to evaluate on.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);

	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, false);
	if (strcmp(def->task, "spans") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is not a span model", name),
				 errhint("hl_evaluate_spans measures span models only.")));
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Pass the name of an existing table or view, such as 'public.utterances_test'.")));

	text_column = hl_eval_column(relid, PG_ARGISNULL(2) ? def->text_column
								 : text_to_cstring(PG_GETARG_TEXT_PP(2)), "text_column", true);
	{
		const char *label_name = PG_ARGISNULL(3) ? def->label_column
			: text_to_cstring(PG_GETARG_TEXT_PP(3));

		label_column = hl_eval_column(relid, label_name, "label_column", false);
		hl_check_span_label_type(relid, label_name);
	}

	/* Rows are named by the model's id column when the relation has it. */
	if (get_attnum(relid, def->id_column) > 0)
		id_expr = psprintf("t.%s::text", quote_identifier(def->id_column));
	else
		id_expr = "(pg_catalog.row_number() OVER ())::text";
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	query = psprintf("SELECT %s, t.%s::text, t.%s::text FROM %s t WHERE t.%s IS NOT NULL",
					 id_expr, text_column, label_column, relname, label_column);

	/* Label ids: the model's labels first, then gold labels it never saw. */
	model = hl_model_current(name, &model_id);
	if (model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has not been trained yet", name),
				 errhint("Run SELECT * FROM hl_train('%s'); first.", name)));
	version = model->version;
	hl_span_label_map_init(&labels);
	for (uint32 k = 0; k < model->n_labels; k++)
		hl_span_label_id(&labels, model->labels[k]);
	max_counts = Max(64, model->n_labels * 2);
	counts = palloc0(sizeof(HlSpanCounts) * max_counts);

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
			char	   *id = SPI_getvalue(tuple, desc, 1);
			char	   *body = SPI_getvalue(tuple, desc, 2);
			char	   *gold_json = SPI_getvalue(tuple, desc, 3);
			size_t		len;
			HlCharSpan *gold;
			uint32		n_gold;
			MemoryContext spi_context;

			CHECK_FOR_INTERRUPTS();
			len = body != NULL ? strlen(body) : 0;
			hl_check_text_length(len, psprintf("text of row \"%s\"", id ? id : "(null)"));

			spi_context = MemoryContextSwitchTo(call_context);
			gold = hl_span_labels_parse(gold_json, id ? id : "(null)", body, len,
										def->allow_overlap, &labels, &n_gold);
			MemoryContextSwitchTo(spi_context);
			if (labels.n > max_counts)
			{
				uint32		grown = Max(max_counts * 2, labels.n);

				counts = repalloc(counts, sizeof(HlSpanCounts) * grown);
				memset(counts + max_counts, 0, sizeof(HlSpanCounts) * (grown - max_counts));
				max_counts = grown;
			}

			/* The model is looked up again: SPI calls may load other models. */
			model = hl_model_version(name, model_id, model->version);
			hl_model_tag(model, body != NULL ? body : "", len);

			for (uint32 g = 0; g < n_gold; g++)
				counts[gold[g].label].gold++;
			for (uint32 i = 0; i < model->tagged.n_spans; i++)
			{
				const HlTagSpan *span = &model->tagged.spans[i];
				uint32		start = model->sentence.tokens[span->first_token].char_start;
				uint32		end = model->sentence.tokens[span->end_token - 1].char_end;

				counts[span->label].predicted++;
				for (uint32 g = 0; g < n_gold; g++)
					if (gold[g].start == start && gold[g].end == end && gold[g].label == span->label)
					{
						counts[span->label].correct++;
						break;
					}
			}
			rows++;
			pfree(gold);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();

	for (uint32 k = 0; k < labels.n; k++)
	{
		total.gold += counts[k].gold;
		total.predicted += counts[k].predicted;
		total.correct += counts[k].correct;
	}

	/* Micro averages first, then one object per label in name order. */
	initStringInfo(&json);
	appendStringInfoString(&json, "{\"method\": \"relation\", \"relation\": ");
	escape_json(&json, relname);
	appendStringInfo(&json, ", \"rows\": " INT64_FORMAT ", \"version\": %d, ", rows, version);
	hl_append_scores(&json, &total);
	appendStringInfoString(&json, ", \"labels\": {");
	order = palloc(sizeof(int32) * Max(labels.n, 1));
	for (uint32 k = 0; k < labels.n; k++)
		order[k] = (int32) k;
	hl_sort_names = labels.names;
	qsort(order, labels.n, sizeof(int32), hl_compare_names);
	for (uint32 i = 0; i < labels.n; i++)
	{
		const HlSpanCounts *c = &counts[order[i]];

		if (c->gold == 0 && c->predicted == 0)
			continue;
		if (json.data[json.len - 1] != '{')
			appendStringInfoString(&json, ", ");
		escape_json(&json, labels.names[order[i]]);
		appendStringInfoString(&json, ": {");
		hl_append_scores(&json, c);
		appendStringInfoChar(&json, '}');
	}
	appendStringInfoString(&json, "}}");

	/* Stored like a classifier's evaluation, so BI tools chart F1 by version. */
	hl_store_evaluation(def, version, "relation", relname, 0, json.data);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}

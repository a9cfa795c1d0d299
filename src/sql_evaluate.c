/*
 * sql_evaluate.c
 *		hl_evaluate: quality of a model by k-fold cross-validation on its
 *		labelled rows, or of its current version on a labelled relation.
 *
 * Each evaluation is returned as jsonb and stored in humanloop.evaluations
 * with the model's current version, so its history can be charted through
 * the view hl_evaluations.  The metrics of the automatic predictions use the
 * abstention rule of the current version (the default rule before the
 * first training).
 */
#include "compat.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "abstention.h"
#include "catalog.h"
#include "model_cache.h"
#include "text_source.h"

PG_FUNCTION_INFO_V1(hl_evaluate);

/* Normal quantile of the 95% intervals. */
#define HL_Z95 1.959964

/* Append "key": value to a JSON object under construction; NaN becomes null. */
static void
hl_json_add(StringInfo json, const char *key, double value)
{
	if (json->data[json->len - 1] != '{')
		appendStringInfoString(json, ", ");
	escape_json(json, key);
	appendStringInfoString(json, ": ");
	if (isnan(value) || isinf(value))
		appendStringInfoString(json, "null");
	else
		appendStringInfo(json, "%.6g", value);
}

/*
 * Append the metrics of scored under rule to json (an open object): the
 * summary metrics, the automatic predictions and one object per class.
 */
static void
hl_metrics_json(StringInfo json, const HlScoredSet *scored, char **labels,
				const HlAbstentionRule *rule)
{
	HlScoredRows rows;
	HlMetrics	m;
	HlClassMetrics *per_class = palloc0(sizeof(HlClassMetrics) * Max(scored->n_classes, 1));
	double		low;
	double		high;

	hl_scored_rows(scored, &rule->score, &rows);
	hl_metrics_compute(&rows, rule->threshold, &m, per_class);

	hl_json_add(json, "rows", m.rows);
	hl_json_add(json, "accuracy", m.accuracy);
	hl_wilson_interval(m.correct, m.rows, HL_Z95, &low, &high);
	hl_json_add(json, "accuracy_low", low);
	hl_json_add(json, "accuracy_high", high);
	hl_json_add(json, "macro_f1", m.macro_f1);
	hl_json_add(json, "nll", m.nll);
	hl_json_add(json, "brier", m.brier);
	hl_json_add(json, "ece", m.ece);

	appendStringInfo(json, ", \"abstention\": {\"score\": \"%s\"",
					 hl_confidence_score_name(rule->score));
	appendStringInfo(json, ", \"threshold\": %.9g", rule->threshold);
	hl_json_add(json, "automatic_rows", m.automatic_rows);
	hl_json_add(json, "coverage", m.coverage);
	hl_json_add(json, "automatic_accuracy", m.automatic_accuracy);
	hl_wilson_interval(m.automatic_correct, m.automatic_rows, HL_Z95, &low, &high);
	hl_json_add(json, "automatic_accuracy_low", low);
	hl_json_add(json, "automatic_accuracy_high", high);
	appendStringInfoChar(json, '}');

	appendStringInfoString(json, ", \"per_class\": {");
	for (uint32 c = 0; c < scored->n_classes; c++)
	{
		if (c > 0)
			appendStringInfoString(json, ", ");
		escape_json(json, labels[c]);
		appendStringInfoString(json, ": {");
		hl_json_add(json, "support", per_class[c].support);
		hl_json_add(json, "precision", per_class[c].precision);
		hl_json_add(json, "recall", per_class[c].recall);
		hl_json_add(json, "f1", per_class[c].f1);
		appendStringInfoChar(json, '}');
	}
	appendStringInfoChar(json, '}');
}

void
hl_store_evaluation(const HlModelDef *def, int32 version, const char *method,
					const char *relation, int folds, const char *result)
{
	Oid			argtypes[6] = {INT4OID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	int			ret;

	values[0] = Int32GetDatum(def->model_id);
	values[1] = Int32GetDatum(version);
	if (version == 0)
		nulls[1] = 'n';
	values[2] = CStringGetTextDatum(method);
	if (relation != NULL)
		values[3] = CStringGetTextDatum(relation);
	else
		nulls[3] = 'n';
	values[4] = Int32GetDatum(folds);
	if (folds == 0)
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(result);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args("INSERT INTO humanloop.evaluations"
								" (model_id, version, method, relation, folds, result)"
								" VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
								6, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert into humanloop.evaluations: SPI error %d", ret);
	SPI_finish();
}

/*
 * hl_evaluate(name, relation, k, text_column, label_column) returns jsonb
 */
Datum
hl_evaluate(PG_FUNCTION_ARGS)
{
	MemoryContext caller_context = CurrentMemoryContext;
	MemoryContext eval_context;
	char	   *name;
	HlModelDef *def;
	HlAbstentionRule rule;
	int32		model_id;
	int32		version;
	StringInfoData json;
	char	   *result;

	hl_require_model_name(fcinfo, 0);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, false);

	/*
	 * A span model is measured on a labelled relation by hl_evaluate_spans,
	 * whose arguments are these without k, and which stores the result.
	 * NOTE: span models have no cross-validation yet (hl_check_task_evaluable).
	 */
	if (strcmp(def->task, "spans") == 0 && !PG_ARGISNULL(1))
	{
		LOCAL_FCINFO(span_fcinfo, 4);
		Datum		span_result;
		static const int from_arg[4] = {0, 1, 3, 4};

		if (!PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("k applies to cross-validation, not to the evaluation of a relation"),
					 errhint("Leave k out when passing a relation.")));
		InitFunctionCallInfoData(*span_fcinfo, fcinfo->flinfo, 4, fcinfo->fncollation,
								 NULL, NULL);
		for (int a = 0; a < 4; a++)
			span_fcinfo->args[a] = fcinfo->args[from_arg[a]];
		span_result = hl_evaluate_spans(span_fcinfo);
		PG_RETURN_DATUM(span_result);
	}

	hl_check_task_evaluable(def, "cross-validation");
	version = hl_catalog_current_version(name, &model_id, &rule);

	eval_context = AllocSetContextCreate(caller_context, "humanloop evaluate",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(eval_context);
	initStringInfo(&json);
	appendStringInfoChar(&json, '{');

	if (PG_ARGISNULL(1))
	{
		/* Cross-validation on the model's labelled rows. */
		int			k = PG_ARGISNULL(2) ? HL_DEFAULT_FOLDS : PG_GETARG_INT32(2);
		HlTrainingData training;
		HlScoredSet oof;

		if (!PG_ARGISNULL(3) || !PG_ARGISNULL(4))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("text_column and label_column apply only to an evaluation relation"),
					 errhint("Cross-validation reads the model's own columns; pass a relation to evaluate on other data.")));
		if (k < 2)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("number of folds %d is too small", k),
					 errhint("Use at least k => 2.")));

		hl_source_check(def);
		hl_training_load(def, false, &training);

		/* The default shrinks to the item count, so a few labels still work. */
		if (PG_ARGISNULL(2) && training.n_items >= 2 && (uint32) k > training.n_items)
			k = (int) training.n_items;
		if ((uint32) k > training.n_items)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("number of folds %d is more than the %u labelled rows of model \"%s\"",
							k, training.n_items, name),
					 training.n_items >= 2 ?
					 errhint("Use k => %u or fewer, or label more rows.", training.n_items) :
					 errhint("Label at least two rows first.")));

		hl_cross_validate(def, &training, k, &oof);

		appendStringInfoString(&json, "\"method\": \"cross_validation\"");
		hl_json_add(&json, "version", version > 0 ? version : NAN);
		hl_json_add(&json, "folds", k);
		hl_json_add(&json, "labelled_items", training.n_items);
		hl_metrics_json(&json, &oof, training.labels, &rule);
		appendStringInfoChar(&json, '}');
		result = json.data;
		hl_store_evaluation(def, version, "cross_validation", NULL, k, result);
	}
	else
	{
		/* The current version on a labelled relation. */
		Oid			relation = PG_GETARG_OID(1);
		char	   *text_column = PG_ARGISNULL(3) ? def->text_column : text_to_cstring(PG_GETARG_TEXT_PP(3));
		char	   *label_column = PG_ARGISNULL(4) ? def->label_column : text_to_cstring(PG_GETARG_TEXT_PP(4));
		char	   *relname;
		HlModel    *model;
		HlScoredSet scored;

		if (get_rel_name(relation) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relation),
					 errhint("Pass the name of an existing table or view, such as 'public.tickets_test'.")));
		relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relation)),
											 get_rel_name(relation));
		if (!PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("k applies to cross-validation, not to the evaluation of a relation"),
					 errhint("Leave k out when passing a relation.")));
		hl_check_evaluation_column(relation, text_column, "text_column", true);
		hl_check_evaluation_column(relation, label_column, "label_column", false);

		model = hl_model_current(name, &model_id);
		if (model == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has not been trained yet", name),
					 errhint("Train it with SELECT * FROM hl_train('%s'), or evaluate it by cross-validation with hl_evaluate('%s').",
							 name, name)));
		version = model->version;
		hl_score_relation(model, relation, text_column, label_column, &scored);

		appendStringInfoString(&json, "\"method\": \"relation\", \"relation\": ");
		escape_json(&json, relname);
		hl_json_add(&json, "version", version);
		hl_metrics_json(&json, &scored, model->labels, &model->abstention);
		hl_json_add(&json, "unlabelled_rows", (double) scored.unlabelled_rows);
		hl_json_add(&json, "unknown_label_rows", (double) scored.unknown_label_rows);
		appendStringInfo(&json, ", \"unknown_labels\": %s}", scored.unknown_labels);
		result = json.data;
		hl_store_evaluation(def, version, "relation", relname, 0, result);
	}

	MemoryContextSwitchTo(caller_context);
	{
		Datum		jsonb = DirectFunctionCall1(jsonb_in, CStringGetDatum(result));

		MemoryContextDelete(eval_context);
		PG_RETURN_DATUM(jsonb);
	}
}

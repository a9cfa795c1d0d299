/*
 * sql_abstention.c
 *		hl_set_abstention: set the target of a model's abstention rule and
 *		choose its threshold by cross-validation.
 *
 * The target goes into the model option "abstention", so that every later
 * full training chooses the threshold again; the threshold and its estimates
 * go into the current version's metrics, where hl_classify reads them.
 */
#include "compat.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "abstention.h"
#include "catalog.h"
#include "text_source.h"

/* How far the estimated coverage may miss a coverage target before a NOTICE reports it. */
#define HL_COVERAGE_SLACK 0.05

PG_FUNCTION_INFO_V1(hl_set_abstention);

/* Return the JSON of target, the form of the model option "abstention". */
static char *
hl_target_json(const HlAbstentionTarget *target)
{
	StringInfoData json;

	initStringInfo(&json);
	if (target->target_accuracy > 0.0)
		appendStringInfo(&json, "{\"target_accuracy\": %.9g", target->target_accuracy);
	else
		appendStringInfo(&json, "{\"target_coverage\": %.9g", target->target_coverage);
	appendStringInfo(&json, ", \"score\": \"%s\", \"folds\": %d}",
					 hl_confidence_score_name(target->score), target->folds);
	return json.data;
}

/* Store target in the model's options and the rule in its current version. */
static void
hl_store_rule(const HlModelDef *def, const HlAbstentionTarget *target,
			  const HlAbstentionEstimate *estimate)
{
	Oid			argtypes[4] = {INT4OID, INT4OID, TEXTOID, TEXTOID};
	Datum		values[4];
	StringInfoData rule;
	int			ret;

	initStringInfo(&rule);
	hl_abstention_json(&rule, estimate);
	values[0] = Int32GetDatum(def->model_id);
	values[1] = Int32GetDatum(def->current_version);
	values[2] = CStringGetTextDatum(hl_target_json(target));
	values[3] = CStringGetTextDatum(rule.data);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args("UPDATE humanloop.models"
								"   SET options = options || jsonb_build_object('abstention', $3::jsonb)"
								" WHERE model_id = $1",
								3, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update humanloop.models: SPI error %d", ret);
	ret = SPI_execute_with_args("UPDATE humanloop.model_versions"
								"   SET metrics = metrics || jsonb_build_object('abstention', $4::jsonb)"
								" WHERE model_id = $1 AND version = $2",
								4, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update humanloop.model_versions: SPI error %d", ret);
	SPI_finish();
}

/*
 * hl_set_abstention(name, target_accuracy, target_coverage, score, k)
 * returns (score, threshold, estimated_coverage, coverage_low,
 * coverage_high, estimated_accuracy, accuracy_low, accuracy_high, folds)
 */
Datum
hl_set_abstention(PG_FUNCTION_ARGS)
{
	MemoryContext caller_context = CurrentMemoryContext;
	MemoryContext fit_context;
	char	   *name;
	HlModelDef *def;
	HlAbstentionTarget target;
	HlAbstentionEstimate estimate;
	HlTrainingData training;
	HlScoredSet oof;
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9] = {false, false, false, false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	hl_require_model_name(fcinfo, 0);

	/* Check the arguments before reading any row. */
	memset(&target, 0, sizeof(target));
	target.score = HL_DEFAULT_CONFIDENCE_SCORE;
	target.folds = PG_ARGISNULL(4) ? HL_DEFAULT_FOLDS : PG_GETARG_INT32(4);
	if (PG_ARGISNULL(1) == PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("exactly one of target_accuracy and target_coverage must be given"),
				 errhint("For example hl_set_abstention('%s', target_accuracy => 0.98).",
						 text_to_cstring(PG_GETARG_TEXT_PP(0)))));
	if (!PG_ARGISNULL(1))
	{
		target.target_accuracy = PG_GETARG_FLOAT8(1);
		hl_check_target("target_accuracy", target.target_accuracy);
	}
	else
	{
		target.target_coverage = PG_GETARG_FLOAT8(2);
		hl_check_target("target_coverage", target.target_coverage);
	}
	if (!PG_ARGISNULL(3))
	{
		char	   *score = text_to_cstring(PG_GETARG_TEXT_PP(3));

		if (!hl_confidence_score_parse(score, &target.score))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("abstention score \"%s\" is not known", score),
					 errhint("Valid scores are probability, entropy, probability_mi and probability_novelty.")));
	}
	if (target.folds < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of folds %d is too small", target.folds),
				 errhint("Use at least k => 2.")));

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, true);
	hl_check_task_evaluable(def, "choosing an abstention rule");
	if (def->current_version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has not been trained yet", name),
				 errhint("The rule is stored with a trained version: run SELECT * FROM hl_train('%s') first.",
						 name)));
	hl_source_check(def);

	fit_context = AllocSetContextCreate(caller_context, "humanloop abstention",
										ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(fit_context);
	hl_training_load(def, false, &training);

	/* Without k, as in hl_evaluate, the folds shrink to the labelled items. */
	if (PG_ARGISNULL(4) && training.n_items >= 2 && (uint32) target.folds > training.n_items)
		target.folds = (int) training.n_items;
	if ((uint32) target.folds > training.n_items)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of folds %d is more than the %u labelled rows of model \"%s\"",
						target.folds, training.n_items, name),
				 errhint("Use k => %u or fewer, or label more rows.", Max(training.n_items, 2))));

	/* NOTE: the labels may have changed since the current version was trained. */
	hl_cross_validate(def, &training, target.folds, &oof);
	hl_abstention_estimate(&oof, &target, target.folds, &estimate);
	hl_store_rule(def, &target, &estimate);
	MemoryContextSwitchTo(caller_context);

	/*
	 * Rows with equal confidence fall on the same side of a threshold, so
	 * when many tie the coverage can miss its target by far.
	 */
	if (target.target_coverage > 0.0 &&
		fabs(estimate.coverage - target.target_coverage) > HL_COVERAGE_SLACK)
		ereport(NOTICE,
				(errmsg("the rule keeps %.3f of the labelled rows automatic, not the target %.3f",
						estimate.coverage, target.target_coverage),
				 errdetail("Many rows share the confidence at the threshold, so no threshold comes closer."),
				 errhint("Label more rows, or choose another score.")));

	values[0] = CStringGetTextDatum(hl_confidence_score_name(target.score));
	values[1] = Float8GetDatum(estimate.threshold);
	values[2] = Float8GetDatum(estimate.coverage);
	values[3] = Float8GetDatum(estimate.coverage_low);
	values[4] = Float8GetDatum(estimate.coverage_high);
	values[5] = Float8GetDatum(estimate.accuracy);
	values[6] = Float8GetDatum(estimate.accuracy_low);
	values[7] = Float8GetDatum(estimate.accuracy_high);
	values[8] = Int32GetDatum(estimate.folds);
	if (isnan(estimate.accuracy))
		nulls[5] = true;
	MemoryContextDelete(fit_context);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

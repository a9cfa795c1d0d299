/*
 * abstention.c
 *		The abstention rule of a model: choosing its threshold for a target
 *		by cross-validation, and reading and writing the rule.
 *
 * The user sets a target (the model option "abstention"): a minimum
 * accuracy of the predictions made automatically, or the share of rows to keep
 * automatic.  The threshold is chosen on out-of-fold predictions of the
 * labelled rows (evaluate.c), so the rows that rank a threshold were never
 * seen by the model that scored them.  Each full training with a target
 * chooses it again, and stores it in the new version's metrics under
 * "abstention"; hl_catalog_current_version reads it from there.
 *
 * The fold models are fitted on (k - 1) / k of the labels, so they are a
 * little less accurate than the model trained on all of them, which makes
 * the estimate slightly pessimistic.
 */
#include "compat.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "utils/builtins.h"

#include "abstention.h"
#include "catalog.h"

/* Normal quantile of the 95% intervals. */
#define HL_Z95 1.959964

void
hl_check_target(const char *name, double value)
{
	if (!(value > 0.0 && value < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s is out of range", name, double_to_shortest_decimal(value)),
				 errdetail("A target is a share strictly between 0 and 1."),
				 errhint("For example %s => 0.95.", name)));
}

void
hl_abstention_estimate(const HlScoredSet *oof, const HlAbstentionTarget *target,
					   int folds, HlAbstentionEstimate *out)
{
	HlScoredRows rows;
	HlMetrics	metrics;

	hl_scored_rows(oof, &target->score, &rows);
	out->target = *target;
	out->folds = folds;
	out->threshold = hl_abstention_threshold(&rows, target->target_accuracy,
											 target->target_coverage);
	hl_metrics_compute(&rows, out->threshold, &metrics, NULL);

	out->rows = metrics.rows;
	out->coverage = metrics.coverage;
	out->accuracy = metrics.automatic_accuracy;
	hl_wilson_interval(metrics.automatic_rows, metrics.rows, HL_Z95,
					   &out->coverage_low, &out->coverage_high);
	hl_wilson_interval(metrics.automatic_correct, metrics.automatic_rows, HL_Z95,
					   &out->accuracy_low, &out->accuracy_high);
}

void
hl_abstention_fit(const HlModelDef *def, const HlTrainingData *training,
				  HlAbstentionEstimate *out)
{
	HlScoredSet oof;
	int			folds = Min(def->abstention.folds, (int) training->n_items);

	hl_cross_validate(def, training, folds, &oof);
	hl_abstention_estimate(&oof, &def->abstention, folds, out);
}

/* Append "key": value with a leading comma unless first; NaN becomes null. */
static void
hl_json_field(StringInfo json, bool first, const char *key, double value)
{
	appendStringInfo(json, "%s\"%s\": ", first ? "" : ", ", key);
	if (isnan(value) || isinf(value))
		appendStringInfoString(json, "null");
	else
		appendStringInfo(json, "%.6g", value);
}

void
hl_abstention_json(StringInfo json, const HlAbstentionEstimate *estimate)
{
	const HlAbstentionTarget *target = &estimate->target;

	appendStringInfo(json, "{\"score\": \"%s\"",
					 hl_confidence_score_name(target->score));
	if (target->target_accuracy > 0.0)
		hl_json_field(json, false, "target_accuracy", target->target_accuracy);
	else
		hl_json_field(json, false, "target_coverage", target->target_coverage);

	/* Enough digits that the stored threshold reproduces the coverage. */
	appendStringInfo(json, ", \"threshold\": %.9g", estimate->threshold);
	hl_json_field(json, false, "folds", estimate->folds);
	hl_json_field(json, false, "rows", estimate->rows);
	hl_json_field(json, false, "coverage", estimate->coverage);
	hl_json_field(json, false, "coverage_low", estimate->coverage_low);
	hl_json_field(json, false, "coverage_high", estimate->coverage_high);
	hl_json_field(json, false, "accuracy", estimate->accuracy);
	hl_json_field(json, false, "accuracy_low", estimate->accuracy_low);
	hl_json_field(json, false, "accuracy_high", estimate->accuracy_high);
	appendStringInfoChar(json, '}');
}

void
hl_abstention_target_parse(JsonbValue *value, HlAbstentionTarget *target)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;

	memset(target, 0, sizeof(*target));
	target->score = HL_DEFAULT_CONFIDENCE_SCORE;
	target->folds = HL_DEFAULT_FOLDS;

	if (value->type == jbvNull)
		return;
	if (value->type != jbvBinary || !JsonContainerIsObject(value->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model option \"abstention\" must be a JSON object"),
				 errhint("Set it with hl_set_abstention.")));

	it = JsonbIteratorInit(value->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (token != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		token = JsonbIteratorNext(&it, &v, true);

		if (strcmp(key, "target_accuracy") == 0)
		{
			target->target_accuracy = hl_option_number(key, &v);
			hl_check_target(key, target->target_accuracy);
		}
		else if (strcmp(key, "target_coverage") == 0)
		{
			target->target_coverage = hl_option_number(key, &v);
			hl_check_target(key, target->target_coverage);
		}
		else if (strcmp(key, "folds") == 0)
			target->folds = hl_option_int(key, &v, 2, 100);
		else if (strcmp(key, "score") == 0)
		{
			char	   *name = v.type == jbvString ?
				pnstrdup(v.val.string.val, v.val.string.len) : "";

			if (!hl_confidence_score_parse(name, &target->score))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("abstention score \"%s\" is not known", name),
						 errhint("Valid scores are probability, entropy, probability_mi and probability_novelty.")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" in model option \"abstention\"", key),
					 errhint("Valid keys are target_accuracy, target_coverage, score and folds.")));
		pfree(key);
	}

	if (target->target_accuracy > 0.0 && target->target_coverage > 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model option \"abstention\" sets both target_accuracy and target_coverage"),
				 errhint("Set one of them.")));
}

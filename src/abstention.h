/*
 * abstention.h
 *		The abstention rule of a model: which uncertainty score it
 *		thresholds, the threshold, and the target it was chosen for.
 */
#ifndef HL_ABSTENTION_H
#define HL_ABSTENTION_H

#include "evaluate.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* The score a rule thresholds unless the user names another. */
#define HL_DEFAULT_CONFIDENCE_SCORE HL_SCORE_PROBABILITY

/*
 * A rule chosen for a target, with what cross-validation estimated for it.
 * Coverage and accuracy come with 95% Wilson intervals.
 */
typedef struct HlAbstentionEstimate
{
	HlAbstentionTarget target;
	double		threshold;
	int			folds;
	double		rows;
	double		coverage;
	double		coverage_low;
	double		coverage_high;
	double		accuracy;		/* of the automatic predictions; NaN if none */
	double		accuracy_low;
	double		accuracy_high;
} HlAbstentionEstimate;

/* Apply a rule: whether to hand a prediction to a person. */
static inline bool
hl_abstain(const HlAbstentionRule *rule, const HlPrediction *prediction)
{
	return hl_confidence(rule->score, prediction) < rule->threshold;
}

/*
 * Choose the threshold for target on out-of-fold predictions and estimate
 * its coverage and accuracy.
 */
extern void hl_abstention_estimate(const HlScoredSet *oof, const HlAbstentionTarget *target,
								   int folds, HlAbstentionEstimate *out);

/*
 * Cross-validate the labelled rows of training and choose the rule for
 * def's target; training must have at least two items.
 */
extern void hl_abstention_fit(const HlModelDef *def, const HlTrainingData *training,
							  HlAbstentionEstimate *out);

/* Append the estimate as a JSON object, the form stored in version metrics. */
extern void hl_abstention_json(StringInfo json, const HlAbstentionEstimate *estimate);

/* Parse the "abstention" model option, a JSON object, into target. */
extern void hl_abstention_target_parse(JsonbValue *value, HlAbstentionTarget *target);

/* Raise an error unless a target accuracy or coverage is inside (0, 1). */
extern void hl_check_target(const char *name, double value);

#endif							/* HL_ABSTENTION_H */

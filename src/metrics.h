/*
 * metrics.h
 *		Evaluation metrics of a classifier's predictive distribution and of
 *		its abstention rule (numeric core, no PostgreSQL headers).
 */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "model_classifier.h"

/* Equal-width bins of the top-class probability in the calibration error. */
#define HL_ECE_BINS 15

/*
 * The uncertainty score an abstention rule thresholds.  Each is turned into
 * a confidence (higher means surer) by hl_confidence, and the rule abstains
 * when the confidence is below its threshold.
 */
typedef enum HlConfidenceScore
{
	HL_SCORE_PROBABILITY,		/* top-class probability */
	HL_SCORE_ENTROPY,			/* minus the predictive entropy */
	HL_SCORE_PROBABILITY_MI,	/* top-class probability minus mutual information */
	HL_SCORE_PROBABILITY_NOVELTY	/* top-class probability minus a share of the novelty */
} HlConfidenceScore;

/*
 * Weight of the novelty in HL_SCORE_PROBABILITY_NOVELTY.  On banking77 with
 * ten intents held out, 0.2 gave a higher AUROC than 0.1 (docs/calibration.md).
 */
#define HL_NOVELTY_WEIGHT 0.2f

/*
 * Scored rows with a known true class.  proba is n_rows x n_classes,
 * row-major; weight NULL means 1 for every row; confidence is the score the
 * abstention rule thresholds (NULL: no rule, everything is automatic).
 */
typedef struct HlScoredRows
{
	uint32_t	n_rows;
	uint32_t	n_classes;
	const float *proba;
	const int32_t *label;
	const float *weight;
	const float *confidence;
} HlScoredRows;

/* Per-class counts (weighted) and rates; a rate with no rows is 0. */
typedef struct HlClassMetrics
{
	double		support;		/* rows of this true class */
	double		predicted;		/* rows predicted as this class */
	double		true_positive;
	double		precision;
	double		recall;
	double		f1;
} HlClassMetrics;

typedef struct HlMetrics
{
	double		rows;			/* sum of row weights */
	double		correct;
	double		accuracy;
	double		macro_f1;		/* over classes that occur or are predicted */
	double		nll;			/* mean -ln p(true class), nats */
	double		brier;			/* mean sum over classes of (p_k - y_k)^2 */
	double		ece;			/* expected calibration error, HL_ECE_BINS bins */
	double		automatic_rows; /* rows at or above the threshold */
	double		automatic_correct;
	double		coverage;		/* automatic_rows / rows */
	double		automatic_accuracy; /* NaN when no row is automatic */
} HlMetrics;

/* Return the confidence of a prediction under score. */
extern float hl_confidence(HlConfidenceScore score, const HlPrediction *prediction);

/* Return the score named name in *score; false when the name is unknown. */
extern int	hl_confidence_score_parse(const char *name, HlConfidenceScore *score);

/* Return the name of a score, as hl_confidence_score_parse reads it. */
extern const char *hl_confidence_score_name(HlConfidenceScore score);

/*
 * Compute the metrics of rows.  Rows with confidence below threshold are
 * handed to a person and count only towards coverage.  per_class (n_classes
 * entries, or NULL) receives the per-class counts and rates.
 */
extern void hl_metrics_compute(const HlScoredRows *rows, double threshold,
							   HlMetrics *out, HlClassMetrics *per_class);

/*
 * Wilson score interval for a proportion of successes out of n, at normal
 * quantile z (1.96 for 95%).  With n = 0 the interval is [0, 1].
 */
extern void hl_wilson_interval(double successes, double n, double z,
							   double *low, double *high);

/*
 * Choose the abstention threshold on the confidence of rows (label and
 * proba give correctness).  With target_accuracy > 0: the lowest threshold
 * whose automatic predictions are at least that accurate, which maximises
 * coverage; when no threshold reaches it, one above every confidence, so
 * every row goes to a person.  Otherwise with target_coverage: the highest
 * threshold that keeps at least that share of rows automatic.  Returns the
 * threshold; fails (returns NaN) only when rows is empty.
 */
extern double hl_abstention_threshold(const HlScoredRows *rows,
									  double target_accuracy,
									  double target_coverage);

#endif							/* HL_METRICS_H */

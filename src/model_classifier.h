/*
 * model_classifier.h
 *		Bayesian multinomial logistic regression on hashed sparse features
 *		(numeric core, no PostgreSQL headers).
 *
 * The posterior over the weights is a Gaussian with a diagonal precision
 * (Laplace approximation at the MAP weights).  The predictive distribution
 * averages the softmax over that posterior, tempered by a temperature and a
 * variance scale fitted on held-out labelled rows.
 */
#ifndef HL_MODEL_CLASSIFIER_H
#define HL_MODEL_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "features.h"

/*
 * Training rows in compressed sparse row form.  Row i has the entries
 * row_start[i] .. row_start[i + 1] - 1 of index/value (TF-IDF already
 * applied), class label[i] in 0 .. n_classes - 1, and weight weight[i]
 * (NULL means 1 for every row).  An item with several labels appears as
 * several rows sharing group[i] (NULL means every row is its own item);
 * held-out splits never separate the rows of one item.  A class may have no
 * rows at all: its weights then stay at the prior.
 */
typedef struct HlDataset
{
	uint32_t	n_rows;
	uint32_t	dim;
	uint32_t	n_classes;
	const uint64_t *row_start;
	const uint32_t *index;
	const float *value;
	const int32_t *label;
	const float *weight;
	const uint32_t *group;
} HlDataset;

/* Stages of a row in a fit (HlFitOptions.row_stage). */
typedef enum HlRowStage
{
	HL_ROW_ANY = 0,				/* held out or trained on, as the split decides */
	HL_ROW_TRAIN = 1,			/* always on the training side, and in the final fit */
	HL_ROW_SPLIT_ONLY = 2,		/* on the training side of the split only */
	HL_ROW_FINAL_ONLY = 3		/* in the final fit on all rows only */
} HlRowStage;

typedef struct HlFitOptions
{
	double		prior_precision;	/* <= 0: choose from the data */

	/*
	 * Earlier choice of the prior precision, or 0.  When the precision is
	 * chosen from the data, the path starts one point stronger than the
	 * hint instead of at the strongest point, so the choice can move at
	 * most one point stronger.
	 */
	double		prior_hint;

	/*
	 * Flag of a warm start whose caller keeps the current T and c.  The fit
	 * then has no held-out split and fits all rows only, at most
	 * max_iterations from init_mean, at prior_precision (0.03 when that is
	 * unset).  It returns T = 1 and c = 1/256, which the caller replaces.
	 */
	bool		keep_calibration;
	uint32_t	max_iterations;		/* 0: the default */
	double		tolerance;			/* <= 0: the default */
	uint64_t	seed;				/* for the held-out split */

	/*
	 * Optional start point: weights (dim x n_classes, the layout of
	 * HlClassifier.mean) and biases (n_classes) of an earlier fit of the
	 * same shape.  NULL starts from zero.  The fit converges to the same
	 * optimum either way, only in fewer iterations from a close start.
	 */
	const float *init_mean;
	const float *init_bias_mean;

	/*
	 * Optional stage of each row (NULL: all HL_ROW_ANY): the parts of the
	 * fit the row takes part in.  Self-training sets it for its
	 * pseudo-labelled rows, because the prior precision, T and c must be
	 * judged on labels a person gave.
	 */
	const uint8_t *row_stage;

	/*
	 * Optional output, allocated with the data's shape: when the fit has a
	 * held-out split, the posterior fitted on its training side, with the
	 * T and c fitted on its held-out side.  Unlike the returned model it
	 * has not seen the held-out rows, so what it predicts may later be
	 * judged by them.
	 */
	struct HlClassifier *split_model;
} HlFitOptions;

/*
 * The posterior.  mean and precision are dim x n_classes, row-major: the
 * weights of feature j for all classes are contiguous, so a sparse row
 * touches n_classes consecutive floats per entry.  prior_precision is the
 * lambda of the MAP weights; precision is built on a prior precision chosen
 * by evidence maximisation (HlFitReport.covariance_prior_precision), which
 * is also the precision of every feature no training row has.
 */
typedef struct HlClassifier
{
	uint32_t	n_classes;
	uint32_t	dim;
	float	   *mean;
	float	   *precision;
	float	   *bias_mean;		/* n_classes */
	float	   *bias_precision; /* n_classes */
	float		prior_precision;
	float		temperature;
	float		variance_scale;
	float		covariance_precision;	/* prior part of precision; 0 if unknown */
	float	   *variance;		/* 1 / precision, or NULL; speeds up prediction */
} HlClassifier;

typedef struct HlFitReport
{
	uint32_t	iterations;
	double		train_nll;			/* mean per weighted row */
	double		train_accuracy;
	uint32_t	heldout_rows;		/* 0 without a split: too few rows, or keep_calibration */
	double		heldout_nll;		/* NaN when heldout_rows is 0 */
	double		heldout_accuracy;
	double		prior_precision;
	double		temperature;
	double		variance_scale;
	double		covariance_prior_precision; /* prior part of precision */
} HlFitReport;

typedef struct HlPrediction
{
	int32_t		label;
	float		probability;
	float		entropy;			/* of the predictive distribution, nats */
	float		mutual_information; /* epistemic part, nats */
	float		novelty;		/* see novelty.h; NaN when the model has none */
} HlPrediction;

extern void hl_fit_options_default(HlFitOptions *options);

/* Allocate a zeroed posterior of the given shape. */
extern void hl_classifier_alloc(HlClassifier *model, uint32_t dim,
								uint32_t n_classes);
extern void hl_classifier_free(HlClassifier *model);

/*
 * Fit the posterior to data.  Returns 0 on success; otherwise writes a
 * message to errbuf and returns -1 (for example when a label is out of
 * range).  model must be allocated with the data's shape.
 */
extern int	hl_classifier_fit(const HlDataset *data, const HlFitOptions *options,
							  HlClassifier *model, HlFitReport *report,
							  char *errbuf, size_t errlen);

/*
 * Store 1 / precision in model->variance, which hl_classifier_predict then
 * reads instead of dividing.  The model must not change afterwards.
 */
extern void hl_classifier_cache_variance(HlClassifier *model);

/* Number of floats of scratch space hl_classifier_predict needs. */
extern size_t hl_classifier_workspace_size(const HlClassifier *model);

/*
 * Predict one TF-IDF vector.  proba (n_classes floats, or NULL) receives the
 * predictive distribution; out the most probable class and the uncertainty.
 */
extern void hl_classifier_predict(const HlClassifier *model,
								  const HlSparseVec *x, float *proba,
								  HlPrediction *out, float *workspace);

#endif							/* HL_MODEL_CLASSIFIER_H */

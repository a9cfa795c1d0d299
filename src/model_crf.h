/*
 * model_crf.h
 *		Bayesian linear-chain CRF over BIO tags (numeric core, no PostgreSQL
 *		headers).
 *
 * Tags are numbered as in span_tags.h.  A sentence's tag sequence y has
 * the score
 *
 *	 sum_t (b[y_t] + sum_f x_tf W[f, y_t]) + A[start, y_0] + sum_{t>0} A[y_{t-1}, y_t]
 *
 * with emission weights W (dim x K, stored as an HlClassifier so that the
 * posterior file and the model cache handle them as before), biases b and
 * transition weights A.  Transitions that break BIO (I-l first, or I-l after
 * anything but B-l and I-l) are forbidden: they have probability zero and
 * no weight.  Training minimises the L2-regularised negative log-likelihood
 * with L-BFGS; the posterior is the Laplace approximation with a diagonal
 * precision.
 */
#ifndef HL_MODEL_CRF_H
#define HL_MODEL_CRF_H

#include <stddef.h>
#include <stdint.h>

#include "model_classifier.h"
#include "span_tags.h"
#include "span_features.h"

/* Posterior draws per sentence for span probabilities and uncertainty. */
#define HL_CRF_SAMPLES 8

/* Transition weights, their diagonal precision and a prediction cache. */
typedef struct HlCrfTransitions
{
	uint32_t	n_tags;			/* K, the classifier's n_classes */
	float	   *mean;			/* (K + 1) x K; row K is the sentence start */
	float	   *precision;		/* same shape; forbidden cells hold 0 */
	/*
	 * Cache of hl_crf_prepare, NULL until then: exponentiated transition
	 * draws, and the emission weights that have a variance (the fitted
	 * (feature, tag) pairs) as lists per feature.
	 */
	double	   *draws;
	uint32_t	n_dense;		/* tags O and B-l, which any tag may precede */
	uint32_t   *dense_tag;
	uint64_t   *pair_start;		/* dim + 1 */
	uint32_t   *pair_tag;
	float	   *pair_mean;
	float	   *pair_variance;
} HlCrfTransitions;

/*
 * Training sentences.  Sentence s has the tokens sentence_start[s] ..
 * sentence_start[s + 1] - 1, token i the feature row row_start[i] ..
 * row_start[i + 1] - 1 of index/value and the tag tag[i] < n_tags, which
 * must form a valid BIO sequence.  weight (NULL: 1) is per sentence.
 */
typedef struct HlCrfData
{
	uint32_t	n_sentences;
	uint32_t	dim;
	uint32_t	n_tags;
	const uint32_t *sentence_start;
	const uint64_t *row_start;
	const uint32_t *index;
	const float *value;
	const int32_t *tag;
	const float *weight;
} HlCrfData;

typedef struct HlCrfFitReport
{
	uint32_t	iterations;
	uint32_t	evaluations;	/* of the objective and gradient */
	uint64_t	emission_weights;	/* (feature, tag) pairs that occur */
	double		objective;		/* final penalised negative log-likelihood */
	double		train_nll;		/* mean per weighted sentence */
	double		train_token_accuracy;	/* of Viterbi decoding */
} HlCrfFitReport;

extern void hl_crf_transitions_alloc(HlCrfTransitions *transitions, uint32_t n_tags);
extern void hl_crf_transitions_free(HlCrfTransitions *transitions);

/* Return whether tag may follow tag prev; prev == n_tags is the sentence start. */
extern int	hl_crf_transition_allowed(uint32_t n_tags, uint32_t prev, uint32_t tag);

/*
 * Fit the CRF with prior precision lambda on every weight for at most
 * max_iterations L-BFGS iterations.  emission must be allocated with
 * (data->dim, data->n_tags) and transitions with data->n_tags.  Returns 0,
 * or -1 with a message in errbuf when the data are invalid.
 */
extern int	hl_crf_fit(const HlCrfData *data, double lambda, uint32_t max_iterations,
					   HlClassifier *emission, HlCrfTransitions *transitions,
					   HlCrfFitReport *report, char *errbuf, size_t errlen);

/*
 * Fit as hl_crf_fit does, but start from the weights of from_emission and
 * from_transitions, a CRF with the same features and tags fitted on other
 * (for example fewer) sentences, instead of from zero.  Pairs that the
 * starting CRF never fitted start at zero.  Both NULL start from zero, and
 * one NULL is an error.
 */
extern int	hl_crf_fit_from(const HlCrfData *data, double lambda, uint32_t max_iterations,
							const HlClassifier *from_emission,
							const HlCrfTransitions *from_transitions,
							HlClassifier *emission, HlCrfTransitions *transitions,
							HlCrfFitReport *report, char *errbuf, size_t errlen);

/*
 * Penalised negative log-likelihood at the weights theta and its gradient,
 * for tests.  theta and grad have hl_crf_param_count entries: the emission
 * weights of the (feature, tag) pairs that occur in the data, by feature
 * and then tag, then the biases, then the transitions.
 */
extern size_t hl_crf_param_count(const HlCrfData *data);
extern double hl_crf_objective(const HlCrfData *data, double lambda, const double *theta,
							   double *grad);

/*
 * Cache what prediction needs: the fitted emission weights with their
 * variances, and the exponentiated transitions of HL_CRF_SAMPLES fixed
 * posterior draws, whose variance is the Laplace variance times
 * emission->variance_scale (1 after hl_crf_fit).  The model must not change
 * afterwards.  A weight with precision FLT_MAX, which hl_crf_fit gives
 * every (feature, tag) pair that never occurred, must have mean zero and is
 * left out.
 */
extern void hl_crf_prepare(HlClassifier *emission, HlCrfTransitions *transitions);

/*
 * Free the cache of hl_crf_prepare, so that the next call prepares again,
 * for example after a change of the temperature or the variance scale.
 */
extern void hl_crf_release(HlCrfTransitions *transitions);

/*
 * Tag one featurised sentence into out (see span_tags.h): the
 * Viterbi tags of the posterior mean, per-token marginals averaged over the
 * posterior draws with their entropy, mutual information and margin, and
 * each decoded span's probability and mutual information.
 */
extern void hl_crf_predict(const HlClassifier *emission, const HlCrfTransitions *transitions,
						   uint32_t n_labels, const HlSentenceFeatures *features,
						   HlTaggerOutput *out);

/* What hl_crf_fit_temperature measured on the held-out sentences. */
typedef struct HlCrfCalibration
{
	int			fitted;			/* whether the spans could fit T */
	double		temperature;	/* the fitted T, else 1 */
	uint32_t	sentences;
	uint64_t	gold_spans;
	uint64_t	predicted_spans;
	uint64_t	correct_spans;	/* exact matches of offsets and label */
	double		nll_before;		/* mean binary NLL of the decoded spans at T = 1 */
	double		nll_after;		/* and at the fitted T */
	double		brier_before;	/* mean (probability - correct)^2 at T = 1 */
	double		brier_after;
} HlCrfCalibration;

/*
 * Fewest decoded held-out spans, and fewest wrong ones among them, for
 * which hl_crf_fit_temperature fits a temperature.  With fewer it keeps
 * T = 1.
 */
#define HL_CRF_MIN_CALIBRATION_SPANS 30
#define HL_CRF_MIN_CALIBRATION_ERRORS 5

/*
 * Fit the temperature of a model trained without the sentences of heldout
 * (whose tags are the gold tags).  T minimises the binary negative
 * log-likelihood of its decoded spans being exactly right, plus a normal
 * prior on ln T, within 0.2 to 3.  Sets emission->temperature and releases
 * the prediction cache.
 */
extern void hl_crf_fit_temperature(HlClassifier *emission, HlCrfTransitions *transitions,
								   uint32_t n_labels, const HlCrfData *heldout,
								   HlCrfCalibration *out);

#endif							/* HL_MODEL_CRF_H */

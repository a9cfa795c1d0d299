/*
 * crf_calibrate.c
 *		The temperature of a span model, fitted on held-out sentences
 *		(numeric core, no PostgreSQL headers); see model_crf.h.
 *
 * A span's probability is the posterior mean of the chance that exactly its
 * tokens form a span of its label.  On snips these probabilities came out
 * too low.  With 1,000 training sentences the decoded spans were right 81%
 * of the time at a mean probability of 0.74 (docs/span-calibration.md).  One
 * temperature dividing every score fixes most of such a shift without
 * moving the decoded spans.  It is chosen by the binary negative
 * log-likelihood of "this decoded span is exactly right" on sentences the
 * model was not trained on, the same event the probability states, plus a
 * prior that keeps it near 1.
 */
#include "model_crf.h"

#include <math.h>
#include <string.h>

#include "hl_alloc.h"

/* Search range of the temperature, and the golden-section steps in it. */
#define HL_CALIBRATION_T_MIN 0.2
#define HL_CALIBRATION_T_MAX 3.0
#define HL_CALIBRATION_STEPS 16

/*
 * Standard deviation of the normal prior on ln T.  It keeps T near 1 when
 * few held-out spans speak for a change and does little with hundreds.
 */
#define HL_CALIBRATION_PRIOR_SD 0.5

/* Probabilities are clipped to this distance from 0 and 1 in the NLL. */
#define HL_CALIBRATION_CLIP 1e-6

/*
 * Held-out sentences that the search predicts, the first ones in training
 * order.  Each step tags them all, so a bound keeps the fit's cost flat for
 * very large models.  Every sentence counts once, whatever its weight, so
 * a row with several annotations counts once per annotation.
 */
#define HL_CALIBRATION_MAX_SENTENCES 4000

typedef struct CalibrationSet
{
	const HlCrfData *data;
	uint32_t	n_sentences;
	uint32_t	n_labels;
	HlSentenceFeatures view;	/* points into data, owns nothing */
	HlTaggerOutput out;
	HlTagSpan  *gold;			/* scratch, one per token of the longest sentence */
	double		nll;			/* of the last evaluation */
	double		brier;
	uint64_t	gold_spans;
	uint64_t	predicted_spans;
	uint64_t	correct_spans;
} CalibrationSet;

/* Point the view at sentence s of the held-out data. */
static void
view_sentence(CalibrationSet *set, uint32_t s)
{
	const HlCrfData *data = set->data;
	uint32_t	first = data->sentence_start[s];

	set->view.n_tokens = data->sentence_start[s + 1] - first;
	set->view.row_start = (uint64_t *) (data->row_start + first);
	set->view.index = (uint32_t *) data->index;
	set->view.value = (float *) data->value;
}

/* Tag every sentence at temperature t and set the mean NLL and Brier score. */
static void
evaluate(CalibrationSet *set, HlClassifier *emission, HlCrfTransitions *transitions, double t)
{
	double		nll = 0.0;
	double		brier = 0.0;

	emission->temperature = (float) t;
	hl_crf_release(transitions);
	hl_crf_prepare(emission, transitions);

	set->gold_spans = set->predicted_spans = set->correct_spans = 0;
	for (uint32_t s = 0; s < set->n_sentences; s++)
	{
		const int32_t *tags = set->data->tag + set->data->sentence_start[s];
		uint32_t	n_gold;

		if (s % 256 == 0)
			hl_check_interrupt();

		view_sentence(set, s);
		hl_crf_predict(emission, transitions, set->n_labels, &set->view, &set->out);
		n_gold = hl_spans_from_tags(tags, set->view.n_tokens, set->gold);
		set->gold_spans += n_gold;
		set->predicted_spans += set->out.n_spans;

		for (uint32_t i = 0; i < set->out.n_spans; i++)
		{
			const HlTagSpan *sp = &set->out.spans[i];
			double		p = fmin(fmax(sp->probability, HL_CALIBRATION_CLIP), 1.0 - HL_CALIBRATION_CLIP);
			int			hit = 0;

			for (uint32_t g = 0; g < n_gold && !hit; g++)
				hit = set->gold[g].first_token == sp->first_token &&
					set->gold[g].end_token == sp->end_token && set->gold[g].label == sp->label;
			set->correct_spans += hit;
			nll -= hit ? log(p) : log1p(-p);
			brier += (sp->probability - hit) * (sp->probability - hit);
		}
	}
	set->nll = set->predicted_spans > 0 ? nll / set->predicted_spans : NAN;
	set->brier = set->predicted_spans > 0 ? brier / set->predicted_spans : NAN;
}

/*
 * Return the quantity the search minimises at temperature t: the summed NLL
 * of the decoded spans plus the negative log of a normal prior on ln T.
 */
static double
objective(CalibrationSet *set, HlClassifier *emission, HlCrfTransitions *transitions, double t)
{
	double		log_t = log(t);

	evaluate(set, emission, transitions, t);
	return set->nll * set->predicted_spans +
		log_t * log_t / (2.0 * HL_CALIBRATION_PRIOR_SD * HL_CALIBRATION_PRIOR_SD);
}

void
hl_crf_fit_temperature(HlClassifier *emission, HlCrfTransitions *transitions,
					   uint32_t n_labels, const HlCrfData *heldout, HlCrfCalibration *out)
{
	CalibrationSet set;
	uint32_t	longest = 1;
	double		lo = log(HL_CALIBRATION_T_MIN);
	double		hi = log(HL_CALIBRATION_T_MAX);
	double		golden = (sqrt(5.0) - 1.0) / 2.0;
	double		a;
	double		b;
	double		fa;
	double		fb;
	double		best_t = 1.0;
	double		best;

	memset(&set, 0, sizeof(set));
	set.data = heldout;
	set.n_labels = n_labels;
	set.n_sentences = heldout->n_sentences < HL_CALIBRATION_MAX_SENTENCES ?
		heldout->n_sentences : HL_CALIBRATION_MAX_SENTENCES;
	for (uint32_t s = 0; s < set.n_sentences; s++)
	{
		uint32_t	n = heldout->sentence_start[s + 1] - heldout->sentence_start[s];

		if (n > longest)
			longest = n;
	}
	set.gold = hl_alloc_array(longest, sizeof(HlTagSpan));
	hl_tagger_output_init(&set.out);

	/* T = 1 first: the reference, and the result when the spans cannot fit T. */
	best = objective(&set, emission, transitions, 1.0);
	memset(out, 0, sizeof(*out));
	out->sentences = set.n_sentences;
	out->gold_spans = set.gold_spans;
	out->predicted_spans = set.predicted_spans;
	out->correct_spans = set.correct_spans;
	out->nll_before = set.nll;
	out->brier_before = set.brier;

	/*
	 * With every decoded span right, a lower T always looks better and the
	 * search would run to its bound, so T is fitted only when the held-out
	 * spans have enough of both outcomes.
	 */
	out->fitted = set.predicted_spans >= HL_CRF_MIN_CALIBRATION_SPANS &&
		set.predicted_spans - set.correct_spans >= HL_CRF_MIN_CALIBRATION_ERRORS;

	/*
	 * Golden-section search over log T, because the NLL of a one-parameter
	 * scaling is close to unimodal.  T = 1 stays the result unless a point of
	 * the search beats it.
	 */
	if (out->fitted)
	{
		a = hi - golden * (hi - lo);
		b = lo + golden * (hi - lo);
		fa = objective(&set, emission, transitions, exp(a));
		fb = objective(&set, emission, transitions, exp(b));
		for (int step = 0; step < HL_CALIBRATION_STEPS; step++)
		{
			if (fa < best)
				best = fa, best_t = exp(a);
			if (fb < best)
				best = fb, best_t = exp(b);
			if (fa <= fb)
			{
				hi = b;
				b = a;
				fb = fa;
				a = hi - golden * (hi - lo);
				fa = objective(&set, emission, transitions, exp(a));
			}
			else
			{
				lo = a;
				a = b;
				fa = fb;
				b = lo + golden * (hi - lo);
				fb = objective(&set, emission, transitions, exp(b));
			}
		}
		if (fa < best)
			best = fa, best_t = exp(a);
		if (fb < best)
			best = fb, best_t = exp(b);
	}

	evaluate(&set, emission, transitions, best_t);
	out->temperature = best_t;
	out->nll_after = set.nll;
	out->brier_after = set.brier;

	hl_crf_release(transitions);
	hl_tagger_output_free(&set.out);
	hl_free(set.gold);
}

/*
 * metrics.c
 *		Evaluation metrics of a classifier's predictive distribution and of
 *		its abstention rule (numeric core, no PostgreSQL headers).
 *
 * Every metric is weighted by the row weights, so an item labelled twice
 * "card" and once "fees" counts two thirds as a "card" row and one third as
 * a "fees" row, as in training.  The predicted class is the most probable
 * one, ties going to the lower class number.
 *
 * ECE (Guo et al. 2017, "On calibration of modern neural networks"):
 * HL_ECE_BINS equal-width bins over the top-class probability, and the
 * weighted mean over bins of |accuracy - mean confidence|.  The Brier score
 * is the multi-class one, sum_k (p_k - y_k)^2, between 0 and 2.
 */
#include "metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hl_alloc.h"

/* Smallest probability the NLL takes the logarithm of. */
#define NLL_FLOOR 1e-12

/*
 * Confidences closer than this, relative to 1 or their size, tie for a
 * threshold: 16 float steps at 1.
 */
#define HL_CONFIDENCE_TIE (16 * FLT_EPSILON)

float
hl_confidence(HlConfidenceScore score, const HlPrediction *prediction)
{
	switch (score)
	{
		case HL_SCORE_ENTROPY:
			return -prediction->entropy;
		case HL_SCORE_PROBABILITY_MI:
			return prediction->probability - prediction->mutual_information;
		case HL_SCORE_PROBABILITY_NOVELTY:
			if (isnan(prediction->novelty))
				return prediction->probability;
			return prediction->probability - HL_NOVELTY_WEIGHT * prediction->novelty;
		case HL_SCORE_PROBABILITY:
		default:
			return prediction->probability;
	}
}

static const char *const score_names[] = {"probability", "entropy", "probability_mi", "probability_novelty"};

int
hl_confidence_score_parse(const char *name, HlConfidenceScore *score)
{
	for (size_t i = 0; i < sizeof(score_names) / sizeof(score_names[0]); i++)
	{
		if (strcmp(name, score_names[i]) == 0)
		{
			*score = (HlConfidenceScore) i;
			return 1;
		}
	}
	return 0;
}

const char *
hl_confidence_score_name(HlConfidenceScore score)
{
	if ((size_t) score < sizeof(score_names) / sizeof(score_names[0]))
		return score_names[score];
	return "probability";
}

/* Return the most probable class of a row, the lower number on ties. */
static uint32_t
argmax(const float *p, uint32_t k)
{
	uint32_t	best = 0;

	for (uint32_t c = 1; c < k; c++)
		if (p[c] > p[best])
			best = c;
	return best;
}

void
hl_metrics_compute(const HlScoredRows *rows, double threshold,
				   HlMetrics *out, HlClassMetrics *per_class)
{
	uint32_t	k = rows->n_classes;
	HlClassMetrics *cls = hl_alloc_array(k > 0 ? k : 1, sizeof(HlClassMetrics));
	double		bin_rows[HL_ECE_BINS] = {0};
	double		bin_correct[HL_ECE_BINS] = {0};
	double		bin_confidence[HL_ECE_BINS] = {0};
	double		nll = 0.0;
	double		brier = 0.0;
	double		f1_sum = 0.0;
	uint32_t	f1_classes = 0;

	memset(out, 0, sizeof(*out));

	for (uint32_t i = 0; i < rows->n_rows; i++)
	{
		const float *p = rows->proba + (size_t) i * k;
		double		w = rows->weight ? rows->weight[i] : 1.0;
		int32_t		y = rows->label[i];
		uint32_t	predicted = argmax(p, k);
		double		top = p[predicted];
		int			correct = (int32_t) predicted == y;
		int			bin = (int) (top * HL_ECE_BINS);
		double		sq = 0.0;

		if (w <= 0.0)
			continue;

		out->rows += w;
		if (correct)
			out->correct += w;

		nll -= w * log(fmax(p[y], NLL_FLOOR));
		for (uint32_t c = 0; c < k; c++)
		{
			double		d = p[c] - (c == (uint32_t) y ? 1.0 : 0.0);

			sq += d * d;
		}
		brier += w * sq;

		bin = bin < 0 ? 0 : (bin >= HL_ECE_BINS ? HL_ECE_BINS - 1 : bin);
		bin_rows[bin] += w;
		bin_confidence[bin] += w * top;
		if (correct)
			bin_correct[bin] += w;

		cls[y].support += w;
		cls[predicted].predicted += w;
		if (correct)
			cls[y].true_positive += w;

		if (rows->confidence == NULL || rows->confidence[i] >= threshold)
		{
			out->automatic_rows += w;
			if (correct)
				out->automatic_correct += w;
		}
	}

	if (out->rows > 0.0)
	{
		out->accuracy = out->correct / out->rows;
		out->nll = nll / out->rows;
		out->brier = brier / out->rows;
		out->coverage = out->automatic_rows / out->rows;
		for (int b = 0; b < HL_ECE_BINS; b++)
			if (bin_rows[b] > 0.0)
				out->ece += fabs(bin_correct[b] - bin_confidence[b]) / out->rows;
	}
	else
	{
		out->accuracy = out->nll = out->brier = out->ece = out->coverage = NAN;
	}
	out->automatic_accuracy = out->automatic_rows > 0.0 ?
		out->automatic_correct / out->automatic_rows : NAN;

	/* Macro-F1 over the classes that occur or are predicted. */
	for (uint32_t c = 0; c < k; c++)
	{
		HlClassMetrics *m = &cls[c];

		m->precision = m->predicted > 0.0 ? m->true_positive / m->predicted : 0.0;
		m->recall = m->support > 0.0 ? m->true_positive / m->support : 0.0;
		m->f1 = m->precision + m->recall > 0.0 ?
			2.0 * m->precision * m->recall / (m->precision + m->recall) : 0.0;
		if (m->support > 0.0 || m->predicted > 0.0)
		{
			f1_sum += m->f1;
			f1_classes++;
		}
	}
	out->macro_f1 = f1_classes > 0 ? f1_sum / f1_classes : NAN;

	if (per_class != NULL)
		memcpy(per_class, cls, sizeof(HlClassMetrics) * k);
	hl_free(cls);
}

void
hl_wilson_interval(double successes, double n, double z, double *low, double *high)
{
	double		p;
	double		z2 = z * z;
	double		centre;
	double		half;

	if (n <= 0.0)
	{
		*low = 0.0;
		*high = 1.0;
		return;
	}
	p = successes / n;
	centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
	half = z * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / (1.0 + z2 / n);
	*low = successes <= 0.0 ? 0.0 : fmax(0.0, centre - half);
	*high = successes >= n ? 1.0 : fmin(1.0, centre + half);
}

/* A row's confidence, weight and correctness, for sorting. */
typedef struct RankedRow
{
	float		confidence;
	float		weight;
	int			correct;
} RankedRow;

/* Order by descending confidence. */
static int
compare_confidence_desc(const void *a, const void *b)
{
	float		ca = ((const RankedRow *) a)->confidence;
	float		cb = ((const RankedRow *) b)->confidence;

	return (ca < cb) - (ca > cb);
}

double
hl_abstention_threshold(const HlScoredRows *rows, double target_accuracy,
						double target_coverage)
{
	uint32_t	n = rows->n_rows;
	RankedRow  *ranked;
	double		total = 0.0;
	double		covered = 0.0;
	double		correct = 0.0;
	double		threshold;
	uint32_t	m = 0;

	if (n == 0)
		return NAN;

	ranked = hl_alloc_array(n, sizeof(RankedRow));
	for (uint32_t i = 0; i < n; i++)
	{
		const float *p = rows->proba + (size_t) i * rows->n_classes;
		float		w = rows->weight ? rows->weight[i] : 1.0f;

		if (w <= 0.0f)
			continue;
		ranked[m].confidence = rows->confidence[i];
		ranked[m].weight = w;
		ranked[m].correct = (int32_t) argmax(p, rows->n_classes) == rows->label[i];
		total += w;
		m++;
	}
	if (m == 0)
	{
		hl_free(ranked);
		return NAN;
	}
	qsort(ranked, m, sizeof(RankedRow), compare_confidence_desc);

	/* Above every confidence: nothing is automatic. */
	threshold = nextafterf(ranked[0].confidence, INFINITY);

	/*
	 * Walk down the confidences.  A threshold can only sit between distinct
	 * values, so a run of equal confidences is taken whole.  Values within
	 * HL_CONFIDENCE_TIE of the run's first count as equal, because
	 * out-of-fold models of the same texts differ in the last bits.
	 */
	for (uint32_t i = 0; i < m;)
	{
		uint32_t	j = i;
		double		scale = fabs(ranked[i].confidence) > 1.0 ? fabs(ranked[i].confidence) : 1.0;
		double		tie = HL_CONFIDENCE_TIE * scale;

		while (j < m && ranked[i].confidence - ranked[j].confidence <= tie)
		{
			covered += ranked[j].weight;
			if (ranked[j].correct)
				correct += ranked[j].weight;
			j++;
		}

		if (target_accuracy > 0.0)
		{
			/* Keep walking: a lower threshold may still meet the target. */
			if (correct >= target_accuracy * covered)
				threshold = ranked[j - 1].confidence;
		}
		else if (covered >= target_coverage * total)
		{
			threshold = ranked[j - 1].confidence;
			break;
		}
		i = j;
	}

	hl_free(ranked);
	return threshold;
}

/*
 * model_tagger.c
 *		Bayesian span tagger (numeric core, no PostgreSQL headers).
 *
 * Each token's tag distribution comes from the Laplace posterior of the
 * token classifier (see model_classifier.c): logit means mu and variances
 * s^2, then HL_TAGGER_SAMPLES draws p_s = softmax((mu + sqrt(c) s eps_s) / T)
 * with the classifier's fitted temperature T and variance scale c.  The
 * draws are fixed antithetic normal pairs, so predictions are reproducible.
 *
 * Decoding runs Viterbi over the logarithms of the posterior-mean token
 * distributions, allowing I-l only after B-l or I-l.  A decoded span of
 * tokens a .. b-1 with label l gets, in draw s, the probability
 *
 *	 P_s = p_s(a, B-l) * prod_{a<t<b} p_s(t, I-l) * (1 - p_s(b, I-l))
 *
 * that exactly those tokens form a span of label l (the last factor, that
 * the span does not go on, is left out at the sentence end).  The span's
 * probability is the mean of P_s over the draws, and its mutual information
 * is the BALD score of that yes/no event: H_b(mean P_s) - mean H_b(P_s),
 * with H_b the binary entropy.  The tokens are treated as independent given
 * the weights, as the token classifier models them.
 */
#include "model_tagger.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "hl_alloc.h"

#define EPS_CLASSES (2 * HL_TAGGER_MAX_LABELS + 1)

/* Standard normal draws: row s + S/2 is row s negated (antithetic pairs). */
static float eps_table[HL_TAGGER_SAMPLES][EPS_CLASSES];
static bool eps_ready = false;

/* splitmix64: a small, well-mixed generator for the fixed draws. */
static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Fill eps_table once with Box-Muller draws from a fixed seed. */
static void
fill_eps_table(void)
{
	uint64_t	state = UINT64_C(0x7461676765720001);
	int			half = HL_TAGGER_SAMPLES / 2;

	if (eps_ready)
		return;
	for (int s = 0; s < half; s++)
		for (int c = 0; c < EPS_CLASSES; c++)
		{
			double		u1 = ((splitmix64(&state) >> 11) + 0.5) / 9007199254740992.0;
			double		u2 = (splitmix64(&state) >> 11) / 9007199254740992.0;
			float		e = (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));

			eps_table[s][c] = e;
			eps_table[s + half][c] = -e;
		}
	eps_ready = true;
}

uint32_t
hl_tags_from_spans(const HlToken *tokens, uint32_t n_tokens,
				   const HlCharSpan *spans, uint32_t n_spans, int32_t *tags)
{
	uint32_t	missed = 0;

	for (uint32_t t = 0; t < n_tokens; t++)
		tags[t] = HL_TAG_OUTSIDE;

	for (uint32_t i = 0; i < n_spans; i++)
	{
		const HlCharSpan *span = &spans[i];
		bool		first = true;

		for (uint32_t t = 0; t < n_tokens; t++)
		{
			if (tokens[t].char_end <= span->start)
				continue;
			if (tokens[t].char_start >= span->end)
				break;

			/* A token claimed by an earlier span also ends this one's run. */
			if (tags[t] != HL_TAG_OUTSIDE)
			{
				if (!first)
					break;
				continue;
			}
			tags[t] = first ? hl_tag_begin(span->label) : hl_tag_inside(span->label);
			first = false;
		}
		if (first)
			missed++;
	}
	return missed;
}

/* Return whether tag may follow tag prev (prev < 0: the sentence start). */
static inline bool
bio_allowed(int32_t prev, int32_t tag)
{
	if (tag == HL_TAG_OUTSIDE || tag % 2 == 1)
		return true;
	return prev == tag || prev == tag - 1;
}

void
hl_bio_decode(const float *logp, uint32_t n_tokens, uint32_t n_classes,
			  uint32_t n_tags, float *score, int32_t *back, int32_t *tags)
{
	if (n_tokens == 0)
		return;
	if (n_tags > n_classes)
		n_tags = n_classes;

	for (uint32_t c = 0; c < n_tags; c++)
		score[c] = bio_allowed(-1, (int32_t) c) ? logp[c] : -INFINITY;

	for (uint32_t t = 1; t < n_tokens; t++)
	{
		const float *prev = score + (size_t) (t - 1) * n_classes;
		float	   *cur = score + (size_t) t * n_classes;
		int32_t    *bp = back + (size_t) t * n_classes;
		int32_t		best = 0;

		/* O and B-l may follow any tag, so they share the best predecessor. */
		for (uint32_t c = 1; c < n_tags; c++)
			if (prev[c] > prev[best])
				best = (int32_t) c;

		for (uint32_t c = 0; c < n_tags; c++)
		{
			const float *row = logp + (size_t) t * n_classes;

			if (bio_allowed(-1, (int32_t) c))
			{
				cur[c] = prev[best] + row[c];
				bp[c] = best;
			}
			else
			{
				/* I-l: from B-l (c - 1) or I-l (c). */
				int32_t		from = prev[c - 1] >= prev[c] ? (int32_t) c - 1 : (int32_t) c;

				cur[c] = prev[from] + row[c];
				bp[c] = from;
			}
		}
	}

	/* Backtrack from the best final tag. */
	{
		const float *last = score + (size_t) (n_tokens - 1) * n_classes;
		int32_t		tag = 0;

		for (uint32_t c = 1; c < n_tags; c++)
			if (last[c] > last[tag])
				tag = (int32_t) c;
		for (uint32_t t = n_tokens; t-- > 0;)
		{
			tags[t] = tag;
			if (t > 0)
				tag = back[(size_t) t * n_classes + tag];
		}
	}
}

uint32_t
hl_spans_from_tags(const int32_t *tags, uint32_t n_tokens, HlTagSpan *spans)
{
	uint32_t	n = 0;

	for (uint32_t t = 0; t < n_tokens; t++)
	{
		int32_t		tag = tags[t];
		int32_t		label;
		uint32_t	end = t + 1;

		if (tag == HL_TAG_OUTSIDE || tag % 2 == 0)
			continue;
		label = hl_tag_label(tag);
		while (end < n_tokens && tags[end] == hl_tag_inside(label))
			end++;
		spans[n].first_token = t;
		spans[n].end_token = end;
		spans[n].label = label;
		spans[n].probability = 0.0f;
		spans[n].mutual_information = 0.0f;
		n++;
		t = end - 1;
	}
	return n;
}

void
hl_tagger_output_init(HlTaggerOutput *out)
{
	memset(out, 0, sizeof(*out));
}

void
hl_tagger_output_free(HlTaggerOutput *out)
{
	hl_free(out->proba);
	hl_free(out->samples);
	hl_free(out->entropy);
	hl_free(out->mutual_information);
	hl_free(out->margin);
	hl_free(out->tags);
	hl_free(out->spans);
	hl_free(out->logp);
	hl_free(out->score);
	hl_free(out->back);
	hl_free(out->mu);
	hl_free(out->sd);
	hl_free(out->z);
	hl_free(out->crf_work);
	memset(out, 0, sizeof(*out));
}

void
hl_tagger_output_reserve(HlTaggerOutput *out, uint32_t n, uint32_t k)
{
	size_t		cells;

	if (n <= out->max_tokens && k == out->n_classes && out->proba != NULL)
		return;
	hl_tagger_output_free(out);
	out->max_tokens = n < 32 ? 32 : n;
	out->n_classes = k;
	cells = (size_t) out->max_tokens * k;
	out->proba = hl_alloc_array(cells, sizeof(float));
	out->samples = hl_alloc_array(cells * HL_TAGGER_SAMPLES, sizeof(float));
	out->entropy = hl_alloc_array(out->max_tokens, sizeof(float));
	out->mutual_information = hl_alloc_array(out->max_tokens, sizeof(float));
	out->margin = hl_alloc_array(out->max_tokens, sizeof(float));
	out->tags = hl_alloc_array(out->max_tokens, sizeof(int32_t));
	out->spans = hl_alloc_array(out->max_tokens, sizeof(HlTagSpan));
	out->logp = hl_alloc_array(cells, sizeof(float));
	out->score = hl_alloc_array(cells, sizeof(float));
	out->back = hl_alloc_array(cells, sizeof(int32_t));
	out->mu = hl_alloc_array(k, sizeof(float));
	out->sd = hl_alloc_array(k, sizeof(float));
	out->z = hl_alloc_array(k, sizeof(float));
}

/* Write softmax(z) to q and return the entropy of q. */
static double
softmax_entropy(const float *z, uint32_t k, float *q)
{
	float		max = z[0];
	double		sum = 0.0;
	double		qz = 0.0;
	double		lse;

	for (uint32_t c = 1; c < k; c++)
		if (z[c] > max)
			max = z[c];
	for (uint32_t c = 0; c < k; c++)
	{
		q[c] = expf(z[c] - max);
		sum += q[c];
	}
	lse = max + log(sum);
	for (uint32_t c = 0; c < k; c++)
	{
		q[c] = (float) (q[c] / sum);
		qz += (double) q[c] * z[c];
	}
	return lse - qz;
}

static double
entropy_of(const float *p, uint32_t k)
{
	double		h = 0.0;

	for (uint32_t c = 0; c < k; c++)
		if (p[c] > 0.0f)
			h -= p[c] * log(p[c]);
	return h;
}

static double
binary_entropy(double x)
{
	double		h = 0.0;

	if (x > 0.0 && x < 1.0)
		h = -x * log(x) - (1.0 - x) * log1p(-x);
	return h;
}

/* Fill the draws, posterior mean and uncertainty of token t. */
static void
predict_token(const HlClassifier *model, const HlSparseVec *x, uint32_t n_tags,
			  HlTaggerOutput *out, uint32_t t)
{
	uint32_t	k = model->n_classes;
	float	   *mu = out->mu;
	float	   *sd = out->sd;
	float	   *z = out->z;
	float	   *p = out->proba + (size_t) t * k;
	float	   *draws = out->samples + (size_t) t * HL_TAGGER_SAMPLES * k;
	float		inv_t = 1.0f / model->temperature;
	double		mean_h = 0.0;
	float		first = 0.0f;
	float		second = 0.0f;

	for (uint32_t c = 0; c < k; c++)
	{
		mu[c] = model->bias_mean[c];
		sd[c] = 1.0f / model->bias_precision[c];
	}
	for (uint32_t e = 0; e < x->nnz; e++)
	{
		size_t		off = (size_t) x->index[e] * k;
		const float *w = model->mean + off;
		float		v = x->value[e];
		float		v2 = v * v;

		if (model->variance != NULL)
		{
			const float *u = model->variance + off;

			for (uint32_t c = 0; c < k; c++)
			{
				mu[c] += v * w[c];
				sd[c] += v2 * u[c];
			}
		}
		else
		{
			const float *h = model->precision + off;

			for (uint32_t c = 0; c < k; c++)
			{
				mu[c] += v * w[c];
				sd[c] += v2 / h[c];
			}
		}
	}
	for (uint32_t c = 0; c < k; c++)
		sd[c] = model->variance_scale > 0.0f ? sqrtf(model->variance_scale * sd[c]) : 0.0f;

	memset(p, 0, sizeof(float) * k);
	for (uint32_t s = 0; s < HL_TAGGER_SAMPLES; s++)
	{
		float	   *q = draws + (size_t) s * k;

		for (uint32_t c = 0; c < k; c++)
			z[c] = (mu[c] + sd[c] * eps_table[s][c]) * inv_t;
		mean_h += softmax_entropy(z, k, q) / HL_TAGGER_SAMPLES;
		for (uint32_t c = 0; c < k; c++)
			p[c] += q[c] * (1.0f / HL_TAGGER_SAMPLES);
	}

	out->entropy[t] = (float) entropy_of(p, k);
	out->mutual_information[t] = (float) fmax(out->entropy[t] - mean_h, 0.0);
	for (uint32_t c = 0; c < n_tags && c < k; c++)
	{
		if (p[c] > first)
		{
			second = first;
			first = p[c];
		}
		else if (p[c] > second)
			second = p[c];
	}
	out->margin[t] = first - second;
}

/* Set the probability and mutual information of decoded span sp. */
static void
score_span(const HlTaggerOutput *out, HlTagSpan *sp)
{
	uint32_t	k = out->n_classes;
	int32_t		b_tag = hl_tag_begin(sp->label);
	int32_t		i_tag = hl_tag_inside(sp->label);
	double		mean = 0.0;
	double		mean_h = 0.0;

	for (uint32_t s = 0; s < HL_TAGGER_SAMPLES; s++)
	{
		double		ps = 1.0;

		for (uint32_t t = sp->first_token; t < sp->end_token; t++)
		{
			const float *q = out->samples + ((size_t) t * HL_TAGGER_SAMPLES + s) * k;

			ps *= q[t == sp->first_token ? b_tag : i_tag];
		}
		if (sp->end_token < out->n_tokens)
		{
			const float *q = out->samples +
				((size_t) sp->end_token * HL_TAGGER_SAMPLES + s) * k;

			ps *= 1.0 - q[i_tag];
		}
		mean += ps / HL_TAGGER_SAMPLES;
		mean_h += binary_entropy(ps) / HL_TAGGER_SAMPLES;
	}
	sp->probability = (float) mean;
	sp->mutual_information = (float) fmax(binary_entropy(mean) - mean_h, 0.0);
}

void
hl_tagger_predict(const HlClassifier *classifier, uint32_t n_labels,
				  const HlSentenceFeatures *features, HlTaggerOutput *out)
{
	uint32_t	n = features->n_tokens;
	uint32_t	k = classifier->n_classes;
	uint32_t	n_tags = hl_tag_count(n_labels);

	fill_eps_table();
	hl_tagger_output_reserve(out, n, k);
	out->n_tokens = n;
	out->n_spans = 0;
	if (n == 0)
		return;

	for (uint32_t t = 0; t < n; t++)
	{
		HlSparseVec row;

		hl_sentence_row(features, t, &row);
		predict_token(classifier, &row, n_tags, out, t);
	}

	/* Viterbi over the logarithms of the posterior-mean probabilities. */
	for (size_t i = 0; i < (size_t) n * k; i++)
		out->logp[i] = logf(fmaxf(out->proba[i], 1e-30f));
	hl_bio_decode(out->logp, n, k, n_tags, out->score, out->back, out->tags);

	out->n_spans = hl_spans_from_tags(out->tags, n, out->spans);
	for (uint32_t i = 0; i < out->n_spans; i++)
		score_span(out, &out->spans[i]);
}

/*
 * crf_predict.c
 *		Prediction with the Bayesian linear-chain CRF (numeric core, no
 *		PostgreSQL headers); see model_crf.h.
 *
 * The tags are the Viterbi path of the posterior mean weights.  Uncertainty
 * comes from HL_CRF_SAMPLES draws of the weights from the diagonal Laplace
 * posterior, fixed antithetic pairs so that predictions are reproducible.
 * A draw's emission score of token t and tag j is drawn from its Gaussian
 * marginal N(mu_t(j), c (sum_f x_tf^2 / h_fj + 1 / h_bias_j)), with c the
 * model's variance_scale.  Tokens are drawn independently, which ignores
 * the correlation of tokens sharing a feature.  Transitions are drawn once
 * per draw, with the same scale, and cached by hl_crf_prepare.  Span
 * models are trained with c = 0.01, because draws at the whole Laplace
 * variance made span probabilities far too low (train_spans.c).
 *
 * In each draw forward-backward gives the token marginals p_t and, for a
 * decoded span of tokens a .. b-1 with label l, the probability that
 * exactly those tokens form a span of l: y_a = B-l, y_{a+1..b-1} = I-l and
 * y_b != I-l.  Token marginals and span probabilities are averaged over the
 * draws; the mutual information of a token is H(mean p_t) - mean H(p_t),
 * and that of a span is the same for its yes/no event.
 *
 * The drawn scores are divided by the model's temperature T before
 * forward-backward, which sharpens the marginals for T < 1 and flattens
 * them for T > 1.  The Viterbi path does not depend on T.  hl_train fits T
 * on held-out sentences (crf_calibrate.c), and versions without one have
 * T = 1.
 */
#include "model_crf.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "crf_lattice.h"
#include "hl_alloc.h"

/*
 * Normal draws, row s + S/2 the negation of row s.  The first half of the
 * columns serves emissions, indexed by (t * K + j) modulo EPS_HALF, and the
 * second half serves transitions.
 * NOTE: past 4096 / K tokens (51 with the 79 tags of snips) a sentence
 * reuses emission draws, so its far-apart tokens get correlated noise.
 */
#define EPS_HALF 4096
static float eps_table[HL_CRF_SAMPLES][2 * EPS_HALF];
static bool eps_ready = false;

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
	uint64_t	state = UINT64_C(0x6372660000000001);
	int			half = HL_CRF_SAMPLES / 2;

	if (eps_ready)
		return;
	for (int s = 0; s < half; s++)
		for (int c = 0; c < 2 * EPS_HALF; c++)
		{
			double		u1 = ((splitmix64(&state) >> 11) + 0.5) / 9007199254740992.0;
			double		u2 = (splitmix64(&state) >> 11) / 9007199254740992.0;
			float		e = (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));

			eps_table[s][c] = e;
			eps_table[s + half][c] = -e;
		}
	eps_ready = true;
}

/* Return the doubles one cached lattice takes in transitions->draws. */
static size_t
lattice_doubles(uint32_t k, uint32_t n_dense)
{
	return (size_t) k * n_dense + 3 * (size_t) k;
}

/* Point lat (its dense_tag already set) at draw s of the cache. */
static void
view_draw(const HlCrfTransitions *transitions, uint32_t s, CrfLattice *lat)
{
	uint32_t	k = transitions->n_tags;
	double	   *base = transitions->draws + s * lattice_doubles(k, lat->n_dense);

	lat->dense = base;
	lat->start = base + (size_t) k * lat->n_dense;
	lat->from_begin = lat->start + k;
	lat->from_inside = lat->from_begin + k;
}

/*
 * List the emission weights with a variance by feature, so that a token's
 * scores read a few contiguous numbers per feature instead of two rows of
 * K floats in arrays of dim x K.
 */
static void
cache_pairs(const HlClassifier *emission, HlCrfTransitions *transitions)
{
	uint32_t	k = emission->n_classes;
	size_t		cells = (size_t) emission->dim * k;
	size_t		n = 0;
	size_t		q = 0;

	for (size_t c = 0; c < cells; c++)
		if (emission->precision[c] < FLT_MAX)
			n++;
	transitions->pair_start = hl_alloc_array((size_t) emission->dim + 1, sizeof(uint64_t));
	transitions->pair_tag = hl_alloc_array(n < 1 ? 1 : n, sizeof(uint32_t));
	transitions->pair_mean = hl_alloc_array(n < 1 ? 1 : n, sizeof(float));
	transitions->pair_variance = hl_alloc_array(n < 1 ? 1 : n, sizeof(float));
	for (uint32_t f = 0; f < emission->dim; f++)
	{
		transitions->pair_start[f] = q;
		for (uint32_t j = 0; j < k; j++)
		{
			size_t		c = (size_t) f * k + j;

			if (emission->precision[c] < FLT_MAX)
			{
				transitions->pair_tag[q] = j;
				transitions->pair_mean[q] = emission->mean[c];
				transitions->pair_variance[q] = 1.0f / emission->precision[c];
				q++;
			}
		}
	}
	transitions->pair_start[emission->dim] = q;
}

void
hl_crf_prepare(HlClassifier *emission, HlCrfTransitions *transitions)
{
	uint32_t	k = transitions->n_tags;
	size_t		cells = (size_t) (k + 1) * k;
	float	   *a = hl_alloc_array(cells, sizeof(float));
	double		inverse_t = 1.0 / emission->temperature;
	CrfLattice	lat;

	fill_eps_table();
	if (transitions->draws != NULL)
		return;
	cache_pairs(emission, transitions);

	crf_lattice_init(&lat, k);
	transitions->n_dense = lat.n_dense;
	transitions->dense_tag = hl_alloc_array(lat.n_dense, sizeof(uint32_t));
	memcpy(transitions->dense_tag, lat.dense_tag, sizeof(uint32_t) * lat.n_dense);
	transitions->draws = hl_alloc_array(HL_CRF_SAMPLES * lattice_doubles(k, lat.n_dense),
										sizeof(double));
	for (uint32_t s = 0; s < HL_CRF_SAMPLES; s++)
	{
		CrfLattice	view = lat;

		for (size_t c = 0; c < cells; c++)
		{
			float		h = transitions->precision[c];

			a[c] = transitions->mean[c];
			if (h > 0.0f)
				a[c] += eps_table[s][EPS_HALF + c % EPS_HALF] * sqrtf(emission->variance_scale / h);
			a[c] = (float) (a[c] * inverse_t);
		}
		view_draw(transitions, s, &view);
		crf_lattice_fill_float(&view, a);
	}
	crf_lattice_free(&lat);
	hl_free(a);
}

void
hl_crf_release(HlCrfTransitions *transitions)
{
	hl_free(transitions->draws);
	hl_free(transitions->dense_tag);
	hl_free(transitions->pair_start);
	hl_free(transitions->pair_tag);
	hl_free(transitions->pair_mean);
	hl_free(transitions->pair_variance);
	transitions->draws = NULL;
	transitions->dense_tag = NULL;
	transitions->pair_start = NULL;
	transitions->pair_tag = NULL;
	transitions->pair_mean = NULL;
	transitions->pair_variance = NULL;
}

/* Workspace of one prediction, carved from out->crf_work. */
typedef struct CrfScratch
{
	CrfPass		pass;
	double	   *mu;				/* n x K emission means */
	double	   *sd;				/* n x K emission standard deviations */
	double	   *psi;			/* n x K scores of one draw */
	double	   *viterbi;		/* n x K */
	double	   *mean_entropy;	/* n */
} CrfScratch;

static void
carve_scratch(HlTaggerOutput *out, uint32_t n, uint32_t k, uint32_t n_dense, CrfScratch *sc)
{
	size_t		cells = (size_t) n * k;
	size_t		need = 8 * cells + 3 * (size_t) n + 2 * (size_t) k + n_dense;
	double	   *p;

	if (out->crf_work_size < need)
	{
		hl_free(out->crf_work);
		out->crf_work = hl_alloc_array(need, sizeof(double));
		out->crf_work_size = need;
	}
	p = out->crf_work;
	sc->pass.n = n;
	sc->pass.emit = p, p += cells;
	sc->pass.alpha = p, p += cells;
	sc->pass.beta = p, p += cells;
	sc->mu = p, p += cells;
	sc->sd = p, p += cells;
	sc->psi = p, p += cells;
	sc->viterbi = p, p += cells;
	sc->pass.y = p, p += cells;		/* needs only K, but n x K is simpler to size */
	sc->pass.shift = p, p += n;
	sc->pass.scale = p, p += n;
	sc->mean_entropy = p, p += n;
	sc->pass.v = p, p += k;
	sc->pass.vd = p, p += n_dense;
}

/* Write the posterior mean and standard deviation of every emission score. */
static void
emission_moments(const HlClassifier *emission, const HlCrfTransitions *transitions,
				 const HlSentenceFeatures *features, uint32_t n_tags, CrfScratch *sc)
{
	uint32_t	k = emission->n_classes;

	for (uint32_t t = 0; t < features->n_tokens; t++)
	{
		double	   *mu = sc->mu + (size_t) t * k;
		double	   *var = sc->sd + (size_t) t * k;
		HlSparseVec row;

		hl_sentence_row(features, t, &row);
		for (uint32_t j = 0; j < k; j++)
		{
			mu[j] = emission->bias_mean[j];
			var[j] = 1.0 / emission->bias_precision[j];
		}
		for (uint32_t e = 0; e < row.nnz; e++)
		{
			uint32_t	f = row.index[e];
			double		x = row.value[e];
			double		x2 = x * x;

			for (uint64_t q = transitions->pair_start[f]; q < transitions->pair_start[f + 1]; q++)
			{
				uint32_t	j = transitions->pair_tag[q];

				mu[j] += x * transitions->pair_mean[q];
				var[j] += x2 * transitions->pair_variance[q];
			}
		}
		for (uint32_t j = 0; j < k; j++)
		{
			var[j] = sqrt(var[j] * emission->variance_scale);
			if (j >= n_tags)
				mu[j] = -INFINITY;	/* the phantom tag of a model without labels */
		}
	}
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

/* Return the probability, in the current draw, that exactly span sp is a span. */
static double
span_probability(const CrfLattice *lat, const CrfPass *pass, uint32_t n, const HlTagSpan *sp)
{
	uint32_t	k = lat->n_tags;
	uint32_t	b_tag = (uint32_t) hl_tag_begin(sp->label);
	uint32_t	i_tag = (uint32_t) hl_tag_inside(sp->label);
	uint32_t	last = sp->end_token - 1;
	double		p = pass->alpha[(size_t) sp->first_token * k + b_tag];
	double		tail;

	for (uint32_t t = sp->first_token + 1; t <= last; t++)
	{
		double		step = t == sp->first_token + 1 ? lat->from_begin[i_tag] : lat->from_inside[i_tag];

		p *= step * pass->emit[(size_t) t * k + i_tag] / pass->scale[t];
	}
	tail = pass->beta[(size_t) last * k + (last == sp->first_token ? b_tag : i_tag)];
	if (sp->end_token < n)
	{
		double		step = last == sp->first_token ? lat->from_begin[i_tag] : lat->from_inside[i_tag];
		uint32_t	t = sp->end_token;

		tail -= step * pass->emit[(size_t) t * k + i_tag] * pass->beta[(size_t) t * k + i_tag] /
			pass->scale[t];
	}
	p *= tail;
	return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
}

void
hl_crf_predict(const HlClassifier *emission, const HlCrfTransitions *transitions,
			   uint32_t n_labels, const HlSentenceFeatures *features, HlTaggerOutput *out)
{
	uint32_t	n = features->n_tokens;
	uint32_t	k = emission->n_classes;
	uint32_t	n_tags = hl_tag_count(n_labels);
	double		inverse_t = 1.0 / emission->temperature;
	CrfLattice	lat;
	CrfScratch	sc;

	hl_tagger_output_reserve(out, n, k);
	out->n_tokens = n;
	out->n_spans = 0;
	if (n == 0)
		return;

	memset(&lat, 0, sizeof(lat));
	lat.n_tags = k;
	lat.n_dense = transitions->n_dense;
	lat.dense_tag = transitions->dense_tag;
	carve_scratch(out, n, k, lat.n_dense, &sc);
	emission_moments(emission, transitions, features, n_tags, &sc);

	/* Tags and spans: Viterbi with the posterior mean. */
	crf_viterbi(transitions->mean, k, sc.mu, n, sc.viterbi, out->back, out->tags, sc.pass.y);
	out->n_spans = hl_spans_from_tags(out->tags, n, out->spans);

	memset(out->proba, 0, sizeof(float) * n * k);
	memset(sc.mean_entropy, 0, sizeof(double) * n);
	for (uint32_t i = 0; i < out->n_spans; i++)
	{
		out->spans[i].probability = 0.0f;
		out->spans[i].mutual_information = 0.0f;
	}

	for (uint32_t s = 0; s < HL_CRF_SAMPLES; s++)
	{
		CrfLattice	view = lat;

		view_draw(transitions, s, &view);
		for (uint32_t t = 0; t < n; t++)
			for (uint32_t j = 0; j < k; j++)
			{
				size_t		cell = (size_t) t * k + j;

				sc.psi[cell] = (sc.mu[cell] + sc.sd[cell] * eps_table[s][cell % EPS_HALF]) * inverse_t;
			}
		crf_forward_backward(&view, sc.psi, n, &sc.pass);

		for (uint32_t t = 0; t < n; t++)
		{
			float	   *p = out->proba + (size_t) t * k;
			double		h = 0.0;

			for (uint32_t j = 0; j < k; j++)
			{
				size_t		cell = (size_t) t * k + j;
				double		q = sc.pass.alpha[cell] * sc.pass.beta[cell];

				p[j] += (float) (q / HL_CRF_SAMPLES);

				/*
				 * Below 1e-12 a tag adds under 3e-11 nats: skip its log.
				 * logf is accurate enough for an entropy and twice as fast.
				 */
				if (q > 1e-12)
					h -= q * logf((float) q);
			}
			sc.mean_entropy[t] += h / HL_CRF_SAMPLES;
		}

		/* Spans keep their draw sum in probability, their entropy sum in MI. */
		for (uint32_t i = 0; i < out->n_spans; i++)
		{
			double		ps = span_probability(&view, &sc.pass, n, &out->spans[i]);

			out->spans[i].probability += (float) (ps / HL_CRF_SAMPLES);
			out->spans[i].mutual_information += (float) (binary_entropy(ps) / HL_CRF_SAMPLES);
		}
	}

	for (uint32_t i = 0; i < out->n_spans; i++)
	{
		HlTagSpan  *sp = &out->spans[i];

		sp->mutual_information = (float) fmax(binary_entropy(sp->probability) - sp->mutual_information, 0.0);
	}
	for (uint32_t t = 0; t < n; t++)
	{
		const float *p = out->proba + (size_t) t * k;
		float		first = 0.0f;
		float		second = 0.0f;

		out->entropy[t] = (float) entropy_of(p, k);
		out->mutual_information[t] = (float) fmax(out->entropy[t] - sc.mean_entropy[t], 0.0);
		for (uint32_t j = 0; j < n_tags && j < k; j++)
		{
			if (p[j] > first)
			{
				second = first;
				first = p[j];
			}
			else if (p[j] > second)
				second = p[j];
		}
		out->margin[t] = first - second;
	}

}

/*
 * model_crf.c
 *		Training of the Bayesian linear-chain CRF (numeric core, no
 *		PostgreSQL headers); see model_crf.h.
 *
 * The objective is the sum over sentences of weight * (log Z - score of the
 * gold tags) plus lambda / 2 times the squared norm of every weight, biases
 * and transitions included, so lambda is the precision of a Gaussian prior
 * and the fit is the posterior mode.  Its gradient is the usual difference
 * of expected and observed feature counts (Lafferty, McCallum and Pereira,
 * ICML 2001), with the expectations from forward-backward (crf_lattice.c).
 *
 * The Laplace posterior keeps the diagonal of the Hessian's Gauss-Newton
 * part, the expected Fisher information: a weight of feature f and tag j
 * gets lambda + sum over tokens of weight * x_tf^2 * p_t(j) (1 - p_t(j)),
 * with p_t the token marginal at the mode; a transition gets lambda plus
 * the sum of xi (1 - xi) over its pairwise marginals xi.
 */
#include "model_crf.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "crf_lattice.h"
#include "hl_alloc.h"

#define LBFGS_MEMORY 10
#define LBFGS_TOLERANCE 1e-5
#define ARMIJO 1e-4

/*
 * Feature values are multiplied by this inside the fit.  Token rows are
 * L2-normalised over about 20 features, so their values are near 0.2, while
 * transitions and biases act with value 1; scaling brings them to the same
 * order, which L-BFGS needs to converge in few iterations.  The stored
 * weights are scaled back, so prediction uses the rows as they are.
 */
#define FEATURE_SCALE 4.0

void
hl_crf_transitions_alloc(HlCrfTransitions *transitions, uint32_t n_tags)
{
	size_t		cells = (size_t) (n_tags + 1) * n_tags;

	memset(transitions, 0, sizeof(*transitions));
	transitions->n_tags = n_tags;
	transitions->mean = hl_alloc_array(cells, sizeof(float));
	transitions->precision = hl_alloc_array(cells, sizeof(float));
}

void
hl_crf_transitions_free(HlCrfTransitions *transitions)
{
	hl_crf_release(transitions);
	hl_free(transitions->mean);
	hl_free(transitions->precision);
	memset(transitions, 0, sizeof(*transitions));
}

int
hl_crf_transition_allowed(uint32_t n_tags, uint32_t prev, uint32_t tag)
{
	if (!crf_is_inside(tag))
		return 1;
	if (prev == n_tags)
		return 0;
	return prev == tag || prev + 1 == tag;
}


/* State shared by the evaluations of one fit. */
typedef struct CrfFit
{
	const HlCrfData *data;
	uint32_t	k;
	size_t		n_weights;		/* emission weights: (feature, tag) pairs */
	size_t		n_params;
	uint64_t   *pair_start;		/* dim + 1: feature f's pairs are pair_start[f] .. */
	uint32_t   *pair_tag;		/* n_weights: the tag of each pair */
	CrfLattice	lattice;
	CrfPass		pass;
	double	   *psi;			/* max_tokens x K */
	double	   *diff;			/* K */
	double	   *pair_dense;		/* K x D expected transition counts, unscaled */
	double	   *pair_begin;		/* K */
	double	   *pair_inside;	/* K */
	double	   *messages;		/* max_tokens x D: dense backward messages of a sentence */
	uint32_t	max_tokens;
} CrfFit;

/*
 * List the (feature, tag) pairs that occur in the data: only they get an
 * emission weight, as in CRFsuite's default.  A feature's weights for tags
 * it never occurs with stay at zero, which cuts the weights, and the memory
 * each evaluation streams through, by an order of magnitude on snips.
 */
static void
find_pairs(CrfFit *fit)
{
	const HlCrfData *data = fit->data;
	uint32_t	k = fit->k;
	size_t		words_per_feature = (k + 63) / 64;
	uint64_t   *seen = hl_alloc_array((size_t) data->dim * words_per_feature, sizeof(uint64_t));
	uint32_t	n_tokens = data->sentence_start[data->n_sentences];
	size_t		q = 0;

	for (uint32_t t = 0; t < n_tokens; t++)
		for (uint64_t e = data->row_start[t]; e < data->row_start[t + 1]; e++)
		{
			uint32_t	tag = (uint32_t) data->tag[t];

			seen[data->index[e] * words_per_feature + tag / 64] |= UINT64_C(1) << (tag % 64);
		}

	fit->pair_start = hl_alloc_array((size_t) data->dim + 1, sizeof(uint64_t));
	for (uint32_t f = 0; f < data->dim; f++)
		for (size_t w = 0; w < words_per_feature; w++)
			q += (size_t) __builtin_popcountll(seen[f * words_per_feature + w]);
	fit->n_weights = q;
	fit->pair_tag = hl_alloc_array(q < 1 ? 1 : q, sizeof(uint32_t));
	q = 0;
	for (uint32_t f = 0; f < data->dim; f++)
	{
		fit->pair_start[f] = q;
		for (uint32_t j = 0; j < k; j++)
			if (seen[f * words_per_feature + j / 64] & (UINT64_C(1) << (j % 64)))
				fit->pair_tag[q++] = j;
	}
	fit->pair_start[data->dim] = q;
	hl_free(seen);
}

static void
crf_fit_init(CrfFit *fit, const HlCrfData *data)
{
	uint32_t	k = data->n_tags;

	memset(fit, 0, sizeof(*fit));
	fit->data = data;
	fit->k = k;
	find_pairs(fit);
	fit->n_params = fit->n_weights + k + (size_t) (k + 1) * k;
	crf_lattice_init(&fit->lattice, k);
	for (uint32_t s = 0; s < data->n_sentences; s++)
	{
		uint32_t	n = data->sentence_start[s + 1] - data->sentence_start[s];

		if (n > fit->max_tokens)
			fit->max_tokens = n;
	}
	crf_pass_reserve(&fit->pass, fit->max_tokens, k, fit->lattice.n_dense);
	fit->psi = hl_alloc_array((size_t) (fit->max_tokens < 1 ? 1 : fit->max_tokens) * k,
							  sizeof(double));
	fit->diff = hl_alloc_array(k, sizeof(double));
	fit->pair_dense = hl_alloc_array((size_t) k * fit->lattice.n_dense, sizeof(double));
	fit->pair_begin = hl_alloc_array(k, sizeof(double));
	fit->pair_inside = hl_alloc_array(k, sizeof(double));
	fit->messages = hl_alloc_array((size_t) (fit->max_tokens < 1 ? 1 : fit->max_tokens) *
								   fit->lattice.n_dense, sizeof(double));
}

static void
crf_fit_free(CrfFit *fit)
{
	hl_free(fit->pair_start);
	hl_free(fit->pair_tag);
	crf_lattice_free(&fit->lattice);
	crf_pass_free(&fit->pass);
	hl_free(fit->psi);
	hl_free(fit->diff);
	hl_free(fit->pair_dense);
	hl_free(fit->pair_begin);
	hl_free(fit->pair_inside);
	hl_free(fit->messages);
}

/* Write the emission scores of the n tokens from token first on into fit->psi. */
static void
emission_scores(const CrfFit *fit, const double *theta, uint32_t first, uint32_t n)
{
	const HlCrfData *data = fit->data;
	uint32_t	k = fit->k;
	const double *bias = theta + fit->n_weights;

	for (uint32_t t = 0; t < n; t++)
	{
		double	   *row = fit->psi + (size_t) t * k;

		memcpy(row, bias, sizeof(double) * k);
		for (uint64_t e = data->row_start[first + t]; e < data->row_start[first + t + 1]; e++)
		{
			uint32_t	f = data->index[e];
			double		x = FEATURE_SCALE * data->value[e];

			for (uint64_t q = fit->pair_start[f]; q < fit->pair_start[f + 1]; q++)
				row[fit->pair_tag[q]] += x * theta[q];
		}
	}
}

/* Return the score of the gold tags of the n tokens from token first on. */
static double
gold_score(const CrfFit *fit, const double *theta, uint32_t first, uint32_t n)
{
	const int32_t *tag = fit->data->tag + first;
	const double *a = theta + fit->n_weights + fit->k;
	uint32_t	k = fit->k;
	double		score = a[(size_t) k * k + tag[0]];

	for (uint32_t t = 0; t < n; t++)
	{
		score += fit->psi[(size_t) t * k + tag[t]];
		if (t > 0)
			score += a[(size_t) tag[t - 1] * k + tag[t]];
	}
	return score;
}

/*
 * Add the gradient of weight * (log Z - gold score) of one sentence to grad,
 * after forward-backward; pairwise counts go to fit->pair_* until
 * finish_transition_gradient scales them.
 */
static void
add_sentence_gradient(CrfFit *fit, uint32_t first, uint32_t n, double w, double *grad)
{
	const HlCrfData *data = fit->data;
	uint32_t	k = fit->k;
	const int32_t *tag = data->tag + first;
	double	   *grad_bias = grad + fit->n_weights;
	double	   *grad_a = grad_bias + k;
	CrfPass    *pass = &fit->pass;

	for (uint32_t t = 0; t < n; t++)
	{
		const double *a = pass->alpha + (size_t) t * k;
		const double *b = pass->beta + (size_t) t * k;

		for (uint32_t j = 0; j < k; j++)
			fit->diff[j] = w * a[j] * b[j];
		if (t == 0)
			for (uint32_t j = 0; j < k; j++)
				grad_a[(size_t) k * k + j] += fit->diff[j];
		fit->diff[tag[t]] -= w;
		for (uint32_t j = 0; j < k; j++)
			grad_bias[j] += fit->diff[j];
		for (uint64_t e = data->row_start[first + t]; e < data->row_start[first + t + 1]; e++)
		{
			uint32_t	f = data->index[e];
			double		x = FEATURE_SCALE * data->value[e];

			for (uint64_t q = fit->pair_start[f]; q < fit->pair_start[f + 1]; q++)
				grad[q] += x * fit->diff[fit->pair_tag[q]];
		}
	}
	grad_a[(size_t) k * k + tag[0]] -= w;

	/*
	 * Pairwise products alpha_{t-1} (x) message_t: the dense part as one
	 * matrix product over the sentence, which is much faster than a
	 * rank-one update per token.
	 */
	for (uint32_t t = 1; t < n; t++)
	{
		const double *prev = pass->alpha + (size_t) (t - 1) * k;

		crf_step_message(&fit->lattice, pass, t, pass->v);
		memcpy(fit->messages + (size_t) (t - 1) * fit->lattice.n_dense, pass->vd,
			   sizeof(double) * fit->lattice.n_dense);
		for (uint32_t j = 2; j < k; j += 2)
		{
			fit->pair_begin[j] += w * prev[j - 1] * pass->v[j];
			fit->pair_inside[j] += w * prev[j] * pass->v[j];
		}
		grad_a[(size_t) tag[t - 1] * k + tag[t]] -= w;
	}
	if (n > 1)
		cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) k, (int) fit->lattice.n_dense,
					(int) (n - 1), w, pass->alpha, (int) k, fit->messages,
					(int) fit->lattice.n_dense, 1.0, fit->pair_dense, (int) fit->lattice.n_dense);
}

/* Turn the accumulated pairwise products into expected transition counts. */
static void
finish_transition_gradient(CrfFit *fit, double *grad_a)
{
	const CrfLattice *lat = &fit->lattice;
	uint32_t	k = fit->k;

	for (uint32_t i = 0; i < k; i++)
		for (uint32_t d = 0; d < lat->n_dense; d++)
		{
			size_t		cell = (size_t) i * lat->n_dense + d;

			grad_a[(size_t) i * k + lat->dense_tag[d]] += fit->pair_dense[cell] * lat->dense[cell];
		}
	for (uint32_t j = 2; j < k; j += 2)
	{
		grad_a[(size_t) (j - 1) * k + j] += fit->pair_begin[j] * lat->from_begin[j];
		grad_a[(size_t) j * k + j] += fit->pair_inside[j] * lat->from_inside[j];
	}
}

/* Return the objective at theta and, when grad is not NULL, its gradient. */
static double
evaluate(CrfFit *fit, double lambda, const double *theta, double *grad)
{
	const HlCrfData *data = fit->data;
	uint32_t	k = fit->k;
	double		nll = 0.0;

	crf_lattice_fill_double(&fit->lattice, theta + fit->n_weights + k);
	if (grad != NULL)
	{
		memset(grad, 0, sizeof(double) * fit->n_params);
		memset(fit->pair_dense, 0, sizeof(double) * k * fit->lattice.n_dense);
		memset(fit->pair_begin, 0, sizeof(double) * k);
		memset(fit->pair_inside, 0, sizeof(double) * k);
	}

	for (uint32_t s = 0; s < data->n_sentences; s++)
	{
		uint32_t	first = data->sentence_start[s];
		uint32_t	n = data->sentence_start[s + 1] - first;
		double		w = data->weight != NULL ? data->weight[s] : 1.0;
		double		log_z;

		if (n == 0 || w == 0.0)
			continue;
		if (s % 256 == 0)
			hl_check_interrupt();
		emission_scores(fit, theta, first, n);
		log_z = crf_forward_backward(&fit->lattice, fit->psi, n, &fit->pass);
		nll += w * (log_z - gold_score(fit, theta, first, n));
		if (grad != NULL)
			add_sentence_gradient(fit, first, n, w, grad);
	}

	if (grad != NULL)
	{
		finish_transition_gradient(fit, grad + fit->n_weights + k);
		cblas_daxpy((int) fit->n_params, lambda, theta, 1, grad, 1);
	}
	return nll + 0.5 * lambda * cblas_ddot((int) fit->n_params, theta, 1, theta, 1);
}

/* Return NULL when the data can be fitted, else what is wrong. */
static const char *
check_data(const HlCrfData *data, uint32_t *bad)
{
	for (uint32_t s = 0; s < data->n_sentences; s++)
	{
		uint32_t	first = data->sentence_start[s];
		uint32_t	end = data->sentence_start[s + 1];

		*bad = s;
		if (end < first)
			return "sentence boundaries are not increasing";
		for (uint32_t t = first; t < end; t++)
		{
			int32_t		tag = data->tag[t];

			if (tag < 0 || (uint32_t) tag >= data->n_tags)
				return "a tag is out of range";
			if (!hl_crf_transition_allowed(data->n_tags, t == first ? data->n_tags : (uint32_t) data->tag[t - 1],
										   (uint32_t) tag))
				return "the tags break the BIO constraints";
			for (uint64_t e = data->row_start[t]; e < data->row_start[t + 1]; e++)
				if (data->index[e] >= data->dim)
					return "a feature index is out of range";
		}
		if (data->weight != NULL && !(data->weight[s] >= 0.0f && isfinite(data->weight[s])))
			return "a sentence weight is negative or not finite";
	}
	return NULL;
}

size_t
hl_crf_param_count(const HlCrfData *data)
{
	CrfFit		fit;
	size_t		n;

	crf_fit_init(&fit, data);
	n = fit.n_params;
	crf_fit_free(&fit);
	return n;
}

double
hl_crf_objective(const HlCrfData *data, double lambda, const double *theta, double *grad)
{
	CrfFit		fit;
	double		value;

	crf_fit_init(&fit, data);
	value = evaluate(&fit, lambda, theta, grad);
	crf_fit_free(&fit);
	return value;
}

/* L-BFGS with Armijo backtracking; the history is kept in float to halve its memory. */
static uint32_t
minimise(CrfFit *fit, double lambda, double *theta, uint32_t max_iterations,
		 uint32_t *evaluations, double *objective)
{
	size_t		n = fit->n_params;
	double	   *g = hl_alloc_array(n, sizeof(double));
	double	   *d = hl_alloc_array(n, sizeof(double));
	double	   *theta_new = hl_alloc_array(n, sizeof(double));
	double	   *g_new = hl_alloc_array(n, sizeof(double));
	float	   *s_hist = hl_alloc_array(n * LBFGS_MEMORY, sizeof(float));
	float	   *y_hist = hl_alloc_array(n * LBFGS_MEMORY, sizeof(float));
	double		rho[LBFGS_MEMORY];
	double		coef[LBFGS_MEMORY];
	uint32_t	n_hist = 0;
	uint32_t	head = 0;		/* slot of the next pair */
	uint32_t	it;
	double		f = evaluate(fit, lambda, theta, g);

	*evaluations = 1;
	for (it = 0; it < max_iterations; it++)
	{
		double		gd;
		double		step = 1.0;
		double		f_new = f;
		int			accepted = 0;

		hl_check_interrupt();

		/* Two-loop recursion: d = -H g. */
		for (size_t i = 0; i < n; i++)
			d[i] = -g[i];
		for (uint32_t m = 0; m < n_hist; m++)
		{
			uint32_t	slot = (head + LBFGS_MEMORY - 1 - m) % LBFGS_MEMORY;

			coef[slot] = 0.0;
			for (size_t i = 0; i < n; i++)
				coef[slot] += s_hist[slot * n + i] * d[i];
			coef[slot] *= rho[slot];
			for (size_t i = 0; i < n; i++)
				d[i] -= coef[slot] * y_hist[slot * n + i];
		}
		if (n_hist > 0)
		{
			uint32_t	last = (head + LBFGS_MEMORY - 1) % LBFGS_MEMORY;
			double		yy = 0.0;

			for (size_t i = 0; i < n; i++)
				yy += (double) y_hist[last * n + i] * y_hist[last * n + i];
			cblas_dscal((int) n, 1.0 / (rho[last] * yy), d, 1);
		}
		else
			step = 1.0 / fmax(cblas_dnrm2((int) n, g, 1), 1e-12);
		for (uint32_t m = n_hist; m-- > 0;)
		{
			uint32_t	slot = (head + LBFGS_MEMORY - 1 - m) % LBFGS_MEMORY;
			double		beta = 0.0;

			for (size_t i = 0; i < n; i++)
				beta += y_hist[slot * n + i] * d[i];
			beta *= rho[slot];
			for (size_t i = 0; i < n; i++)
				d[i] += (coef[slot] - beta) * s_hist[slot * n + i];
		}

		gd = cblas_ddot((int) n, g, 1, d, 1);
		if (!(gd < 0.0))
		{
			/* Not a descent direction: restart from steepest descent. */
			n_hist = 0;
			for (size_t i = 0; i < n; i++)
				d[i] = -g[i];
			gd = -cblas_ddot((int) n, g, 1, g, 1);
			step = 1.0 / fmax(sqrt(-gd), 1e-12);
		}

		for (int tries = 0; tries < 30; tries++)
		{
			for (size_t i = 0; i < n; i++)
				theta_new[i] = theta[i] + step * d[i];
			f_new = evaluate(fit, lambda, theta_new, g_new);
			(*evaluations)++;
			if (isfinite(f_new) && f_new <= f + ARMIJO * step * gd)
			{
				accepted = 1;
				break;
			}
			step *= 0.5;
		}
		if (!accepted)
			break;

		/* Store the pair s = step d, y = g_new - g when it keeps H positive. */
		{
			double		sy = 0.0;

			for (size_t i = 0; i < n; i++)
			{
				float		si = (float) (theta_new[i] - theta[i]);
				float		yi = (float) (g_new[i] - g[i]);

				s_hist[head * n + i] = si;
				y_hist[head * n + i] = yi;
				sy += (double) si * yi;
			}
			if (sy > 1e-12)
			{
				rho[head] = 1.0 / sy;
				head = (head + 1) % LBFGS_MEMORY;
				if (n_hist < LBFGS_MEMORY)
					n_hist++;
			}
		}

		memcpy(theta, theta_new, sizeof(double) * n);
		memcpy(g, g_new, sizeof(double) * n);
		if (f - f_new <= LBFGS_TOLERANCE * fmax(fabs(f_new), 1.0))
		{
			f = f_new;
			it++;
			break;
		}
		f = f_new;
	}

	*objective = f;
	hl_free(g);
	hl_free(d);
	hl_free(theta_new);
	hl_free(g_new);
	hl_free(s_hist);
	hl_free(y_hist);
	return it;
}

/*
 * Store theta as the posterior mean and the diagonal Laplace precision
 * (see the file header) in emission and transitions.
 */
static void
store_posterior(CrfFit *fit, double lambda, const double *theta,
				HlClassifier *emission, HlCrfTransitions *transitions)
{
	const HlCrfData *data = fit->data;
	const CrfLattice *lat = &fit->lattice;
	uint32_t	k = fit->k;
	const double *a = theta + fit->n_weights + k;
	float	   *prec_a = transitions->precision;

	/*
	 * A (feature, tag) pair that never occurs is no parameter of the fit:
	 * its weight is exactly zero, so it gets no variance (precision
	 * FLT_MAX).  A fitted weight, scaled back, has the precision
	 * lambda / scale^2 plus its Fisher term.
	 */
	for (size_t i = 0; i < (size_t) data->dim * k; i++)
	{
		emission->mean[i] = 0.0f;
		emission->precision[i] = FLT_MAX;
	}
	for (uint32_t f = 0; f < data->dim; f++)
		for (uint64_t q = fit->pair_start[f]; q < fit->pair_start[f + 1]; q++)
		{
			size_t		cell = (size_t) f * k + fit->pair_tag[q];

			emission->mean[cell] = (float) (FEATURE_SCALE * theta[q]);
			emission->precision[cell] = (float) (lambda / (FEATURE_SCALE * FEATURE_SCALE));
		}
	for (uint32_t j = 0; j < k; j++)
	{
		emission->bias_mean[j] = (float) theta[fit->n_weights + j];
		emission->bias_precision[j] = (float) lambda;
	}
	for (uint32_t i = 0; i <= k; i++)
		for (uint32_t j = 0; j < k; j++)
		{
			int			allowed = hl_crf_transition_allowed(k, i, j);

			transitions->mean[(size_t) i * k + j] = allowed ? (float) a[(size_t) i * k + j] : 0.0f;
			prec_a[(size_t) i * k + j] = allowed ? (float) lambda : 0.0f;
		}

	crf_lattice_fill_double(&fit->lattice, a);
	for (uint32_t s = 0; s < data->n_sentences; s++)
	{
		uint32_t	first = data->sentence_start[s];
		uint32_t	n = data->sentence_start[s + 1] - first;
		double		w = data->weight != NULL ? data->weight[s] : 1.0;
		CrfPass    *pass = &fit->pass;

		if (n == 0 || w == 0.0)
			continue;
		if (s % 256 == 0)
			hl_check_interrupt();
		emission_scores(fit, theta, first, n);
		crf_forward_backward(lat, fit->psi, n, pass);

		for (uint32_t t = 0; t < n; t++)
		{
			const double *al = pass->alpha + (size_t) t * k;
			const double *be = pass->beta + (size_t) t * k;

			for (uint32_t j = 0; j < k; j++)
			{
				double		p = al[j] * be[j];

				fit->diff[j] = w * p * (1.0 - p);
				emission->bias_precision[j] += (float) fit->diff[j];
				if (t == 0)
					prec_a[(size_t) k * k + j] += (float) fit->diff[j];
			}
			for (uint64_t e = data->row_start[first + t]; e < data->row_start[first + t + 1]; e++)
			{
				uint32_t	f = data->index[e];
				float	   *h = emission->precision + (size_t) f * k;
				double		x2 = (double) data->value[e] * data->value[e];

				for (uint64_t q = fit->pair_start[f]; q < fit->pair_start[f + 1]; q++)
					h[fit->pair_tag[q]] += (float) (x2 * fit->diff[fit->pair_tag[q]]);
			}
		}

		/* Pairwise marginals xi = alpha_{t-1}(i) T(i, j) E_t(j) beta_t(j) / c_t. */
		for (uint32_t t = 1; t < n; t++)
		{
			const double *prev = pass->alpha + (size_t) (t - 1) * k;

			crf_step_message(lat, pass, t, pass->v);
			for (uint32_t i = 0; i < k; i++)
				for (uint32_t d = 0; d < lat->n_dense; d++)
				{
					double		xi = prev[i] * lat->dense[(size_t) i * lat->n_dense + d] * pass->vd[d];

					prec_a[(size_t) i * k + lat->dense_tag[d]] += (float) (w * xi * (1.0 - xi));
				}
			for (uint32_t j = 2; j < k; j += 2)
			{
				double		xb = prev[j - 1] * lat->from_begin[j] * pass->v[j];
				double		xs = prev[j] * lat->from_inside[j] * pass->v[j];

				prec_a[(size_t) (j - 1) * k + j] += (float) (w * xb * (1.0 - xb));
				prec_a[(size_t) j * k + j] += (float) (w * xs * (1.0 - xs));
			}
		}
	}

	emission->prior_precision = (float) lambda;
	emission->covariance_precision = (float) lambda;
	emission->temperature = 1.0f;
	emission->variance_scale = 1.0f;
}

/* Set the training NLL and the Viterbi token accuracy of the stored mean. */
static void
report_training_fit(CrfFit *fit, const HlCrfTransitions *transitions, const double *theta,
					HlCrfFitReport *report)
{
	const HlCrfData *data = fit->data;
	uint32_t	k = fit->k;
	double	   *score = hl_alloc_array((size_t) (fit->max_tokens < 1 ? 1 : fit->max_tokens) * k,
									   sizeof(double));
	int32_t    *back = hl_alloc_array((size_t) (fit->max_tokens < 1 ? 1 : fit->max_tokens) * k,
									  sizeof(int32_t));
	int32_t    *tags = hl_alloc_array(fit->max_tokens < 1 ? 1 : fit->max_tokens, sizeof(int32_t));
	double	   *row_max = hl_alloc_array(k, sizeof(double));
	double		weight = 0.0;
	double		nll = 0.0;
	double		correct = 0.0;
	double		tokens = 0.0;

	crf_lattice_fill_double(&fit->lattice, theta + fit->n_weights + k);
	for (uint32_t s = 0; s < data->n_sentences; s++)
	{
		uint32_t	first = data->sentence_start[s];
		uint32_t	n = data->sentence_start[s + 1] - first;
		double		w = data->weight != NULL ? data->weight[s] : 1.0;

		if (n == 0 || w == 0.0)
			continue;
		if (s % 256 == 0)
			hl_check_interrupt();
		emission_scores(fit, theta, first, n);
		nll += w * (crf_forward_backward(&fit->lattice, fit->psi, n, &fit->pass) -
					gold_score(fit, theta, first, n));
		weight += w;
		crf_viterbi(transitions->mean, k, fit->psi, n, score, back, tags, row_max);
		for (uint32_t t = 0; t < n; t++)
			correct += w * (tags[t] == data->tag[first + t]);
		tokens += w * n;
	}
	report->train_nll = weight > 0.0 ? nll / weight : NAN;
	report->train_token_accuracy = tokens > 0.0 ? correct / tokens : NAN;
	hl_free(score);
	hl_free(back);
	hl_free(tags);
	hl_free(row_max);
}

static int	fit_error(char *errbuf, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static int
fit_error(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	vsnprintf(errbuf, errlen, fmt, args);
	va_end(args);
	return -1;
}

int
hl_crf_fit(const HlCrfData *data, double lambda, uint32_t max_iterations,
		   HlClassifier *emission, HlCrfTransitions *transitions,
		   HlCrfFitReport *report, char *errbuf, size_t errlen)
{
	return hl_crf_fit_from(data, lambda, max_iterations, NULL, NULL, emission, transitions,
						   report, errbuf, errlen);
}

/* Set theta to the weights of a fitted CRF, and to zero for pairs it never fitted. */
static void
start_from(const CrfFit *fit, const HlClassifier *from_emission,
		   const HlCrfTransitions *from_transitions, double *theta)
{
	uint32_t	k = fit->k;
	double	   *a = theta + fit->n_weights + k;

	for (uint32_t f = 0; f < fit->data->dim; f++)
		for (uint64_t q = fit->pair_start[f]; q < fit->pair_start[f + 1]; q++)
			theta[q] = from_emission->mean[(size_t) f * k + fit->pair_tag[q]] / FEATURE_SCALE;
	for (uint32_t j = 0; j < k; j++)
		theta[fit->n_weights + j] = from_emission->bias_mean[j];
	for (uint32_t i = 0; i <= k; i++)
		for (uint32_t j = 0; j < k; j++)
			a[(size_t) i * k + j] = from_transitions->mean[(size_t) i * k + j];
}

int
hl_crf_fit_from(const HlCrfData *data, double lambda, uint32_t max_iterations,
				const HlClassifier *from_emission, const HlCrfTransitions *from_transitions,
				HlClassifier *emission, HlCrfTransitions *transitions,
				HlCrfFitReport *report, char *errbuf, size_t errlen)
{
	CrfFit		fit;
	double	   *theta;
	const char *problem;
	uint32_t	bad = 0;

	memset(report, 0, sizeof(*report));
	if (data->n_tags < 1 || emission->n_classes != data->n_tags ||
		emission->dim != data->dim || transitions->n_tags != data->n_tags)
		return fit_error(errbuf, errlen, "the CRF has %u tags and %u features, the data %u and %u",
						 emission->n_classes, emission->dim, data->n_tags, data->dim);
	if (!(lambda > 0.0 && isfinite(lambda)))
		return fit_error(errbuf, errlen, "prior precision %g is not a positive number", lambda);
	problem = check_data(data, &bad);
	if (problem != NULL)
		return fit_error(errbuf, errlen, "sentence %u: %s", bad + 1, problem);

	if ((from_emission == NULL) != (from_transitions == NULL))
		return fit_error(errbuf, errlen, "a starting CRF needs both its emission and its transition weights");
	if (from_emission != NULL &&
		(from_emission->dim != data->dim || from_emission->n_classes != data->n_tags ||
		 from_transitions->n_tags != data->n_tags))
		return fit_error(errbuf, errlen, "the starting CRF has %u tags and %u features, the data %u and %u",
						 from_emission->n_classes, from_emission->dim, data->n_tags, data->dim);

	crf_fit_init(&fit, data);
	theta = hl_alloc_array(fit.n_params, sizeof(double));
	if (from_emission != NULL)
		start_from(&fit, from_emission, from_transitions, theta);
	report->emission_weights = fit.n_weights;
	report->iterations = minimise(&fit, lambda, theta, max_iterations,
								  &report->evaluations, &report->objective);
	store_posterior(&fit, lambda, theta, emission, transitions);
	report_training_fit(&fit, transitions, theta, report);

	hl_free(theta);
	crf_fit_free(&fit);
	return 0;
}

/*
 * crf_lattice.c
 *		Scaled forward-backward and Viterbi over BIO tags (numeric core);
 *		see crf_lattice.h.
 */
#include "crf_lattice.h"

#include <math.h>
#include <string.h>

#include "blas.h"
#include "hl_alloc.h"

/* Return whether tag is an I tag: even and not O. */
int
crf_is_inside(uint32_t tag)
{
	return tag != 0 && tag % 2 == 0;
}

void
crf_lattice_init(CrfLattice *lat, uint32_t n_tags)
{
	uint32_t	d = 0;

	memset(lat, 0, sizeof(*lat));
	lat->n_tags = n_tags;
	for (uint32_t j = 0; j < n_tags; j++)
		if (!crf_is_inside(j))
			d++;
	lat->n_dense = d;
	lat->dense_tag = hl_alloc_array(d, sizeof(uint32_t));
	d = 0;
	for (uint32_t j = 0; j < n_tags; j++)
		if (!crf_is_inside(j))
			lat->dense_tag[d++] = j;
	lat->dense = hl_alloc_array((size_t) n_tags * lat->n_dense, sizeof(double));
	lat->start = hl_alloc_array(n_tags, sizeof(double));
	lat->from_begin = hl_alloc_array(n_tags, sizeof(double));
	lat->from_inside = hl_alloc_array(n_tags, sizeof(double));
}

void
crf_lattice_free(CrfLattice *lat)
{
	hl_free(lat->dense_tag);
	hl_free(lat->dense);
	hl_free(lat->start);
	hl_free(lat->from_begin);
	hl_free(lat->from_inside);
	memset(lat, 0, sizeof(*lat));
}

#define FILL_LATTICE(lat, a) \
	do { \
		uint32_t	k_ = (lat)->n_tags; \
		uint32_t	d_ = (lat)->n_dense; \
		for (uint32_t i = 0; i < k_; i++) \
			for (uint32_t d = 0; d < d_; d++) \
				(lat)->dense[(size_t) i * d_ + d] = exp((double) (a)[(size_t) i * k_ + (lat)->dense_tag[d]]); \
		for (uint32_t j = 0; j < k_; j++) \
		{ \
			int			inside_ = crf_is_inside(j); \
			(lat)->start[j] = inside_ ? 0.0 : exp((double) (a)[(size_t) k_ * k_ + j]); \
			(lat)->from_begin[j] = inside_ ? exp((double) (a)[(size_t) (j - 1) * k_ + j]) : 0.0; \
			(lat)->from_inside[j] = inside_ ? exp((double) (a)[(size_t) j * k_ + j]) : 0.0; \
		} \
	} while (0)

void
crf_lattice_fill_float(CrfLattice *lat, const float *a)
{
	FILL_LATTICE(lat, a);
}

void
crf_lattice_fill_double(CrfLattice *lat, const double *a)
{
	FILL_LATTICE(lat, a);
}

void
crf_pass_reserve(CrfPass *pass, uint32_t n, uint32_t n_tags, uint32_t n_dense)
{
	size_t		cells;

	if (pass->emit != NULL && n <= pass->n)
		return;
	crf_pass_free(pass);
	pass->n = n < 32 ? 32 : n;
	cells = (size_t) pass->n * n_tags;
	pass->emit = hl_alloc_array(cells, sizeof(double));
	pass->shift = hl_alloc_array(pass->n, sizeof(double));
	pass->alpha = hl_alloc_array(cells, sizeof(double));
	pass->beta = hl_alloc_array(cells, sizeof(double));
	pass->scale = hl_alloc_array(pass->n, sizeof(double));
	pass->v = hl_alloc_array(n_tags, sizeof(double));
	pass->vd = hl_alloc_array(n_dense, sizeof(double));
	pass->y = hl_alloc_array(n_tags, sizeof(double));
}

void
crf_pass_free(CrfPass *pass)
{
	hl_free(pass->emit);
	hl_free(pass->shift);
	hl_free(pass->alpha);
	hl_free(pass->beta);
	hl_free(pass->scale);
	hl_free(pass->v);
	hl_free(pass->vd);
	hl_free(pass->y);
	memset(pass, 0, sizeof(*pass));
}

/* Normalise x (k entries) to sum 1 and return the sum. */
static double
normalise(double *x, uint32_t k)
{
	double		sum = 0.0;

	for (uint32_t j = 0; j < k; j++)
		sum += x[j];
	if (sum > 0.0)
		for (uint32_t j = 0; j < k; j++)
			x[j] /= sum;
	return sum;
}

void
crf_step_message(const CrfLattice *lat, CrfPass *pass, uint32_t t, double *v)
{
	uint32_t	k = lat->n_tags;
	const double *e = pass->emit + (size_t) t * k;
	const double *b = pass->beta + (size_t) t * k;
	double		inv_c = 1.0 / pass->scale[t];

	for (uint32_t j = 0; j < k; j++)
		v[j] = e[j] * b[j] * inv_c;
	for (uint32_t d = 0; d < lat->n_dense; d++)
		pass->vd[d] = v[lat->dense_tag[d]];
}

double
crf_forward_backward(const CrfLattice *lat, const double *psi, uint32_t n, CrfPass *pass)
{
	uint32_t	k = lat->n_tags;
	uint32_t	nd = lat->n_dense;
	double		log_z = 0.0;

	/* Emissions, shifted by their maximum so that exp() stays in range. */
	for (uint32_t t = 0; t < n; t++)
	{
		const double *row = psi + (size_t) t * k;
		double	   *e = pass->emit + (size_t) t * k;
		double		m = -INFINITY;

		for (uint32_t j = 0; j < k; j++)
			if (row[j] > m)
				m = row[j];
		pass->shift[t] = m;

		/* exp(-40) < 5e-18 is below double rounding of the sum: skip the call. */
		for (uint32_t j = 0; j < k; j++)
			e[j] = row[j] - m > -40.0 ? exp(row[j] - m) : 0.0;
	}

	/* Forward. */
	for (uint32_t t = 0; t < n; t++)
	{
		double	   *a = pass->alpha + (size_t) t * k;
		const double *e = pass->emit + (size_t) t * k;

		if (t == 0)
			for (uint32_t j = 0; j < k; j++)
				a[j] = lat->start[j];
		else
		{
			const double *prev = a - k;

			cblas_dgemv(CblasRowMajor, CblasTrans, (int) k, (int) nd, 1.0, lat->dense, (int) nd,
						prev, 1, 0.0, pass->y, 1);
			for (uint32_t d = 0; d < nd; d++)
				a[lat->dense_tag[d]] = pass->y[d];
			for (uint32_t j = 2; j < k; j += 2)
				a[j] = prev[j - 1] * lat->from_begin[j] + prev[j] * lat->from_inside[j];
		}
		for (uint32_t j = 0; j < k; j++)
			a[j] *= e[j];
		pass->scale[t] = normalise(a, k);
		log_z += log(pass->scale[t]) + pass->shift[t];
	}

	/* Backward, with the same normalisers. */
	for (uint32_t j = 0; j < k; j++)
		pass->beta[(size_t) (n - 1) * k + j] = 1.0;
	for (uint32_t t = n - 1; t > 0; t--)
	{
		double	   *b = pass->beta + (size_t) (t - 1) * k;

		crf_step_message(lat, pass, t, pass->v);
		cblas_dgemv(CblasRowMajor, CblasNoTrans, (int) k, (int) nd, 1.0, lat->dense, (int) nd,
					pass->vd, 1, 0.0, b, 1);
		for (uint32_t j = 2; j < k; j += 2)
		{
			b[j - 1] += lat->from_begin[j] * pass->v[j];
			b[j] += lat->from_inside[j] * pass->v[j];
		}
	}
	return log_z;
}

void
crf_viterbi(const float *a, uint32_t n_tags, const double *psi, uint32_t n,
			double *score, int32_t *back, int32_t *tags, double *row_max)
{
	uint32_t	k = n_tags;
	double		lowest = INFINITY;

	if (n == 0)
		return;

	/*
	 * The best and worst transitions into O and B tags bound what a
	 * predecessor can reach, so rows that cannot win are skipped below.
	 */
	for (uint32_t i = 0; i < k; i++)
	{
		row_max[i] = -INFINITY;
		for (uint32_t j = 0; j < k; j++)
		{
			double		w = a[(size_t) i * k + j];

			if (crf_is_inside(j))
				continue;
			if (w > row_max[i])
				row_max[i] = w;
			if (w < lowest)
				lowest = w;
		}
	}

	for (uint32_t j = 0; j < k; j++)
		score[j] = crf_is_inside(j) ? -INFINITY : a[(size_t) k * k + j] + psi[j];

	for (uint32_t t = 1; t < n; t++)
	{
		const double *prev = score + (size_t) (t - 1) * k;
		double	   *cur = score + (size_t) t * k;
		int32_t    *bp = back + (size_t) t * k;
		const double *row = psi + (size_t) t * k;

		double		best_prev = -INFINITY;

		/*
		 * O and B tags from every predecessor, row by row so that a is read
		 * in order.  Each of them scores at least best_prev + lowest, so a
		 * row with prev[i] + row_max[i] below that cannot be the argmax.
		 */
		for (uint32_t i = 0; i < k; i++)
			if (prev[i] > best_prev)
				best_prev = prev[i];
		for (uint32_t j = 0; j < k; j++)
		{
			cur[j] = -INFINITY;
			bp[j] = 0;
		}
		for (uint32_t i = 0; i < k; i++)
		{
			const float *from_i = a + (size_t) i * k;

			if (prev[i] == -INFINITY || prev[i] + row_max[i] < best_prev + lowest)
				continue;
			for (uint32_t j = 0; j < k; j += (j == 0 ? 1 : 2))
				if (prev[i] + from_i[j] > cur[j])
				{
					cur[j] = prev[i] + from_i[j];
					bp[j] = (int32_t) i;
				}
		}

		/* ... then I-l again from its only predecessors, B-l and I-l. */
		for (uint32_t j = 2; j < k; j += 2)
		{
			double		via_begin = prev[j - 1] + a[(size_t) (j - 1) * k + j];
			double		via_inside = prev[j] + a[(size_t) j * k + j];

			cur[j] = via_begin >= via_inside ? via_begin : via_inside;
			bp[j] = via_begin >= via_inside ? (int32_t) j - 1 : (int32_t) j;
		}
		for (uint32_t j = 0; j < k; j++)
			cur[j] += row[j];
	}

	/* Backtrack from the best final tag; an excluded tag scores -INFINITY. */
	{
		const double *last = score + (size_t) (n - 1) * k;
		int32_t		tag = 0;

		for (uint32_t j = 1; j < k; j++)
			if (last[j] > last[tag])
				tag = (int32_t) j;
		for (uint32_t t = n; t-- > 0;)
		{
			tags[t] = tag;
			if (t > 0)
				tag = back[(size_t) t * k + tag];
		}
	}
}

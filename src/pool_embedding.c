/*
 * pool_embedding.c
 *		Latent semantic analysis features from the unlabelled pool
 *		(numeric core, no PostgreSQL headers).
 *
 * The right singular vectors of the pool's TF-IDF matrix A (rows are
 * documents, columns hash buckets) span the directions in which the
 * documents vary most (Deerwester et al. 1990, "Indexing by latent
 * semantic analysis").  Words that occur in the same documents load on the
 * same components, so two rows that share no n-gram can still be close in
 * the embedding.  The labels need not cover a word for the classifier to
 * use what the pool taught about it.
 *
 * Fit.  A randomized range finder (Halko, Martinsson and Tropp 2011,
 * "Finding structure with randomness", Algorithms 4.3 and 5.1) on the Gram
 * matrix G = A^T A: a Gaussian dim x l start Omega (l = k + oversampling)
 * is multiplied by G, orthonormalised by a QR factorisation, and the
 * multiplication and QR are repeated power_iterations times.  Each
 * multiplication is one pass over the rows, G Q = sum_r x_r (x_r^T Q), so
 * neither A Omega (n_rows x l) nor G (dim x dim) is ever stored.  With the
 * orthonormal basis Q, the small matrix C = (A Q)^T (A Q) (l x l, one more
 * pass) has the eigen-decomposition W diag(sigma^2) W^T, and the top k
 * columns of Q W are the right singular vectors.
 */
#include "pool_embedding.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "hl_alloc.h"

/* Rows between calls of the interrupt hook in a pass. */
#define ROWS_PER_INTERRUPT_CHECK 1024


/* Return a standard normal draw (Box-Muller) from a splitmix64 state. */
static double
next_gaussian(uint64_t *state)
{
	double		u1;
	double		u2;

	*state += UINT64_C(0x9e3779b97f4a7c15);
	u1 = ((double) (hl_mix64(*state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	*state += UINT64_C(0x9e3779b97f4a7c15);
	u2 = (double) (hl_mix64(*state) >> 11) * (1.0 / 9007199254740992.0);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/*
 * Compute out = A^T A q for row-major dim x l matrices q and out, in one
 * pass over the rows.  t is scratch space of l floats.
 */
static void
gram_multiply(uint32_t n_rows, const uint64_t *row_start,
			  const uint32_t *index, const float *value, uint32_t l,
			  const float *q, float *out, float *t, size_t dim)
{
	memset(out, 0, dim * l * sizeof(float));
	for (uint32_t r = 0; r < n_rows; r++)
	{
		if (r % ROWS_PER_INTERRUPT_CHECK == 0)
			hl_check_interrupt();

		/* t = x_r^T q */
		memset(t, 0, l * sizeof(float));
		for (uint64_t e = row_start[r]; e < row_start[r + 1]; e++)
		{
			const float *qj = q + (size_t) index[e] * l;
			float		v = value[e];

			for (uint32_t c = 0; c < l; c++)
				t[c] += v * qj[c];
		}

		/* out += x_r t^T */
		for (uint64_t e = row_start[r]; e < row_start[r + 1]; e++)
		{
			float	   *oj = out + (size_t) index[e] * l;
			float		v = value[e];

			for (uint32_t c = 0; c < l; c++)
				oj[c] += v * t[c];
		}
	}
}

/*
 * Replace the row-major dim x l matrix y by an orthonormal basis of its
 * column space (thin QR, Q kept).  colmajor is scratch space of dim * l floats.  Returns
 * the LAPACK info code (0 on success).
 */
static int
orthonormalise(float *y, float *colmajor, int dim, int l)
{
	int			info = 0;
	int			lwork = -1;
	float		work_size = 0.0f;
	float	   *tau = hl_alloc_array(l, sizeof(float));
	float	   *work;

	for (int j = 0; j < dim; j++)
		for (int c = 0; c < l; c++)
			colmajor[(size_t) c * dim + j] = y[(size_t) j * l + c];

	/* Workspace query first, then the factorisation and the explicit Q. */
	sgeqrf_(&dim, &l, colmajor, &dim, tau, &work_size, &lwork, &info);
	lwork = (int) work_size;
	if (lwork < l)
		lwork = l;
	work = hl_alloc_array(lwork, sizeof(float));
	sgeqrf_(&dim, &l, colmajor, &dim, tau, work, &lwork, &info);
	if (info == 0)
	{
		int			query = -1;

		sorgqr_(&dim, &l, &l, colmajor, &dim, tau, &work_size, &query, &info);
		if ((int) work_size > lwork)
		{
			hl_free(work);
			lwork = (int) work_size;
			work = hl_alloc_array(lwork, sizeof(float));
		}
		sorgqr_(&dim, &l, &l, colmajor, &dim, tau, work, &lwork, &info);
	}

	for (int j = 0; j < dim; j++)
		for (int c = 0; c < l; c++)
			y[(size_t) j * l + c] = colmajor[(size_t) c * dim + j];
	hl_free(work);
	hl_free(tau);
	return info;
}

/*
 * Compute the upper triangle of C = (A q)^T (A q), column-major l x l in
 * double, in one pass over the rows.  t is scratch space of l floats.
 */
static void
projected_gram(uint32_t n_rows, const uint64_t *row_start,
			   const uint32_t *index, const float *value, uint32_t l,
			   const float *q, double *gram, float *t)
{
	memset(gram, 0, (size_t) l * l * sizeof(double));
	for (uint32_t r = 0; r < n_rows; r++)
	{
		if (r % ROWS_PER_INTERRUPT_CHECK == 0)
			hl_check_interrupt();

		memset(t, 0, l * sizeof(float));
		for (uint64_t e = row_start[r]; e < row_start[r + 1]; e++)
		{
			const float *qj = q + (size_t) index[e] * l;
			float		v = value[e];

			for (uint32_t c = 0; c < l; c++)
				t[c] += v * qj[c];
		}
		for (uint32_t b = 0; b < l; b++)
			for (uint32_t a = 0; a <= b; a++)
				gram[(size_t) b * l + a] += (double) t[a] * t[b];
	}
}

int
hl_symmetric_eigen(double *a, uint32_t n, double *eigenvalues)
{
	int			order = (int) n;
	int			lwork = -1;
	int			info = 0;
	double		work_size;
	double	   *work;

	/* The first call only asks LAPACK for the workspace it needs. */
	dsyev_("V", "U", &order, a, &order, eigenvalues, &work_size, &lwork, &info, 1, 1);
	lwork = (int) work_size;
	if (lwork < 3 * order)
		lwork = 3 * order;
	work = hl_alloc_array(lwork, sizeof(double));
	dsyev_("V", "U", &order, a, &order, eigenvalues, work, &lwork, &info, 1, 1);
	hl_free(work);
	return info;
}

int
hl_pool_embedding_fit(uint32_t n_rows, uint32_t dim,
					  const uint64_t *row_start, const uint32_t *index,
					  const float *value, uint32_t k, uint32_t oversampling,
					  uint32_t power_iterations, uint64_t seed,
					  float *projection, float *singular_values,
					  char *errbuf, size_t errlen)
{
	uint32_t	l;
	uint64_t	state = seed;
	float	   *q;
	float	   *y;
	float	   *colmajor;
	float	   *t;
	float	   *top;
	double	   *gram;
	double	   *eigenvalues;
	int			info = 0;
	int			ln;

	if (k == 0 || k > dim || k > HL_POOL_EMBEDDING_MAX_COMPONENTS)
	{
		snprintf(errbuf, errlen,
				 "number of components %u is out of range 1 .. %u",
				 k, dim < HL_POOL_EMBEDDING_MAX_COMPONENTS ? dim : HL_POOL_EMBEDDING_MAX_COMPONENTS);
		return -1;
	}
	l = k + oversampling;
	if (l > dim)
		l = dim;
	ln = (int) l;

	q = hl_alloc_array((size_t) dim * l, sizeof(float));
	y = hl_alloc_array((size_t) dim * l, sizeof(float));
	colmajor = hl_alloc_array((size_t) dim * l, sizeof(float));
	t = hl_alloc_array(l, sizeof(float));

	/* Range finder: Q = orth((A^T A)^(1 + power_iterations) Omega). */
	for (size_t i = 0; i < (size_t) dim * l; i++)
		q[i] = (float) next_gaussian(&state);
	for (uint32_t pass = 0; pass <= power_iterations && info == 0; pass++)
	{
		gram_multiply(n_rows, row_start, index, value, l, q, y, t, dim);
		info = orthonormalise(y, colmajor, (int) dim, ln);
		memcpy(q, y, (size_t) dim * l * sizeof(float));
	}
	hl_free(y);
	hl_free(colmajor);
	if (info != 0)
	{
		snprintf(errbuf, errlen, "QR factorisation failed (LAPACK info %d)", info);
		hl_free(q);
		hl_free(t);
		return -1;
	}

	/* Eigen-decomposition of the small matrix C = (A Q)^T (A Q). */
	gram = hl_alloc_array((size_t) l * l, sizeof(double));
	eigenvalues = hl_alloc_array(l, sizeof(double));
	projected_gram(n_rows, row_start, index, value, l, q, gram, t);
	info = hl_symmetric_eigen(gram, l, eigenvalues);
	if (info != 0)
	{
		snprintf(errbuf, errlen, "eigen-decomposition failed (LAPACK info %d)", info);
		hl_free(q);
		hl_free(t);
		hl_free(gram);
		hl_free(eigenvalues);
		return -1;
	}

	/*
	 * dsyev orders eigenvalues ascending: the top k eigenvectors are the
	 * last k columns, taken in reverse into the row-major l x k matrix top.
	 */
	top = hl_alloc_array((size_t) l * k, sizeof(float));
	for (uint32_t c = 0; c < k; c++)
	{
		const double *w = gram + (size_t) (l - 1 - c) * l;

		for (uint32_t a = 0; a < l; a++)
			top[(size_t) a * k + c] = (float) w[a];
		if (singular_values != NULL)
			singular_values[c] = (float) sqrt(fmax(eigenvalues[l - 1 - c], 0.0));
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) dim, (int) k,
				ln, 1.0f, q, ln, top, (int) k, 0.0f, projection, (int) k);

	hl_free(top);
	hl_free(q);
	hl_free(t);
	hl_free(gram);
	hl_free(eigenvalues);
	return 0;
}

void
hl_pool_embedding_append(const float *projection, uint32_t dim, uint32_t k,
						 float weight, HlSparseVec *x, float *scratch)
{
	uint32_t	nnz = 0;
	double		norm2 = 0.0;

	memset(scratch, 0, k * sizeof(float));
	while (nnz < x->nnz && x->index[nnz] < dim)
	{
		const float *pj = projection + (size_t) x->index[nnz] * k;
		float		v = x->value[nnz];

		for (uint32_t c = 0; c < k; c++)
			scratch[c] += v * pj[c];
		nnz++;
	}
	x->nnz = nnz;
	for (uint32_t c = 0; c < k; c++)
		norm2 += (double) scratch[c] * scratch[c];
	if (norm2 <= 0.0)
		return;

	/* Grow the arrays, keeping the entries below dim. */
	if (x->capacity < nnz + k)
	{
		uint32_t	capacity = nnz + k;
		uint32_t   *new_index = hl_alloc_array(capacity, sizeof(uint32_t));
		float	   *new_value = hl_alloc_array(capacity, sizeof(float));

		if (nnz > 0)
		{
			memcpy(new_index, x->index, nnz * sizeof(uint32_t));
			memcpy(new_value, x->value, nnz * sizeof(float));
		}
		hl_free(x->index);
		hl_free(x->value);
		x->index = new_index;
		x->value = new_value;
		x->capacity = capacity;
	}

	{
		float		scale = (float) (weight / sqrt(norm2));

		for (uint32_t c = 0; c < k; c++)
		{
			if (scratch[c] == 0.0f)
				continue;
			x->index[x->nnz] = dim + c;
			x->value[x->nnz] = scratch[c] * scale;
			x->nnz++;
		}
	}
}

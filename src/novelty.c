/*
 * novelty.c
 *		Relative Mahalanobis novelty in the pool's latent semantic space.
 *
 * Rows are projected on the pool's top singular vectors and L2-normalised,
 * as in the pool embedding.  Both covariances are shrunk towards their
 * mean variance, so a direction in which the labelled rows hardly vary
 * does not make every new text look novel along it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "hl_alloc.h"
#include "novelty.h"
#include "pool_embedding.h"

/* Oversampling and power iterations of the pool's truncated SVD. */
#define HL_NOVELTY_OVERSAMPLING 10
#define HL_NOVELTY_POWER_ITERATIONS 2

/* Floor on a shrunk covariance's eigenvalues.  The mean variance is about 1 / k. */
#define HL_NOVELTY_MIN_VARIANCE 1e-8

double		hl_novelty_shrinkage = HL_NOVELTY_SHRINKAGE;

/*
 * Folds of the labelled rows whose out-of-fold distances standardise the
 * score, and the fewest rows that use them (fewer use in-sample ones).
 */
#define HL_NOVELTY_FOLDS 5
#define HL_NOVELTY_MIN_FOLD_ROWS 2

/* Smallest spread the score divides by. */
#define HL_NOVELTY_MIN_SPREAD 1e-6f

/*
 * Write the normalised projection of one sparse row to z (k floats) and
 * return its length before normalising, 0 for a row the projection does
 * not reach.
 */
static double
embed(const float *projection, uint32_t dim, uint32_t k, const uint32_t *index,
	  const float *value, uint32_t nnz, float *z)
{
	double		norm = 0.0;

	memset(z, 0, sizeof(float) * k);
	for (uint32_t e = 0; e < nnz; e++)
	{
		if (index[e] >= dim)
			continue;
		cblas_saxpy((int) k, value[e], projection + (size_t) index[e] * k, 1, z, 1);
	}
	for (uint32_t j = 0; j < k; j++)
		norm += (double) z[j] * z[j];
	if (norm > 0.0)
		cblas_sscal((int) k, (float) (1.0 / sqrt(norm)), z, 1);
	return sqrt(norm);
}

/* Project every row of rows into a new n_rows x k array. */
static float *
embed_rows(const float *projection, uint32_t dim, uint32_t k, const HlSparseRows *rows)
{
	float	   *z = hl_alloc_array((size_t) rows->n_rows * k, sizeof(float));

	for (uint32_t r = 0; r < rows->n_rows; r++)
	{
		uint64_t	start = rows->row_start[r];

		embed(projection, dim, k, rows->index + start, rows->value + start,
			  (uint32_t) (rows->row_start[r + 1] - start), z + (size_t) r * k);
	}
	return z;
}

/*
 * Shrink covariance (k x k) towards its mean variance and turn it into its
 * whitening W, row-major, so that |W v|^2 = v^T covariance^-1 v.  Returns
 * LAPACK's info.
 */
static int
whitening(double *covariance, uint32_t k, float *w)
{
	int			info;
	double	   *eigenvalues = hl_alloc_array(k, sizeof(double));
	double		mean_variance = 0.0;

	for (uint32_t j = 0; j < k; j++)
		mean_variance += covariance[(size_t) j * k + j] / k;
	for (size_t i = 0; i < (size_t) k * k; i++)
		covariance[i] *= 1.0 - hl_novelty_shrinkage;
	for (uint32_t j = 0; j < k; j++)
		covariance[(size_t) j * k + j] += hl_novelty_shrinkage * mean_variance;
	info = hl_symmetric_eigen(covariance, k, eigenvalues);

	/* Column j of the column-major result is eigenvector j, and row j of W is it scaled. */
	if (info == 0)
		for (uint32_t j = 0; j < k; j++)
		{
			double		scale = 1.0 / sqrt(fmax(eigenvalues[j], HL_NOVELTY_MIN_VARIANCE));

			for (uint32_t i = 0; i < k; i++)
				w[(size_t) j * k + i] = (float) (covariance[(size_t) j * k + i] * scale);
		}
	hl_free(eigenvalues);
	return info;
}

/* Add weight x (x - mean)(x - mean)^T to the k x k sum. */
static void
add_outer(double *sum, const float *x, const double *mean, uint32_t k, double weight,
		  double *centred)
{
	for (uint32_t i = 0; i < k; i++)
		centred[i] = x[i] - mean[i];
	for (uint32_t i = 0; i < k; i++)
		for (uint32_t j = 0; j < k; j++)
			sum[(size_t) i * k + j] += weight * centred[i] * centred[j];
}

/* Whiten the mean (k doubles) into out. */
static void
whiten_mean(const float *w, const double *mean, uint32_t k, float *out)
{
	for (uint32_t j = 0; j < k; j++)
	{
		double		s = 0.0;

		for (uint32_t i = 0; i < k; i++)
			s += (double) w[(size_t) j * k + i] * mean[i];
		out[j] = (float) s;
	}
}

/* Return the relative distance of the embedded row z.  scratch has k floats. */
static float
relative_distance(const HlNovelty *novelty, const float *z, float *scratch)
{
	uint32_t	k = novelty->k;
	float		nearest = INFINITY;
	float		to_pool = 0.0f;

	cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) k, (int) k, 1.0f, novelty->class_whitening,
				(int) k, z, 1, 0.0f, scratch, 1);
	for (uint32_t c = 0; c < novelty->n_means; c++)
	{
		const float *mean = novelty->class_means + (size_t) c * k;
		float		d = 0.0f;

		for (uint32_t j = 0; j < k; j++)
			d += (scratch[j] - mean[j]) * (scratch[j] - mean[j]);
		if (d < nearest)
			nearest = d;
	}

	cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) k, (int) k, 1.0f, novelty->pool_whitening,
				(int) k, z, 1, 0.0f, scratch, 1);
	for (uint32_t j = 0; j < k; j++)
		to_pool += (scratch[j] - novelty->pool_mean[j]) * (scratch[j] - novelty->pool_mean[j]);
	return nearest - to_pool;
}

/* Free the arrays of a score still being fitted, each allocated on its own. */
static void
free_parts(HlNovelty *novelty)
{
	hl_free(novelty->projection);
	hl_free(novelty->class_whitening);
	hl_free(novelty->class_means);
	hl_free(novelty->pool_whitening);
	hl_free(novelty->pool_mean);
	memset(novelty, 0, sizeof(*novelty));
}

/* Move a fitted score's parts into one allocation, as a copy and a stored version have. */
static void
consolidate(HlNovelty *novelty)
{
	HlNovelty	whole;

	hl_novelty_copy(&whole, novelty);
	free_parts(novelty);
	*novelty = whole;
}

/*
 * Fit the class part of out (class_whitening, class_means, n_means) to the
 * embedded rows z whose use[r] is set (use NULL: every row).  Returns
 * LAPACK's info.
 */
static int
fit_classes(const float *z, uint32_t n_rows, const int32_t *label, const float *weight,
			const uint8_t *use, uint32_t n_classes, uint32_t k, HlNovelty *out)
{
	double	   *class_sum = hl_alloc_array((size_t) n_classes * k, sizeof(double));
	double	   *class_weight = hl_alloc_array(n_classes, sizeof(double));
	int32_t    *mean_of_class = hl_alloc_array(n_classes, sizeof(int32_t));
	double	   *covariance = hl_alloc_array((size_t) k * k, sizeof(double));
	double	   *centred = hl_alloc_array(k, sizeof(double));
	double		total = 0.0;
	int			info;

	/* Class means, over the classes that have rows. */
	for (uint32_t r = 0; r < n_rows; r++)
	{
		double		w = weight ? weight[r] : 1.0;

		if (use != NULL && !use[r])
			continue;
		class_weight[label[r]] += w;
		for (uint32_t j = 0; j < k; j++)
			class_sum[(size_t) label[r] * k + j] += w * z[(size_t) r * k + j];
	}
	out->n_means = 0;
	for (uint32_t c = 0; c < n_classes; c++)
	{
		mean_of_class[c] = -1;
		if (class_weight[c] <= 0.0)
			continue;
		mean_of_class[c] = (int32_t) out->n_means++;
		for (uint32_t j = 0; j < k; j++)
			class_sum[(size_t) c * k + j] /= class_weight[c];
	}

	/* The shared within-class covariance and its whitening. */
	for (uint32_t r = 0; r < n_rows; r++)
	{
		double		w = weight ? weight[r] : 1.0;

		if (use != NULL && !use[r])
			continue;
		add_outer(covariance, z + (size_t) r * k, class_sum + (size_t) label[r] * k, k, w, centred);
		total += w;
	}
	for (size_t i = 0; i < (size_t) k * k; i++)
		covariance[i] /= total > 0.0 ? total : 1.0;
	out->class_whitening = hl_alloc_array((size_t) k * k, sizeof(float));
	out->class_means = hl_alloc_array((size_t) (out->n_means > 0 ? out->n_means : 1) * k, sizeof(float));
	info = whitening(covariance, k, out->class_whitening);
	if (info == 0)
		for (uint32_t c = 0; c < n_classes; c++)
			if (mean_of_class[c] >= 0)
				whiten_mean(out->class_whitening, class_sum + (size_t) c * k, k,
							out->class_means + (size_t) mean_of_class[c] * k);

	hl_free(class_sum);
	hl_free(class_weight);
	hl_free(mean_of_class);
	hl_free(covariance);
	hl_free(centred);
	return info;
}

/* Fit the pool part of out (pool_whitening, pool_mean) to the embedded pool rows z. */
static int
fit_pool(const float *z, uint32_t n_rows, uint32_t k, HlNovelty *out)
{
	double	   *mean = hl_alloc_array(k, sizeof(double));
	double	   *covariance = hl_alloc_array((size_t) k * k, sizeof(double));
	double	   *centred = hl_alloc_array(k, sizeof(double));
	int			info;

	for (uint32_t r = 0; r < n_rows; r++)
		for (uint32_t j = 0; j < k; j++)
			mean[j] += z[(size_t) r * k + j];
	for (uint32_t j = 0; j < k; j++)
		mean[j] /= n_rows;
	for (uint32_t r = 0; r < n_rows; r++)
		add_outer(covariance, z + (size_t) r * k, mean, k, 1.0, centred);
	for (size_t i = 0; i < (size_t) k * k; i++)
		covariance[i] /= n_rows;
	out->pool_whitening = hl_alloc_array((size_t) k * k, sizeof(float));
	out->pool_mean = hl_alloc_array(k, sizeof(float));
	info = whitening(covariance, k, out->pool_whitening);
	if (info == 0)
		whiten_mean(out->pool_whitening, mean, k, out->pool_mean);

	hl_free(mean);
	hl_free(covariance);
	hl_free(centred);
	return info;
}

static int
compare_floats(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * Set out's center and spread from the distances of the labelled rows,
 * each measured by class parts fitted without its fold, so that 0 is a
 * typical new text of a labelled class.  With few rows the distances are
 * in-sample.  out's class and pool parts must be fitted.
 */
static int
standardise(const float *z, uint32_t n_rows, const int32_t *label, const float *weight,
			const uint32_t *group, uint32_t n_classes, HlNovelty *out)
{
	uint32_t	k = out->k;
	float	   *distances = hl_alloc_array(n_rows, sizeof(float));
	float	   *scratch = hl_alloc_array(k, sizeof(float));
	uint8_t    *use = hl_alloc_array(n_rows, sizeof(uint8_t));
	double		sum = 0.0;
	double		moment = 0.0;
	int			info = 0;

	if (n_rows < HL_NOVELTY_FOLDS * HL_NOVELTY_MIN_FOLD_ROWS)
	{
		for (uint32_t r = 0; r < n_rows; r++)
			distances[r] = relative_distance(out, z + (size_t) r * k, scratch);
	}
	else
	{
		for (uint32_t fold = 0; fold < HL_NOVELTY_FOLDS && info == 0; fold++)
		{
			HlNovelty	fold_part = *out;

			/* The rows of one item share a fold, so no row is measured by its twin. */
			for (uint32_t r = 0; r < n_rows; r++)
				use[r] = (group != NULL ? group[r] : r) % HL_NOVELTY_FOLDS != fold;
			info = fit_classes(z, n_rows, label, weight, use, n_classes, k, &fold_part);
			for (uint32_t r = 0; r < n_rows && info == 0; r++)
				if (!use[r])
					distances[r] = relative_distance(&fold_part, z + (size_t) r * k, scratch);
			hl_free(fold_part.class_whitening);
			hl_free(fold_part.class_means);
		}
	}

	if (info == 0)
	{
		for (uint32_t r = 0; r < n_rows; r++)
			sum += distances[r];
		for (uint32_t r = 0; r < n_rows; r++)
			moment += (distances[r] - sum / n_rows) * (distances[r] - sum / n_rows);
		qsort(distances, n_rows, sizeof(float), compare_floats);
		out->center = distances[n_rows / 2];
		out->spread = (float) sqrt(moment / n_rows);
		if (!(out->spread > HL_NOVELTY_MIN_SPREAD))
			out->spread = HL_NOVELTY_MIN_SPREAD;
	}
	hl_free(distances);
	hl_free(scratch);
	hl_free(use);
	return info;
}

int
hl_novelty_fit(const HlSparseRows *pool, const HlSparseRows *labelled,
			   const int32_t *label, const float *weight, uint32_t n_classes,
			   uint32_t dim, uint32_t k, uint64_t seed, HlNovelty *out,
			   char *errbuf, size_t errlen)
{
	float	   *z_pool;
	float	   *z_labelled;
	int			status = 0;

	memset(out, 0, sizeof(*out));
	if (pool->n_rows <= k)
	{
		snprintf(errbuf, errlen, "%u pool rows are too few for %u dimensions", pool->n_rows, k);
		return -1;
	}
	if (labelled->n_rows == 0)
	{
		snprintf(errbuf, errlen, "no labelled rows");
		return -1;
	}

	/* The latent space of the pool. */
	out->dim = dim;
	out->k = k;
	out->projection = hl_alloc_array((size_t) dim * k, sizeof(float));
	if (hl_pool_embedding_fit(pool->n_rows, dim, pool->row_start, pool->index, pool->value, k,
							  HL_NOVELTY_OVERSAMPLING, HL_NOVELTY_POWER_ITERATIONS, seed,
							  out->projection, NULL, errbuf, errlen) != 0)
	{
		free_parts(out);
		return -1;
	}
	z_pool = embed_rows(out->projection, dim, k, pool);
	z_labelled = embed_rows(out->projection, dim, k, labelled);

	/* The pool's Gaussian, the classes of every row, then the out-of-fold scale. */
	if (fit_pool(z_pool, pool->n_rows, k, out) != 0 ||
		fit_classes(z_labelled, labelled->n_rows, label, weight, NULL, n_classes, k, out) != 0 ||
		standardise(z_labelled, labelled->n_rows, label, weight, labelled->group, n_classes, out) != 0)
	{
		snprintf(errbuf, errlen, "eigen-decomposition of a covariance failed");
		status = -1;
	}

	hl_free(z_pool);
	hl_free(z_labelled);
	if (status == 0)
		consolidate(out);
	else
		free_parts(out);
	return status;
}

int
hl_novelty_refit_classes(const HlNovelty *base, const HlSparseRows *labelled,
						 const int32_t *label, const float *weight, uint32_t n_classes,
						 bool restandardise, HlNovelty *out, char *errbuf, size_t errlen)
{
	uint32_t	k = base->k;
	float	   *z = embed_rows(base->projection, base->dim, k, labelled);
	HlNovelty	parts = *base;
	int			info;

	/* parts borrows base's projection and Gaussian, and owns only the new class parts. */
	parts.class_whitening = NULL;
	parts.class_means = NULL;
	info = fit_classes(z, labelled->n_rows, label, weight, NULL, n_classes, k, &parts);
	if (info == 0 && restandardise)
		info = standardise(z, labelled->n_rows, label, weight, labelled->group, n_classes, &parts);
	if (info == 0)
		hl_novelty_copy(out, &parts);
	else
		memset(out, 0, sizeof(*out));
	hl_free(z);
	hl_free(parts.class_whitening);
	hl_free(parts.class_means);
	if (info != 0)
	{
		snprintf(errbuf, errlen, "eigen-decomposition of the class covariance failed");
		return -1;
	}
	return 0;
}

float
hl_novelty_score(const HlNovelty *novelty, const HlSparseVec *x, float *scratch)
{
	float	   *z = scratch;

	/* A text whose features no pool row has projects to zero, so it has no novelty. */
	if (embed(novelty->projection, novelty->dim, novelty->k, x->index, x->value, x->nnz, z) == 0.0)
		return NAN;
	return (relative_distance(novelty, z, scratch + novelty->k) - novelty->center) / novelty->spread;
}

uint64_t
hl_novelty_floats(uint32_t dim, uint32_t k, uint32_t n_means)
{
	return (uint64_t) dim * k + 2 * (uint64_t) k * k + (uint64_t) n_means * k + k;
}

void
hl_novelty_point(HlNovelty *novelty, float *floats)
{
	uint32_t	k = novelty->k;

	novelty->projection = floats;
	novelty->class_whitening = novelty->projection + (size_t) novelty->dim * k;
	novelty->class_means = novelty->class_whitening + (size_t) k * k;
	novelty->pool_whitening = novelty->class_means + (size_t) novelty->n_means * k;
	novelty->pool_mean = novelty->pool_whitening + (size_t) k * k;
}

void
hl_novelty_copy(HlNovelty *dst, const HlNovelty *src)
{
	uint32_t	k = src->k;
	float	   *floats = hl_alloc_array(hl_novelty_floats(src->dim, k, src->n_means), sizeof(float));

	*dst = *src;
	hl_novelty_point(dst, floats);
	memcpy(dst->projection, src->projection, sizeof(float) * src->dim * k);
	memcpy(dst->class_whitening, src->class_whitening, sizeof(float) * k * k);
	memcpy(dst->class_means, src->class_means, sizeof(float) * src->n_means * k);
	memcpy(dst->pool_whitening, src->pool_whitening, sizeof(float) * k * k);
	memcpy(dst->pool_mean, src->pool_mean, sizeof(float) * k);
}

void
hl_novelty_free(HlNovelty *novelty)
{
	hl_free(novelty->projection);
	memset(novelty, 0, sizeof(*novelty));
}

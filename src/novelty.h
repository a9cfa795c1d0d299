/*
 * novelty.h
 *		Novelty of a text: how far it lies from every labelled class,
 *		relative to how far it lies from the pool as a whole, in a latent
 *		semantic space of the pool (numeric core, no PostgreSQL headers).
 *
 * The score is the relative Mahalanobis distance of Ren et al. (2021, "A
 * simple fix to Mahalanobis distance for improving near-OOD detection"):
 * the squared distance to the nearest class mean under the classes' shared
 * covariance, minus the squared distance to the pool's mean under the
 * pool's covariance.  It is high for text in a region of the pool that no
 * labelled class covers, such as an intent without labels so far.
 *
 * hl_train fits it when the model option "novelty" names its dimensions,
 * and the abstention score probability_novelty uses it.
 */
#ifndef HL_NOVELTY_H
#define HL_NOVELTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "features.h"

/*
 * Weight of the mean variance in each covariance, which is shrunk towards
 * it.  hl_novelty_shrinkage starts at this value, and only benchmarks
 * change it.
 */
#define HL_NOVELTY_SHRINKAGE 0.01
extern double hl_novelty_shrinkage;

/* Rows in compressed sparse row form: row r is row_start[r] .. row_start[r + 1] - 1. */
typedef struct HlSparseRows
{
	uint32_t	n_rows;
	const uint64_t *row_start;
	const uint32_t *index;
	const float *value;
	const uint32_t *group;		/* item of each row, NULL: every row its own */
} HlSparseRows;

/*
 * Minimum and maximum latent dimensions of a novelty score.  With one
 * dimension every normalised row is +1 or -1, so every score is equal.
 */
#define HL_NOVELTY_MIN_DIMENSIONS 8
#define HL_NOVELTY_MAX_DIMENSIONS 256

/*
 * Largest projection, in bytes, a model may ask for: 128 dimensions over
 * the classifiers' default 2^14 buckets take 8 MB.
 */
#define HL_NOVELTY_MAX_BYTES (256 * 1024 * 1024)

/* A fitted novelty score, or none when k is 0. */
typedef struct HlNovelty
{
	uint32_t	dim;			/* feature buckets the projection reads */
	uint32_t	k;				/* latent dimensions */
	uint32_t	n_means;		/* classes with at least one labelled row */
	float	   *projection;		/* dim x k, the pool's top right singular vectors */
	float	   *class_whitening;	/* k x k, W with W^T W the inverse within-class covariance */
	float	   *class_means;	/* n_means x k, whitened by class_whitening */
	float	   *pool_whitening; /* k x k, the same for the pool's covariance */
	float	   *pool_mean;		/* k, whitened by pool_whitening */
	float		center;			/* median out-of-fold distance of the labelled rows */
	float		spread;			/* standard deviation of those distances */
} HlNovelty;

/*
 * Fit the score.  The latent space is the truncated SVD (k dimensions) of
 * the pool rows.  The class means and shared covariance come from the
 * labelled rows (label[r] in 0 .. n_classes - 1, weight NULL meaning 1),
 * and the pool's mean and covariance from the pool rows.  Every row's
 * indices are below dim.  Returns 0, or -1 with a message in errbuf when
 * there are fewer pool rows than k + 1, no labelled row, or LAPACK fails.
 */
extern int	hl_novelty_fit(const HlSparseRows *pool, const HlSparseRows *labelled,
						   const int32_t *label, const float *weight, uint32_t n_classes,
						   uint32_t dim, uint32_t k, uint64_t seed, HlNovelty *out,
						   char *errbuf, size_t errlen);

/*
 * Fit the class part of a score anew on labelled (embedded with base's
 * projection) and copy the projection and the pool's Gaussian from base:
 * for a cross-validation fold, or for new labels of an unchanged pool.
 * restandardise also sets center and spread anew, else they are base's.
 * Returns 0, or -1 with a message in errbuf.
 */
extern int	hl_novelty_refit_classes(const HlNovelty *base, const HlSparseRows *labelled,
									 const int32_t *label, const float *weight,
									 uint32_t n_classes, bool restandardise,
									 HlNovelty *out, char *errbuf, size_t errlen);

/*
 * Return the novelty of x: its relative Mahalanobis distance minus the
 * median of the labelled rows' out-of-fold distances, divided by their
 * standard deviation, so 0 is a typical new text of a labelled class.
 * Returns NaN for a text without a feature that the pool's rows had.
 * scratch has room for 2 k floats.
 */
extern float hl_novelty_score(const HlNovelty *novelty, const HlSparseVec *x, float *scratch);

/* Return the number of floats of a score's arrays (projection to pool_mean). */
extern uint64_t hl_novelty_floats(uint32_t dim, uint32_t k, uint32_t n_means);

/* Copy the arrays of src into one new allocation of dst. */
extern void hl_novelty_copy(HlNovelty *dst, const HlNovelty *src);

/* Point the arrays of novelty (dim, k and n_means set) at consecutive floats. */
extern void hl_novelty_point(HlNovelty *novelty, float *floats);

/* Free a score that hl_novelty_fit or hl_novelty_copy allocated. */
extern void hl_novelty_free(HlNovelty *novelty);

#endif							/* HL_NOVELTY_H */

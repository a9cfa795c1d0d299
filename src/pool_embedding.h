/*
 * pool_embedding.h
 *		Latent semantic analysis (LSA) features learnt from the unlabelled
 *		pool: a truncated SVD of the pool's TF-IDF matrix, appended to each
 *		row as dense feature columns (numeric core, no PostgreSQL headers).
 *
 * NOTE: only test/core/bench_core uses it.  On banking77 it gained less
 * accuracy than the extension required (docs/model.md, "Pool embedding"),
 * so no model option turns it on.
 */
#ifndef HL_POOL_EMBEDDING_H
#define HL_POOL_EMBEDDING_H

#include <stdint.h>

#include "features.h"

/* Largest number of components hl_pool_embedding_fit accepts. */
#define HL_POOL_EMBEDDING_MAX_COMPONENTS 512

/*
 * Fit the top k right singular vectors of the n_rows x dim TF-IDF matrix
 * given in compressed sparse row form (row r has the entries
 * row_start[r] .. row_start[r + 1] - 1 of index/value, every index below
 * dim).  Writes them to projection, dim x k row-major (row j contains the k
 * loadings of bucket j, so the columns are orthonormal), and the k
 * singular values, largest first, to singular_values (may be NULL).
 *
 * The method is the randomized SVD of Halko, Martinsson and Tropp (2011,
 * "Finding structure with randomness"), run on the Gram matrix A^T A so
 * only dim x (k + oversampling) floats are held besides the rows:
 * power_iterations extra passes sharpen the subspace.  The random start
 * comes from seed, so the result is reproducible.  Returns 0, or -1 with
 * a message in errbuf when k is 0, above dim or above
 * HL_POOL_EMBEDDING_MAX_COMPONENTS, or LAPACK fails.
 */
extern int	hl_pool_embedding_fit(uint32_t n_rows, uint32_t dim,
								  const uint64_t *row_start,
								  const uint32_t *index, const float *value,
								  uint32_t k, uint32_t oversampling,
								  uint32_t power_iterations, uint64_t seed,
								  float *projection, float *singular_values,
								  char *errbuf, size_t errlen);

/*
 * Replace the symmetric n x n matrix a (either order, both triangles set)
 * by its eigenvectors, one per column in column-major order, and write the
 * eigenvalues, ascending, to eigenvalues.  Returns LAPACK's info, 0 on
 * success.
 */
extern int	hl_symmetric_eigen(double *a, uint32_t n, double *eigenvalues);

/*
 * Append the embedding of x to x: e = P^T x over the entries of x below
 * dim, L2-normalised and multiplied by weight, stored as the entries
 * dim .. dim + k - 1 (zero components are left out, so indices stay
 * strictly increasing).  Entries of x at dim or above are dropped first,
 * so appending twice gives the same vector.  scratch has room for k floats.
 */
extern void hl_pool_embedding_append(const float *projection, uint32_t dim,
									 uint32_t k, float weight,
									 HlSparseVec *x, float *scratch);

#endif							/* HL_POOL_EMBEDDING_H */

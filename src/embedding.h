/*
 * embedding.h
 *		A small dense embedding of TF-IDF vectors, and the clustering and
 *		seeding on it that acquisition uses (numeric core, no PostgreSQL
 *		headers).
 */
#ifndef HL_EMBEDDING_H
#define HL_EMBEDDING_H

#include <stdint.h>

#include "features.h"

/* Dimensions of the embedding. */
#define HL_EMBED_BITS 6
#define HL_EMBED_DIM (1 << HL_EMBED_BITS)

/*
 * Dimensions of the wide embedding, for nearest neighbours among labelled
 * texts.  At 64 dimensions the error of a cosine is about 1 / 8, enough to
 * change which text is nearest.
 */
#define HL_WIDE_EMBED_BITS 8
#define HL_WIDE_EMBED_DIM (1 << HL_WIDE_EMBED_BITS)

/*
 * Embed a sparse vector by a sparse random projection and L2-normalise the
 * result, so dot products of embeddings approximate cosine similarities of
 * the sparse vectors.  An empty vector embeds to all zeros.
 */
extern void hl_embed(const HlSparseVec *x, float *out);

/* The same projection onto HL_WIDE_EMBED_DIM dimensions. */
extern void hl_embed_wide(const HlSparseVec *x, float *out);

/* Dot product of two embeddings. */
extern float hl_embed_dot(const float *a, const float *b);

/*
 * Spherical k-means over n embeddings (rows of x), seeded by k-means++ from
 * seed, for iterations rounds.  Writes k unit-length centres to centres and
 * returns how many distinct centres were found (fewer than k when the
 * points are fewer or identical).
 */
extern uint32_t hl_kmeans(const float *x, uint32_t n, uint32_t k,
						  uint32_t iterations, uint64_t seed, float *centres);

/*
 * Choose m of n points by k-means++ seeding (Arthur and Vassilvitskii 2007),
 * each draw proportional to weight times squared distance from the points
 * chosen so far, so the choice covers the set and favours heavy points.
 * Writes the chosen indexes to chosen and returns how many were chosen.
 */
extern uint32_t hl_kmeanspp_select(const float *x, const double *weight,
								   uint32_t n, uint32_t m, uint64_t seed,
								   uint32_t *chosen);

#endif							/* HL_EMBEDDING_H */

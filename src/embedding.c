/*
 * embedding.c
 *		A small dense embedding of TF-IDF vectors, and the clustering and
 *		seeding on it that acquisition uses (numeric core, no PostgreSQL
 *		headers).
 *
 * The embedding is a sparse random projection.  Feature bucket j adds its
 * value with a pseudo-random sign to HL_EMBED_PROBES pseudo-random
 * dimensions, all derived from a hash of j.  No projection matrix is stored,
 * and every backend computes the same embedding.  Dot products of
 * embeddings approximate those of the sparse vectors, with an error that
 * shrinks as the dimension grows (the Johnson-Lindenstrauss lemma).
 * Acquisition only compares rows for near-duplicates and clusters.
 * NOTE: 64 dimensions is an untuned choice; no benchmark compared others.
 */
#include "embedding.h"

#include <math.h>
#include <string.h>

#include "hl_alloc.h"

#define HL_EMBED_PROBES 4


/* Return a pseudo-random number in [0, 1) from a state, advancing it. */
static double
next_uniform(uint64_t *state)
{
	*state += UINT64_C(0x9e3779b97f4a7c15);
	return (double) (hl_mix64(*state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Project x onto 2^bits dimensions and L2-normalise.  Each of the
 * HL_EMBED_PROBES probes of a bucket takes bits bits of the bucket's hash
 * for its dimension and one more for its sign, so every width derives from
 * the same hash and the 64-dimensional embedding stays as it was.
 */
static void
embed_probes(const HlSparseVec *x, float *out, int bits)
{
	uint32_t	dims = UINT32_C(1) << bits;
	double		norm2 = 0.0;

	memset(out, 0, sizeof(float) * dims);
	for (uint32_t i = 0; i < x->nnz; i++)
	{
		uint64_t	h = hl_mix64((uint64_t) x->index[i] + UINT64_C(0x656d626564));

		for (int p = 0; p < HL_EMBED_PROBES; p++)
		{
			uint32_t	dim = (uint32_t) (h >> (p * (bits + 1))) & (dims - 1);
			float		sign = ((h >> (p * (bits + 1) + bits)) & 1) ? 1.0f : -1.0f;

			out[dim] += sign * x->value[i];
		}
	}

	for (uint32_t d = 0; d < dims; d++)
		norm2 += (double) out[d] * out[d];
	if (norm2 > 0.0)
	{
		float		scale = (float) (1.0 / sqrt(norm2));

		for (uint32_t d = 0; d < dims; d++)
			out[d] *= scale;
	}
}

void
hl_embed(const HlSparseVec *x, float *out)
{
	embed_probes(x, out, HL_EMBED_BITS);
}

void
hl_embed_wide(const HlSparseVec *x, float *out)
{
	embed_probes(x, out, HL_WIDE_EMBED_BITS);
}

float
hl_embed_dot(const float *a, const float *b)
{
	float		sum = 0.0f;

	for (int d = 0; d < HL_EMBED_DIM; d++)
		sum += a[d] * b[d];
	return sum;
}

/* Squared Euclidean distance of two unit vectors: 2 - 2 cos, never negative. */
static double
unit_distance2(const float *a, const float *b)
{
	double		d = 2.0 - 2.0 * hl_embed_dot(a, b);

	return d > 0.0 ? d : 0.0;
}

uint32_t
hl_kmeanspp_select(const float *x, const double *weight, uint32_t n,
				   uint32_t m, uint64_t seed, uint32_t *chosen)
{
	double	   *dist2;
	uint64_t	state = seed;
	uint32_t	count = 0;

	if (n == 0 || m == 0)
		return 0;

	/* Before anything is chosen every point is at distance 1 (unit scale). */
	dist2 = hl_alloc_array(n, sizeof(double));
	for (uint32_t i = 0; i < n; i++)
		dist2[i] = 1.0;

	while (count < m)
	{
		double		total = 0.0;
		double		target;
		uint32_t	pick = n;

		for (uint32_t i = 0; i < n; i++)
			total += weight[i] * dist2[i];
		if (!(total > 0.0))
			break;				/* every remaining point coincides with a chosen one */

		target = next_uniform(&state) * total;
		for (uint32_t i = 0; i < n; i++)
		{
			double		w = weight[i] * dist2[i];

			if (w <= 0.0)
				continue;
			pick = i;
			if (target < w)
				break;
			target -= w;
		}
		if (pick == n)
			break;

		chosen[count++] = pick;
		dist2[pick] = 0.0;
		for (uint32_t i = 0; i < n; i++)
		{
			double		d = unit_distance2(x + (size_t) i * HL_EMBED_DIM,
										   x + (size_t) pick * HL_EMBED_DIM);

			if (d < dist2[i])
				dist2[i] = d;
		}
	}

	hl_free(dist2);
	return count;
}

uint32_t
hl_kmeans(const float *x, uint32_t n, uint32_t k, uint32_t iterations,
		  uint64_t seed, float *centres)
{
	double	   *weight;
	uint32_t   *seeds;
	uint32_t   *assign;
	double	   *sums;
	uint32_t	found;

	if (n == 0 || k == 0)
		return 0;

	weight = hl_alloc_array(n, sizeof(double));
	for (uint32_t i = 0; i < n; i++)
		weight[i] = 1.0;
	seeds = hl_alloc_array(k, sizeof(uint32_t));
	found = hl_kmeanspp_select(x, weight, n, k, seed, seeds);
	for (uint32_t c = 0; c < found; c++)
		memcpy(centres + (size_t) c * HL_EMBED_DIM,
			   x + (size_t) seeds[c] * HL_EMBED_DIM, sizeof(float) * HL_EMBED_DIM);

	/* Lloyd iterations on the sphere: assign by cosine, renormalise the means. */
	assign = hl_alloc_array(n, sizeof(uint32_t));
	sums = hl_alloc_array((size_t) found * HL_EMBED_DIM, sizeof(double));
	for (uint32_t it = 0; it < iterations && found > 0; it++)
	{
		memset(sums, 0, sizeof(double) * found * HL_EMBED_DIM);
		for (uint32_t i = 0; i < n; i++)
		{
			const float *xi = x + (size_t) i * HL_EMBED_DIM;
			float		best = -2.0f;

			for (uint32_t c = 0; c < found; c++)
			{
				float		s = hl_embed_dot(xi, centres + (size_t) c * HL_EMBED_DIM);

				if (s > best)
				{
					best = s;
					assign[i] = c;
				}
			}
			for (int d = 0; d < HL_EMBED_DIM; d++)
				sums[(size_t) assign[i] * HL_EMBED_DIM + d] += xi[d];
		}
		for (uint32_t c = 0; c < found; c++)
		{
			double		norm2 = 0.0;
			double	   *s = sums + (size_t) c * HL_EMBED_DIM;

			for (int d = 0; d < HL_EMBED_DIM; d++)
				norm2 += s[d] * s[d];
			if (norm2 <= 0.0)
				continue;		/* an empty cluster keeps its centre */
			for (int d = 0; d < HL_EMBED_DIM; d++)
				centres[(size_t) c * HL_EMBED_DIM + d] = (float) (s[d] / sqrt(norm2));
		}
	}

	hl_free(sums);
	hl_free(assign);
	hl_free(seeds);
	hl_free(weight);
	return found;
}

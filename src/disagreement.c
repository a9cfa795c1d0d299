/*
 * disagreement.c
 *		Crossings between classes among labelled texts, the estimate of
 *		annotator disagreement that acquisition uses to pass over rows no
 *		label would settle (numeric core, no PostgreSQL headers).
 *
 * Margin-based acquisition keeps choosing rows between two classes as long
 * as the model cannot separate them.  When annotators themselves give
 * either label to such texts, more labels there do not help.  Those
 * classes show it among the labels already given: a labelled text's
 * nearest labelled neighbour often carries the other label.  Between two
 * classes that are merely hard to tell apart, the nearest neighbour of a
 * labelled text mostly agrees with it.  The nearest neighbours come from
 * all pairs of a sample of labelled texts, in blocks through sgemm.
 */
#include "disagreement.h"

#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "hl_alloc.h"

/* Rows of the similarity matrix computed at a time. */
#define HL_DISAGREEMENT_BLOCK 256

static int
compare_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

void
hl_disagreement_fit(const float *x, uint32_t n, uint32_t dim,
					const int32_t *label, uint32_t n_classes,
					HlDisagreement *out)
{
	uint32_t	block = n < HL_DISAGREEMENT_BLOCK ? n : HL_DISAGREEMENT_BLOCK;
	float	   *sim = hl_alloc_array((size_t) (block > 0 ? block : 1) * (n > 0 ? n : 1), sizeof(float));
	uint64_t   *keys = hl_alloc_array(n > 0 ? n : 1, sizeof(uint64_t));
	uint32_t	n_keys = 0;

	memset(out, 0, sizeof(*out));
	out->n_classes = n_classes;
	out->points = hl_alloc_array(n_classes > 0 ? n_classes : 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++)
		out->points[label[i]]++;

	for (uint32_t start = 0; start < n; start += block)
	{
		uint32_t	rows = n - start < block ? n - start : block;

		hl_check_interrupt();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) rows, (int) n, (int) dim,
					1.0f, x + (size_t) start * dim, (int) dim, x, (int) dim,
					0.0f, sim, (int) n);

		for (uint32_t r = 0; r < rows; r++)
		{
			uint32_t	i = start + r;
			const float *row_sim = sim + (size_t) r * n;
			int64_t		best = -1;
			int32_t		a;
			int32_t		b;

			for (uint32_t j = 0; j < n; j++)
				if (j != i && (best < 0 || row_sim[j] > row_sim[best]))
					best = j;
			if (best < 0 || label[best] == label[i])
				continue;

			a = label[i] < label[best] ? label[i] : label[best];
			b = label[i] < label[best] ? label[best] : label[i];
			keys[n_keys++] = ((uint64_t) a << 32) | (uint32_t) b;
		}
	}

	/* Sorting puts equal keys next to each other, so each run becomes one pair. */
	qsort(keys, n_keys, sizeof(uint64_t), compare_u64);
	out->pair = hl_alloc_array(n_keys > 0 ? n_keys : 1, sizeof(uint64_t));
	out->crossings = hl_alloc_array(n_keys > 0 ? n_keys : 1, sizeof(uint32_t));
	for (uint32_t k = 0; k < n_keys; k++)
	{
		if (out->n_pairs == 0 || out->pair[out->n_pairs - 1] != keys[k])
			out->pair[out->n_pairs++] = keys[k];
		out->crossings[out->n_pairs - 1]++;
	}

	hl_free(keys);
	hl_free(sim);
}

double
hl_disagreement_rate(const HlDisagreement *d, int32_t a, int32_t b)
{
	uint64_t	key;
	uint32_t	lo = 0;
	uint32_t	hi;

	if (a == b || a < 0 || b < 0 || (uint32_t) a >= d->n_classes || (uint32_t) b >= d->n_classes)
		return 0.0;
	if (a > b)
	{
		int32_t		t = a;

		a = b;
		b = t;
	}
	key = ((uint64_t) a << 32) | (uint32_t) b;

	/* Binary search over the ascending keys. */
	hi = d->n_pairs;
	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (d->pair[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == d->n_pairs || d->pair[lo] != key)
		return 0.0;
	return d->crossings[lo] / (d->points[a] + d->points[b] + HL_DISAGREEMENT_PRIOR);
}

void
hl_disagreement_free(HlDisagreement *d)
{
	hl_free(d->points);
	hl_free(d->pair);
	hl_free(d->crossings);
	memset(d, 0, sizeof(*d));
}

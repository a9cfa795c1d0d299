/*
 * disagreement.h
 *		How often the labelled texts of two classes have a nearest labelled
 *		neighbour with the other of the two labels: an estimate of how much
 *		annotators disagree between those classes (numeric core, no
 *		PostgreSQL headers).
 */
#ifndef HL_DISAGREEMENT_H
#define HL_DISAGREEMENT_H

#include <stdint.h>

/*
 * Points added to a pair's labelled points in the rate's denominator, so
 * that one crossing between two rare classes does not read as a high rate.
 */
#define HL_DISAGREEMENT_PRIOR 5.0

/* Crossings between pairs of classes among labelled points. */
typedef struct HlDisagreement
{
	uint32_t	n_classes;
	uint32_t   *points;			/* labelled points of each class */
	uint32_t	n_pairs;
	uint64_t   *pair;			/* (a << 32) | b with a < b, ascending */
	uint32_t   *crossings;		/* points of a or b whose neighbour has the other label */
} HlDisagreement;

/*
 * Count the crossings among n points: rows of x, unit vectors of dim
 * floats, with labels from 0 to n_classes - 1.  A point's neighbour is the
 * other point of largest dot product, the first one on a tie.  The time
 * grows with n * n * dim, so callers pass a sample of bounded size.
 */
extern void hl_disagreement_fit(const float *x, uint32_t n, uint32_t dim,
								const int32_t *label, uint32_t n_classes,
								HlDisagreement *out);

/*
 * Return the share of the labelled points of classes a and b whose
 * neighbour carries the other of the two labels, shrunk towards 0 by
 * HL_DISAGREEMENT_PRIOR.  The rate is 0 when a equals b or either is out of
 * range.
 */
extern double hl_disagreement_rate(const HlDisagreement *d, int32_t a, int32_t b);

/* Release the arrays of d. */
extern void hl_disagreement_free(HlDisagreement *d);

#endif							/* HL_DISAGREEMENT_H */

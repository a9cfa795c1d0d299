/*
 * crf_lattice.h
 *		Scaled forward-backward and Viterbi over BIO tags, shared by CRF
 *		training and prediction (numeric core, private to model_crf*.c).
 *
 * Under the BIO constraints every tag may go to O and to any B-l, but I-l
 * only follows B-l or I-l.  A lattice therefore stores the exponentiated
 * transitions as a dense K x D matrix into the D "dense" tags (O and the
 * B tags) and two numbers per I tag, so a forward or backward step costs
 * about K * D instead of K^2 and runs as one BLAS matrix-vector product.
 *
 * Forward-backward runs in probability space with per-step normalisation
 * (alpha_t sums to 1, c_t is the normaliser) and emissions shifted by their
 * per-token maximum, which keeps every number in range as log space would
 * at a fraction of the exp() calls.
 */
#ifndef HL_CRF_LATTICE_H
#define HL_CRF_LATTICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct CrfLattice
{
	uint32_t	n_tags;			/* K */
	uint32_t	n_dense;		/* D: O and the B tags */
	uint32_t   *dense_tag;		/* D: tag of each dense column */
	double	   *dense;			/* K x D: exp A[i, dense_tag[d]] */
	double	   *start;			/* K: exp A[start, j], 0 when forbidden */
	double	   *from_begin;		/* K: for an I tag j, exp A[j - 1, j]; else 0 */
	double	   *from_inside;	/* K: for an I tag j, exp A[j, j]; else 0 */
} CrfLattice;

/* Per-sentence workspace of forward-backward, n tokens of K tags. */
typedef struct CrfPass
{
	uint32_t	n;
	double	   *emit;			/* n x K: exp(psi_t - shift_t) */
	double	   *shift;			/* n */
	double	   *alpha;			/* n x K, each row sums to 1 */
	double	   *beta;			/* n x K */
	double	   *scale;			/* n: c_t */
	double	   *v;				/* K scratch */
	double	   *vd;				/* D scratch */
	double	   *y;				/* K scratch */
} CrfPass;

extern int	crf_is_inside(uint32_t tag);
extern void crf_lattice_init(CrfLattice *lat, uint32_t n_tags);
extern void crf_lattice_free(CrfLattice *lat);

/* Fill lat with the exponentials of transition weights a ((K + 1) x K, row K the start). */
extern void crf_lattice_fill_float(CrfLattice *lat, const float *a);
extern void crf_lattice_fill_double(CrfLattice *lat, const double *a);

extern void crf_pass_reserve(CrfPass *pass, uint32_t n, uint32_t n_tags, uint32_t n_dense);
extern void crf_pass_free(CrfPass *pass);

/*
 * Run forward-backward for the emission scores psi (n x K; -INFINITY
 * excludes a tag) and return log Z.  Afterwards alpha[t] * beta[t] is the
 * marginal of token t.
 */
extern double crf_forward_backward(const CrfLattice *lat, const double *psi, uint32_t n,
								   CrfPass *pass);

/*
 * Put into v the vector E_t(j) beta_t(j) / c_t of step t >= 1, and into
 * pass->vd its dense columns: the backward message into token t.
 */
extern void crf_step_message(const CrfLattice *lat, CrfPass *pass, uint32_t t, double *v);

/*
 * Write the best tag sequence under log-space transition weights a
 * ((K + 1) x K, row K the start) and emission scores psi to tags.  score
 * and back are n x K of scratch, row_max K.
 */
extern void crf_viterbi(const float *a, uint32_t n_tags, const double *psi, uint32_t n,
						double *score, int32_t *back, int32_t *tags, double *row_max);

#endif							/* HL_CRF_LATTICE_H */

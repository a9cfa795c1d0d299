/*
 * blas.h
 *		The one place where the numeric core gets BLAS and LAPACK prototypes.
 *
 * The core calls the CBLAS interface of OpenBLAS (Debian's libopenblas-dev
 * ships it as <cblas.h>; pkg-config openblas gives the include path).  The
 * classifier's solver uses only level-1 routines: its vectors are dense,
 * the data is sparse and handled by the core's own loops.  The pool
 * embedding (pool_embedding.c) also uses sgemm and three LAPACK routines.
 * OpenBLAS may start worker threads; the extension limits it to one thread
 * at load time, and the core never changes that setting itself.
 */
#ifndef HL_BLAS_H
#define HL_BLAS_H

#include <stddef.h>

#include <cblas.h>

/*
 * LAPACK routines that libopenblas exports (checked with nm -D on
 * OpenBLAS 0.3.21), declared here so no LAPACKE package is needed.  They
 * use the Fortran calling convention: every argument by pointer,
 * column-major matrices, and, after the declared arguments, the hidden
 * lengths of character arguments that gfortran passes as size_t.
 */
extern void sgeqrf_(const int *m, const int *n, float *a, const int *lda,
					float *tau, float *work, const int *lwork, int *info);
extern void sorgqr_(const int *m, const int *n, const int *k, float *a,
					const int *lda, const float *tau, float *work,
					const int *lwork, int *info);
extern void dsyev_(const char *jobz, const char *uplo, const int *n,
				   double *a, const int *lda, double *w, double *work,
				   const int *lwork, int *info, size_t jobz_len,
				   size_t uplo_len);

#endif							/* HL_BLAS_H */

/*
 * blas.h
 *		The one place where the numeric core gets BLAS prototypes.
 *
 * The core calls the CBLAS interface of OpenBLAS (Debian's libopenblas-dev
 * ships it as <cblas.h>; pkg-config openblas gives the include path).  Only
 * level-1 routines are used: the solver's vectors are dense, the data is
 * sparse and handled by the core's own loops.  OpenBLAS may start worker
 * threads; the extension limits it to one thread at load time, and the
 * core never changes that setting itself.
 */
#ifndef HL_BLAS_H
#define HL_BLAS_H

#include <cblas.h>

#endif							/* HL_BLAS_H */

/*
 * hl_alloc.h
 *		Memory allocation hooks of the numeric core.
 *
 * The numeric core (tokenize.c, features.c, model_classifier.c) includes no
 * PostgreSQL header, so it can be built and tested without a server.  It
 * allocates through these hooks.  Inside the backend they are set to palloc
 * in the current memory context, so an ERROR thrown while training releases
 * everything the core allocated; in standalone tests they default to malloc.
 * The allocation hook never returns NULL: it either succeeds or does not
 * return (the backend's raises an ERROR, the default one aborts).
 */
#ifndef HL_ALLOC_H
#define HL_ALLOC_H

#include <stddef.h>

typedef void *(*hl_alloc_fn) (size_t size);
typedef void (*hl_free_fn) (void *ptr);

extern hl_alloc_fn hl_alloc_hook;
extern hl_free_fn hl_free_hook;

/* Allocate size bytes, zero-filled. */
extern void *hl_alloc0(size_t size);

/* Allocate nmemb * size bytes, zero-filled, rejecting overflow. */
extern void *hl_alloc_array(size_t nmemb, size_t size);

extern void hl_free(void *ptr);

/*
 * Cancellation hook, NULL by default.  The fit calls it at least once per
 * L-BFGS iteration and once per point of the lambda path.  It may return
 * or leave the core by longjmp (the backend raises an ERROR on a pending
 * cancel).  Across the call the core holds only memory from hl_alloc_hook
 * and its callers' arguments, and it keeps no global state.  A longjmp
 * therefore leaks nothing once that memory is released, which the backend
 * does with its memory context.  With the default malloc hooks a longjmp
 * out of a fit leaks that fit's buffers.
 */
extern void (*hl_interrupt_hook) (void);

/* Call hl_interrupt_hook when it is set. */
static inline void
hl_check_interrupt(void)
{
	if (hl_interrupt_hook != NULL)
		hl_interrupt_hook();
}

#endif							/* HL_ALLOC_H */

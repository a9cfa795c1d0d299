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

#endif							/* HL_ALLOC_H */

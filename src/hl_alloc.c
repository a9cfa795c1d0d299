/*
 * hl_alloc.c
 *		Default memory allocation hooks of the numeric core.
 *
 * Standalone builds (unit tests, benchmarks) use malloc and free.  The
 * extension replaces both hooks at load time with palloc-based functions,
 * so every buffer the core allocates belongs to a memory context.  The hook
 * contract: hl_alloc_hook never returns NULL, so callers do not check.
 */
#include "hl_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *hl_default_alloc(size_t size);

hl_alloc_fn hl_alloc_hook = hl_default_alloc;
hl_free_fn	hl_free_hook = free;
void		(*hl_interrupt_hook) (void) = NULL;

/* Allocate with malloc; print and abort on failure, as a library cannot recover here. */
static void *
hl_default_alloc(size_t size)
{
	void	   *ptr = malloc(size == 0 ? 1 : size);

	if (ptr == NULL)
	{
		fprintf(stderr, "humanloop: out of memory allocating %zu bytes\n", size);
		abort();
	}
	return ptr;
}

/* Allocate size bytes through the hook and zero them. */
void *
hl_alloc0(size_t size)
{
	void	   *ptr = hl_alloc_hook(size);

	memset(ptr, 0, size);
	return ptr;
}

/* Allocate a zeroed array of nmemb elements, aborting through the hook on overflow. */
void *
hl_alloc_array(size_t nmemb, size_t size)
{
	/*
	 * An overflowing request is passed on as SIZE_MAX, which no allocator
	 * can satisfy, so the hook reports it the same way as any failure and
	 * does not return.
	 */
	if (size != 0 && nmemb > SIZE_MAX / size)
		return hl_alloc_hook(SIZE_MAX);
	return hl_alloc0(nmemb * size);
}

/* Release memory from hl_alloc0 or hl_alloc_array; NULL is ignored. */
void
hl_free(void *ptr)
{
	if (ptr != NULL)
		hl_free_hook(ptr);
}

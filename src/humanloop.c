/*
 * humanloop.c
 *		Module entry point: module magic, _PG_init and the settings (GUCs)
 *		that are not owned by a more specific module.
 *
 * _PG_init wires the numeric core's allocation hooks to palloc, so memory
 * the core allocates belongs to the caller's memory context and an ERROR
 * frees it, and pins OpenBLAS to one thread: a backend is one process per
 * connection, and threads of its own would compete with other backends.
 */
#include "compat.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "blas.h"
#include "hl_alloc.h"
#include "humanloop.h"
#include "worker.h"

PG_MODULE_MAGIC;

int			hl_max_text_bytes = HL_DEFAULT_MAX_TEXT_BYTES;
int			hl_keep_versions = 50;

void		_PG_init(void);

/* Allocate zeroed memory in the current memory context; huge sizes allowed. */
static void *
hl_palloc0(size_t size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

static void
hl_pfree(void *ptr)
{
	pfree(ptr);
}

/* Let a long fit be cancelled; the core's memory is in memory contexts. */
static void
hl_check_for_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

void
_PG_init(void)
{
	hl_alloc_hook = hl_palloc0;
	hl_free_hook = hl_pfree;
	hl_interrupt_hook = hl_check_for_interrupts;

	openblas_set_num_threads(1);

	DefineCustomIntVariable("humanloop.max_text_length",
							"Sets the maximum length of one text that humanloop featurises.",
							"Longer texts are rejected with an error.  In bytes, from 1kB to 64MB.",
							&hl_max_text_bytes,
							HL_DEFAULT_MAX_TEXT_BYTES,
							1024, 64 * 1024 * 1024,
							PGC_USERSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("humanloop.keep_versions",
							"Sets how many versions of each model are kept.",
							"Storing a version deletes the versions older than the newest this many.  "
							"0 keeps every version.",
							&hl_keep_versions,
							50, 0, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	hl_next_batch_init();
	hl_worker_init();

	HlReserveGucPrefix("humanloop");
}

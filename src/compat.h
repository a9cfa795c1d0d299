/*
 * compat.h
 *		Differences between the PostgreSQL major versions humanloop is
 *		written for (13 to 17).  Every PG_VERSION_NUM test lives here.
 *
 * NOTE: only PostgreSQL 15 is compiled and tested.  The branches for the
 * other versions have never been built.
 */
#ifndef HL_COMPAT_H
#define HL_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 130000
#error "humanloop requires PostgreSQL 13 or later"
#endif

#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * PostgreSQL 15 added shmem_request_hook, and from then on shared memory
 * must be requested in it rather than in _PG_init.
 */
#if PG_VERSION_NUM >= 150000
#define HL_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* MarkGUCPrefixReserved replaced EmitWarningsOnPlaceholders in 15. */
#if PG_VERSION_NUM >= 150000
#define HlReserveGucPrefix(prefix) MarkGUCPrefixReserved(prefix)
#else
#define HlReserveGucPrefix(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#endif							/* HL_COMPAT_H */

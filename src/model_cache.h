/*
 * model_cache.h
 *		Per-backend cache of deserialised models.
 */
#ifndef HL_MODEL_CACHE_H
#define HL_MODEL_CACHE_H

#include "humanloop.h"

/*
 * Return the current version of model name from the backend's cache, loading
 * it when it is not cached.  fcinfo's fn_extra remembers the name's version
 * for the rest of the query, so a scan over many rows reads the catalog once.
 * Raises an error when the model does not exist or was never trained.
 */
extern HlModel *hl_model_for_call(FunctionCallInfo fcinfo, text *name);

/*
 * Return the current version of model name, or NULL when it was never
 * trained; sets *model_id either way.
 */
extern HlModel *hl_model_current(const char *name, int32 *model_id);

/* Return version of a model by id, loading it at most once per backend. */
extern HlModel *hl_model_version(const char *name, int32 model_id, int32 version);

/*
 * Return a private copy of base, to be changed into a new version.  It is
 * owned by the cache but not visible until hl_model_cache_commit_pending.
 */
extern HlModel *hl_model_cache_prepare_copy(const HlModel *base);

/* Install the pending copy as version; call after the commit that stored it. */
extern void hl_model_cache_commit_pending(int32 version);

/* Free the pending copy, after an error or rollback. */
extern void hl_model_cache_discard_pending(void);

#endif							/* HL_MODEL_CACHE_H */

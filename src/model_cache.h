/*
 * model_cache.h
 *		Per-backend cache of deserialised models.
 */
#ifndef HL_MODEL_CACHE_H
#define HL_MODEL_CACHE_H

#include "humanloop.h"

/*
 * Return the current version of model name, loading it at most once per
 * backend and version.  fcinfo's fn_extra remembers the name's version for
 * the rest of the query, so a scan over many rows reads the catalog once.
 * Raises an error when the model does not exist or was never trained.
 */
extern HlModel *hl_model_for_call(FunctionCallInfo fcinfo, text *name);

/*
 * Return the current version of model name, or NULL when it was never
 * trained; sets *model_id either way.
 */
extern HlModel *hl_model_current(const char *name, int32 *model_id);

#endif							/* HL_MODEL_CACHE_H */

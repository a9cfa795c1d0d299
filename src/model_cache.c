/*
 * model_cache.c
 *		Per-backend cache of deserialised models.
 *
 * Loading a model reads its posterior (megabytes) from
 * humanloop.model_versions and checks it.  The cache keeps the last few
 * loaded versions, each in its own memory context under TopMemoryContext,
 * keyed by model id and version; a new version is simply a new key, and old
 * ones fall out by least recent use.  Callers never keep a model pointer
 * across calls: each call looks the model up again, so eviction between
 * calls is safe.
 */
#include "compat.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "model_cache.h"
#include "posterior_io.h"

#define HL_CACHE_SLOTS 8

typedef struct HlCacheSlot
{
	int32		model_id;		/* 0: empty slot */
	int32		version;
	uint64		last_used;
	MemoryContext context;
	HlModel    *model;
} HlCacheSlot;

/* What fn_extra remembers for the rest of a query. */
typedef struct HlCallCache
{
	char		name[NAMEDATALEN];
	int32		model_id;
	int32		version;
	double		abstain_probability;
} HlCallCache;

static MemoryContext hl_cache_context = NULL;
static HlCacheSlot hl_cache[HL_CACHE_SLOTS];
static uint64 hl_cache_clock = 0;

/* Deserialise version of model_id into a new memory context of its own. */
static HlModel *
hl_model_load(const char *name, int32 model_id, int32 version, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	HlModel    *model = palloc0(sizeof(HlModel));
	bytea	   *blob = hl_catalog_fetch_posterior(model_id, version, context);
	char	   *what = psprintf("model \"%s\" version %d", name, version);

	model->model_id = model_id;
	model->version = version;
	model->context = context;
	hl_posterior_deserialize(blob, model, what);

	model->featurizer = hl_featurizer_create(&model->features);
	hl_sparse_init(&model->vec);
	model->proba = palloc0(sizeof(float) * model->classifier.n_classes);
	model->workspace = palloc0(sizeof(float) * hl_classifier_workspace_size(&model->classifier));

	MemoryContextSwitchTo(old);
	return model;
}

/* Load a model into context, deleting the context when loading fails. */
static HlModel *
hl_model_load_or_free(const char *name, int32 model_id, int32 version,
					  MemoryContext context)
{
	HlModel    *model = NULL;

	PG_TRY();
	{
		model = hl_model_load(name, model_id, version, context);
	}
	PG_CATCH();
	{
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();

	return model;
}

/* Return the cached model for (model_id, version), loading it if needed. */
static HlModel *
hl_cache_get(const char *name, int32 model_id, int32 version)
{
	HlCacheSlot *victim = NULL;
	MemoryContext context;

	if (hl_cache_context == NULL)
		hl_cache_context = AllocSetContextCreate(TopMemoryContext,
												 "humanloop model cache",
												 ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < HL_CACHE_SLOTS; i++)
	{
		HlCacheSlot *slot = &hl_cache[i];

		if (slot->model_id == model_id && slot->version == version)
		{
			slot->last_used = ++hl_cache_clock;
			return slot->model;
		}
		if (victim == NULL || slot->model_id == 0 ||
			(victim->model_id != 0 && slot->last_used < victim->last_used))
			victim = slot;
	}

	/* Free the least recently used slot before loading into it. */
	if (victim->model_id != 0)
	{
		MemoryContextDelete(victim->context);
		victim->model_id = 0;
	}

	context = AllocSetContextCreate(hl_cache_context, "humanloop model",
									ALLOCSET_DEFAULT_SIZES);
	victim->model = hl_model_load_or_free(name, model_id, version, context);
	victim->context = context;
	victim->model_id = model_id;
	victim->version = version;
	victim->last_used = ++hl_cache_clock;
	return victim->model;
}

/* Raise the error for a model that has no trained version yet. */
static void
hl_error_untrained(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("model \"%s\" has not been trained yet", name),
			 errhint("Label some rows, then run SELECT * FROM hl_train('%s');", name)));
}

HlModel *
hl_model_current(const char *name, int32 *model_id)
{
	double		abstain_probability;
	int32		version = hl_catalog_current_version(name, model_id, &abstain_probability);
	HlModel    *model;

	if (version == 0)
		return NULL;
	model = hl_cache_get(name, *model_id, version);
	model->abstain_probability = abstain_probability;
	return model;
}

HlModel *
hl_model_for_call(FunctionCallInfo fcinfo, text *name)
{
	HlCallCache *call = (HlCallCache *) fcinfo->flinfo->fn_extra;
	char	   *cname = text_to_cstring(name);
	HlModel    *model;

	if (call == NULL || strcmp(call->name, cname) != 0)
	{
		int32		model_id;
		int32		version;
		double		abstain_probability;

		hl_check_model_name(cname);
		version = hl_catalog_current_version(cname, &model_id, &abstain_probability);
		if (version == 0)
			hl_error_untrained(cname);

		if (call == NULL)
			call = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(HlCallCache));
		strlcpy(call->name, cname, NAMEDATALEN);
		call->model_id = model_id;
		call->version = version;
		call->abstain_probability = abstain_probability;
		fcinfo->flinfo->fn_extra = call;
	}

	pfree(cname);
	model = hl_cache_get(call->name, call->model_id, call->version);
	model->abstain_probability = call->abstain_probability;
	return model;
}

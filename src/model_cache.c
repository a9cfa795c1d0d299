/*
 * model_cache.c
 *		Per-backend cache of deserialised models.
 *
 * Loading a model reads its posterior (megabytes) from
 * humanloop.model_versions and checks it.  The cache keeps the last eight
 * loaded versions, each in its own memory context under TopMemoryContext,
 * keyed by model id and version.  A new version is simply a new key, and old
 * ones fall out by least recent use.  Callers never keep a model pointer
 * across calls: each call looks the model up again, so eviction between
 * calls is safe.  A version stored as a patch is loaded by copying its base
 * version, itself loaded through the cache, and applying the patch.
 *
 * The background worker builds each new version from a copy of the current
 * one (the pending model), and installs the copy under its new version only
 * after the transaction that stored it has committed.
 *
 * A version number is not unique over time: hl_train in a transaction that
 * rolls back frees its number, and the next training reuses it.  So slots
 * loaded during a transaction are evicted when it (or any subtransaction)
 * aborts, since they may hold a version that no longer exists.
 */
#include "compat.h"

#include "access/xact.h"
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
	bool		loaded_in_xact; /* loaded since the last commit or abort */
	MemoryContext context;
	HlModel    *model;
} HlCacheSlot;

/* What fn_extra remembers for the rest of a query. */
typedef struct HlCallCache
{
	char		name[NAMEDATALEN];
	int32		model_id;
	int32		version;
	HlAbstentionRule abstention;
} HlCallCache;

static MemoryContext hl_cache_context = NULL;
static HlModel *hl_pending_model = NULL;
static HlCacheSlot hl_cache[HL_CACHE_SLOTS];
static uint64 hl_cache_clock = 0;

static bool hl_cache_callbacks_registered = false;

static HlModel *hl_cache_get(const char *name, int32 model_id, int32 version);

/* The scratch space every loaded model needs for scoring. */
static void
hl_model_init_scratch(HlModel *model)
{
	model->classifier.variance = NULL;
	model->featurizer = hl_featurizer_create(&model->features);
	hl_sparse_init(&model->vec);
	model->proba = palloc0(sizeof(float) * model->classifier.n_classes);
	model->workspace = palloc0(sizeof(float) * hl_classifier_workspace_size(&model->classifier));
	model->novelty_scratch = model->novelty.k > 0 ? palloc(sizeof(float) * 2 * model->novelty.k) : NULL;
	hl_sentence_features_init(&model->sentence);
	hl_tagger_output_init(&model->tagged);
}

/* Copy src, arrays and labels included, into context. */
static HlModel *
hl_model_copy(const HlModel *src, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	HlModel    *model = palloc0(sizeof(HlModel));
	uint32		dim = src->classifier.dim;
	uint32		k = src->classifier.n_classes;
	Size		cells = (Size) dim * k;
	float	   *idf = palloc_extended(sizeof(float) * dim, MCXT_ALLOC_HUGE);

	*model = *src;
	model->context = context;
	memcpy(idf, src->idf, sizeof(float) * dim);
	model->idf = idf;
	model->classifier.mean = palloc_extended(sizeof(float) * cells, MCXT_ALLOC_HUGE);
	memcpy(model->classifier.mean, src->classifier.mean, sizeof(float) * cells);
	model->classifier.precision = palloc_extended(sizeof(float) * cells, MCXT_ALLOC_HUGE);
	memcpy(model->classifier.precision, src->classifier.precision, sizeof(float) * cells);
	model->classifier.bias_mean = palloc(sizeof(float) * k);
	memcpy(model->classifier.bias_mean, src->classifier.bias_mean, sizeof(float) * k);
	model->classifier.bias_precision = palloc(sizeof(float) * k);
	memcpy(model->classifier.bias_precision, src->classifier.bias_precision, sizeof(float) * k);
	if (hl_model_is_spans(src))
	{
		Size		transition_cells = (Size) (k + 1) * k;

		model->transitions.mean = palloc(sizeof(float) * transition_cells);
		memcpy(model->transitions.mean, src->transitions.mean, sizeof(float) * transition_cells);
		model->transitions.precision = palloc(sizeof(float) * transition_cells);
		memcpy(model->transitions.precision, src->transitions.precision,
			   sizeof(float) * transition_cells);
		model->transitions.draws = NULL;
		model->transitions.dense_tag = NULL;
		model->transitions.pair_start = NULL;
		model->transitions.pair_tag = NULL;
		model->transitions.pair_mean = NULL;
		model->transitions.pair_variance = NULL;
	}
	if (src->word_classes.n_words > 0)
	{
		Size		n = src->word_classes.n_words;

		model->word_classes.word = palloc(sizeof(uint64) * n);
		memcpy(model->word_classes.word, src->word_classes.word, sizeof(uint64) * n);
		model->word_classes.word_class = palloc(sizeof(uint16) * n * HL_WORD_CLASS_LEVELS);
		memcpy(model->word_classes.word_class, src->word_classes.word_class,
			   sizeof(uint16) * n * HL_WORD_CLASS_LEVELS);
	}
	if (src->novelty.k > 0)
		hl_novelty_copy(&model->novelty, &src->novelty);
	model->labels = palloc(sizeof(char *) * src->n_labels);
	for (uint32 i = 0; i < src->n_labels; i++)
		model->labels[i] = pstrdup(src->labels[i]);
	hl_model_init_scratch(model);

	MemoryContextSwitchTo(old);
	return model;
}

/*
 * Load version of model_id into context: deserialise a full posterior, or
 * copy the base version of a patch (through the cache) and apply the patch.
 */
static HlModel *
hl_model_load(const char *name, int32 model_id, int32 version, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	HlModel    *model;
	bytea	   *blob = hl_catalog_fetch_posterior(model_id, version, context);
	char	   *what = psprintf("model \"%s\" version %d", name, version);
	int32		base_version;
	int32		depth;

	if (hl_posterior_patch_info(blob, &base_version, &depth, what))
	{
		HlModel    *base;

		if (base_version >= version)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("posterior of %s is damaged", what),
					 errdetail("It patches version %d, which is not older.", base_version)));
		base = hl_cache_get(name, model_id, base_version);
		model = hl_model_copy(base, context);
		hl_posterior_apply_patch(blob, model, what);
		model->root_version = base->root_version;
		pfree(blob);
	}
	else
	{
		model = palloc0(sizeof(HlModel));
		hl_posterior_deserialize(blob, model, what);
		model->context = context;
		model->root_version = version;
		hl_model_init_scratch(model);
	}
	model->model_id = model_id;
	model->version = version;

	/*
	 * Loaded versions never change, so prediction can read caches: 1 /
	 * precision of a classifier, or a span model's fitted weights and
	 * transition draws.
	 */
	if (hl_model_is_spans(model))
		hl_crf_prepare(&model->classifier, &model->transitions);
	else
		hl_classifier_cache_variance(&model->classifier);

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

/* Evict the slots loaded in the current transaction. */
static void
hl_cache_evict_loaded_in_xact(void)
{
	for (int i = 0; i < HL_CACHE_SLOTS; i++)
	{
		HlCacheSlot *slot = &hl_cache[i];

		if (slot->model_id != 0 && slot->loaded_in_xact)
		{
			MemoryContextDelete(slot->context);
			memset(slot, 0, sizeof(HlCacheSlot));
		}
	}
}

/* At commit the slots loaded so far hold committed versions; keep them. */
static void
hl_cache_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			for (int i = 0; i < HL_CACHE_SLOTS; i++)
				hl_cache[i].loaded_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			hl_cache_evict_loaded_in_xact();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction abort may remove a version loaded in it.  Slots loaded
 * earlier in the transaction go too, because which subtransaction loaded
 * them is not recorded; they reload on the next use.
 */
static void
hl_cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		hl_cache_evict_loaded_in_xact();
}

/* Return the cache context, creating it on first use. */
static MemoryContext
hl_cache_memory(void)
{
	if (hl_cache_context == NULL)
		hl_cache_context = AllocSetContextCreate(TopMemoryContext,
												 "humanloop model cache",
												 ALLOCSET_DEFAULT_SIZES);
	if (!hl_cache_callbacks_registered)
	{
		RegisterXactCallback(hl_cache_xact_callback, NULL);
		RegisterSubXactCallback(hl_cache_subxact_callback, NULL);
		hl_cache_callbacks_registered = true;
	}
	return hl_cache_context;
}

/* Put a loaded model into the least recently used slot. */
static void
hl_cache_install(HlModel *model, MemoryContext context)
{
	HlCacheSlot *victim = NULL;

	for (int i = 0; i < HL_CACHE_SLOTS; i++)
	{
		HlCacheSlot *slot = &hl_cache[i];

		if (slot->model_id == model->model_id && slot->version == model->version)
		{
			/* Already there (installed by a nested load): keep the old copy. */
			MemoryContextDelete(context);
			return;
		}
		if (victim == NULL || slot->model_id == 0 ||
			(victim->model_id != 0 && slot->last_used < victim->last_used))
			victim = slot;
	}

	if (victim->model_id != 0)
		MemoryContextDelete(victim->context);
	victim->context = context;
	victim->model = model;
	victim->model_id = model->model_id;
	victim->version = model->version;
	victim->last_used = ++hl_cache_clock;
	victim->loaded_in_xact = IsTransactionState();
}

/* Return the cached model for (model_id, version), loading it if needed. */
static HlModel *
hl_cache_get(const char *name, int32 model_id, int32 version)
{
	MemoryContext context;
	HlModel    *model;

	for (int i = 0; i < HL_CACHE_SLOTS; i++)
	{
		HlCacheSlot *slot = &hl_cache[i];

		if (slot->model_id == model_id && slot->version == version)
		{
			slot->last_used = ++hl_cache_clock;
			return slot->model;
		}
	}

	/*
	 * Load before choosing a slot: loading a patch loads its base through
	 * this cache, which must not evict a slot we are about to fill.
	 */
	context = AllocSetContextCreate(hl_cache_memory(), "humanloop model",
									ALLOCSET_DEFAULT_SIZES);
	model = hl_model_load_or_free(name, model_id, version, context);
	hl_cache_install(model, context);
	return hl_cache_get(name, model_id, version);
}

HlModel *
hl_model_version(const char *name, int32 model_id, int32 version)
{
	return hl_cache_get(name, model_id, version);
}

HlModel *
hl_model_cache_prepare_copy(const HlModel *base)
{
	MemoryContext context;

	hl_model_cache_discard_pending();
	context = AllocSetContextCreate(hl_cache_memory(), "humanloop pending model",
									ALLOCSET_DEFAULT_SIZES);
	hl_pending_model = hl_model_copy(base, context);
	return hl_pending_model;
}

void
hl_model_cache_commit_pending(int32 version)
{
	if (hl_pending_model == NULL)
		return;
	hl_pending_model->version = version;
	hl_cache_install(hl_pending_model, hl_pending_model->context);
	hl_pending_model = NULL;
}

void
hl_model_cache_discard_pending(void)
{
	if (hl_pending_model == NULL)
		return;
	MemoryContextDelete(hl_pending_model->context);
	hl_pending_model = NULL;
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
	HlAbstentionRule abstention;
	int32		version = hl_catalog_current_version(name, model_id, &abstention);
	HlModel    *model;

	if (version == 0)
		return NULL;
	model = hl_cache_get(name, *model_id, version);
	model->abstention = abstention;
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
		HlAbstentionRule abstention;

		hl_check_model_name(cname);
		version = hl_catalog_current_version(cname, &model_id, &abstention);
		if (version == 0)
			hl_error_untrained(cname);

		if (call == NULL)
			call = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(HlCallCache));
		strlcpy(call->name, cname, NAMEDATALEN);
		call->model_id = model_id;
		call->version = version;
		call->abstention = abstention;
		fcinfo->flinfo->fn_extra = call;
	}

	pfree(cname);
	model = hl_cache_get(call->name, call->model_id, call->version);
	model->abstention = call->abstention;
	return model;
}

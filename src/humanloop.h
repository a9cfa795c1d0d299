/*
 * humanloop.h
 *		Declarations shared by the PostgreSQL side of humanloop: the model
 *		definition read from the catalog and the loaded, ready-to-score model.
 */
#ifndef HUMANLOOP_H
#define HUMANLOOP_H

#include "compat.h"

#include "fmgr.h"

#include "features.h"
#include "metrics.h"
#include "model_classifier.h"
#include "model_crf.h"
#include "novelty.h"
#include "span_tags.h"

/* Default maximum length of a featurised text, 1MB; see humanloop.max_text_length. */
#define HL_DEFAULT_MAX_TEXT_BYTES (1024 * 1024)

/* hl_classify abstains below this top-class probability unless a model sets its own. */
#define HL_DEFAULT_ABSTAIN_PROBABILITY 0.8

/* Task codes, stored in posteriors; humanloop.models.task names them. */
#define HL_TASK_CLASSIFICATION 1
#define HL_TASK_SPANS 2

/* Feature buckets of a span model unless its options set hash_bits. */
#define HL_SPANS_DEFAULT_HASH_BITS 16

extern int	hl_max_text_bytes;
extern int	hl_keep_versions;

/*
 * An abstention rule: hand a prediction to a person when its confidence
 * under score is below threshold.
 */
typedef struct HlAbstentionRule
{
	HlConfidenceScore score;
	double		threshold;
} HlAbstentionRule;

/*
 * What the user asked of the abstention rule (the model option
 * "abstention"): a minimum accuracy of the automatic predictions or a share of
 * rows to keep automatic, at most one of them above 0.  Full training then
 * chooses the threshold again by folds-fold cross-validation.
 */
typedef struct HlAbstentionTarget
{
	double		target_accuracy;	/* 0: none */
	double		target_coverage;	/* 0: none */
	HlConfidenceScore score;
	int			folds;
} HlAbstentionTarget;

/* A row of humanloop.models. */
typedef struct HlModelDef
{
	int32		model_id;
	char	   *name;
	char	   *task;
	Oid			relation;
	char	   *id_column;
	char	   *text_column;
	char	   *label_column;
	Oid			labels_relation;	/* InvalidOid: labels are in relation */
	char	   *labels_id_column;
	Oid			owner;
	int32		current_version;	/* 0: never trained */

	/* options, parsed from the jsonb column */
	HlFeatureConfig features;
	double		abstain_probability;
	HlAbstentionTarget abstention;
	double		prior_precision;	/* <= 0: chosen from the data */
	bool		allow_overlap;	/* spans: accept overlapping spans in one label */
	bool		word_classes;	/* spans: learn word classes from the pool's text */
	int32		novelty;		/* classifiers: latent dimensions of the novelty score, 0 for none */
	double		self_training;	/* classifiers: weight of pseudo-labelled rows, 0 for none */
} HlModelDef;

/*
 * A trained version, deserialised and ready to score.  The arrays point into
 * the detoasted posterior, which lives as long as the model.  labels has
 * n_labels entries; the classifier may have one more, phantom class with no
 * labelled rows when only one real class was labelled.  In a span model
 * (task HL_TASK_SPANS) labels are the span labels, the classifier's
 * classes are their BIO tags (see span_tags.h), and classifier and
 * transitions together are a linear-chain CRF (see model_crf.h).
 */
typedef struct HlModel
{
	int32		model_id;
	int32		version;
	int32		task;			/* HL_TASK_CLASSIFICATION or HL_TASK_SPANS */
	int32		patch_depth;	/* patches between this version and a full one */
	int32		root_version;	/* the full version the patches start from */
	HlFeatureConfig features;
	const float *idf;
	HlClassifier classifier;	/* span models: the CRF's emission weights */
	HlCrfTransitions transitions;	/* span models only */
	HlWordClasses word_classes; /* span models: empty when none were fitted */
	HlNovelty	novelty;		/* classifiers: k 0 when none was fitted */
	uint32		n_labels;
	char	  **labels;
	HlAbstentionRule abstention;	/* of the current version, see hl_catalog_current_version */

	/*
	 * Scratch space for scoring one text at a time.  It grows on demand, so
	 * scoring runs in context, the memory context the model lives in.
	 */
	MemoryContext context;
	HlFeaturizer *featurizer;
	HlSparseVec vec;
	float	   *proba;
	float	   *workspace;
	float	   *novelty_scratch;

	/* Scratch space of span models for tagging one sentence at a time. */
	HlSentenceFeatures sentence;
	HlTaggerOutput tagged;
} HlModel;

/* Module initialisers called from _PG_init; each defines its settings. */
extern void hl_next_batch_init(void);

/* Return the class of label name in a classifier's sorted labels, or -1. */
extern int32 hl_model_find_label(const HlModel *model, const char *name);

/*
 * Return the most probable class other than first among the n_labels
 * probabilities, the first such on a tie, or -1 when there is none.
 */
extern int32 hl_second_class(const float *proba, uint32 n_labels, int32 first);

/* Featurise one text with the model's idf into model->vec, which keeps it until the next call. */
extern void hl_model_featurize(HlModel *model, const char *text, size_t len);

/* Scoring of one text, shared by the prediction functions and hl_next_batch. */
extern void hl_model_score(HlModel *model, const char *text, size_t len,
						   HlPrediction *out);

/*
 * Tag one sentence with a span model; the result is in model->sentence
 * (tokens) and model->tagged (tags, spans, uncertainty) until the next call.
 */
extern void hl_model_tag(HlModel *model, const char *text, size_t len);

/* Return whether a loaded model is a span model. */
static inline bool
hl_model_is_spans(const HlModel *model)
{
	return model->task == HL_TASK_SPANS;
}

/* Reject a text longer than humanloop.max_text_length; what names the row. */
extern void hl_check_text_length(size_t len, const char *what);

#endif							/* HUMANLOOP_H */

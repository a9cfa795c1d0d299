/*
 * train.h
 *		Full training of a model, shared by hl_train and the background worker.
 */
#ifndef HL_TRAIN_H
#define HL_TRAIN_H

#include "humanloop.h"

/* What a full training stored. */
typedef struct HlTrainResult
{
	int32		version;
	int32		labelled_rows;
	int32		classes;
	double		seconds;
	char	   *metrics_json;
} HlTrainResult;

/*
 * A model's labelled rows read and featurised for a fit: TF-IDF rows in
 * data (at least two classes, see HlDataset), the n_labels real label names
 * in class order (sorted by strcmp) and the idf of the whole relation.
 */
typedef struct HlTrainingData
{
	HlDataset	data;
	uint32		n_items;		/* labelled items; an item may have several rows */
	uint64		n_docs;			/* rows of the relation, labelled or not */
	uint32		n_labels;
	char	  **labels;
	float	   *idf;
	HlNovelty	novelty;		/* k 0 unless the model option novelty is set */
	HlSparseRows unlabelled;	/* TF-IDF rows without a label, for self-training */
} HlTrainingData;

/*
 * Read every row of model def and featurise its labelled rows, in the
 * current memory context.  With for_fit and the model option self_training,
 * also keep the unlabelled rows that self-training predicts.  Evaluation
 * passes false, because it does not use them.  Raises an error when no row
 * is labelled.
 */
extern void hl_training_load(const HlModelDef *def, bool for_fit, HlTrainingData *out);

/*
 * Warn when one of the n label names of model starts or ends with white
 * space: such a label is a class of its own, which is rarely meant.
 */
extern void hl_warn_padded_labels(const char *model, char **names, uint32 n);

/* Fit options for model def, as full training uses them. */
extern void hl_training_fit_options(const HlModelDef *def, HlFitOptions *options);

/*
 * Fit the posterior of model def to all its labelled rows and store it as a
 * new current version.  The caller holds the model's row lock (see
 * hl_catalog_fetch_model) and has checked its source relations.
 */
extern void hl_train_model(const HlModelDef *def, HlTrainResult *result);

/*
 * Fit the token tagger of span model def to all its labelled rows and
 * store it as a new current version; hl_train_model calls it for span
 * models.
 */
extern void hl_train_spans(const HlModelDef *def, HlTrainResult *result);

#endif							/* HL_TRAIN_H */

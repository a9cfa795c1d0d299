/*
 * self_training.h
 *		Self-training: unlabelled rows that a fitted classifier predicts
 *		with high probability join the training data with that label and a
 *		small weight (numeric core, no PostgreSQL headers).
 */
#ifndef HL_SELF_TRAINING_H
#define HL_SELF_TRAINING_H

#include <stdint.h>

#include "model_classifier.h"
#include "novelty.h"

/*
 * Lowest predictive probability of a pseudo-label.  The calibrated model
 * gets about 89% of such rows right on banking77 with 1,000 random labels,
 * and 0.5 to 0.8 measured alike (docs/model.md, "Self-training").
 */
#define HL_SELF_TRAINING_THRESHOLD 0.7

/* The labelled rows extended by pseudo-labelled ones, for hl_classifier_fit. */
typedef struct HlSelfTrainingSet
{
	HlDataset	data;			/* labelled rows first, then pseudo-labelled */
	uint8_t    *train_only;		/* 1 for the pseudo-labelled rows */
	uint32_t	n_pseudo;
	float	   *row_weight;		/* owned copies behind data */
	int32_t    *row_label;
	uint32_t   *row_group;
	uint64_t   *row_start;
	uint32_t   *index;
	float	   *value;
} HlSelfTrainingSet;

/*
 * Predict every row of unlabelled (TF-IDF rows) with model and build in
 * out the rows of labelled followed by each unlabelled row whose most
 * probable class has probability at least threshold, labelled with that
 * class and weighted by weight.  Each pseudo-labelled row is its own item
 * (group) after those of labelled, and is flagged in out->train_only.
 * Arrays come from hl_alloc_array; free them with hl_self_training_free.
 */
extern void hl_self_training_extend(const HlClassifier *model, const HlDataset *labelled,
									const HlSparseRows *unlabelled, double threshold,
									float weight, HlSelfTrainingSet *out);

/* Free the arrays of a set made by hl_self_training_extend. */
extern void hl_self_training_free(HlSelfTrainingSet *set);

#endif							/* HL_SELF_TRAINING_H */

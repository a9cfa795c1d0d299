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
 * Lowest predictive probability of a pseudo-label.  With 1,000 random
 * banking77 labels, bench_core found about 89% of the rows above it labelled
 * right.
 */
#define HL_SELF_TRAINING_THRESHOLD 0.7

/*
 * Smallest weight of a pseudo-labelled row: below it a row would count for
 * next to nothing, and below about 1e-45 it would become 0 as a float.
 */
#define HL_SELF_TRAINING_MIN_WEIGHT 0.001

/* The labelled rows extended by pseudo-labelled ones, for hl_classifier_fit. */
typedef struct HlSelfTrainingSet
{
	HlDataset	data;			/* labelled rows first, then pseudo-labelled */
	uint8_t    *row_stage;		/* HlRowStage of each row, for HlFitOptions */
	uint32_t	n_pseudo;		/* pseudo-labelled rows of the final fit */
	uint32_t	n_split_pseudo; /* those of the split's training side */
	float	   *row_weight;		/* owned copies behind data */
	int32_t    *row_label;
	uint32_t   *row_group;
	uint64_t   *row_start;
	uint32_t   *index;
	float	   *value;
} HlSelfTrainingSet;

/*
 * Build in out the rows of labelled followed by pseudo-labelled rows of
 * unlabelled (TF-IDF rows), weighted by weight.  split_model, fitted on the
 * training side of a held-out split, labels the rows for that side, and
 * model, fitted on every labelled row, those for the final fit.  Each
 * labels the unlabelled rows whose most probable class has probability
 * threshold or more with that class.  A row both label alike is one row of
 * stage HL_ROW_TRAIN, and other labels give rows of HL_ROW_SPLIT_ONLY and
 * HL_ROW_FINAL_ONLY.  So T and c, fitted on the held-out rows, judge a
 * model whose pseudo-labels never saw them.  Each pseudo-labelled row is
 * its own item (group) after those of labelled.  Arrays come from
 * hl_alloc_array; free them with hl_self_training_free.
 */
extern void hl_self_training_extend(const HlClassifier *split_model, const HlClassifier *model,
									const HlDataset *labelled, const HlSparseRows *unlabelled,
									double threshold, float weight, HlSelfTrainingSet *out);

/* Free the arrays of a set made by hl_self_training_extend. */
extern void hl_self_training_free(HlSelfTrainingSet *set);

#endif							/* HL_SELF_TRAINING_H */

/*
 * evaluate.h
 *		Scoring labelled rows for evaluation: out-of-fold predictions by
 *		k-fold cross-validation, and predictions of a trained version on a
 *		labelled relation.
 */
#ifndef HL_EVALUATE_H
#define HL_EVALUATE_H

#include "humanloop.h"
#include "metrics.h"
#include "train.h"

/* Default number of folds of a cross-validation. */
#define HL_DEFAULT_FOLDS 5

/*
 * Labelled rows with their predictions.  proba is n_rows x n_classes with
 * n_classes the model's real labels (a phantom class is left out), label
 * the true class and weight the row's share of its item.
 */
typedef struct HlScoredSet
{
	uint32		n_rows;
	uint32		n_classes;
	float	   *proba;
	int32	   *label;
	float	   *weight;
	HlPrediction *prediction;

	/* Rows of an evaluation relation left out of the metrics. */
	uint64		unlabelled_rows;	/* label NULL */
	uint64		unknown_label_rows; /* label the model has never seen */
	char	   *unknown_labels; /* JSON object: label -> rows, at most 20 labels */
} HlScoredSet;

/*
 * Raise an error unless model def can be evaluated: classification only so
 * far.  what names the operation refused, for the message.
 */
extern void hl_check_task_evaluable(const HlModelDef *def, const char *what);

/*
 * Predict each labelled row of training with a model fitted on the other
 * k - 1 folds.  Folds split items, never the rows of one item, and are
 * stratified by each item's first label.  The caller checks 2 <= k <=
 * training->n_items.
 */
extern void hl_cross_validate(const HlModelDef *def, const HlTrainingData *training,
							  int k, HlScoredSet *out);

/*
 * Score every row of relation with model, reading its text from
 * text_column and its true label from label_column.
 */
extern void hl_score_relation(HlModel *model, Oid relation, const char *text_column,
							  const char *label_column, HlScoredSet *out);

/* Describe set as HlScoredRows, with confidences under score (NULL: none). */
extern void hl_scored_rows(const HlScoredSet *set, const HlConfidenceScore *score,
						   HlScoredRows *rows);

/*
 * Store an evaluation of version of model def in humanloop.evaluations.
 * method is "cross_validation" with folds, or "relation" with the qualified
 * relation name.  result is the JSON text that hl_evaluate returns.
 */
extern void hl_store_evaluation(const HlModelDef *def, int32 version, const char *method,
								const char *relation, int folds, const char *result);

/* Span evaluation on a labelled relation (sql_spans.c), which hl_evaluate calls. */
extern Datum hl_evaluate_spans(PG_FUNCTION_ARGS);

#endif							/* HL_EVALUATE_H */

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

/*
 * update.h
 *		Incremental update of a model from its queued label changes.
 */
#ifndef HL_UPDATE_H
#define HL_UPDATE_H

#include "humanloop.h"
#include "train.h"

/*
 * Apply the new labels queued for def up to queue entry last_queue_id to its
 * current version and store the result as a new version of kind "update".
 * Returns false, storing nothing, when the changes need a full retrain: a
 * label the version has never seen, or an item with several labels.
 */
extern bool hl_update_model(const HlModelDef *def, int64 last_queue_id,
							HlTrainResult *result);

#endif							/* HL_UPDATE_H */

/*
 * acquisition.h
 *		Acquisition scores: how much a label for a row would teach the model.
 */
#ifndef HL_ACQUISITION_H
#define HL_ACQUISITION_H

#include "humanloop.h"

typedef enum HlStrategy
{
	HL_STRATEGY_BALD,
	HL_STRATEGY_ENTROPY,
	HL_STRATEGY_MARGIN,
	HL_STRATEGY_LEAST_CONFIDENCE,
	HL_STRATEGY_RANDOM
} HlStrategy;

/* Parse a strategy name, raising an error that lists the valid ones. */
extern HlStrategy hl_strategy_parse(const char *name);

extern const char *hl_strategy_name(HlStrategy strategy);

/*
 * Score of one scored row under strategy; higher is more worth labelling.
 * proba holds the row's predictive distribution over n_labels classes.
 */
extern double hl_acquisition_score(HlStrategy strategy,
								   const HlPrediction *prediction,
								   const float *proba, uint32 n_labels,
								   const char *id, size_t id_len);

/* Deterministic pseudo-random number in [0, 1) from a row id. */
extern double hl_id_uniform(const char *id, size_t id_len);

#endif							/* HL_ACQUISITION_H */

/*
 * acquisition.h
 *		Acquisition: how much a label for a row would teach the model, and
 *		the choice of a batch among the best candidates.
 */
#ifndef HL_ACQUISITION_H
#define HL_ACQUISITION_H

#include "embedding.h"
#include "humanloop.h"

typedef enum HlStrategy
{
	HL_STRATEGY_BALD,
	HL_STRATEGY_ENTROPY,
	HL_STRATEGY_MARGIN,
	HL_STRATEGY_LEAST_CONFIDENCE,
	HL_STRATEGY_RANDOM,
	HL_STRATEGY_COVERAGE,
	HL_STRATEGY_HYBRID
} HlStrategy;

/* Settings of one hl_next_batch call, from its strategy and options. */
/* How a span model's token uncertainties make one sentence score. */
typedef enum HlSpanReduction
{
	HL_REDUCE_SUM,
	HL_REDUCE_MEAN,
	HL_REDUCE_MAX
} HlSpanReduction;

typedef struct HlBatchOptions
{
	HlStrategy	strategy;
	double		epistemic;		/* weight of the epistemic rank in hybrid, 0..1 */
	double		density;		/* exponent of the density factor; 0: off */
	double		diversity;		/* weight of the similarity penalty, 0..1 */
	double		cost;			/* exponent of the effort divisor; 0: off */
	double		novelty;		/* weight of the novelty factor; 0: off */
	double		disagreement;	/* exponent of the agreement factor, 0 for off */
	double		max_class_share;	/* of one predicted class in a batch, (0, 1] */
	bool		reserve;		/* reserve the returned rows */
	uint32		candidates;		/* rows kept for the second stage */
	uint32		sample;			/* unlabelled rows scored at most, about; 0: all */
	uint64		seed;
	HlSpanReduction reduction;	/* span models: token scores to a sentence score */
	bool		reduction_given;	/* set by the caller, not defaulted */
	bool		density_given;	/* set by the caller, not defaulted */
	bool		disagreement_given; /* set by the caller, not defaulted */
} HlBatchOptions;

/* A row kept for the second stage. */
typedef struct HlCandidate
{
	char	   *id;
	double		uncertainty;	/* the strategy's score */
	double		cost;			/* expected effort of labelling the row */
	double		density;		/* similarity to the pool's cluster centres */
	double		disagreement;	/* of the top two classes, NaN when not estimated */
	double		similarity;		/* largest to rows taken before it, NaN without diversity */
	double		novelty;		/* novelty score, NaN unless the option novelty weighted the key */
	double		key;			/* first-stage rank: uncertainty / cost^a */
	double		score;			/* final score */
	int32		label;			/* -1 without a model */
	float		probability;
	float		entropy;
	float		mutual_information;
	float		embedding[HL_EMBED_DIM];
} HlCandidate;

/* Parse a strategy name, raising an error that lists the valid ones. */
extern HlStrategy hl_strategy_parse(const char *name);

extern const char *hl_strategy_name(HlStrategy strategy);

/*
 * Score of one scored row under strategy; higher is more worth labelling.
 * proba contains the row's predictive distribution over n_labels classes.
 */
extern double hl_acquisition_score(HlStrategy strategy,
								   const HlPrediction *prediction,
								   const float *proba, uint32 n_labels,
								   const char *id, size_t id_len,
								   const HlBatchOptions *options);

/* Deterministic pseudo-random number in [0, 1) from a row id and a seed. */
extern double hl_id_uniform(const char *id, size_t id_len, uint64 seed);

/* Expected effort of labelling a text of len characters. */
extern double hl_expected_cost(size_t chars);

/*
 * Choose up to n of the candidates: final score = key * density^a, then a
 * greedy pass that penalises similarity to rows already chosen and caps any
 * predicted class at max_class_share of the batch; with the coverage
 * strategy, k-means++ seeding weighted by density instead.  Writes the
 * chosen candidates' indexes, best first, and returns how many.
 */
extern int	hl_select_from_candidates(HlCandidate *candidates, int n_candidates,
									  int n, const HlBatchOptions *options,
									  int *chosen);

#endif							/* HL_ACQUISITION_H */

/*
 * acquisition.c
 *		Acquisition scores: how much a label for a row would teach the model.
 *
 * All scores are "higher is better to label":
 *	bald			  mutual information between the label and the weights,
 *					  I[y; w | x] = H[E_w p(y|x,w)] - E_w H[p(y|x,w)]
 *					  (Houlsby et al. 2011, "Bayesian Active Learning for
 *					  Classification and Preference Learning"); high where
 *					  the model, not the data, is uncertain
 *	entropy			  H[p(y|x)] of the predictive distribution
 *	margin			  1 - (p_top1 - p_top2)
 *	least_confidence  1 - p_top1
 *	random			  a uniform number derived from the row id, so the same
 *					  pool gives the same batch
 */
#include "compat.h"

#include "common/hashfn.h"

#include "acquisition.h"

static const char *const hl_strategy_names[] = {
	"bald", "entropy", "margin", "least_confidence", "random"
};

HlStrategy
hl_strategy_parse(const char *name)
{
	for (size_t i = 0; i < lengthof(hl_strategy_names); i++)
		if (strcmp(name, hl_strategy_names[i]) == 0)
			return (HlStrategy) i;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", name),
			 errhint("Valid strategies are: bald, entropy, margin, least_confidence, random.")));
	pg_unreachable();
}

const char *
hl_strategy_name(HlStrategy strategy)
{
	return hl_strategy_names[strategy];
}

double
hl_id_uniform(const char *id, size_t id_len)
{
	uint64		h = hash_bytes_extended((const unsigned char *) id, (int) id_len, 0x68756d616eULL);

	return (double) (h >> 11) * (1.0 / 9007199254740992.0);
}

double
hl_acquisition_score(HlStrategy strategy, const HlPrediction *prediction,
					 const float *proba, uint32 n_labels,
					 const char *id, size_t id_len)
{
	float		top1 = 0.0f;
	float		top2 = 0.0f;

	switch (strategy)
	{
		case HL_STRATEGY_BALD:
			return prediction->mutual_information;
		case HL_STRATEGY_ENTROPY:
			return prediction->entropy;
		case HL_STRATEGY_LEAST_CONFIDENCE:
			return 1.0 - prediction->probability;
		case HL_STRATEGY_MARGIN:
			for (uint32 k = 0; k < n_labels; k++)
			{
				if (proba[k] > top1)
				{
					top2 = top1;
					top1 = proba[k];
				}
				else if (proba[k] > top2)
					top2 = proba[k];
			}
			return 1.0 - (top1 - top2);
		case HL_STRATEGY_RANDOM:
			return hl_id_uniform(id, id_len);
	}
	elog(ERROR, "unknown strategy %d", (int) strategy);
	return 0.0;
}

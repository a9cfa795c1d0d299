/*
 * acquisition.c
 *		Acquisition: how much a label for a row would teach the model, and
 *		the choice of a batch among the best candidates.
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
 *	random			  a uniform number derived from the row id and a seed,
 *					  so the same pool gives the same batch
 *	coverage		  no score: the batch is spread over the pool by k-means++
 *					  seeding; the cold-start choice before any training
 *	hybrid			  margin in the first stage; in the second, the margin
 *					  score times (1 - e) + e * r, where r is the rank of the
 *					  row's mutual information among the candidates, from 0 to
 *					  1.  Among rows near a decision boundary it prefers those
 *					  the posterior is unsure about over those it already
 *					  knows to be ambiguous, where a label teaches little
 *
 * A batch is chosen in two stages so that the work stays linear in the
 * pool.  The first stage streams the pool and keeps the candidates with the
 * highest uncertainty / cost^a.  The second stage, here, multiplies in the
 * density and picks greedily among the candidates only.
 */
#include "compat.h"

#include <math.h>

#include "common/hashfn.h"

#include "acquisition.h"

static const char *const hl_strategy_names[] = {
	"bald", "entropy", "margin", "least_confidence", "random", "coverage", "hybrid"
};

#define HL_STRATEGY_LIST "bald, entropy, margin, least_confidence, random, coverage, hybrid"

/* Characters of text that count as one unit of annotation effort. */
#define HL_CHARS_PER_EFFORT 200.0

HlStrategy
hl_strategy_parse(const char *name)
{
	for (size_t i = 0; i < lengthof(hl_strategy_names); i++)
		if (strcmp(name, hl_strategy_names[i]) == 0)
			return (HlStrategy) i;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", name),
			 errhint("Valid strategies are: %s.", HL_STRATEGY_LIST)));
	pg_unreachable();
}

const char *
hl_strategy_name(HlStrategy strategy)
{
	return hl_strategy_names[strategy];
}

double
hl_id_uniform(const char *id, size_t id_len, uint64 seed)
{
	uint64		h = hash_bytes_extended((const unsigned char *) id, (int) id_len,
										0x68756d616eULL ^ seed);

	return (double) (h >> 11) * (1.0 / 9007199254740992.0);
}

double
hl_expected_cost(size_t chars)
{
	/* Reading dominates: one unit for a short text plus one per 200 characters. */
	return 1.0 + (double) chars / HL_CHARS_PER_EFFORT;
}

double
hl_acquisition_score(HlStrategy strategy, const HlPrediction *prediction,
					 const float *proba, uint32 n_labels,
					 const char *id, size_t id_len,
					 const HlBatchOptions *options)
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
		case HL_STRATEGY_HYBRID:
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
		case HL_STRATEGY_COVERAGE:
			return hl_id_uniform(id, id_len, options->seed);
	}
	elog(ERROR, "unknown strategy %d", (int) strategy);
	return 0.0;
}

/* Return whether candidate a ranks before b: higher score, then smaller id. */
static bool
hl_ranks_before(const HlCandidate *a, double score_a, const HlCandidate *b, double score_b)
{
	if (score_a != score_b)
		return score_a > score_b;
	return strcmp(a->id, b->id) < 0;
}

/* Spread the batch over the candidates by density-weighted k-means++. */
static int
hl_select_coverage(HlCandidate *candidates, int n_candidates, int n,
				   const HlBatchOptions *options, int *chosen)
{
	float	   *x = palloc(sizeof(float) * HL_EMBED_DIM * n_candidates);
	double	   *weight = palloc(sizeof(double) * n_candidates);
	uint32	   *picked = palloc(sizeof(uint32) * n);
	double		exponent = options->density > 0 ? options->density : 1.0;
	int			count;

	for (int i = 0; i < n_candidates; i++)
	{
		memcpy(x + (size_t) i * HL_EMBED_DIM, candidates[i].embedding,
			   sizeof(float) * HL_EMBED_DIM);
		weight[i] = pow(Max(candidates[i].density, 0.0), exponent) /
			pow(candidates[i].cost, options->cost);
		candidates[i].score = weight[i];
	}

	count = (int) hl_kmeanspp_select(x, weight, n_candidates, n, options->seed, picked);
	for (int i = 0; i < count; i++)
		chosen[i] = (int) picked[i];

	pfree(picked);
	pfree(weight);
	pfree(x);
	return count;
}

/* The candidates the qsort comparators below look into. */
static const HlCandidate *hl_sort_candidates;

/* qsort comparator over candidate indexes: lower mutual information first. */
static int
hl_compare_candidate_mi(const void *a, const void *b)
{
	const HlCandidate *ca = &hl_sort_candidates[*(const int *) a];
	const HlCandidate *cb = &hl_sort_candidates[*(const int *) b];

	if (ca->mutual_information != cb->mutual_information)
		return ca->mutual_information < cb->mutual_information ? -1 : 1;
	return strcmp(ca->id, cb->id);
}

/*
 * Multiply each candidate's score by (1 - weight) + weight * r, where r is
 * the rank of its mutual information among the candidates scaled to [0, 1].
 * Ranks, not values, because the scale of the mutual information changes
 * with the calibration of every version.
 */
static void
hl_weight_by_epistemic_rank(HlCandidate *candidates, int n_candidates, double weight)
{
	int		   *order = palloc(sizeof(int) * Max(n_candidates, 1));

	for (int i = 0; i < n_candidates; i++)
		order[i] = i;
	hl_sort_candidates = candidates;
	qsort(order, n_candidates, sizeof(int), hl_compare_candidate_mi);
	for (int r = 0; r < n_candidates; r++)
	{
		double		rank = n_candidates > 1 ? (double) r / (n_candidates - 1) : 1.0;

		candidates[order[r]].score *= (1.0 - weight) + weight * rank;
	}
	pfree(order);
}

/* qsort comparator over candidate indexes: best score first. */

static int
hl_compare_candidate_index(const void *a, const void *b)
{
	const HlCandidate *ca = &hl_sort_candidates[*(const int *) a];
	const HlCandidate *cb = &hl_sort_candidates[*(const int *) b];

	if (hl_ranks_before(ca, ca->score, cb, cb->score))
		return -1;
	if (hl_ranks_before(cb, cb->score, ca, ca->score))
		return 1;
	return 0;
}

/* Take the best candidates by score, skipping classes that reached their share. */
static int
hl_select_in_order(HlCandidate *candidates, int n_candidates, int n,
				   const HlBatchOptions *options, int max_label, int *chosen)
{
	int		   *order = palloc(sizeof(int) * n_candidates);
	int		   *class_count = palloc0(sizeof(int) * (max_label + 1));
	bool	   *skipped = palloc0(sizeof(bool) * n_candidates);
	int			class_limit = Max(1, (int) floor(options->max_class_share * n + 1e-9));
	int			count = 0;

	for (int i = 0; i < n_candidates; i++)
		order[i] = i;
	hl_sort_candidates = candidates;
	qsort(order, n_candidates, sizeof(int), hl_compare_candidate_index);

	for (int i = 0; i < n_candidates && count < n; i++)
	{
		HlCandidate *c = &candidates[order[i]];

		if (c->label >= 0 && class_count[c->label] >= class_limit)
		{
			skipped[i] = true;
			continue;
		}
		if (c->label >= 0)
			class_count[c->label]++;
		chosen[count++] = order[i];
	}

	/*
	 * With few predicted classes the cap would leave places empty.  The share
	 * is there to spread a batch, not to shorten it, so the best skipped
	 * candidates take those places.
	 */
	for (int i = 0; i < n_candidates && count < n; i++)
		if (skipped[i])
			chosen[count++] = order[i];

	pfree(skipped);
	pfree(class_count);
	pfree(order);
	return count;
}

int
hl_select_from_candidates(HlCandidate *candidates, int n_candidates, int n,
						  const HlBatchOptions *options, int *chosen)
{
	double	   *max_similarity;
	bool	   *taken;
	int		   *class_count;
	int			class_limit;
	int			max_label = 0;
	int			count = 0;

	if (options->strategy == HL_STRATEGY_COVERAGE)
		return hl_select_coverage(candidates, n_candidates, n, options, chosen);

	for (int i = 0; i < n_candidates; i++)
	{
		HlCandidate *c = &candidates[i];

		c->score = c->key;
		if (options->density > 0)
			c->score *= pow(Max(c->density, 0.0), options->density);
		max_label = Max(max_label, c->label + 1);
	}
	if (options->strategy == HL_STRATEGY_HYBRID)
		hl_weight_by_epistemic_rank(candidates, n_candidates, options->epistemic);

	if (options->diversity <= 0)
		return hl_select_in_order(candidates, n_candidates, n, options, max_label, chosen);

	/*
	 * Greedy choice: each step takes the best remaining candidate after the
	 * penalty for its similarity to the rows already taken, skipping
	 * predicted classes that have reached their share.  Without diversity
	 * and class limits this is a plain sort by score.
	 */
	max_similarity = palloc0(sizeof(double) * n_candidates);
	taken = palloc0(sizeof(bool) * n_candidates);
	class_count = palloc0(sizeof(int) * (max_label + 1));
	class_limit = Max(1, (int) floor(options->max_class_share * n + 1e-9));

	while (count < n)
	{
		int			best = -1;
		double		best_score = 0.0;

		for (int i = 0; i < n_candidates; i++)
		{
			HlCandidate *c = &candidates[i];
			double		s;

			if (taken[i] || (c->label >= 0 && class_count[c->label] >= class_limit))
				continue;
			s = c->score * (1.0 - options->diversity * max_similarity[i]);
			if (best < 0 || hl_ranks_before(c, s, &candidates[best], best_score))
			{
				best = i;
				best_score = s;
			}
		}
		if (best < 0 && class_limit < n)
		{
			/* Every class has its share, so the rest of the batch ignores the cap. */
			class_limit = n;
			continue;
		}
		if (best < 0)
			break;

		taken[best] = true;
		candidates[best].score = best_score;
		candidates[best].similarity = max_similarity[best];
		if (candidates[best].label >= 0)
			class_count[candidates[best].label]++;
		chosen[count++] = best;

		if (options->diversity > 0)
			for (int i = 0; i < n_candidates; i++)
			{
				double		sim = hl_embed_dot(candidates[i].embedding, candidates[best].embedding);

				if (sim > max_similarity[i])
					max_similarity[i] = sim;
			}
	}

	pfree(class_count);
	pfree(taken);
	pfree(max_similarity);
	return count;
}

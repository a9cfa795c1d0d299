/*
 * span_acquisition.c
 *		Acquisition scores of sentences for span models: the token
 *		uncertainties of the tagger reduced to one number per sentence.
 *
 * Per strategy, over the tokens t of a sentence, with the option
 * "reduction" (max by default, or sum or mean):
 *	bald			  reduction of the token mutual information MI_t
 *	entropy			  reduction of the token predictive entropy H_t
 *	margin, hybrid	  reduction of 1 - (p_top1 - p_top2) per token
 *	least_confidence  without an explicit reduction, 1 - prod_t
 *					  p_t(decoded tag), one minus the probability of the
 *					  decoded tag sequence under independent tokens; with
 *					  one, the reduction of 1 - p_t(decoded tag), so the
 *					  sum is the expected number of wrongly tagged tokens
 *	random			  as for classification
 * The maximum is the default because it picked the best batches on snips
 * (docs/spans.md): a sum favours long sentences whose tokens are each a
 * little uncertain, the maximum a sentence with one token the model cannot
 * place.
 */
#include "compat.h"

#include <math.h>

#include "span_acquisition.h"

double
hl_span_acquisition_score(HlStrategy strategy, const HlTaggerOutput *tagged,
						  const char *id, size_t id_len,
						  const HlBatchOptions *options, HlPrediction *summary)
{
	double		entropy = 0.0;
	double		mutual_information = 0.0;
	double		margin = 0.0;
	double		log_confidence = 0.0;
	double		expected_errors = 0.0;
	double		max_entropy = 0.0;
	double		max_mutual_information = 0.0;
	double		max_margin = 0.0;
	double		max_token_error = 0.0;

	for (uint32 t = 0; t < tagged->n_tokens; t++)
	{
		const float *p = tagged->proba + (size_t) t * tagged->n_classes;
		double		confidence = p[tagged->tags[t]];

		entropy += tagged->entropy[t];
		mutual_information += tagged->mutual_information[t];
		margin += 1.0 - tagged->margin[t];
		log_confidence += log(Max(confidence, 1e-30));
		expected_errors += 1.0 - confidence;
		max_token_error = Max(max_token_error, 1.0 - confidence);
		max_entropy = Max(max_entropy, tagged->entropy[t]);
		max_mutual_information = Max(max_mutual_information, tagged->mutual_information[t]);
		max_margin = Max(max_margin, 1.0 - tagged->margin[t]);
	}

	summary->label = -1;
	summary->probability = (float) exp(log_confidence);
	summary->entropy = (float) entropy;
	summary->mutual_information = (float) mutual_information;

	if (options->reduction == HL_REDUCE_MEAN && tagged->n_tokens > 0)
	{
		entropy /= tagged->n_tokens;
		mutual_information /= tagged->n_tokens;
		margin /= tagged->n_tokens;
		expected_errors /= tagged->n_tokens;
	}
	else if (options->reduction == HL_REDUCE_MAX)
	{
		entropy = max_entropy;
		mutual_information = max_mutual_information;
		margin = max_margin;
		expected_errors = max_token_error;
	}

	switch (strategy)
	{
		case HL_STRATEGY_BALD:
			return mutual_information;
		case HL_STRATEGY_ENTROPY:
			return entropy;
		case HL_STRATEGY_LEAST_CONFIDENCE:
			if (options->reduction_given)
				return expected_errors;
			return 1.0 - exp(log_confidence);
		case HL_STRATEGY_MARGIN:
		case HL_STRATEGY_HYBRID:
			return margin;
		case HL_STRATEGY_RANDOM:
		case HL_STRATEGY_COVERAGE:
			return hl_id_uniform(id, id_len, options->seed);
	}
	elog(ERROR, "unknown strategy %d", (int) strategy);
	return 0.0;
}

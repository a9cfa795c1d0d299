/*
 * scoring.c
 *		Scoring one text with a loaded model, the step every prediction
 *		function and hl_next_batch share, and tagging one sentence with a
 *		span model.
 */
#include "compat.h"

#include "utils/memutils.h"

#include "humanloop.h"

void
hl_check_text_length(size_t len, const char *what)
{
	if (len > (size_t) hl_max_text_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is %zu bytes long, more than humanloop.max_text_length (%d bytes)",
						what, len, hl_max_text_bytes),
				 errhint("Shorten the text, or raise humanloop.max_text_length.")));
}

int32
hl_model_find_label(const HlModel *model, const char *name)
{
	int32		lo = 0;
	int32		hi = (int32) model->n_labels - 1;

	/* Training sorts the labels by strcmp and loading checks the order, so a binary search finds them. */
	while (lo <= hi)
	{
		int32		mid = lo + (hi - lo) / 2;
		int			cmp = strcmp(model->labels[mid], name);

		if (cmp == 0)
			return mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

int32
hl_second_class(const float *proba, uint32 n_labels, int32 first)
{
	int32		second = -1;

	for (uint32 k = 0; k < n_labels; k++)
		if ((int32) k != first && (second < 0 || proba[k] > proba[second]))
			second = (int32) k;
	return second;
}

void
hl_model_featurize(HlModel *model, const char *text, size_t len)
{
	/* The featuriser's buffers belong to the model's context. */
	MemoryContext old = MemoryContextSwitchTo(model->context);

	hl_featurize_counts(model->featurizer, text, len, &model->vec);
	hl_tfidf_apply(model->idf, &model->vec);
	MemoryContextSwitchTo(old);
}

void
hl_model_score(HlModel *model, const char *text, size_t len, HlPrediction *out)
{
	MemoryContext old;

	hl_model_featurize(model, text, len);
	old = MemoryContextSwitchTo(model->context);
	hl_classifier_predict(&model->classifier, &model->vec, model->proba, out,
						  model->workspace);
	if (model->novelty.k > 0)
		out->novelty = hl_novelty_score(&model->novelty, &model->vec, model->novelty_scratch);
	MemoryContextSwitchTo(old);

	/*
	 * A model trained on a single real class has a phantom second class
	 * standing for "anything else".  It can carry probability, but it is
	 * never the predicted label.
	 */
	if (out->label >= (int32) model->n_labels)
	{
		int32		best = 0;

		for (uint32 k = 1; k < model->n_labels; k++)
			if (model->proba[k] > model->proba[best])
				best = k;
		out->label = best;
		out->probability = model->proba[best];
	}
}

void
hl_model_tag(HlModel *model, const char *text, size_t len)
{
	MemoryContext old = MemoryContextSwitchTo(model->context);

	hl_span_featurize(text, len, model->features.hash_bits, &model->word_classes,
					  &model->sentence);
	hl_crf_predict(&model->classifier, &model->transitions, model->n_labels,
				   &model->sentence, &model->tagged);
	MemoryContextSwitchTo(old);
}

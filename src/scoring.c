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

void
hl_model_score(HlModel *model, const char *text, size_t len, HlPrediction *out)
{
	MemoryContext old = MemoryContextSwitchTo(model->context);

	hl_featurize_counts(model->featurizer, text, len, &model->vec);
	hl_tfidf_apply(model->idf, &model->vec);
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

/*
 * span_tags.c
 *		BIO tags of span models: from gold character spans to tags, from
 *		decoded tags back to spans, and the prediction buffer.
 *
 * The CRF (model_crf.c, crf_predict.c) learns and decodes the tags.  This
 * file only converts between the two ways of writing a sentence's spans.
 */
#include "span_tags.h"

#include <stdbool.h>
#include <string.h>

#include "hl_alloc.h"

uint32_t
hl_tags_from_spans(const HlToken *tokens, uint32_t n_tokens,
				   const HlCharSpan *spans, uint32_t n_spans, int32_t *tags)
{
	uint32_t	missed = 0;

	for (uint32_t t = 0; t < n_tokens; t++)
		tags[t] = HL_TAG_OUTSIDE;

	for (uint32_t i = 0; i < n_spans; i++)
	{
		const HlCharSpan *span = &spans[i];
		bool		first = true;

		for (uint32_t t = 0; t < n_tokens; t++)
		{
			if (tokens[t].char_end <= span->start)
				continue;
			if (tokens[t].char_start >= span->end)
				break;

			/* A token claimed by an earlier span also ends this one's run. */
			if (tags[t] != HL_TAG_OUTSIDE)
			{
				if (!first)
					break;
				continue;
			}
			tags[t] = first ? hl_tag_begin(span->label) : hl_tag_inside(span->label);
			first = false;
		}
		if (first)
			missed++;
	}
	return missed;
}

uint32_t
hl_spans_from_tags(const int32_t *tags, uint32_t n_tokens, HlTagSpan *spans)
{
	uint32_t	n = 0;

	for (uint32_t t = 0; t < n_tokens; t++)
	{
		int32_t		tag = tags[t];
		int32_t		label;
		uint32_t	end = t + 1;

		if (tag == HL_TAG_OUTSIDE || tag % 2 == 0)
			continue;
		label = hl_tag_label(tag);
		while (end < n_tokens && tags[end] == hl_tag_inside(label))
			end++;
		spans[n].first_token = t;
		spans[n].end_token = end;
		spans[n].label = label;
		spans[n].probability = 0.0f;
		spans[n].mutual_information = 0.0f;
		n++;
		t = end - 1;
	}
	return n;
}

void
hl_tagger_output_init(HlTaggerOutput *out)
{
	memset(out, 0, sizeof(*out));
}

void
hl_tagger_output_free(HlTaggerOutput *out)
{
	hl_free(out->proba);
	hl_free(out->entropy);
	hl_free(out->mutual_information);
	hl_free(out->margin);
	hl_free(out->tags);
	hl_free(out->spans);
	hl_free(out->back);
	hl_free(out->crf_work);
	memset(out, 0, sizeof(*out));
}

void
hl_tagger_output_reserve(HlTaggerOutput *out, uint32_t n, uint32_t k)
{
	size_t		cells;

	if (n <= out->max_tokens && k == out->n_classes && out->proba != NULL)
		return;
	hl_tagger_output_free(out);
	out->max_tokens = n < 32 ? 32 : n;
	out->n_classes = k;
	cells = (size_t) out->max_tokens * k;
	out->proba = hl_alloc_array(cells, sizeof(float));
	out->entropy = hl_alloc_array(out->max_tokens, sizeof(float));
	out->mutual_information = hl_alloc_array(out->max_tokens, sizeof(float));
	out->margin = hl_alloc_array(out->max_tokens, sizeof(float));
	out->tags = hl_alloc_array(out->max_tokens, sizeof(int32_t));
	out->spans = hl_alloc_array(out->max_tokens, sizeof(HlTagSpan));
	out->back = hl_alloc_array(cells, sizeof(int32_t));
}

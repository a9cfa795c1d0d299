/*
 * span_tags.h
 *		BIO tags of span models: numbering, conversion between character
 *		spans and tag sequences, and the per-sentence prediction buffer
 *		(numeric core, no PostgreSQL headers).
 *
 * Tags are numbered from the span labels 0 .. L-1: tag 0 is O (outside
 * every span), tag 2l + 1 is B-l (first token of a span of label l) and
 * tag 2l + 2 is I-l (a later token of it).  The tagger itself is the
 * linear-chain CRF of model_crf.h.
 */
#ifndef HL_SPAN_TAGS_H
#define HL_SPAN_TAGS_H

#include <stddef.h>
#include <stdint.h>

#include "span_features.h"

/*
 * Span labels a model can have.  Every label adds two tags, and the
 * forward-backward and Viterbi passes cost the square of the tag count per token.
 */
#define HL_SPAN_MAX_LABELS 500

#define HL_TAG_OUTSIDE 0

static inline int32_t
hl_tag_begin(int32_t label)
{
	return 2 * label + 1;
}

static inline int32_t
hl_tag_inside(int32_t label)
{
	return 2 * label + 2;
}

/* Return the span label of a B or I tag. */
static inline int32_t
hl_tag_label(int32_t tag)
{
	return (tag - 1) / 2;
}

static inline uint32_t
hl_tag_count(uint32_t n_labels)
{
	return 2 * n_labels + 1;
}

/* A span in character offsets (end exclusive) with a span label index. */
typedef struct HlCharSpan
{
	uint32_t	start;
	uint32_t	end;
	int32_t		label;
} HlCharSpan;

/* A decoded span: tokens first_token .. end_token - 1. */
typedef struct HlTagSpan
{
	uint32_t	first_token;
	uint32_t	end_token;
	int32_t		label;
	float		probability;		/* posterior mean of P(exactly this span) */
	float		mutual_information; /* epistemic part of its uncertainty, nats */
} HlTagSpan;

/* The prediction for one sentence, reused from sentence to sentence. */
typedef struct HlTaggerOutput
{
	uint32_t	n_tokens;
	uint32_t	max_tokens;
	uint32_t	n_classes;
	float	   *proba;			/* n_tokens x n_classes, posterior mean */
	float	   *entropy;		/* per token, nats */
	float	   *mutual_information; /* per token, nats */
	float	   *margin;			/* per token: top probability minus the second */
	int32_t    *tags;			/* decoded, per token */
	uint32_t	n_spans;
	HlTagSpan  *spans;
	int32_t    *back;			/* Viterbi back-pointers, n_tokens x n_classes */
	double	   *crf_work;		/* scratch of hl_crf_predict */
	size_t		crf_work_size;	/* in doubles */
} HlTaggerOutput;

/*
 * Write the BIO tag of every token of a sentence for the gold spans (sorted
 * by start).  A token belongs to a span when their character ranges
 * overlap.  A token already claimed by an earlier span stays with it, so
 * with overlapping spans the earlier one wins.  Returns the number of
 * spans that covered no token.
 */
extern uint32_t hl_tags_from_spans(const HlToken *tokens, uint32_t n_tokens,
								   const HlCharSpan *spans, uint32_t n_spans,
								   int32_t *tags);

/* Write the spans of a valid BIO tag sequence to spans; returns how many. */
extern uint32_t hl_spans_from_tags(const int32_t *tags, uint32_t n_tokens,
								   HlTagSpan *spans);

extern void hl_tagger_output_init(HlTaggerOutput *out);
extern void hl_tagger_output_free(HlTaggerOutput *out);

/* Grow out to hold n tokens of k classes. */
extern void hl_tagger_output_reserve(HlTaggerOutput *out, uint32_t n, uint32_t k);

#endif							/* HL_SPAN_TAGS_H */

/*
 * model_tagger.h
 *		Bayesian span tagger: a per-token classifier over BIO tags with
 *		BIO-constrained Viterbi decoding (numeric core, no PostgreSQL headers).
 *
 * Tags are numbered from the span labels 0 .. L-1: tag 0 is O (outside
 * every span), tag 2l + 1 is B-l (first token of a span of label l) and
 * tag 2l + 2 is I-l (a later token of it).  The token classifier is an
 * HlClassifier with max(2, 2L + 1) classes; with no span label at all the
 * second class is a phantom that decoding never chooses.
 */
#ifndef HL_MODEL_TAGGER_H
#define HL_MODEL_TAGGER_H

#include <stddef.h>
#include <stdint.h>

#include "model_classifier.h"
#include "span_features.h"

/* Predictive samples per token; the span probabilities average over them. */
#define HL_TAGGER_SAMPLES 16

/* Span labels a tagger can have, so that its tags fit the sample table. */
#define HL_TAGGER_MAX_LABELS 500

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
	float	   *samples;		/* n_tokens x HL_TAGGER_SAMPLES x n_classes */
	float	   *entropy;		/* per token, nats */
	float	   *mutual_information; /* per token, nats */
	float	   *margin;			/* per token: top probability minus the second */
	int32_t    *tags;			/* decoded, per token */
	uint32_t	n_spans;
	HlTagSpan  *spans;
	float	   *logp;			/* Viterbi input and scratch, n_tokens x n_classes */
	float	   *score;
	int32_t    *back;
	float	   *mu;				/* n_classes each */
	float	   *sd;
	float	   *z;
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

/*
 * Write to tags the most probable tag sequence for the token
 * log-probabilities logp (n_tokens x n_classes) under the BIO constraints:
 * I-l only after B-l or I-l, and never first.  Only tags below n_tags are
 * candidates.  score and back are n_tokens x n_classes of scratch.
 */
extern void hl_bio_decode(const float *logp, uint32_t n_tokens, uint32_t n_classes,
						  uint32_t n_tags, float *score, int32_t *back, int32_t *tags);

/* Write the spans of a valid BIO tag sequence to spans; returns how many. */
extern uint32_t hl_spans_from_tags(const int32_t *tags, uint32_t n_tokens,
								   HlTagSpan *spans);

extern void hl_tagger_output_init(HlTaggerOutput *out);
extern void hl_tagger_output_free(HlTaggerOutput *out);

/* Grow out to hold n tokens of k classes. */
extern void hl_tagger_output_reserve(HlTaggerOutput *out, uint32_t n, uint32_t k);

/*
 * Tag one featurised sentence with the token classifier (its variance
 * cached, see hl_classifier_cache_variance) for n_labels span labels:
 * per-token predictive distributions and uncertainty, the decoded tags,
 * and the spans with their probability and mutual information.
 */
extern void hl_tagger_predict(const HlClassifier *classifier, uint32_t n_labels,
							  const HlSentenceFeatures *features, HlTaggerOutput *out);

#endif							/* HL_MODEL_TAGGER_H */

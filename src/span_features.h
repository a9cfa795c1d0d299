/*
 * span_features.h
 *		Hashed token-window features for span tagging (numeric core, no
 *		PostgreSQL headers).
 *
 * Each token of a sentence becomes one sparse row over 2^hash_bits buckets:
 * its lower-cased word, word shape, prefixes and suffixes, and the words
 * and shapes of its neighbours.  Rows are binary and L2-normalised, so they
 * have the scale the classifier's prior expects of TF-IDF rows.
 */
#ifndef HL_SPAN_FEATURES_H
#define HL_SPAN_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "features.h"
#include "tokenize.h"
#include "word_classes.h"

/* A tokenised sentence and the feature rows of its tokens. */
typedef struct HlSentenceFeatures
{
	uint32_t	n_tokens;
	uint32_t	max_tokens;		/* allocated tokens and rows */
	HlToken    *tokens;
	uint64_t   *row_start;		/* n_tokens + 1 entries into index/value */
	uint64_t	nnz;
	uint64_t	max_nnz;
	uint32_t   *index;
	float	   *value;
	char	   *lower;			/* scratch: lower-cased token text */
	size_t		lower_capacity;
} HlSentenceFeatures;

extern void hl_sentence_features_init(HlSentenceFeatures *features);
extern void hl_sentence_features_free(HlSentenceFeatures *features);

/*
 * Tokenise the UTF-8 text (len bytes) with hl_tokenize_with_punctuation and
 * hash the window features of every token into out, which grows as needed.
 * With classes (may be NULL) a token also gets features of its word classes
 * and its neighbours'.
 */
extern void hl_span_featurize(const char *text, size_t len, uint8_t hash_bits,
							  const HlWordClasses *classes, HlSentenceFeatures *out);

/*
 * Featurise a training sentence as hl_span_featurize does, except that
 * each token's classes are left out with probability class_dropout, drawn
 * from dropout_seed and the token's position.
 */
extern void hl_span_featurize_training(const char *text, size_t len, uint8_t hash_bits,
									   const HlWordClasses *classes, double class_dropout,
									   uint64_t dropout_seed, HlSentenceFeatures *out);

/* Return the hash of a lower-cased word, as its word feature uses it. */
extern uint64_t hl_span_word_hash(const char *lower, size_t len);

/* Point row at the features of token t; the row is valid until out changes. */
extern void hl_sentence_row(const HlSentenceFeatures *features, uint32_t t,
							HlSparseVec *row);

#endif							/* HL_SPAN_FEATURES_H */

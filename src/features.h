/*
 * features.h
 *		Hashed text features with TF-IDF weighting (numeric core, no PostgreSQL
 *		headers).
 *
 * A document becomes a sparse vector over 2^hash_bits buckets: word 1..n
 * grams and character n-grams of the lower-cased text are hashed into
 * buckets and counted.  Training and prediction run the same code: counts
 * first, then hl_tfidf_apply with the idf vector stored in the model.
 */
#ifndef HL_FEATURES_H
#define HL_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#define HL_HASH_BITS_MIN 10
#define HL_HASH_BITS_MAX 22

/* Settings of the featuriser; stored in the model so prediction matches training. */
typedef struct HlFeatureConfig
{
	uint8_t		hash_bits;		/* log2 of the number of buckets */
	uint8_t		word_ngram_max; /* 1: words only, 2: words and word pairs */
	uint8_t		char_ngram_min; /* 0 disables character n-grams */
	uint8_t		char_ngram_max;
} HlFeatureConfig;

/* Sparse vector: nnz entries with strictly increasing index. */
typedef struct HlSparseVec
{
	uint32_t	nnz;
	uint32_t	capacity;
	uint32_t   *index;
	float	   *value;
} HlSparseVec;

/* Reusable state for featurising one document after another. */
typedef struct HlFeaturizer HlFeaturizer;

/* MurmurHash3's 64-bit finaliser: mixes every input bit into every output bit. */
static inline uint64_t
hl_mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

extern void hl_feature_config_default(HlFeatureConfig *config);

/* Return NULL when the configuration is valid, else a static message. */
extern const char *hl_feature_config_check(const HlFeatureConfig *config);

extern HlFeaturizer *hl_featurizer_create(const HlFeatureConfig *config);
extern void hl_featurizer_destroy(HlFeaturizer *featurizer);

/*
 * Hash the UTF-8 text (len bytes, need not be NUL-terminated) into raw term
 * counts.  out is grown as needed and owned by the caller.  Empty text gives
 * an empty vector.  Invalid UTF-8 bytes are treated as separators.
 */
extern void hl_featurize_counts(HlFeaturizer *featurizer, const char *text,
								size_t len, HlSparseVec *out);

/* Add one to df[i] for every bucket present in counts. */
extern void hl_df_accumulate(uint32_t *df, const HlSparseVec *counts);

/* Smoothed inverse document frequency: idf = ln((1 + n) / (1 + df)) + 1. */
extern void hl_idf_from_df(const uint32_t *df, uint64_t n_docs, uint32_t dim,
						   float *idf);

/* Turn counts into TF-IDF in place: (1 + ln tf) * idf, then L2-normalise. */
extern void hl_tfidf_apply(const float *idf, HlSparseVec *vec);

extern void hl_sparse_init(HlSparseVec *vec);
extern void hl_sparse_free(HlSparseVec *vec);

#endif							/* HL_FEATURES_H */

/*
 * features.c
 *		Hashed word and character n-gram counts and TF-IDF weighting (numeric
 *		core).
 *
 * The text is lower-cased (hl_lower_utf8) and split into word tokens
 * (hl_tokenize).  Three feature families are hashed into the same
 * 2^hash_bits buckets, each with its own seed:
 *
 *	 - word n-grams for n = 1 .. word_ngram_max (tokens joined in order);
 *	 - character n-grams for n = char_ngram_min .. char_ngram_max, taken over
 *	   the tokens joined by single spaces with one space before the first and
 *	   after the last token.  Punctuation therefore never appears in them,
 *	   and an n-gram may span a word boundary as with scikit-learn's "char"
 *	   analyzer.  n counts code points, not bytes.
 *
 * The hash is 64-bit FNV-1a over the bytes, finished with the MurmurHash3
 * 64-bit finaliser (Appleby) because FNV alone spreads short keys poorly
 * over the high bits that pick the bucket.  There is no sign hashing:
 * counts stay non-negative for TF-IDF.  Colliding features add up.
 *
 * Output vectors have strictly increasing unique indices.  A featuriser
 * keeps its buffers between documents and is not safe to share between
 * threads; separate featurisers are independent.
 */
#include "features.h"

#include <math.h>
#include <string.h>

#include "hl_alloc.h"
#include "tokenize.h"

#define FNV_OFFSET	UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME	UINT64_C(0x100000001b3)

/* Seeds that keep the feature families apart. */
#define SEED_WORD	UINT64_C(0x9e3779b97f4a7c15)
#define SEED_NGRAM	UINT64_C(0xc2b2ae3d27d4eb4f)
#define SEED_CHAR	UINT64_C(0x165667b19e3779f9)

/* Largest n-gram lengths accepted by hl_feature_config_check. */
#define WORD_NGRAM_LIMIT 3
#define CHAR_NGRAM_LIMIT 8

struct HlFeaturizer
{
	HlFeatureConfig config;
	char	   *lower;			/* lower-cased text */
	size_t		lower_capacity;
	char	   *joined;			/* tokens joined by spaces, for char n-grams */
	size_t		joined_capacity;
	HlToken    *tokens;
	uint32_t	token_capacity;
	uint64_t   *token_hash;		/* word hash of each token */
	uint32_t   *bucket;			/* one bucket per feature occurrence */
	uint32_t   *scratch;		/* radix sort buffer, same size as bucket */
	size_t		bucket_capacity;
};


/* FNV-1a over len bytes, starting from state h. */
static inline uint64_t
fnv1a(uint64_t h, const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * FNV_PRIME;
	return h;
}

/*
 * Fill config with the defaults.  On banking77 (test/core/bench_core.c)
 * 2^14 buckets scored as well as 2^15 and 2^16 and fit faster; character
 * 2..5 grams beat 3..5 by about 0.5 points of accuracy.
 */
void
hl_feature_config_default(HlFeatureConfig *config)
{
	config->hash_bits = 14;
	config->word_ngram_max = 2;
	config->char_ngram_min = 2;
	config->char_ngram_max = 5;
}

/* Return NULL when config is valid, else a static message. */
const char *
hl_feature_config_check(const HlFeatureConfig *config)
{
	if (config->hash_bits < HL_HASH_BITS_MIN || config->hash_bits > HL_HASH_BITS_MAX)
		return "hash_bits must be between 10 and 22";
	if (config->word_ngram_max > WORD_NGRAM_LIMIT)
		return "word_ngram_max must be between 0 and 3";
	if (config->char_ngram_min == 0)
	{
		if (config->char_ngram_max != 0)
			return "char_ngram_max must be 0 when char_ngram_min is 0";
		if (config->word_ngram_max == 0)
			return "word_ngram_max and char_ngram_min cannot both be 0";
		return NULL;
	}
	if (config->char_ngram_max < config->char_ngram_min)
		return "char_ngram_max must not be less than char_ngram_min";
	if (config->char_ngram_max > CHAR_NGRAM_LIMIT)
		return "char_ngram_max must be at most 8";
	return NULL;
}

/* Create a featuriser; config must pass hl_feature_config_check. */
HlFeaturizer *
hl_featurizer_create(const HlFeatureConfig *config)
{
	HlFeaturizer *f = hl_alloc0(sizeof(HlFeaturizer));

	f->config = *config;
	return f;
}

/* Free a featuriser and its buffers; NULL is ignored. */
void
hl_featurizer_destroy(HlFeaturizer *featurizer)
{
	if (featurizer == NULL)
		return;
	hl_free(featurizer->lower);
	hl_free(featurizer->joined);
	hl_free(featurizer->tokens);
	hl_free(featurizer->token_hash);
	hl_free(featurizer->bucket);
	hl_free(featurizer->scratch);
	hl_free(featurizer);
}

/* Return the next capacity of at least need, growing geometrically. */
static size_t
grow_capacity(size_t current, size_t need)
{
	size_t		capacity = current < 64 ? 64 : current;

	while (capacity < need)
		capacity *= 2;
	return capacity;
}

/* Make the byte buffers hold at least len bytes. */
static void
reserve_text(HlFeaturizer *f, size_t len)
{
	if (f->lower_capacity < len)
	{
		hl_free(f->lower);
		f->lower_capacity = grow_capacity(f->lower_capacity, len);
		f->lower = hl_alloc_array(f->lower_capacity, 1);
	}

	/* Joined tokens: at most len bytes plus one space per token and one more. */
	if (f->joined_capacity < 2 * len + 2)
	{
		hl_free(f->joined);
		f->joined_capacity = grow_capacity(f->joined_capacity, 2 * len + 2);
		f->joined = hl_alloc_array(f->joined_capacity, 1);
	}
}

/* Make the token buffers hold at least n tokens. */
static void
reserve_tokens(HlFeaturizer *f, uint32_t n)
{
	if (f->token_capacity >= n)
		return;
	hl_free(f->tokens);
	hl_free(f->token_hash);
	f->token_capacity = (uint32_t) grow_capacity(f->token_capacity, n);
	f->tokens = hl_alloc_array(f->token_capacity, sizeof(HlToken));
	f->token_hash = hl_alloc_array(f->token_capacity, sizeof(uint64_t));
}

/* Make the bucket buffers hold at least n entries. */
static void
reserve_buckets(HlFeaturizer *f, size_t n)
{
	if (f->bucket_capacity >= n)
		return;
	hl_free(f->bucket);
	hl_free(f->scratch);
	f->bucket_capacity = grow_capacity(f->bucket_capacity, n);
	f->bucket = hl_alloc_array(f->bucket_capacity, sizeof(uint32_t));
	f->scratch = hl_alloc_array(f->bucket_capacity, sizeof(uint32_t));
}

/* Make out hold at least n entries, discarding its contents. */
static void
reserve_sparse(HlSparseVec *out, uint32_t n)
{
	if (out->capacity >= n)
		return;
	hl_free(out->index);
	hl_free(out->value);
	out->capacity = (uint32_t) grow_capacity(out->capacity, n);
	out->index = hl_alloc_array(out->capacity, sizeof(uint32_t));
	out->value = hl_alloc_array(out->capacity, sizeof(float));
}

/*
 * Sort n keys below 2^bits in place (LSD radix sort, 8 bits per pass).
 * Short arrays use insertion sort, which is faster below a few dozen keys.
 */
static void
sort_buckets(uint32_t *keys, uint32_t *scratch, size_t n, int bits)
{
	uint32_t   *src = keys;
	uint32_t   *dst = scratch;

	if (n < 48)
	{
		for (size_t i = 1; i < n; i++)
		{
			uint32_t	key = keys[i];
			size_t		j = i;

			while (j > 0 && keys[j - 1] > key)
			{
				keys[j] = keys[j - 1];
				j--;
			}
			keys[j] = key;
		}
		return;
	}

	for (int shift = 0; shift < bits; shift += 8)
	{
		size_t		count[257] = {0};
		uint32_t   *swap;

		for (size_t i = 0; i < n; i++)
			count[((src[i] >> shift) & 0xFF) + 1]++;
		for (int b = 0; b < 256; b++)
			count[b + 1] += count[b];
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xFF]++] = src[i];
		swap = src;
		src = dst;
		dst = swap;
	}
	if (src != keys)
		memcpy(keys, src, n * sizeof(uint32_t));
}

/*
 * Append the character n-grams of the joined text (n code points for
 * n = nmin .. nmax) to bucket[], starting at position count; returns the new
 * count.  The caller reserved room for nmax buckets per byte.
 */
static size_t
hash_char_ngrams(const unsigned char *text, size_t len, int nmin, int nmax,
				 int shift, uint32_t *bucket, size_t count)
{
	for (size_t start = 0; start < len; start++)
	{
		uint64_t	h = FNV_OFFSET ^ SEED_CHAR;
		size_t		pos = start;
		int			n = 0;

		/* Only code point starts begin an n-gram. */
		if ((text[start] & 0xC0) == 0x80)
			continue;

		while (pos < len && n < nmax)
		{
			/* Absorb one whole code point. */
			do
			{
				h = (h ^ text[pos]) * FNV_PRIME;
				pos++;
			} while (pos < len && (text[pos] & 0xC0) == 0x80);
			n++;

			if (n >= nmin)
				bucket[count++] = (uint32_t) (hl_mix64(h) >> shift);
		}
	}
	return count;
}

/* Hash text into raw term counts; see features.h. */
void
hl_featurize_counts(HlFeaturizer *featurizer, const char *text, size_t len,
					HlSparseVec *out)
{
	HlFeaturizer *f = featurizer;
	const HlFeatureConfig *cfg = &f->config;
	int			shift = 64 - cfg->hash_bits;
	uint32_t	n_tokens;
	size_t		joined_len = 0;
	size_t		n_buckets = 0;
	size_t		max_buckets;
	uint32_t	nnz = 0;

	out->nnz = 0;
	if (len == 0)
		return;

	/* Lower-case, then tokenise the lower-cased text. */
	reserve_text(f, len);
	len = hl_lower_utf8(text, len, f->lower);
	n_tokens = hl_tokenize(f->lower, len, f->tokens, f->token_capacity);
	if (n_tokens > f->token_capacity)
	{
		reserve_tokens(f, n_tokens);
		n_tokens = hl_tokenize(f->lower, len, f->tokens, f->token_capacity);
	}
	if (n_tokens == 0)
		return;

	/*
	 * Upper bound of feature occurrences: word n-grams per token, and at most
	 * char_ngram_max character n-grams per byte of the joined text.
	 */
	max_buckets = (size_t) n_tokens * cfg->word_ngram_max +
		(size_t) cfg->char_ngram_max * (2 * len + 2);
	reserve_buckets(f, max_buckets);

	/* Word n-grams: a token's hash, then combined with its successors. */
	for (uint32_t t = 0; t < n_tokens; t++)
	{
		const HlToken *tok = &f->tokens[t];

		f->token_hash[t] = fnv1a(FNV_OFFSET ^ SEED_WORD,
								 (const unsigned char *) f->lower + tok->byte_start,
								 tok->byte_end - tok->byte_start);
	}
	for (uint32_t t = 0; t < n_tokens; t++)
	{
		uint64_t	h = f->token_hash[t];

		if (cfg->word_ngram_max >= 1)
			f->bucket[n_buckets++] = (uint32_t) (hl_mix64(h) >> shift);
		for (uint32_t n = 2; n <= cfg->word_ngram_max && t + n <= n_tokens; n++)
		{
			/* Order matters: "card lost" and "lost card" hash apart. */
			h = hl_mix64(h ^ SEED_NGRAM) + f->token_hash[t + n - 1];
			f->bucket[n_buckets++] = (uint32_t) (hl_mix64(h) >> shift);
		}
	}

	/* Character n-grams over " tok1 tok2 ... tokN ". */
	if (cfg->char_ngram_min > 0)
	{
		unsigned char *j = (unsigned char *) f->joined;

		j[joined_len++] = ' ';
		for (uint32_t t = 0; t < n_tokens; t++)
		{
			const HlToken *tok = &f->tokens[t];
			uint32_t	tlen = tok->byte_end - tok->byte_start;

			memcpy(j + joined_len, f->lower + tok->byte_start, tlen);
			joined_len += tlen;
			j[joined_len++] = ' ';
		}
		n_buckets = hash_char_ngrams(j, joined_len, cfg->char_ngram_min,
									 cfg->char_ngram_max, shift, f->bucket,
									 n_buckets);
	}

	/* Sort the buckets and count runs of equal ones. */
	sort_buckets(f->bucket, f->scratch, n_buckets, cfg->hash_bits);
	reserve_sparse(out, (uint32_t) n_buckets);
	for (size_t i = 0; i < n_buckets;)
	{
		size_t		run = i + 1;

		while (run < n_buckets && f->bucket[run] == f->bucket[i])
			run++;
		out->index[nnz] = f->bucket[i];
		out->value[nnz] = (float) (run - i);
		nnz++;
		i = run;
	}
	out->nnz = nnz;
}

/* Add one to df[i] for every bucket present in counts. */
void
hl_df_accumulate(uint32_t *df, const HlSparseVec *counts)
{
	for (uint32_t i = 0; i < counts->nnz; i++)
		df[counts->index[i]]++;
}

/* Smoothed idf = ln((1 + n) / (1 + df)) + 1, as scikit-learn's smooth_idf. */
void
hl_idf_from_df(const uint32_t *df, uint64_t n_docs, uint32_t dim, float *idf)
{
	for (uint32_t i = 0; i < dim; i++)
		idf[i] = (float) (log((1.0 + (double) n_docs) / (1.0 + (double) df[i])) + 1.0);
}

/* Turn counts into TF-IDF in place: (1 + ln tf) * idf, then L2-normalise. */
void
hl_tfidf_apply(const float *idf, HlSparseVec *vec)
{
	double		sumsq = 0.0;

	for (uint32_t i = 0; i < vec->nnz; i++)
	{
		float		tf = vec->value[i];
		float		v = (tf > 1.0f ? 1.0f + logf(tf) : tf) * idf[vec->index[i]];

		vec->value[i] = v;
		sumsq += (double) v * v;
	}

	/* An all-zero vector stays zero instead of becoming NaN. */
	if (sumsq > 0.0)
	{
		float		scale = (float) (1.0 / sqrt(sumsq));

		for (uint32_t i = 0; i < vec->nnz; i++)
			vec->value[i] *= scale;
	}
}

/* Initialise an empty sparse vector. */
void
hl_sparse_init(HlSparseVec *vec)
{
	vec->nnz = 0;
	vec->capacity = 0;
	vec->index = NULL;
	vec->value = NULL;
}

/* Free the arrays of a sparse vector and leave it empty. */
void
hl_sparse_free(HlSparseVec *vec)
{
	hl_free(vec->index);
	hl_free(vec->value);
	hl_sparse_init(vec);
}

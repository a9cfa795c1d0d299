/*
 * span_features.c
 *		Hashed token-window features for span tagging (numeric core).
 *
 * Every token gets a 64-bit hash of its lower-cased text and one of its
 * word shape (upper case 'X', lower case 'x', digit 'd', other letters 'u',
 * punctuation as itself, runs collapsed, so "McCartney" is "XxXx" and
 * "7:30" is "d:d").  A feature is a template number mixed with one or two
 * of those hashes, so "previous word is 'by'" and "word is 'by'" land in
 * different buckets.  Sentence ends have fixed hashes of their own.
 */
#include "span_features.h"

#include <math.h>
#include <string.h>

#include "hl_alloc.h"

/* Feature templates; their numbers seed the hashes and must not change. */
enum
{
	T_WORD = 1,
	T_SHAPE,
	T_PREFIX1,
	T_PREFIX2,
	T_PREFIX3,
	T_SUFFIX1,
	T_SUFFIX2,
	T_SUFFIX3,
	T_PREV_WORD,
	T_NEXT_WORD,
	T_PREV2_WORD,
	T_NEXT2_WORD,
	T_PREV_BIGRAM,
	T_NEXT_BIGRAM,
	T_PREV_SHAPE,
	T_NEXT_SHAPE,
	T_FIRST,
	T_LAST,
	T_CLASS0,
	T_CLASS1,
	T_CLASS2,
	T_PREV_CLASS,
	T_NEXT_CLASS
};

#define MAX_FEATURES_PER_TOKEN 32
#define MAX_SHAPE_BYTES 8
#define HASH_BEFORE_START UINT64_C(0x5354415254000001)
#define HASH_AFTER_END UINT64_C(0x454e440000000002)

/* FNV-1a over bytes, finished with hl_mix64. */
static uint64_t
hash_bytes(uint64_t seed, const char *s, size_t n)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325) ^ seed;

	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return hl_mix64(h);
}

/* Return the bucket of template t over one or two token hashes. */
static inline uint32_t
bucket(uint32_t t, uint64_t a, uint64_t b, uint8_t hash_bits)
{
	uint64_t	h = hl_mix64(a ^ hl_mix64(b + t) ^ ((uint64_t) t << 56));

	return (uint32_t) (h >> (64 - hash_bits));
}

/* Write the collapsed word shape of token bytes s[0..n) to out; returns its length. */
static size_t
word_shape(const char *s, size_t n, char *out)
{
	size_t		len = 0;

	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		k;

		if (c >= 0x80 && (c & 0xC0) == 0x80)
			continue;			/* UTF-8 continuation byte */
		if (c >= 'A' && c <= 'Z')
			k = 'X';
		else if (c >= 'a' && c <= 'z')
			k = 'x';
		else if (c >= '0' && c <= '9')
			k = 'd';
		else if (c >= 0x80)
			k = 'u';
		else
			k = (char) c;
		if (len > 0 && out[len - 1] == k)
			continue;
		if (len == MAX_SHAPE_BYTES)
			break;
		out[len++] = k;
	}
	return len;
}

/* Return the byte length of the first n characters of UTF-8 s[0..len). */
static size_t
prefix_bytes(const char *s, size_t len, int n)
{
	size_t		i = 0;

	while (i < len && n > 0)
	{
		i++;
		while (i < len && ((unsigned char) s[i] & 0xC0) == 0x80)
			i++;
		n--;
	}
	return i;
}

/* Return the byte length of the last n characters of UTF-8 s[0..len). */
static size_t
suffix_bytes(const char *s, size_t len, int n)
{
	size_t		i = len;

	while (i > 0 && n > 0)
	{
		i--;
		while (i > 0 && ((unsigned char) s[i] & 0xC0) == 0x80)
			i--;
		n--;
	}
	return len - i;
}

void
hl_sentence_features_init(HlSentenceFeatures *features)
{
	memset(features, 0, sizeof(*features));
}

void
hl_sentence_features_free(HlSentenceFeatures *features)
{
	hl_free(features->tokens);
	hl_free(features->row_start);
	hl_free(features->index);
	hl_free(features->value);
	hl_free(features->lower);
	memset(features, 0, sizeof(*features));
}

/* Grow the token and row arrays to hold n tokens. */
static void
reserve_tokens(HlSentenceFeatures *out, uint32_t n)
{
	uint64_t	nnz;

	if (n <= out->max_tokens && out->tokens != NULL)
		return;
	hl_free(out->tokens);
	hl_free(out->row_start);
	hl_free(out->index);
	hl_free(out->value);
	out->max_tokens = n < 16 ? 16 : n;
	nnz = (uint64_t) out->max_tokens * MAX_FEATURES_PER_TOKEN;
	out->tokens = hl_alloc_array(out->max_tokens, sizeof(HlToken));
	out->row_start = hl_alloc_array((size_t) out->max_tokens + 1, sizeof(uint64_t));
	out->index = hl_alloc_array(nnz, sizeof(uint32_t));
	out->value = hl_alloc_array(nnz, sizeof(float));
	out->max_nnz = nnz;
}

/* Sort a few bucket numbers in place (insertion sort: rows are short). */
static void
sort_buckets(uint32_t *b, int n)
{
	for (int i = 1; i < n; i++)
	{
		uint32_t	v = b[i];
		int			j = i - 1;

		while (j >= 0 && b[j] > v)
		{
			b[j + 1] = b[j];
			j--;
		}
		b[j + 1] = v;
	}
}

/*
 * Append the buckets of the word-class features of token t to b (m used)
 * and return the new count: the token's classes at every granularity and
 * its neighbours' at the middle one.  token_class[i] is the classes of
 * token i, NULL for a word without them.
 */
static int
add_class_features(const uint16_t *const *token_class, uint32_t n, uint32_t t,
				   uint8_t hash_bits, uint32_t *b, int m)
{
	const uint16_t *own = token_class[t];
	const uint16_t *prev = t > 0 ? token_class[t - 1] : NULL;
	const uint16_t *next = t + 1 < n ? token_class[t + 1] : NULL;

	if (own != NULL)
		for (int level = 0; level < HL_WORD_CLASS_LEVELS; level++)
			b[m++] = bucket(T_CLASS0 + level, (uint64_t) own[level] + 1, 0, hash_bits);
	if (prev != NULL)
		b[m++] = bucket(T_PREV_CLASS, (uint64_t) prev[1] + 1, 0, hash_bits);
	if (next != NULL)
		b[m++] = bucket(T_NEXT_CLASS, (uint64_t) next[1] + 1, 0, hash_bits);
	return m;
}

/* Tokenise and featurise one sentence; see span_features.h. */
void
hl_span_featurize(const char *text, size_t len, uint8_t hash_bits,
				  const HlWordClasses *classes, HlSentenceFeatures *out)
{
	hl_span_featurize_training(text, len, hash_bits, classes, 0.0, 0, out);
}

void
hl_span_featurize_training(const char *text, size_t len, uint8_t hash_bits,
						   const HlWordClasses *classes, double class_dropout,
						   uint64_t dropout_seed, HlSentenceFeatures *out)
{
	uint32_t	n;
	uint64_t   *word_hash;
	uint64_t   *shape_hash;
	uint64_t   *prefix_hash;
	uint64_t   *suffix_hash;
	const uint16_t **token_class = NULL;

	/* Tokens first, because their count sets how much room the rows need. */
	reserve_tokens(out, 16);
	n = hl_tokenize_with_punctuation(text, len, out->tokens, out->max_tokens);
	if (n > out->max_tokens)
	{
		reserve_tokens(out, n);
		hl_tokenize_with_punctuation(text, len, out->tokens, out->max_tokens);
	}
	out->n_tokens = n;
	out->nnz = 0;
	out->row_start[0] = 0;
	if (n == 0)
		return;

	if (out->lower_capacity < len)
	{
		hl_free(out->lower);
		out->lower = hl_alloc0(len);
		out->lower_capacity = len;
	}

	/* Per-token hashes: word, shape, and prefixes and suffixes of 1 to 3 characters. */
	word_hash = hl_alloc_array(n, sizeof(uint64_t));
	shape_hash = hl_alloc_array(n, sizeof(uint64_t));
	prefix_hash = hl_alloc_array((size_t) n * 3, sizeof(uint64_t));
	suffix_hash = hl_alloc_array((size_t) n * 3, sizeof(uint64_t));
	for (uint32_t t = 0; t < n; t++)
	{
		const HlToken *tok = &out->tokens[t];
		const char *raw = text + tok->byte_start;
		size_t		raw_len = tok->byte_end - tok->byte_start;
		size_t		lower_len = hl_lower_utf8(raw, raw_len, out->lower);
		char		shape[MAX_SHAPE_BYTES];
		size_t		shape_len = word_shape(raw, raw_len, shape);

		word_hash[t] = hl_span_word_hash(out->lower, lower_len);
		shape_hash[t] = hash_bytes(2, shape, shape_len);
		for (int k = 0; k < 3; k++)
		{
			prefix_hash[t * 3 + k] = hash_bytes(3 + k, out->lower,
												prefix_bytes(out->lower, lower_len, k + 1));
			suffix_hash[t * 3 + k] = hash_bytes(6 + k,
												out->lower + lower_len - suffix_bytes(out->lower, lower_len, k + 1),
												suffix_bytes(out->lower, lower_len, k + 1));
		}
	}

	/* Word classes, looked up once per token (the builder stores hash 0 as 1). */
	if (classes != NULL && classes->n_words > 0)
	{
		token_class = hl_alloc_array(n, sizeof(const uint16_t *));
		for (uint32_t t = 0; t < n; t++)
		{
			double		u = (double) (hl_mix64(dropout_seed + UINT64_C(0x9e3779b97f4a7c15) * (t + 1)) >> 11) *
				(1.0 / 9007199254740992.0);

			token_class[t] = u < class_dropout ? NULL :
				hl_word_classes_lookup(classes, word_hash[t] != 0 ? word_hash[t] : 1);
		}
	}

	/* One row per token: buckets of every template, merged and normalised. */
	for (uint32_t t = 0; t < n; t++)
	{
		uint32_t	b[MAX_FEATURES_PER_TOKEN];
		int			m = 0;
		uint64_t	prev = t > 0 ? word_hash[t - 1] : HASH_BEFORE_START;
		uint64_t	next = t + 1 < n ? word_hash[t + 1] : HASH_AFTER_END;
		uint64_t	prev2 = t > 1 ? word_hash[t - 2] : HASH_BEFORE_START;
		uint64_t	next2 = t + 2 < n ? word_hash[t + 2] : HASH_AFTER_END;
		uint64_t	prev_shape = t > 0 ? shape_hash[t - 1] : HASH_BEFORE_START;
		uint64_t	next_shape = t + 1 < n ? shape_hash[t + 1] : HASH_AFTER_END;
		uint64_t	start = out->row_start[t];
		double		norm = 0.0;
		float		scale;

		b[m++] = bucket(T_WORD, word_hash[t], 0, hash_bits);
		b[m++] = bucket(T_SHAPE, shape_hash[t], 0, hash_bits);
		for (int k = 0; k < 3; k++)
		{
			b[m++] = bucket(T_PREFIX1 + k, prefix_hash[t * 3 + k], 0, hash_bits);
			b[m++] = bucket(T_SUFFIX1 + k, suffix_hash[t * 3 + k], 0, hash_bits);
		}
		b[m++] = bucket(T_PREV_WORD, prev, 0, hash_bits);
		b[m++] = bucket(T_NEXT_WORD, next, 0, hash_bits);
		b[m++] = bucket(T_PREV2_WORD, prev2, 0, hash_bits);
		b[m++] = bucket(T_NEXT2_WORD, next2, 0, hash_bits);
		b[m++] = bucket(T_PREV_BIGRAM, prev, word_hash[t], hash_bits);
		b[m++] = bucket(T_NEXT_BIGRAM, word_hash[t], next, hash_bits);
		b[m++] = bucket(T_PREV_SHAPE, prev_shape, shape_hash[t], hash_bits);
		b[m++] = bucket(T_NEXT_SHAPE, shape_hash[t], next_shape, hash_bits);
		if (t == 0)
			b[m++] = bucket(T_FIRST, 0, 0, hash_bits);
		if (t + 1 == n)
			b[m++] = bucket(T_LAST, 0, 0, hash_bits);
		if (token_class != NULL)
			m = add_class_features(token_class, n, t, hash_bits, b, m);

		/* Colliding templates add up in one bucket, as hashed counts do. */
		sort_buckets(b, m);
		for (int i = 0; i < m; i++)
		{
			uint64_t	e = out->nnz;

			if (e > start && out->index[e - 1] == b[i])
				out->value[e - 1] += 1.0f;
			else
			{
				out->index[e] = b[i];
				out->value[e] = 1.0f;
				out->nnz++;
			}
		}
		for (uint64_t e = start; e < out->nnz; e++)
			norm += (double) out->value[e] * out->value[e];
		scale = (float) (1.0 / sqrt(norm));
		for (uint64_t e = start; e < out->nnz; e++)
			out->value[e] *= scale;
		out->row_start[t + 1] = out->nnz;
	}

	if (token_class != NULL)
		hl_free((void *) token_class);
	hl_free(word_hash);
	hl_free(shape_hash);
	hl_free(prefix_hash);
	hl_free(suffix_hash);
}

uint64_t
hl_span_word_hash(const char *lower, size_t len)
{
	return hash_bytes(1, lower, len);
}

void
hl_sentence_row(const HlSentenceFeatures *features, uint32_t t, HlSparseVec *row)
{
	uint64_t	start = features->row_start[t];

	row->nnz = (uint32_t) (features->row_start[t + 1] - start);
	row->capacity = row->nnz;
	row->index = features->index + start;
	row->value = features->value + start;
}

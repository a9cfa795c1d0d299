/*
 * word_classes.c
 *		Word classes from the contexts of words in the pool (numeric core).
 *
 * Each word that occurs at least twice gets a sparse context vector: the
 * hashed words just before it and just after it, counted over the pool,
 * square-rooted and weighted by how rare the context is, then
 * L2-normalised.  A randomized SVD (pool_embedding.c) projects the vectors
 * to HL_WORD_CLASS_DIM dimensions, and spherical k-means groups the
 * projected words at each granularity of hl_word_class_counts.  The
 * distributional classes of Brown et al. (1992) serve the same purpose in
 * taggers.  This way costs a few passes over the pool and BLAS products,
 * not a search over merges.
 */
#include "word_classes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "features.h"
#include "hl_alloc.h"
#include "pool_embedding.h"
#include "span_features.h"
#include "tokenize.h"

const uint16_t hl_word_class_counts[HL_WORD_CLASS_LEVELS] = {16, 64, 256};

/* Dimensions of the projected context vectors. */
#define HL_WORD_CLASS_DIM 48

/* Hashed context buckets on each side of a word. */
#define CONTEXT_BUCKETS 1024

#define KMEANS_ITERATIONS 15
#define ROW_BLOCK 4096

/* Stand-ins for the missing neighbour at either end of a sentence. */
#define CONTEXT_START UINT64_C(0x53544152545f5f31)
#define CONTEXT_END UINT64_C(0x454e445f5f5f5f32)

void
hl_word_class_builder_init(HlWordClassBuilder *builder)
{
	memset(builder, 0, sizeof(*builder));
}

void
hl_word_class_builder_free(HlWordClassBuilder *builder)
{
	hl_free(builder->hash);
	memset(builder, 0, sizeof(*builder));
}

/* Grow the hash array to hold extra more hashes. */
static void
reserve_hashes(HlWordClassBuilder *builder, size_t extra)
{
	size_t		capacity = builder->capacity ? builder->capacity : 4096;
	uint64_t   *grown;

	if (builder->n + extra <= builder->capacity)
		return;
	while (capacity < builder->n + extra)
		capacity *= 2;
	grown = hl_alloc_array(capacity, sizeof(uint64_t));
	if (builder->n > 0)
		memcpy(grown, builder->hash, builder->n * sizeof(uint64_t));
	hl_free(builder->hash);
	builder->hash = grown;
	builder->capacity = capacity;
}

void
hl_word_class_builder_add(HlWordClassBuilder *builder, const char *text, size_t len)
{
	HlToken		stack_tokens[64];
	HlToken    *tokens = stack_tokens;
	uint32_t	n;
	char	   *lower;

	if (builder->n >= HL_WORD_CLASS_MAX_TOKENS || len == 0)
		return;

	n = hl_tokenize_with_punctuation(text, len, tokens, 64);
	if (n > 64)
	{
		tokens = hl_alloc_array(n, sizeof(HlToken));
		hl_tokenize_with_punctuation(text, len, tokens, n);
	}
	if (n == 0 || builder->n + n + 1 > HL_WORD_CLASS_MAX_TOKENS)
	{
		if (tokens != stack_tokens)
			hl_free(tokens);
		return;
	}

	/* Hashes of the lower-cased tokens, then a 0 to end the sentence. */
	reserve_hashes(builder, (size_t) n + 1);
	lower = hl_alloc0(len);
	for (uint32_t t = 0; t < n; t++)
	{
		size_t		lower_len = hl_lower_utf8(text + tokens[t].byte_start,
											  tokens[t].byte_end - tokens[t].byte_start,
											  lower);
		uint64_t	h = hl_span_word_hash(lower, lower_len);

		builder->hash[builder->n++] = h != 0 ? h : 1;
	}
	builder->hash[builder->n++] = 0;
	builder->sentences++;
	hl_free(lower);
	if (tokens != stack_tokens)
		hl_free(tokens);
}

static int
compare_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

/* A word and how often it occurs, to pick the most frequent. */
typedef struct WordCount
{
	uint64_t	word;
	uint32_t	count;
} WordCount;

static int
compare_count_desc(const void *a, const void *b)
{
	const WordCount *x = a;
	const WordCount *y = b;

	if (x->count != y->count)
		return (x->count < y->count) - (x->count > y->count);
	return (x->word > y->word) - (x->word < y->word);
}

/* Return the index of word in the sorted array, or -1. */
static int64_t
find_word(const uint64_t *words, uint32_t n, uint64_t word)
{
	uint32_t	lo = 0;
	uint32_t	hi = n;

	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (words[mid] < word)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && words[lo] == word ? (int64_t) lo : -1;
}

/*
 * Choose the vocabulary: the words seen at least twice, the most frequent
 * HL_WORD_CLASS_MAX_WORDS of them, sorted by hash.  Returns their number.
 */
static uint32_t
choose_words(const HlWordClassBuilder *builder, uint64_t **words_out)
{
	uint64_t   *sorted = hl_alloc_array(builder->n > 0 ? builder->n : 1, sizeof(uint64_t));
	WordCount  *counts;
	size_t		n = 0;
	size_t		n_counts = 0;
	uint32_t	vocabulary_size;
	uint64_t   *words;

	for (size_t i = 0; i < builder->n; i++)
		if (builder->hash[i] != 0)
			sorted[n++] = builder->hash[i];
	qsort(sorted, n, sizeof(uint64_t), compare_u64);

	counts = hl_alloc_array(n > 0 ? n : 1, sizeof(WordCount));
	for (size_t i = 0; i < n;)
	{
		size_t		j = i;

		while (j < n && sorted[j] == sorted[i])
			j++;
		if (j - i >= 2)
		{
			counts[n_counts].word = sorted[i];
			counts[n_counts].count = (uint32_t) (j - i);
			n_counts++;
		}
		i = j;
	}
	qsort(counts, n_counts, sizeof(WordCount), compare_count_desc);
	vocabulary_size = (uint32_t) (n_counts < HL_WORD_CLASS_MAX_WORDS ? n_counts : HL_WORD_CLASS_MAX_WORDS);

	words = hl_alloc_array(vocabulary_size > 0 ? vocabulary_size : 1, sizeof(uint64_t));
	for (uint32_t w = 0; w < vocabulary_size; w++)
		words[w] = counts[w].word;
	qsort(words, vocabulary_size, sizeof(uint64_t), compare_u64);

	hl_free(counts);
	hl_free(sorted);
	*words_out = words;
	return vocabulary_size;
}

/*
 * Build the words' context vectors in compressed sparse row form: the
 * buckets of the word before (0 .. CONTEXT_BUCKETS - 1) and after (the
 * next CONTEXT_BUCKETS), sqrt(count) times the context's inverse document
 * frequency over words, L2-normalised.
 */
static void
context_vectors(const HlWordClassBuilder *builder, const uint64_t *words, uint32_t n_words,
				uint64_t **row_start_out, uint32_t **index_out, float **value_out)
{
	uint64_t   *pairs = hl_alloc_array(builder->n > 0 ? 2 * builder->n : 1, sizeof(uint64_t));
	size_t		n_pairs = 0;
	uint64_t   *row_start = hl_alloc_array((size_t) n_words + 1, sizeof(uint64_t));
	uint32_t   *index;
	float	   *value;
	uint32_t   *df = hl_alloc_array(2 * CONTEXT_BUCKETS, sizeof(uint32_t));
	size_t		nnz = 0;

	/* One (word, context) key per side of every token of the vocabulary. */
	for (size_t i = 0; i < builder->n; i++)
	{
		int64_t		w;
		uint64_t	before;
		uint64_t	after;

		if (builder->hash[i] == 0)
			continue;
		w = find_word(words, n_words, builder->hash[i]);
		if (w < 0)
			continue;
		before = i > 0 && builder->hash[i - 1] != 0 ? builder->hash[i - 1] : CONTEXT_START;
		after = i + 1 < builder->n && builder->hash[i + 1] != 0 ? builder->hash[i + 1] : CONTEXT_END;
		pairs[n_pairs++] = ((uint64_t) w << 32) | (hl_mix64(before + 11) % CONTEXT_BUCKETS);
		pairs[n_pairs++] = ((uint64_t) w << 32) |
			(CONTEXT_BUCKETS + hl_mix64(after + 13) % CONTEXT_BUCKETS);
	}
	qsort(pairs, n_pairs, sizeof(uint64_t), compare_u64);

	/* Collapse equal keys into counts: the keys sort by word, then context. */
	index = hl_alloc_array(n_pairs > 0 ? n_pairs : 1, sizeof(uint32_t));
	value = hl_alloc_array(n_pairs > 0 ? n_pairs : 1, sizeof(float));
	for (size_t i = 0; i < n_pairs;)
	{
		size_t		j = i;
		uint32_t	w = (uint32_t) (pairs[i] >> 32);

		while (j < n_pairs && pairs[j] == pairs[i])
			j++;
		index[nnz] = (uint32_t) (pairs[i] & 0xffffffffu);
		value[nnz] = sqrtf((float) (j - i));
		df[index[nnz]]++;
		nnz++;
		row_start[w + 1] = nnz;
		i = j;
	}
	for (uint32_t w = 0; w < n_words; w++)
		if (row_start[w + 1] < row_start[w])
			row_start[w + 1] = row_start[w];

	/* Rare contexts tell more about a word than "the" or the sentence start. */
	for (uint32_t w = 0; w < n_words; w++)
	{
		double		norm = 0.0;

		for (uint64_t e = row_start[w]; e < row_start[w + 1]; e++)
		{
			value[e] *= (float) log(1.0 + (double) n_words / df[index[e]]);
			norm += (double) value[e] * value[e];
		}
		if (norm > 0.0)
			for (uint64_t e = row_start[w]; e < row_start[w + 1]; e++)
				value[e] /= (float) sqrt(norm);
	}

	hl_free(df);
	hl_free(pairs);
	*row_start_out = row_start;
	*index_out = index;
	*value_out = value;
}

/* Return a uniform double in [0, 1) from the state, which it advances. */
static double
next_uniform(uint64_t *state)
{
	*state += UINT64_C(0x9e3779b97f4a7c15);
	return (double) (hl_mix64(*state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Cluster the n unit rows of x (d columns) into k clusters by spherical
 * k-means with k-means++ seeding, and write each row's cluster to assign.
 */
static void
spherical_kmeans(const float *x, uint32_t n, uint32_t d, uint32_t k, uint64_t seed,
				 uint16_t *assign, size_t assign_stride)
{
	float	   *centre = hl_alloc_array((size_t) k * d, sizeof(float));
	double	   *nearest = hl_alloc_array(n, sizeof(double));
	float	   *dots = hl_alloc_array((size_t) ROW_BLOCK * k, sizeof(float));
	double	   *sum = hl_alloc_array((size_t) k * d, sizeof(double));
	uint32_t   *size = hl_alloc_array(k, sizeof(uint32_t));
	uint64_t	state = seed;

	/* k-means++: draw each next centre with probability proportional to its squared distance. */
	memcpy(centre, x + (size_t) (next_uniform(&state) * n) * d, d * sizeof(float));
	for (uint32_t i = 0; i < n; i++)
		nearest[i] = 2.0;
	for (uint32_t c = 1; c < k; c++)
	{
		const float *last = centre + (size_t) (c - 1) * d;
		double		total = 0.0;
		double		target;
		uint32_t	pick = n - 1;

		hl_check_interrupt();
		for (uint32_t i = 0; i < n; i++)
		{
			double		dist = 1.0 - cblas_sdot((int) d, x + (size_t) i * d, 1, last, 1);

			if (dist < 0.0)
				dist = 0.0;
			if (dist < nearest[i])
				nearest[i] = dist;
			total += nearest[i] * nearest[i];
		}
		target = next_uniform(&state) * total;
		for (uint32_t i = 0; i < n; i++)
		{
			target -= nearest[i] * nearest[i];
			if (target < 0.0)
			{
				pick = i;
				break;
			}
		}
		memcpy(centre + (size_t) c * d, x + (size_t) pick * d, d * sizeof(float));
	}

	/* Lloyd's iterations on cosine similarity, in blocks of rows. */
	for (int iter = 0; iter < KMEANS_ITERATIONS; iter++)
	{
		hl_check_interrupt();
		memset(sum, 0, (size_t) k * d * sizeof(double));
		memset(size, 0, k * sizeof(uint32_t));
		for (uint32_t r0 = 0; r0 < n; r0 += ROW_BLOCK)
		{
			uint32_t	rows = n - r0 < ROW_BLOCK ? n - r0 : ROW_BLOCK;

			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) rows, (int) k, (int) d,
						1.0f, x + (size_t) r0 * d, (int) d, centre, (int) d,
						0.0f, dots, (int) k);
			for (uint32_t r = 0; r < rows; r++)
			{
				const float *row = dots + (size_t) r * k;
				uint32_t	best = 0;

				for (uint32_t c = 1; c < k; c++)
					if (row[c] > row[best])
						best = c;
				assign[(size_t) (r0 + r) * assign_stride] = (uint16_t) best;
				size[best]++;
				for (uint32_t j = 0; j < d; j++)
					sum[(size_t) best * d + j] += x[(size_t) (r0 + r) * d + j];
			}
		}

		/* New centres are the normalised means, and an empty cluster keeps its centre. */
		for (uint32_t c = 0; c < k; c++)
		{
			double		norm = 0.0;

			if (size[c] == 0)
				continue;
			for (uint32_t j = 0; j < d; j++)
				norm += sum[(size_t) c * d + j] * sum[(size_t) c * d + j];
			if (norm <= 0.0)
				continue;
			for (uint32_t j = 0; j < d; j++)
				centre[(size_t) c * d + j] = (float) (sum[(size_t) c * d + j] / sqrt(norm));
		}
	}

	hl_free(size);
	hl_free(sum);
	hl_free(dots);
	hl_free(nearest);
	hl_free(centre);
}

int
hl_word_classes_fit(const HlWordClassBuilder *builder, uint64_t seed,
					HlWordClasses *out, char *errbuf, size_t errlen)
{
	uint64_t   *words;
	uint32_t	n_words;
	uint64_t   *row_start;
	uint32_t   *index;
	float	   *value;
	float	   *projection;
	float	   *embedding;
	uint32_t	dim = 2 * CONTEXT_BUCKETS;
	uint32_t	k_dim;

	memset(out, 0, sizeof(*out));
	n_words = choose_words(builder, &words);
	if (n_words < 4 * hl_word_class_counts[0])
	{
		snprintf(errbuf, errlen,
				 "the text has %u words that occur twice or more, and word classes need %u",
				 n_words, 4 * hl_word_class_counts[0]);
		hl_free(words);
		return -1;
	}

	/* Context vectors, then their projection on the top singular vectors. */
	context_vectors(builder, words, n_words, &row_start, &index, &value);
	k_dim = HL_WORD_CLASS_DIM < n_words ? HL_WORD_CLASS_DIM : n_words;
	projection = hl_alloc_array((size_t) dim * k_dim, sizeof(float));
	if (hl_pool_embedding_fit(n_words, dim, row_start, index, value, k_dim, 8, 2, seed,
							  projection, NULL, errbuf, errlen) != 0)
	{
		hl_free(projection);
		hl_free(value);
		hl_free(index);
		hl_free(row_start);
		hl_free(words);
		return -1;
	}
	embedding = hl_alloc_array((size_t) n_words * k_dim, sizeof(float));
	for (uint32_t w = 0; w < n_words; w++)
	{
		float	   *e = embedding + (size_t) w * k_dim;
		double		norm = 0.0;

		for (uint64_t i = row_start[w]; i < row_start[w + 1]; i++)
			cblas_saxpy((int) k_dim, value[i], projection + (size_t) index[i] * k_dim, 1, e, 1);
		for (uint32_t j = 0; j < k_dim; j++)
			norm += (double) e[j] * e[j];
		if (norm > 0.0)
			cblas_sscal((int) k_dim, (float) (1.0 / sqrt(norm)), e, 1);
	}

	/* One clustering per granularity, never more classes than a quarter of the words. */
	out->n_words = n_words;
	out->word = words;
	out->word_class = hl_alloc_array((size_t) n_words * HL_WORD_CLASS_LEVELS, sizeof(uint16_t));
	for (int level = 0; level < HL_WORD_CLASS_LEVELS; level++)
	{
		uint32_t	k = hl_word_class_counts[level];

		if (k > n_words / 4)
			k = n_words / 4;
		spherical_kmeans(embedding, n_words, k_dim, k, seed + 101 * (level + 1),
						 out->word_class + level, HL_WORD_CLASS_LEVELS);
	}

	hl_free(embedding);
	hl_free(projection);
	hl_free(value);
	hl_free(index);
	hl_free(row_start);
	return 0;
}

void
hl_word_classes_free(HlWordClasses *classes)
{
	hl_free(classes->word);
	hl_free(classes->word_class);
	memset(classes, 0, sizeof(*classes));
}

const uint16_t *
hl_word_classes_lookup(const HlWordClasses *classes, uint64_t word_hash)
{
	int64_t		w;

	if (classes == NULL || classes->n_words == 0)
		return NULL;
	w = find_word(classes->word, classes->n_words, word_hash);
	return w < 0 ? NULL : classes->word_class + (size_t) w * HL_WORD_CLASS_LEVELS;
}

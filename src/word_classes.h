/*
 * word_classes.h
 *		Word classes learnt from the text of the pool, labelled or not, for
 *		the span tagger's features (numeric core, no PostgreSQL headers).
 *
 * Words that occur in the same contexts get the same class, so a tagger
 * that has seen "paris" as a city can tag "lyon" from a class they share,
 * though "lyon" was never labelled.  A word's context is the words just
 * before and after it across the pool.  The classes are k-means clusters,
 * at three granularities, of a low-rank embedding of those contexts.
 */
#ifndef HL_WORD_CLASSES_H
#define HL_WORD_CLASSES_H

#include <stddef.h>
#include <stdint.h>

/* Granularities: the numbers of classes at each level. */
#define HL_WORD_CLASS_LEVELS 3
extern const uint16_t hl_word_class_counts[HL_WORD_CLASS_LEVELS];

/* Words kept at most, the most frequent first. */
#define HL_WORD_CLASS_MAX_WORDS 50000

/*
 * Pool tokens read at most.  Text after them is ignored.
 * NOTE: the rows come in scan order, so on a pool larger than this the
 * classes depend on which rows come first.
 */
#define HL_WORD_CLASS_MAX_TOKENS 4000000

/* Word hashes (sorted) and their classes, level by level for each word. */
typedef struct HlWordClasses
{
	uint32_t	n_words;
	uint64_t   *word;
	uint16_t   *word_class;		/* n_words x HL_WORD_CLASS_LEVELS */
} HlWordClasses;

/* The pool's token stream while it is read. */
typedef struct HlWordClassBuilder
{
	uint64_t   *hash;			/* word hashes, 0 between sentences */
	size_t		n;
	size_t		capacity;
	uint32_t	sentences;
} HlWordClassBuilder;

extern void hl_word_class_builder_init(HlWordClassBuilder *builder);
extern void hl_word_class_builder_free(HlWordClassBuilder *builder);

/* Add the words of one UTF-8 text (len bytes) to the builder. */
extern void hl_word_class_builder_add(HlWordClassBuilder *builder,
									  const char *text, size_t len);

/*
 * Fit the classes of the builder's words that occur at least twice into
 * out.  seed makes the result reproducible.  Returns 0, or -1 with a
 * message in errbuf when the pool has too few words to cluster or LAPACK
 * fails (out is then empty, and a tagger works without classes).
 */
extern int	hl_word_classes_fit(const HlWordClassBuilder *builder, uint64_t seed,
								HlWordClasses *out, char *errbuf, size_t errlen);

extern void hl_word_classes_free(HlWordClasses *classes);

/* Return the classes of a word hash, or NULL for a word without them. */
extern const uint16_t *hl_word_classes_lookup(const HlWordClasses *classes,
											  uint64_t word_hash);

#endif							/* HL_WORD_CLASSES_H */

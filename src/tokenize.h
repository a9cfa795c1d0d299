/*
 * tokenize.h
 *		UTF-8 aware tokenisation with character offsets (numeric core).
 */
#ifndef HL_TOKENIZE_H
#define HL_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

/* One token: byte offsets into the text and character (code point) offsets. */
typedef struct HlToken
{
	uint32_t	byte_start;
	uint32_t	byte_end;		/* exclusive */
	uint32_t	char_start;
	uint32_t	char_end;		/* exclusive */
} HlToken;

/*
 * Split text into word tokens: maximal runs of letters and digits (any code
 * point of U+0080 and above that is not punctuation or space counts as a
 * letter).  Writes at most max_tokens tokens and returns how many the text
 * has, which may exceed max_tokens.
 */
extern uint32_t hl_tokenize(const char *text, size_t len, HlToken *tokens,
							uint32_t max_tokens);

/*
 * Split text into tokens for span tagging: runs of word characters as in
 * hl_tokenize, and every other character that is not white space (an
 * invalid byte counts as white space) as a token of its own, so that a span
 * ending in punctuation still ends on a token boundary.  Writes at most
 * max_tokens tokens and returns how many the text has.
 */
extern uint32_t hl_tokenize_with_punctuation(const char *text, size_t len,
											 HlToken *tokens, uint32_t max_tokens);

/*
 * Lower-case UTF-8 text into out (at least len bytes; lower-casing never
 * grows the text for the scripts handled).  Handles ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic; other code points are copied as
 * they are.  Returns the number of bytes written.
 */
extern size_t hl_lower_utf8(const char *text, size_t len, char *out);

#endif							/* HL_TOKENIZE_H */

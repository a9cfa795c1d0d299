/*
 * tokenize.c
 *		UTF-8 decoding, word tokenisation and lower-casing (numeric core).
 *
 * Decoding is strict: overlong forms, UTF-16 surrogates, code points above
 * U+10FFFF and truncated sequences are invalid.  Every invalid byte is a
 * separator and counts as one character in character offsets, so offsets
 * agree with PostgreSQL's character positions for valid text.
 *
 * A word character is an ASCII letter or digit, or a code point of U+0080
 * and above outside the punctuation, symbol and space blocks listed in
 * separator_ranges.  Scripts are not told apart, so a run of CJK ideographs
 * is one token.  Offsets are 32-bit, so texts must be shorter than 4 GiB
 * (PostgreSQL values are at most 1 GB).
 */
#include "tokenize.h"

#include <stdbool.h>

/* Code point ranges (inclusive) above U+007F that separate words. */
static const uint32_t separator_ranges[][2] = {
	{0x0080, 0x00BF},			/* C1 controls, no-break space, Latin-1 symbols */
	{0x00D7, 0x00D7},			/* multiplication sign */
	{0x00F7, 0x00F7},			/* division sign */
	{0x037E, 0x037E},			/* Greek question mark */
	{0x0387, 0x0387},			/* Greek ano teleia */
	{0x055A, 0x055F},			/* Armenian punctuation */
	{0x0589, 0x058A},
	{0x05BE, 0x05BE},			/* Hebrew punctuation */
	{0x05C0, 0x05C0},
	{0x05C3, 0x05C3},
	{0x05F3, 0x05F4},
	{0x060C, 0x060D},			/* Arabic punctuation */
	{0x061B, 0x061F},
	{0x066A, 0x066D},
	{0x06D4, 0x06D4},
	{0x0964, 0x0965},			/* Devanagari danda */
	{0x0E3F, 0x0E3F},			/* Thai baht sign */
	{0x1680, 0x1680},			/* Ogham space */
	{0x2000, 0x206F},			/* General Punctuation, incl. spaces */
	{0x20A0, 0x20CF},			/* currency symbols */
	{0x2190, 0x21FF},			/* arrows */
	{0x2E00, 0x2E7F},			/* Supplemental Punctuation */
	{0x3000, 0x303F},			/* CJK symbols and punctuation */
	{0xFE10, 0xFE1F},			/* vertical forms */
	{0xFE30, 0xFE6F},			/* CJK compatibility and small form variants */
	{0xFEFF, 0xFEFF},			/* byte order mark */
	{0xFF01, 0xFF0F},			/* fullwidth ASCII punctuation */
	{0xFF1A, 0xFF20},
	{0xFF3B, 0xFF40},
	{0xFF5B, 0xFF65},
	{0xFFF0, 0xFFFF},			/* specials */
};

#define N_SEPARATOR_RANGES (sizeof(separator_ranges) / sizeof(separator_ranges[0]))

/*
 * Decode one UTF-8 sequence at s (avail > 0 bytes).  Returns its length in
 * bytes and stores the code point, or returns 0 when the first byte does not
 * start a valid sequence.
 */
static inline uint32_t
decode_utf8(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t	len;
	uint32_t	v;
	uint32_t	min;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		len = 2;
		v = c & 0x1F;
		min = 0x80;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		len = 3;
		v = c & 0x0F;
		min = 0x800;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		len = 4;
		v = c & 0x07;
		min = 0x10000;
	}
	else
		return 0;

	if (avail < len)
		return 0;
	for (uint32_t k = 1; k < len; k++)
	{
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[k] & 0x3F);
	}

	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

/* Return whether code point cp (valid, any value) belongs to a word. */
static inline bool
is_word_char(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= '0' && cp <= '9') ||
			((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
	for (size_t i = 0; i < N_SEPARATOR_RANGES; i++)
	{
		if (cp < separator_ranges[i][0])
			return true;
		if (cp <= separator_ranges[i][1])
			return false;
	}
	return true;
}

/* Split text into runs of word characters; see tokenize.h. */
uint32_t
hl_tokenize(const char *text, size_t len, HlToken *tokens, uint32_t max_tokens)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		pos = 0;
	uint32_t	chars = 0;
	uint32_t	n_tokens = 0;
	bool		in_word = false;
	HlToken		current = {0, 0, 0, 0};

	while (pos < len)
	{
		uint32_t	cp = 0;
		uint32_t	n = decode_utf8(s + pos, len - pos, &cp);
		bool		word = n > 0 && is_word_char(cp);

		if (n == 0)
			n = 1;				/* an invalid byte is one separator character */

		if (word && !in_word)
		{
			current.byte_start = (uint32_t) pos;
			current.char_start = chars;
			in_word = true;
		}
		else if (!word && in_word)
		{
			current.byte_end = (uint32_t) pos;
			current.char_end = chars;
			if (n_tokens < max_tokens)
				tokens[n_tokens] = current;
			n_tokens++;
			in_word = false;
		}
		pos += n;
		chars++;
	}

	if (in_word)
	{
		current.byte_end = (uint32_t) pos;
		current.char_end = chars;
		if (n_tokens < max_tokens)
			tokens[n_tokens] = current;
		n_tokens++;
	}
	return n_tokens;
}

/* Return whether code point cp (valid, any value) is white space. */
static inline bool
is_space_char(uint32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
		(cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 ||
		cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Split text into words and single punctuation characters; see tokenize.h. */
uint32_t
hl_tokenize_with_punctuation(const char *text, size_t len, HlToken *tokens,
							 uint32_t max_tokens)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		pos = 0;
	uint32_t	chars = 0;
	uint32_t	n_tokens = 0;
	bool		in_word = false;
	HlToken		current = {0, 0, 0, 0};

	while (pos < len)
	{
		uint32_t	cp = 0;
		uint32_t	n = decode_utf8(s + pos, len - pos, &cp);
		bool		valid = n > 0;
		bool		word = valid && is_word_char(cp);

		if (!valid)
			n = 1;

		/* A word ends at the first character that is not part of it. */
		if (!word && in_word)
		{
			current.byte_end = (uint32_t) pos;
			current.char_end = chars;
			if (n_tokens < max_tokens)
				tokens[n_tokens] = current;
			n_tokens++;
			in_word = false;
		}

		if (word && !in_word)
		{
			current.byte_start = (uint32_t) pos;
			current.char_start = chars;
			in_word = true;
		}
		else if (!word && valid && !is_space_char(cp))
		{
			HlToken		single = {(uint32_t) pos, (uint32_t) (pos + n), chars, chars + 1};

			if (n_tokens < max_tokens)
				tokens[n_tokens] = single;
			n_tokens++;
		}
		pos += n;
		chars++;
	}

	if (in_word)
	{
		current.byte_end = (uint32_t) pos;
		current.char_end = chars;
		if (n_tokens < max_tokens)
			tokens[n_tokens] = current;
		n_tokens++;
	}
	return n_tokens;
}

/*
 * Return the lower-case form of code point cp for the scripts in tokenize.h.
 * Every mapping keeps the UTF-8 length or shortens it (U+0130 becomes 'i').
 */
static inline uint32_t
lower_code_point(uint32_t cp)
{
	/* Latin-1 Supplement: U+00C0..U+00DE except the multiplication sign. */
	if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
		return cp + 0x20;

	/* Latin Extended-A: mostly pairs of capital and small letter. */
	if (cp >= 0x0100 && cp <= 0x017F)
	{
		if (cp == 0x0130)
			return 'i';			/* capital I with dot above */
		if (cp == 0x0178)
			return 0x00FF;		/* capital Y with diaeresis */
		if ((cp >= 0x0100 && cp <= 0x012F) ||
			(cp >= 0x0132 && cp <= 0x0137) ||
			(cp >= 0x014A && cp <= 0x0177))
			return (cp % 2 == 0) ? cp + 1 : cp;
		if ((cp >= 0x0139 && cp <= 0x0148) ||
			(cp >= 0x0179 && cp <= 0x017E))
			return (cp % 2 == 1) ? cp + 1 : cp;
		return cp;
	}

	/* Greek: basic capitals and the accented ones. */
	if (cp >= 0x0386 && cp <= 0x03AB)
	{
		if (cp >= 0x0391 && cp != 0x03A2)
			return cp + 0x20;
		if (cp == 0x0386)
			return 0x03AC;
		if (cp >= 0x0388 && cp <= 0x038A)
			return cp + 0x25;
		if (cp == 0x038C)
			return 0x03CC;
		if (cp == 0x038E || cp == 0x038F)
			return cp + 0x3F;
		return cp;
	}

	/* Cyrillic: U+0400..U+042F, then even/odd pairs up to U+052F. */
	if (cp >= 0x0400 && cp <= 0x052F)
	{
		if (cp <= 0x040F)
			return cp + 0x50;
		if (cp <= 0x042F)
			return cp + 0x20;
		if ((cp >= 0x0460 && cp <= 0x0481) ||
			(cp >= 0x048A && cp <= 0x04BF) ||
			(cp >= 0x04D0 && cp <= 0x052F))
			return (cp % 2 == 0) ? cp + 1 : cp;
		if (cp == 0x04C0)
			return 0x04CF;
		if (cp >= 0x04C1 && cp <= 0x04CE)
			return (cp % 2 == 1) ? cp + 1 : cp;
		return cp;
	}
	return cp;
}

/* Lower-case UTF-8 text into out; see tokenize.h. */
size_t
hl_lower_utf8(const char *text, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *) text;
	unsigned char *o = (unsigned char *) out;
	size_t		pos = 0;
	size_t		w = 0;

	while (pos < len)
	{
		unsigned char c = s[pos];
		uint32_t	cp = 0;
		uint32_t	n;

		/* ASCII fast path. */
		if (c < 0x80)
		{
			o[w++] = (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 0x20) : c;
			pos++;
			continue;
		}

		n = decode_utf8(s + pos, len - pos, &cp);
		if (n != 2)
		{
			/*
			 * Invalid bytes and sequences of 3 or 4 bytes are copied as they
			 * are: none of the handled scripts lies outside 2-byte UTF-8.
			 */
			if (n == 0)
				n = 1;
			for (uint32_t k = 0; k < n; k++)
				o[w++] = s[pos + k];
			pos += n;
			continue;
		}

		cp = lower_code_point(cp);
		if (cp < 0x80)
			o[w++] = (unsigned char) cp;
		else
		{
			o[w++] = (unsigned char) (0xC0 | (cp >> 6));
			o[w++] = (unsigned char) (0x80 | (cp & 0x3F));
		}
		pos += 2;
	}
	return w;
}

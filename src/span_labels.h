/*
 * span_labels.h
 *		Span labels as annotators write them: JSON arrays of character-offset
 *		spans, validated and turned into spans with label ids.
 */
#ifndef HL_SPAN_LABELS_H
#define HL_SPAN_LABELS_H

#include "humanloop.h"
#include "utils/hsearch.h"

/* Span label names and their ids, in order of first appearance. */
typedef struct HlSpanLabelMap
{
	HTAB	   *table;
	uint32		n;
	uint32		max;
	char	  **names;
} HlSpanLabelMap;

/* Create an empty map in the current memory context. */
extern void hl_span_label_map_init(HlSpanLabelMap *map);

/* Return the id of name, adding it when new. */
extern int32 hl_span_label_id(HlSpanLabelMap *map, const char *name);

/*
 * Parse the span label json (the text of a JSON array such as
 * [{"start": 10, "end": 17, "label": "artist"}]) of the row row_id, whose
 * text text has len bytes (NULL for a row whose text is NULL, len 0).  Every span needs integer "start" and "end" with
 * 0 <= start < end <= the text's length in characters, covering at least
 * one character that is not white space, and a non-empty string "label";
 * other keys are ignored.  Overlapping spans are an error
 * unless allow_overlap.  Labels are added to map.  Returns the spans sorted
 * by start (then end) and sets *n_spans; an empty array gives none.
 */
extern HlCharSpan *hl_span_labels_parse(const char *json, const char *row_id,
										const char *text, size_t len,
										bool allow_overlap, HlSpanLabelMap *map,
										uint32 *n_spans);

#endif							/* HL_SPAN_LABELS_H */

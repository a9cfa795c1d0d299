/*
 * span_labels.c
 *		Validation of span labels written by annotators.
 *
 * Offsets count characters (code points) of the text as stored, end
 * exclusive, as annotation tools export them.  Errors name the row id and
 * the span's position in its array (counting from 1), so an annotator can
 * find and fix it; an error context line names the row for JSON syntax
 * errors too.
 */
#include "compat.h"

#include <math.h>

#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "span_labels.h"
#include "tokenize.h"

/* Error context: the row whose label is being read. */
static void
hl_span_label_context(void *arg)
{
	errcontext("span label of row \"%s\"", (const char *) arg);
}

/* Hash the string a key points to. */
static uint32
hl_name_hash(const void *key, Size keysize)
{
	const char *name = *(char *const *) key;

	return string_hash(name, strlen(name) + 1);
}

/* Compare the strings two keys point to. */
static int
hl_name_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

typedef struct HlSpanLabelEntry
{
	char	   *name;			/* hash key: the pointer, hashed by contents */
	int32		id;
} HlSpanLabelEntry;

void
hl_span_label_map_init(HlSpanLabelMap *map)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(HlSpanLabelEntry);
	ctl.hash = hl_name_hash;
	ctl.match = hl_name_match;
	ctl.hcxt = CurrentMemoryContext;
	map->table = hash_create("humanloop span labels", 64, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	map->n = 0;
	map->max = 64;
	map->names = palloc(sizeof(char *) * map->max);
}

int32
hl_span_label_id(HlSpanLabelMap *map, const char *name)
{
	HlSpanLabelEntry *entry;
	char	   *copy;
	bool		found;

	entry = hash_search(map->table, &name, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->id;

	copy = MemoryContextStrdup(GetMemoryChunkContext(map->names), name);
	entry = hash_search(map->table, &copy, HASH_ENTER, &found);
	entry->name = copy;
	entry->id = map->n;
	if (map->n == map->max)
	{
		map->max *= 2;
		map->names = repalloc(map->names, sizeof(char *) * map->max);
	}
	map->names[map->n++] = copy;
	return entry->id;
}

/* Return the value of key in object, or NULL. */
static JsonbValue *
hl_json_field(JsonbContainer *object, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(object, JB_FOBJECT, &k);
}

/* Return the integer offset key of span number index, or raise an error. */
static int64
hl_span_offset(JsonbContainer *object, const char *key, int index, const char *row_id)
{
	JsonbValue *value = hl_json_field(object, key);
	double		number;

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("span %d of row \"%s\" has no \"%s\"", index, row_id, key),
				 errhint("Every span needs integer \"start\" and \"end\" character offsets and a \"label\".")));
	if (value->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("span %d of row \"%s\" has a \"%s\" that is not a number", index, row_id, key),
				 errhint("Write offsets as JSON numbers, such as \"%s\": 10.", key)));
	number = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
												NumericGetDatum(value->val.numeric)));
	if (number != floor(number) || fabs(number) > (double) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("span %d of row \"%s\" has \"%s\" %s, which is not a valid character offset",
						index, row_id, key, hl_json_number_text(value)),
				 errhint("Offsets are whole numbers of characters, counted from 0.")));
	return (int64) number;
}

/*
 * A position in a text, to turn character offsets into byte offsets.  Spans
 * usually come in text order, so the cursor moves on from the last offset
 * and goes back to the start of the text only for an earlier one.
 */
typedef struct HlCharCursor
{
	const char *text;
	size_t		len;
	int64		chars;			/* character offset of bytes */
	size_t		bytes;
} HlCharCursor;

/* Move the cursor to character offset chars and return its byte offset. */
static size_t
hl_char_cursor_seek(HlCharCursor *cursor, int64 chars)
{
	if (chars < cursor->chars)
	{
		cursor->chars = 0;
		cursor->bytes = 0;
	}
	while (cursor->chars < chars && cursor->bytes < cursor->len)
	{
		cursor->bytes = Min(cursor->bytes + pg_mblen(cursor->text + cursor->bytes), cursor->len);
		cursor->chars++;
	}
	return cursor->bytes;
}

/*
 * Return whether characters start .. end - 1 of the text contain a token of
 * the tagger.  Counting tokens with the tagger's own tokenizer keeps this
 * check in step with what white space is to training.
 */
static bool
hl_span_has_token(HlCharCursor *cursor, int64 start, int64 end)
{
	size_t		first = hl_char_cursor_seek(cursor, start);
	size_t		last = hl_char_cursor_seek(cursor, end);

	return hl_tokenize_with_punctuation(cursor->text + first, last - first, NULL, 0) > 0;
}

/* qsort order of spans: by start, then by end. */
static int
hl_compare_spans(const void *a, const void *b)
{
	const HlCharSpan *x = a;
	const HlCharSpan *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/*
 * Parse the text of a span label as jsonb.  A label kept in a text column
 * may not be JSON at all, and jsonb_in's own error does not show the
 * expected format, so that error is raised again with a hint.  The row is
 * named by the error context of the caller.
 */
static Jsonb *
hl_span_label_jsonb(const char *json, const char *row_id)
{
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *volatile label = NULL;

	PG_TRY();
	{
		label = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		if (error->sqlerrcode != ERRCODE_INVALID_TEXT_REPRESENTATION)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("span label is not valid JSON: %s", error->message),
				 error->detail ? errdetail_internal("%s", error->detail) : 0,
				 errhint("Write the spans as [{\"start\": 0, \"end\": 4, \"label\": \"artist\"}], or [] for a text without spans.")));
	}
	PG_END_TRY();
	return label;
}

HlCharSpan *
hl_span_labels_parse(const char *json, const char *row_id, const char *text,
					 size_t len, bool allow_overlap, HlSpanLabelMap *map,
					 uint32 *n_spans)
{
	ErrorContextCallback context;
	Jsonb	   *label;
	JsonbIterator *it;
	JsonbValue	value;
	JsonbIteratorToken token;
	HlCharSpan *spans;
	int			n_elements;
	int			n = 0;
	const char *body = text != NULL ? text : "";
	int64		text_chars = pg_mbstrlen_with_len(body, (int) len);
	HlCharCursor cursor = {body, len, 0, 0};

	context.callback = hl_span_label_context;
	context.arg = (void *) row_id;
	context.previous = error_context_stack;
	error_context_stack = &context;

	label = hl_span_label_jsonb(json, row_id);
	if (!JB_ROOT_IS_ARRAY(label) || JB_ROOT_IS_SCALAR(label))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("span label of row \"%s\" is not a JSON array", row_id),
				 errhint("Write the spans as [{\"start\": 0, \"end\": 4, \"label\": \"artist\"}], or [] for a text without spans.")));

	n_elements = JB_ROOT_COUNT(label);
	spans = palloc(sizeof(HlCharSpan) * Max(n_elements, 1));

	it = JsonbIteratorInit(&label->root);
	while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
	{
		JsonbValue *name;
		int64		start;
		int64		end;
		int			index = n + 1;

		if (token != WJB_ELEM)
			continue;
		if (value.type != jbvBinary || !JsonContainerIsObject(value.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" is not a JSON object", index, row_id),
					 errhint("Write each span as {\"start\": 0, \"end\": 4, \"label\": \"artist\"}.")));

		start = hl_span_offset(value.val.binary.data, "start", index, row_id);
		end = hl_span_offset(value.val.binary.data, "end", index, row_id);
		if (text == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" from %lld to %lld has no text to lie in, because the row's text is NULL",
							index, row_id, (long long) start, (long long) end),
					 errhint("Give the row its text, or label it [] (no spans).")));
		if (start < 0 || end > text_chars)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_plural("span %d of row \"%s\" from %lld to %lld lies outside its text of %lld character",
								   "span %d of row \"%s\" from %lld to %lld lies outside its text of %lld characters",
								   (unsigned long) text_chars,
								   index, row_id, (long long) start, (long long) end, (long long) text_chars),
					 errhint("Offsets count characters (not bytes) from 0, and \"end\" is exclusive.")));
		if (start >= end)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" starts at %lld, not before its end %lld",
							index, row_id, (long long) start, (long long) end),
					 errhint("\"end\" is exclusive, so a span of one character has end = start + 1.")));

		/* A span over white space only tags no token, so its label learns nothing. */
		if (!hl_span_has_token(&cursor, start, end))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" from %lld to %lld covers only white space",
							index, row_id, (long long) start, (long long) end),
					 errhint("Move \"start\" and \"end\" onto the words the span labels, or remove the span.")));

		name = hl_json_field(value.val.binary.data, "label");
		if (name == NULL || (name->type == jbvString && name->val.string.len == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" has no label", index, row_id),
					 errhint("Give every span a non-empty string \"label\".")));
		if (name->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("span %d of row \"%s\" has a label that is not a string", index, row_id),
					 errhint("Write the label as a JSON string, such as \"label\": \"artist\".")));

		spans[n].start = (uint32) start;
		spans[n].end = (uint32) end;
		spans[n].label = hl_span_label_id(map, pnstrdup(name->val.string.val,
														name->val.string.len));
		n++;
	}

	/* Sorted spans overlap exactly when one starts before an earlier one ends. */
	qsort(spans, n, sizeof(HlCharSpan), hl_compare_spans);
	if (!allow_overlap)
	{
		for (int i = 1; i < n; i++)
			if (spans[i].start < spans[i - 1].end)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("spans of row \"%s\" overlap: %u to %u (\"%s\") and %u to %u (\"%s\")",
								row_id, spans[i - 1].start, spans[i - 1].end,
								map->names[spans[i - 1].label],
								spans[i].start, spans[i].end, map->names[spans[i].label]),
						 errhint("Fix the label, or create the model with options => '{\"allow_overlap\": true}'.")));
	}

	error_context_stack = context.previous;
	*n_spans = (uint32) n;
	return spans;
}

/*
 * train_spans.c
 *		Full training of a span model: the linear-chain CRF over BIO tags
 *		(model_crf.h), fitted to every labelled row and stored as a new
 *		version.
 *
 * Each labelled row is tokenised, its spans are validated (span_labels.c)
 * and turned into one BIO tag per token, and every annotation becomes one
 * training sentence of the CRF with the window features of its tokens.  A
 * row with several annotations (from a labels relation) contributes each,
 * weighted by 1 / their number.
 * Unlabelled rows count through word classes (word_classes.h): a first
 * pass reads the text of every row, labelled or not, and groups the words
 * by the contexts they occur in, and a token's features include its
 * word's classes.
 *
 * The temperature of the span probabilities is fitted on every fifth
 * labelled row, held out from a second fit of the CRF on the others
 * (crf_calibrate.c).  When a training makes that fit, the full fit starts
 * from it.
 */
#include "compat.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "posterior_io.h"
#include "span_labels.h"
#include "text_source.h"
#include "train.h"

#define HL_FETCH_ROWS 1000

/*
 * Prior precision of the CRF weights unless the model sets
 * prior_precision, the L-BFGS iteration limit, and the scale of the
 * posterior variance in the draws of prediction.  All were chosen on the
 * snips validation split with test/core/bench_spans_core (see
 * docs/spans.md).  Precision 0.25 gains about 2 points of span F1 over 1
 * with 1,000 training sentences and loses nothing with all of them.  Draws
 * with the full Laplace variance made span probabilities far too low
 * (Brier score 0.41 with 1,000 sentences); a hundredth of it gives 0.10.
 * 150 iterations reach the F1 of a full convergence (about 190 iterations)
 * within 0.001 at 80% of its time.
 */
#define HL_SPANS_PRIOR_PRECISION 0.25
#define HL_SPANS_VARIANCE_SCALE 0.01
#define HL_SPANS_MAX_ITERATIONS 150

/*
 * The temperature is fitted on every fifth labelled row, held out from a
 * second fit of the CRF, once the model has HL_SPANS_MIN_CALIBRATION_ROWS
 * labelled rows.  That fit costs about as much as the main one.  So a
 * version keeps the temperature of the current one until the labelled rows
 * have grown by more than a quarter, as the classifier keeps its prior
 * precision.
 */
#define HL_SPANS_HELDOUT_EVERY 5
#define HL_SPANS_MIN_CALIBRATION_ROWS 50
#define HL_SPANS_RECALIBRATE_GROWTH 1.25

/*
 * Seed of the word classes' k-means.  Below the token cap of word_classes.h
 * the classes depend on the text alone, not on the order of the rows.
 */
#define HL_SPANS_WORD_CLASS_SEED 42

/*
 * Share of training tokens whose word classes are left out.  A model that
 * always saw classes learnt to need them: a word without one (seen once in
 * the relation, or added after the training) was not tagged even in a
 * context it had learnt.  Left out for a tenth of the tokens, the other
 * features carry the tags too.  A quarter did as well on such words but
 * cost the default strategy 1.2 points of F1 at 1,000 sentences on snips
 * (docs/spans.md).
 */
#define HL_SPANS_CLASS_DROPOUT 0.1

/* Token rows gathered for the fit, in compressed sparse row form. */
typedef struct HlTokenRows
{
	uint32		n_rows;
	uint32		max_rows;
	uint32		n_sentences;
	uint32		max_sentences;
	uint32	   *sentence_start;	/* n_sentences + 1 entries into the rows */
	float	   *sentence_weight;
	uint32	   *sentence_item;	/* the labelled row of each sentence */
	uint64	   *row_start;
	int32	   *tag;			/* with provisional label ids until renumbered */
	float	   *weight;
	uint32	   *group;

	uint64		nnz;
	uint64		max_nnz;
	uint32	   *index;
	float	   *value;

	uint32		n_items;		/* labelled rows */
	uint64		n_docs;			/* all rows read */
	uint64		n_spans;
	uint64		n_missed;		/* spans that covered no token */
} HlTokenRows;

/* Append the token rows of one tagged sentence. */
static void
hl_token_rows_append(HlTokenRows *set, const HlSentenceFeatures *features,
					 const int32 *tags, float weight)
{
	uint32		n = features->n_tokens;
	uint64		nnz = features->row_start[n];

	if (set->n_rows + n > set->max_rows)
	{
		set->max_rows = Max(Max(4096, set->max_rows * 2), set->n_rows + n);
		if (set->row_start == NULL)
		{
			set->row_start = palloc_extended(sizeof(uint64) * (set->max_rows + 1), MCXT_ALLOC_HUGE);
			set->tag = palloc_extended(sizeof(int32) * set->max_rows, MCXT_ALLOC_HUGE);
			set->weight = palloc_extended(sizeof(float) * set->max_rows, MCXT_ALLOC_HUGE);
			set->group = palloc_extended(sizeof(uint32) * set->max_rows, MCXT_ALLOC_HUGE);
			set->row_start[0] = 0;
		}
		else
		{
			set->row_start = repalloc_huge(set->row_start, sizeof(uint64) * (set->max_rows + 1));
			set->tag = repalloc_huge(set->tag, sizeof(int32) * set->max_rows);
			set->weight = repalloc_huge(set->weight, sizeof(float) * set->max_rows);
			set->group = repalloc_huge(set->group, sizeof(uint32) * set->max_rows);
		}
	}
	if (set->nnz + nnz > set->max_nnz)
	{
		set->max_nnz = Max(Max(set->max_nnz * 2, 65536), set->nnz + nnz);
		if (set->index == NULL)
		{
			set->index = palloc_extended(sizeof(uint32) * set->max_nnz, MCXT_ALLOC_HUGE);
			set->value = palloc_extended(sizeof(float) * set->max_nnz, MCXT_ALLOC_HUGE);
		}
		else
		{
			set->index = repalloc_huge(set->index, sizeof(uint32) * set->max_nnz);
			set->value = repalloc_huge(set->value, sizeof(float) * set->max_nnz);
		}
	}

	if (set->n_sentences + 1 >= set->max_sentences)
	{
		set->max_sentences = Max(1024, set->max_sentences * 2);
		if (set->sentence_start == NULL)
		{
			set->sentence_start = palloc_extended(sizeof(uint32) * set->max_sentences, MCXT_ALLOC_HUGE);
			set->sentence_weight = palloc_extended(sizeof(float) * set->max_sentences, MCXT_ALLOC_HUGE);
			set->sentence_item = palloc_extended(sizeof(uint32) * set->max_sentences, MCXT_ALLOC_HUGE);
			set->sentence_start[0] = 0;
		}
		else
		{
			set->sentence_start = repalloc_huge(set->sentence_start, sizeof(uint32) * set->max_sentences);
			set->sentence_weight = repalloc_huge(set->sentence_weight, sizeof(float) * set->max_sentences);
			set->sentence_item = repalloc_huge(set->sentence_item, sizeof(uint32) * set->max_sentences);
		}
	}
	set->sentence_weight[set->n_sentences] = weight;
	set->sentence_item[set->n_sentences] = set->n_items;
	set->sentence_start[++set->n_sentences] = set->n_rows + n;

	memcpy(set->index + set->nnz, features->index, sizeof(uint32) * nnz);
	memcpy(set->value + set->nnz, features->value, sizeof(float) * nnz);
	for (uint32 t = 0; t < n; t++)
	{
		set->tag[set->n_rows] = tags[t];
		set->weight[set->n_rows] = weight;
		set->group[set->n_rows] = set->n_items;
		set->n_rows++;
		set->row_start[set->n_rows] = set->nnz + features->row_start[t + 1];
	}
	set->nnz += nnz;
}

/*
 * Add the token rows of every annotation of one labelled row.  Parsed
 * labels and tags are temporaries in row_context.
 */
static void
hl_token_rows_add_item(HlTokenRows *set, const HlModelDef *def, HlSpanLabelMap *labels,
					   const HlWordClasses *classes,
					   HlSentenceFeatures *features, const char *id,
					   const char *body, size_t len, ArrayType *array,
					   MemoryContext row_context)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			n_given = 0;
	int32	   *tags;
	MemoryContext caller = MemoryContextSwitchTo(row_context);

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	MemoryContextSwitchTo(caller);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			n_given++;
	if (n_given == 0)
		return;

	hl_span_featurize_training(body != NULL ? body : "", len, def->features.hash_bits, classes,
							   HL_SPANS_CLASS_DROPOUT,
							   hash_bytes_extended((const unsigned char *) id, strlen(id), 0),
							   features);
	tags = MemoryContextAlloc(row_context, sizeof(int32) * Max(features->n_tokens, 1));
	for (int i = 0; i < n; i++)
	{
		HlCharSpan *spans;
		uint32		n_spans;

		if (nulls[i])
			continue;
		{
			MemoryContext old = MemoryContextSwitchTo(row_context);

			spans = hl_span_labels_parse(TextDatumGetCString(elems[i]), id, body, len,
										 def->allow_overlap, labels, &n_spans);
			MemoryContextSwitchTo(old);
		}
		set->n_missed += hl_tags_from_spans(features->tokens, features->n_tokens,
											spans, n_spans, tags);
		set->n_spans += n_spans;
		hl_token_rows_append(set, features, tags, 1.0f / n_given);
	}
	set->n_items++;
}

/*
 * Fit the word classes of the text of every row of the model's relation
 * into classes.  A pool with too few repeated words gets none, and its
 * tokens only the other features.
 *
 * NOTE: this scans the relation once more before hl_token_rows_read.  One
 * pass that kept the labelled rows' text until the classes are fitted
 * would read a large relation once.
 */
static void
hl_span_word_classes_read(const HlModelDef *def, HlWordClasses *classes)
{
	MemoryContext train_context = CurrentMemoryContext;
	HlWordClassBuilder builder;
	Portal		portal;
	char		errbuf[256];

	hl_word_class_builder_init(&builder);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, hl_source_training_query(def), 0, NULL, NULL,
									   NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		doc = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2,
											&isnull);
			text	   *t;

			CHECK_FOR_INTERRUPTS();
			if (isnull)
				continue;
			t = DatumGetTextPP(doc);

			/* Every row's text is read, so every row has the length limit, as for a classifier. */
			if (VARSIZE_ANY_EXHDR(t) > (size_t) hl_max_text_bytes)
				hl_check_text_length(VARSIZE_ANY_EXHDR(t),
									 psprintf("text of row \"%s\"",
											  SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1)));

			/* The builder's tokens outlive SPI's memory, so they grow in the caller's. */
			{
				MemoryContext spi_context = MemoryContextSwitchTo(train_context);

				hl_word_class_builder_add(&builder, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				MemoryContextSwitchTo(spi_context);
			}
			if ((Pointer) t != DatumGetPointer(doc))
				pfree(t);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();

	if (hl_word_classes_fit(&builder, HL_SPANS_WORD_CLASS_SEED, classes, errbuf,
							sizeof(errbuf)) != 0)
		ereport(DEBUG1,
				(errmsg_internal("model \"%s\" has no word classes: %s", def->name, errbuf)));
	hl_word_class_builder_free(&builder);
}

/* Read every row of the model's relation and keep the labelled rows' tokens. */
static void
hl_token_rows_read(const HlModelDef *def, const HlWordClasses *classes, HlTokenRows *set,
				   HlSpanLabelMap *labels)
{
	MemoryContext train_context = CurrentMemoryContext;
	MemoryContext row_context;
	HlSentenceFeatures features;
	Portal		portal;

	hl_sentence_features_init(&features);
	row_context = AllocSetContextCreate(train_context, "humanloop span row",
										ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, hl_source_training_query_ordered(def), 0, NULL, NULL,
									   NULL, true, 0);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, HL_FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext spi_context = MemoryContextSwitchTo(row_context);
			bool		isnull;
			Datum		doc;
			Datum		item_labels;
			char	   *id;
			const char *body = NULL;	/* NULL text: no tokens, and no span fits */
			size_t		len = 0;

			CHECK_FOR_INTERRUPTS();
			set->n_docs++;
			item_labels = SPI_getbinval(tuple, desc, 3, &isnull);
			if (isnull)
			{
				MemoryContextSwitchTo(spi_context);
				continue;
			}

			id = SPI_getvalue(tuple, desc, 1);
			if (id == NULL)
				id = "(null)";
			doc = SPI_getbinval(tuple, desc, 2, &isnull);
			if (!isnull)
			{
				text	   *t = DatumGetTextPP(doc);

				body = VARDATA_ANY(t);
				len = VARSIZE_ANY_EXHDR(t);
				if (len > (size_t) hl_max_text_bytes)
					hl_check_text_length(len, psprintf("text of row \"%s\"", id));
			}

			/*
			 * Token rows, label names and the featuriser's buffers outlive
			 * the row, so they grow in the train context.
			 */
			{
				ArrayType  *array = DatumGetArrayTypeP(item_labels);

				MemoryContextSwitchTo(train_context);
				hl_token_rows_add_item(set, def, labels, classes, &features, id, body, len,
									   array, row_context);
			}

			MemoryContextSwitchTo(spi_context);
			MemoryContextReset(row_context);
		}
		SPI_freetuptable(SPI_tuptable);
	}

	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(row_context);
	hl_sentence_features_free(&features);
}

/* qsort comparator for label names through an array of provisional ids. */
static const HlSpanLabelMap *hl_sort_span_labels;

static int
hl_compare_span_label_ids(const void *a, const void *b)
{
	return strcmp(hl_sort_span_labels->names[*(const int32 *) a],
				  hl_sort_span_labels->names[*(const int32 *) b]);
}

/*
 * Sort the span labels by name, so tag numbers do not depend on row order,
 * and renumber the tags of the token rows.  Returns the names in order.
 */
static char **
hl_span_labels_finish(HlSpanLabelMap *labels, HlTokenRows *set)
{
	int32	   *order = palloc(sizeof(int32) * Max(labels->n, 1));
	int32	   *new_id = palloc(sizeof(int32) * Max(labels->n, 1));
	char	  **names = palloc(sizeof(char *) * Max(labels->n, 1));

	for (uint32 i = 0; i < labels->n; i++)
		order[i] = i;
	hl_sort_span_labels = labels;
	qsort(order, labels->n, sizeof(int32), hl_compare_span_label_ids);
	for (uint32 k = 0; k < labels->n; k++)
	{
		new_id[order[k]] = k;
		names[k] = labels->names[order[k]];
	}
	for (uint32 i = 0; i < set->n_rows; i++)
	{
		int32		tag = set->tag[i];

		if (tag == HL_TAG_OUTSIDE)
			continue;
		if (tag % 2 == 1)
			set->tag[i] = hl_tag_begin(new_id[hl_tag_label(tag)]);
		else
			set->tag[i] = hl_tag_inside(new_id[hl_tag_label(tag)]);
	}
	return names;
}

/*
 * Return whether sentence s of set is held out for calibration: those of
 * every HL_SPANS_HELDOUT_EVERY-th labelled row, whose annotations stay
 * together.
 */
static bool
hl_sentence_held_out(const HlTokenRows *set, uint32 s)
{
	return set->sentence_item[s] % HL_SPANS_HELDOUT_EVERY == HL_SPANS_HELDOUT_EVERY - 1;
}

/*
 * Copy into out the sentences of set whose labelled row is held out for
 * calibration (heldout true) or the others.
 */
static void
hl_token_rows_part(const HlTokenRows *set, bool heldout, uint32 dim, uint32 n_tags,
				   HlCrfData *out)
{
	uint32		n_sentences = 0;
	uint32		n_rows = 0;
	uint64		nnz = 0;
	uint32	   *sentence_start;
	uint64	   *row_start;
	uint32	   *index;
	float	   *value;
	int32	   *tag;
	float	   *weight;

	for (uint32 s = 0; s < set->n_sentences; s++)
	{
		uint32		first = set->sentence_start[s];
		uint32		end = set->sentence_start[s + 1];

		if (hl_sentence_held_out(set, s) != heldout)
			continue;
		n_sentences++;
		n_rows += end - first;
		nnz += set->row_start[end] - set->row_start[first];
	}

	sentence_start = palloc_extended(sizeof(uint32) * (n_sentences + 1), MCXT_ALLOC_HUGE);
	weight = palloc_extended(sizeof(float) * Max(n_sentences, 1), MCXT_ALLOC_HUGE);
	row_start = palloc_extended(sizeof(uint64) * (n_rows + 1), MCXT_ALLOC_HUGE);
	tag = palloc_extended(sizeof(int32) * Max(n_rows, 1), MCXT_ALLOC_HUGE);
	index = palloc_extended(sizeof(uint32) * Max(nnz, 1), MCXT_ALLOC_HUGE);
	value = palloc_extended(sizeof(float) * Max(nnz, 1), MCXT_ALLOC_HUGE);

	n_sentences = n_rows = 0;
	nnz = 0;
	sentence_start[0] = 0;
	row_start[0] = 0;
	for (uint32 s = 0; s < set->n_sentences; s++)
	{
		uint32		first = set->sentence_start[s];
		uint32		end = set->sentence_start[s + 1];
		uint64		from = set->row_start[first];
		uint64		count = set->row_start[end] - from;

		if (hl_sentence_held_out(set, s) != heldout)
			continue;
		memcpy(index + nnz, set->index + from, sizeof(uint32) * count);
		memcpy(value + nnz, set->value + from, sizeof(float) * count);
		for (uint32 i = first; i < end; i++)
		{
			tag[n_rows] = set->tag[i];
			row_start[n_rows + 1] = nnz + (set->row_start[i + 1] - from);
			n_rows++;
		}
		nnz += count;
		weight[n_sentences] = set->sentence_weight[s];
		sentence_start[++n_sentences] = n_rows;
	}

	out->n_sentences = n_sentences;
	out->dim = dim;
	out->n_tags = n_tags;
	out->sentence_start = sentence_start;
	out->row_start = row_start;
	out->index = index;
	out->value = value;
	out->tag = tag;
	out->weight = weight;
}

/* Free the arrays that hl_token_rows_part allocated. */
static void
hl_token_rows_part_free(HlCrfData *part)
{
	pfree((void *) part->sentence_start);
	pfree((void *) part->row_start);
	pfree((void *) part->index);
	pfree((void *) part->value);
	pfree((void *) part->tag);
	pfree((void *) part->weight);
}

/*
 * Return the temperature of the new version.  It is the current version's
 * while that still applies (see HL_SPANS_RECALIBRATE_GROWTH), else one
 * fitted on the held-out rows, else 1 for a model with too few labelled
 * rows.  Sets *calibrated_rows to the labelled rows of the training that
 * last held rows out (0 for none).  When this training held rows out, sets
 * *held_out and fills calibration.  emission and transitions then hold the
 * CRF fitted without the held-out rows, which the caller starts the full
 * fit from and frees.
 */
static double
hl_span_temperature(const HlModelDef *def, const HlTokenRows *set, uint32 dim, uint32 n_tags,
					uint32 n_labels, ArrayType *label_array, double prior_precision,
					int32 *calibrated_rows, HlCrfCalibration *calibration, bool *held_out,
					HlClassifier *emission, HlCrfTransitions *transitions)
{
	int32		rows;
	double		temperature;
	double		lambda;
	HlCrfData	fit_part;
	HlCrfData	heldout_part;
	HlCrfFitReport report;
	char		errbuf[256];

	*held_out = false;
	*calibrated_rows = 0;
	if (set->n_items < HL_SPANS_MIN_CALIBRATION_ROWS)
		return 1.0;

	/* The stored prior precision has 6 significant digits. */
	if (def->current_version > 0 &&
		hl_catalog_span_temperature(def->model_id, def->current_version,
									PointerGetDatum(label_array), &rows, &temperature, &lambda) &&
		fabs(lambda - prior_precision) <= 1e-5 * prior_precision &&
		(int64) set->n_items >= rows &&
		set->n_items <= HL_SPANS_RECALIBRATE_GROWTH * rows)
	{
		*calibrated_rows = rows;
		return temperature;
	}

	hl_token_rows_part(set, false, dim, n_tags, &fit_part);
	hl_token_rows_part(set, true, dim, n_tags, &heldout_part);
	if (fit_part.n_sentences == 0 || heldout_part.n_sentences == 0)
	{
		hl_token_rows_part_free(&fit_part);
		hl_token_rows_part_free(&heldout_part);
		return 1.0;
	}

	hl_classifier_alloc(emission, dim, n_tags);
	hl_crf_transitions_alloc(transitions, n_tags);
	if (hl_crf_fit(&fit_part, prior_precision, HL_SPANS_MAX_ITERATIONS, emission, transitions,
				   &report, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not fit the calibration model of \"%s\": %s", def->name, errbuf)));
	hl_token_rows_part_free(&fit_part);
	emission->variance_scale = HL_SPANS_VARIANCE_SCALE;
	hl_crf_fit_temperature(emission, transitions, n_labels, &heldout_part, calibration);
	hl_token_rows_part_free(&heldout_part);

	/*
	 * When the held-out spans are too few or all right, T stays 1 and
	 * calibration->fitted is false.  That 1 is kept by the same growth rule
	 * as a fitted temperature, so a nearly perfect model does not pay the
	 * second fit at every training.
	 */
	*held_out = true;
	*calibrated_rows = (int32) set->n_items;
	return calibration->temperature;
}

/* Append "key": value to a JSON object under construction; NaN becomes null. */
static void
hl_json_number(StringInfo json, const char *key, double value)
{
	appendStringInfo(json, "%s\"%s\": ", json->len > 1 ? ", " : "", key);
	if (isnan(value) || isinf(value))
		appendStringInfoString(json, "null");
	else
		appendStringInfo(json, "%.6g", value);
}

void
hl_train_spans(const HlModelDef *def, HlTrainResult *result)
{
	MemoryContext caller_context = CurrentMemoryContext;
	MemoryContext train_context;
	HlTokenRows set;
	HlSpanLabelMap labels;
	HlWordClasses word_classes;
	HlCrfData	data;
	HlClassifier classifier;
	HlCrfTransitions transitions;
	HlCrfFitReport report;
	HlCrfCalibration calibration;
	HlClassifier start_emission;
	HlCrfTransitions start_transitions;
	double		prior_precision;
	double		temperature;
	int32		calibrated_rows;
	bool		held_out;
	uint32		dim = UINT32_C(1) << def->features.hash_bits;
	uint32		n_classes;
	float	   *idf;
	char	  **names;
	char		errbuf[256];
	bytea	   *posterior;
	Datum	   *label_datums;
	ArrayType  *label_array;
	StringInfoData metrics;
	instr_time	start;
	instr_time	elapsed;
	double		seconds;
	int32		version;

	INSTR_TIME_SET_CURRENT(start);
	train_context = AllocSetContextCreate(caller_context, "humanloop train spans",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(train_context);

	memset(&set, 0, sizeof(set));
	hl_span_label_map_init(&labels);
	memset(&word_classes, 0, sizeof(word_classes));
	if (def->word_classes)
		hl_span_word_classes_read(def, &word_classes);
	hl_token_rows_read(def, &word_classes, &set, &labels);

	if (set.n_items == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no labelled rows", def->name),
				 errdetail("Relation \"%s\" has %llu rows and none of them has a span label in column \"%s\".",
						   get_rel_name(OidIsValid(def->labels_relation) ? def->labels_relation : def->relation),
						   (unsigned long long) set.n_docs, def->label_column),
				 errhint("Label at least one row with a JSON array of spans, [] when it has none.")));
	if (labels.n > HL_SPAN_MAX_LABELS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model \"%s\" has %u distinct span labels, more than %d",
						def->name, labels.n, HL_SPAN_MAX_LABELS),
				 errhint("Merge rare span labels.")));
	if (set.n_rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the labelled rows of model \"%s\" have no tokens", def->name),
				 errhint("Label rows whose text has at least one word.")));
	if (labels.n == 0)
		ereport(WARNING,
				(errmsg("the labelled rows of model \"%s\" have no spans", def->name),
				 errdetail("The model will find no spans."),
				 errhint("Label spans in at least a few rows.")));

	names = hl_span_labels_finish(&labels, &set);
	hl_warn_padded_labels(def->name, names, labels.n);
	n_classes = Max(2, hl_tag_count(labels.n));
	if (2.0 * sizeof(float) * dim * n_classes > 512.0 * 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model \"%s\" would need %.0f MB for %u tags and %u features", def->name,
						2.0 * sizeof(float) * dim * n_classes / (1024 * 1024), n_classes, dim),
				 errdetail("A posterior is limited to 512 MB."),
				 errhint("Lower the model option \"hash_bits\" with a new model.")));

	/* Fit the CRF. */
	data.n_sentences = set.n_sentences;
	data.dim = dim;
	data.n_tags = n_classes;
	data.sentence_start = set.sentence_start;
	data.row_start = set.row_start;
	data.index = set.index;
	data.value = set.value;
	data.tag = set.tag;
	data.weight = set.sentence_weight;

	label_datums = palloc(sizeof(Datum) * Max(labels.n, 1));
	for (uint32 k = 0; k < labels.n; k++)
		label_datums[k] = CStringGetTextDatum(names[k]);
	label_array = construct_array(label_datums, labels.n, TEXTOID, -1, false, TYPALIGN_INT);

	prior_precision = def->prior_precision > 0 ? def->prior_precision : HL_SPANS_PRIOR_PRECISION;
	temperature = hl_span_temperature(def, &set, dim, n_classes, labels.n, label_array,
									  prior_precision, &calibrated_rows, &calibration,
									  &held_out, &start_emission, &start_transitions);

	/*
	 * The CRF fitted for the temperature has seen four rows in five, so the
	 * full fit starts from it.  On snips that saved 4% to 13% of the time of
	 * a fit from zero.
	 */
	hl_classifier_alloc(&classifier, dim, n_classes);
	hl_crf_transitions_alloc(&transitions, n_classes);
	if (hl_crf_fit_from(&data, prior_precision, HL_SPANS_MAX_ITERATIONS,
						held_out ? &start_emission : NULL,
						held_out ? &start_transitions : NULL,
						&classifier, &transitions, &report, errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not fit model \"%s\": %s", def->name, errbuf)));
	if (held_out)
	{
		hl_classifier_free(&start_emission);
		hl_crf_transitions_free(&start_transitions);
	}
	classifier.variance_scale = HL_SPANS_VARIANCE_SCALE;
	classifier.temperature = (float) temperature;

	/* Store the new version; the idf vector is unused by span models. */
	idf = palloc_extended(sizeof(float) * dim, MCXT_ALLOC_HUGE);
	for (uint32 j = 0; j < dim; j++)
		idf[j] = 1.0f;
	posterior = hl_posterior_serialize_spans(&def->features, idf, &classifier, &transitions,
											 names, labels.n, &word_classes);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	seconds = INSTR_TIME_GET_DOUBLE(elapsed);

	initStringInfo(&metrics);
	appendStringInfoChar(&metrics, '{');
	hl_json_number(&metrics, "documents", (double) set.n_docs);
	hl_json_number(&metrics, "labelled_rows", set.n_items);
	hl_json_number(&metrics, "spans", (double) set.n_spans);
	hl_json_number(&metrics, "spans_without_tokens", (double) set.n_missed);
	hl_json_number(&metrics, "span_labels", labels.n);
	hl_json_number(&metrics, "training_tokens", set.n_rows);
	hl_json_number(&metrics, "word_class_words", word_classes.n_words);
	hl_json_number(&metrics, "train_token_accuracy", report.train_token_accuracy);
	hl_json_number(&metrics, "train_nll", report.train_nll);
	hl_json_number(&metrics, "prior_precision", prior_precision);
	hl_json_number(&metrics, "variance_scale", HL_SPANS_VARIANCE_SCALE);
	hl_json_number(&metrics, "temperature", temperature);
	if (calibrated_rows > 0)
		hl_json_number(&metrics, "calibrated_rows", calibrated_rows);
	if (held_out)
	{
		uint64		denominator = calibration.gold_spans + calibration.predicted_spans;

		appendStringInfo(&metrics, ", \"temperature_fitted\": %s",
						 calibration.fitted ? "true" : "false");
		hl_json_number(&metrics, "heldout_sentences", calibration.sentences);
		hl_json_number(&metrics, "heldout_span_f1",
					   denominator > 0 ? 2.0 * calibration.correct_spans / denominator : NAN);
		hl_json_number(&metrics, "heldout_span_nll", calibration.nll_after);
		hl_json_number(&metrics, "heldout_span_brier", calibration.brier_after);
		hl_json_number(&metrics, "heldout_span_brier_untempered", calibration.brier_before);
	}
	hl_json_number(&metrics, "iterations", report.iterations);
	hl_json_number(&metrics, "emission_weights", (double) report.emission_weights);
	hl_json_number(&metrics, "feature_buckets", dim);
	appendStringInfoChar(&metrics, '}');

	version = hl_catalog_add_version(def->model_id, "full", set.n_items, PointerGetDatum(label_array),
									 seconds, metrics.data, posterior, 0, 0);

	MemoryContextSwitchTo(caller_context);
	result->version = version;
	result->labelled_rows = set.n_items;
	result->classes = labels.n;
	result->seconds = seconds;
	result->metrics_json = pstrdup(metrics.data);
	MemoryContextDelete(train_context);
}

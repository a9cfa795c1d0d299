/*
 * text_source.h
 *		Where a model's texts and labels live: validation of the relations and
 *		columns, and the queries that read them.
 */
#ifndef HL_TEXT_SOURCE_H
#define HL_TEXT_SOURCE_H

#include "humanloop.h"

/*
 * Fill in and check a new model definition: relations exist and are
 * readable kinds, columns exist with types readable as text, and the id
 * column defaults to the single-column primary key.
 */
extern void hl_source_prepare(HlModelDef *def);

/*
 * Check that a stored definition still matches its relations, which may
 * have been dropped or altered since the model was created.
 */
extern void hl_source_check(const HlModelDef *def);

/*
 * Query returning (id text, doc text, labels text[]) for every row of the
 * model's relation; labels is NULL for an unlabelled row, and otherwise
 * lists every label given to the row.
 */
extern char *hl_source_training_query(const HlModelDef *def);

/*
 * Query returning the same rows sorted by id in byte order, so a fit reads
 * them in one order whatever the physical order of the table.
 */
extern char *hl_source_training_query_ordered(const HlModelDef *def);

/*
 * Raise an error unless column exists in relation, the labelled rows to
 * evaluate on.  option names the parameter in messages.  With strings_only
 * the column must also be of a string type, as a model's text column is.
 */
extern void hl_check_evaluation_column(Oid relation, const char *column, const char *option,
									   bool strings_only);

/*
 * Query returning (id text, doc text) for every unlabelled row.  With
 * exclude_reserved, rows reserved for the model in humanloop.reservations
 * are left out; the query then takes the model id as parameter $1.
 */
extern char *hl_source_unlabelled_query(const HlModelDef *def, bool exclude_reserved);

/*
 * Query returning up to limit labelled rows of hl_source_training_query,
 * a sample fixed by the ids.
 */
extern char *hl_source_labelled_sample_query(const HlModelDef *def, int limit);

/*
 * Query returning the rows of hl_source_training_query whose id is queued
 * for model $1 in humanloop.label_queue up to queue entry $2.
 */
extern char *hl_source_queued_query(const HlModelDef *def);

/* Query returning the number of labelled items. */
extern char *hl_source_count_labelled_query(const HlModelDef *def);

/*
 * Query returning the distinct labels given so far that are not in the
 * text[] parameter $1.
 */
extern char *hl_source_new_labels_query(const HlModelDef *def);

#endif							/* HL_TEXT_SOURCE_H */

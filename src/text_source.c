/*
 * text_source.c
 *		Where a model's texts and labels live: validation of the relations and
 *		columns, and the queries that read them.
 *
 * A model reads its texts from one relation (table, view, materialized view,
 * foreign or partitioned table) and its labels either from a nullable column
 * of the same relation or from a separate relation of annotations keyed by
 * the item id, several per item allowed.  Definitions store relation OIDs and
 * column names, so renaming a relation is harmless, while dropping it or one
 * of the columns is caught here with an error that names what is missing.
 * Queries are built with quoted identifiers and run with the caller's
 * privileges.
 */
#include "compat.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "text_source.h"

/* Return the schema-qualified, quoted name of a relation. */
static char *
hl_relation_sql_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Raise an error unless relid is a relation whose rows can be read. */
static void
hl_check_relation(Oid relid, const char *role, const char *model)
{
	char		relkind;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		if (model != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("%s of model \"%s\" no longer exists", role, model),
					 errdetail("The relation was dropped after the model was created."),
					 errhint("Drop the model with hl_drop_model('%s') and create it again.", model)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s with OID %u does not exist", role, relid)));
	}

	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW &&
		relkind != RELKIND_MATVIEW && relkind != RELKIND_FOREIGN_TABLE &&
		relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table or view", get_rel_name(relid)),
				 errhint("Texts and labels are read from tables, views, materialized views or foreign tables.")));
}

/*
 * Raise an error unless column exists in relid and its type can be read as
 * text.  strings_only restricts the type to the string category (for the
 * texts); otherwise numbers, booleans and enums are accepted too (for labels
 * and ids).  Returns the column's type.
 */
static Oid
hl_check_column(Oid relid, const char *column, const char *role,
				bool strings_only, const char *model)
{
	AttrNumber	attnum = get_attnum(relid, column);
	Oid			type;
	char		category;
	bool		preferred;

	if (attnum == InvalidAttrNumber || attnum < 0)
	{
		if (model != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s \"%s\" of model \"%s\" no longer exists in relation \"%s\"",
							role, column, model, get_rel_name(relid)),
					 errhint("Restore the column, or drop the model with hl_drop_model('%s') and create it again.",
							 model)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(relid)),
				 errhint("Pass the name of the %s.", role)));
	}

	type = getBaseType(get_atttype(relid, attnum));
	get_type_category_preferred(type, &category, &preferred);
	if (category != TYPCATEGORY_STRING &&
		(strings_only ||
		 (category != TYPCATEGORY_NUMERIC && category != TYPCATEGORY_BOOLEAN &&
		  category != TYPCATEGORY_ENUM && type != UUIDOID)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s \"%s\" has type %s, which cannot be read as text",
						role, column, format_type_be(type)),
				 errhint(strings_only
						 ? "Use a column of type text, varchar or char, or a view that casts the column to text."
						 : "Use a column of a string, number, boolean, enum or uuid type, or a view that casts it.")));
	return type;
}

/* Raise an error unless the current user may read relid. */
static void
hl_check_select_privilege(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for relation \"%s\"", get_rel_name(relid)),
				 errhint("A model reads its texts and labels with the privileges of the role that uses it; ask for SELECT on the relation.")));
}

/* Return the single-column primary key of relid, or raise an error. */
static char *
hl_primary_key_column(Oid relid)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	char	   *column = NULL;

	if (get_rel_relkind(relid) == RELKIND_RELATION ||
		get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ||
		get_rel_relkind(relid) == RELKIND_MATVIEW)
	{
		rel = table_open(relid, AccessShareLock);
		indexes = RelationGetIndexList(rel);
		foreach(lc, indexes)
		{
			HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
			Form_pg_index index;

			if (!HeapTupleIsValid(tuple))
				continue;
			index = (Form_pg_index) GETSTRUCT(tuple);
			if (index->indisprimary)
			{
				if (index->indnkeyatts != 1)
				{
					ReleaseSysCache(tuple);
					table_close(rel, AccessShareLock);
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("primary key of relation \"%s\" has %d columns",
									get_rel_name(relid), index->indnkeyatts),
							 errhint("Pass id_column => naming one column that identifies a row.")));
				}
				column = get_attname(relid, index->indkey.values[0], false);
			}
			ReleaseSysCache(tuple);
		}
		table_close(rel, AccessShareLock);
	}

	if (column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" has no primary key", get_rel_name(relid)),
				 errhint("Pass id_column => naming a column that identifies a row.")));
	return column;
}

/*
 * Raise an error unless the label column of def in relid suits the task: a
 * span model reads JSON arrays of spans from a jsonb, json or text column.
 */
static void
hl_check_label_column(const HlModelDef *def, Oid relid, const char *model)
{
	AttrNumber	attnum;
	Oid			type;
	char		category;
	bool		preferred;

	if (strcmp(def->task, "spans") != 0)
	{
		hl_check_column(relid, def->label_column, "label column", false, model);
		return;
	}

	attnum = get_attnum(relid, def->label_column);
	if (attnum == InvalidAttrNumber || attnum < 0)
	{
		/* hl_check_column raises the missing-column error. */
		hl_check_column(relid, def->label_column, "label column", true, model);
		return;
	}
	type = getBaseType(get_atttype(relid, attnum));
	get_type_category_preferred(type, &category, &preferred);
	if (type != JSONBOID && type != JSONOID && category != TYPCATEGORY_STRING)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label column \"%s\" has type %s, but span labels are JSON",
						def->label_column, format_type_be(type)),
				 errhint("Use a jsonb column of span arrays such as '[{\"start\": 0, \"end\": 4, \"label\": \"artist\"}]'.")));
}

/* Check relations and columns; model is NULL while a definition is created. */
static void
hl_source_validate(const HlModelDef *def, const char *model)
{
	Oid			id_type;
	Oid			labels_id_type;
	char		id_category;
	char		labels_id_category;
	bool		preferred;

	hl_check_relation(def->relation, "relation", model);
	hl_check_column(def->relation, def->text_column, "text column", true, model);
	id_type = hl_check_column(def->relation, def->id_column, "id column", false, model);

	if (!OidIsValid(def->labels_relation))
	{
		hl_check_label_column(def, def->relation, model);
		return;
	}

	hl_check_relation(def->labels_relation, "labels relation", model);
	hl_check_label_column(def, def->labels_relation, model);
	labels_id_type = hl_check_column(def->labels_relation, def->labels_id_column,
									 "labels id column", false, model);
	get_type_category_preferred(id_type, &id_category, &preferred);
	get_type_category_preferred(labels_id_type, &labels_id_category, &preferred);

	/* Equal categories compare with the usual implicit casts (int4 = int8). */
	if (id_category != labels_id_category)
	{
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("labels id column \"%s\" has type %s, but id column \"%s\" has type %s",
						def->labels_id_column, format_type_be(labels_id_type),
						def->id_column, format_type_be(id_type)),
				 errhint("The labels relation must refer to items by a column of a type comparable with their id.")));
	}
}

void
hl_source_prepare(HlModelDef *def)
{
	if (OidIsValid(def->labels_relation) && def->labels_id_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("labels_relation needs labels_id_column"),
				 errhint("Name the column of \"%s\" that holds the id of the labelled item.",
						 get_rel_name(def->labels_relation))));
	if (!OidIsValid(def->labels_relation) && def->labels_id_column != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("labels_id_column \"%s\" is given without labels_relation", def->labels_id_column),
				 errhint("Pass labels_relation => naming the relation of labels, or leave labels_id_column out.")));

	hl_check_relation(def->relation, "relation", NULL);
	hl_check_select_privilege(def->relation);
	if (OidIsValid(def->labels_relation))
	{
		hl_check_relation(def->labels_relation, "labels relation", NULL);
		hl_check_select_privilege(def->labels_relation);
	}
	if (def->id_column == NULL)
		def->id_column = hl_primary_key_column(def->relation);
	hl_source_validate(def, NULL);
}

void
hl_source_check(const HlModelDef *def)
{
	hl_source_validate(def, def->name);
}

char *
hl_source_training_query(const HlModelDef *def)
{
	StringInfoData sql;
	const char *id = quote_identifier(def->id_column);
	const char *doc = quote_identifier(def->text_column);
	const char *label = quote_identifier(def->label_column);

	initStringInfo(&sql);
	if (!OidIsValid(def->labels_relation))
	{
		appendStringInfo(&sql,
						 "SELECT t.%s::text, t.%s::text,"
						 " CASE WHEN t.%s IS NULL THEN NULL ELSE ARRAY[t.%s::text] END"
						 " FROM %s t",
						 id, doc, label, label, hl_relation_sql_name(def->relation));
		return sql.data;
	}

	appendStringInfo(&sql,
					 "SELECT t.%s::text, t.%s::text, l.labels"
					 " FROM %s t LEFT JOIN"
					 " (SELECT %s AS item, array_agg(%s::text ORDER BY %s::text) AS labels"
					 "  FROM %s WHERE %s IS NOT NULL GROUP BY %s) l"
					 " ON l.item = t.%s",
					 id, doc, hl_relation_sql_name(def->relation),
					 quote_identifier(def->labels_id_column), label, label,
					 hl_relation_sql_name(def->labels_relation), label,
					 quote_identifier(def->labels_id_column), id);
	return sql.data;
}

char *
hl_source_unlabelled_query(const HlModelDef *def, bool exclude_reserved)
{
	StringInfoData sql;
	const char *id = quote_identifier(def->id_column);
	const char *doc = quote_identifier(def->text_column);
	const char *label = quote_identifier(def->label_column);

	initStringInfo(&sql);
	if (!OidIsValid(def->labels_relation))
		appendStringInfo(&sql, "SELECT t.%s::text, t.%s::text FROM %s t WHERE t.%s IS NULL",
						 id, doc, hl_relation_sql_name(def->relation), label);
	else
		appendStringInfo(&sql,
						 "SELECT t.%s::text, t.%s::text FROM %s t"
						 " WHERE NOT EXISTS (SELECT 1 FROM %s l WHERE l.%s = t.%s AND l.%s IS NOT NULL)",
						 id, doc, hl_relation_sql_name(def->relation),
						 hl_relation_sql_name(def->labels_relation),
						 quote_identifier(def->labels_id_column), id, label);

	if (exclude_reserved)
		appendStringInfo(&sql,
						 " AND NOT EXISTS (SELECT 1 FROM humanloop.reservations r"
						 " WHERE r.model_id = $1 AND r.item_id = t.%s::text"
						 " AND r.reserved_until > pg_catalog.now())",
						 id);
	return sql.data;
}

char *
hl_source_new_labels_query(const HlModelDef *def)
{
	Oid			relid = OidIsValid(def->labels_relation) ? def->labels_relation : def->relation;
	const char *label = quote_identifier(def->label_column);

	return psprintf("SELECT DISTINCT %s::text FROM %s"
					" WHERE %s IS NOT NULL AND %s::text <> ALL ($1) ORDER BY 1 LIMIT 6",
					label, hl_relation_sql_name(relid), label, label);
}

char *
hl_source_training_query_ordered(const HlModelDef *def)
{
	/*
	 * An UPDATE moves a row, and when it does depends on page pruning, so
	 * the heap order of the same labels can differ between two databases.
	 * The order of the rows sets the order of the floating-point sums of a
	 * fit, and with it the last digits of the model.
	 */
	return psprintf("SELECT * FROM (%s) s (id, doc, labels) ORDER BY s.id COLLATE \"C\"",
					hl_source_training_query(def));
}

char *
hl_source_labelled_sample_query(const HlModelDef *def, int limit)
{
	/*
	 * A hash of the id, not random(), so the same labels give the same
	 * sample.  sha256, unlike md5, works on servers in FIPS mode.
	 */
	return psprintf("SELECT s.* FROM (%s) s (id, doc, labels)"
					" WHERE s.labels IS NOT NULL"
					" ORDER BY sha256(convert_to(s.id, 'UTF8')), s.id COLLATE \"C\" LIMIT %d",
					hl_source_training_query(def), limit);
}

char *
hl_source_queued_query(const HlModelDef *def)
{
	return psprintf("SELECT s.* FROM (%s) s (id, doc, labels)"
					" WHERE s.id IN (SELECT q.item_id FROM humanloop.label_queue q"
					"                WHERE q.model_id = $1 AND q.queue_id <= $2)"
					" ORDER BY s.id",
					hl_source_training_query(def));
}

char *
hl_source_count_labelled_query(const HlModelDef *def)
{
	const char *label = quote_identifier(def->label_column);

	if (!OidIsValid(def->labels_relation))
		return psprintf("SELECT count(*) FROM %s WHERE %s IS NOT NULL",
						hl_relation_sql_name(def->relation), label);

	return psprintf("SELECT count(*) FROM %s t WHERE EXISTS"
					" (SELECT 1 FROM %s l WHERE l.%s = t.%s AND l.%s IS NOT NULL)",
					hl_relation_sql_name(def->relation),
					hl_relation_sql_name(def->labels_relation),
					quote_identifier(def->labels_id_column),
					quote_identifier(def->id_column), label);
}

void
hl_check_evaluation_column(Oid relation, const char *column, const char *option,
						   bool strings_only)
{
	AttrNumber	attnum = get_attnum(relation, column);
	char		category;
	bool		preferred;
	Oid			type;

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" does not exist in relation \"%s\"",
						column, get_rel_name(relation)),
				 errhint("Name the column with %s => '...'.", option)));
	if (!strings_only)
		return;

	type = getBaseType(get_atttype(relation, attnum));
	get_type_category_preferred(type, &category, &preferred);
	if (category != TYPCATEGORY_STRING)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s \"%s\" has type %s, which is not a string type",
						option, column, format_type_be(type)),
				 errhint("Use a column of type text, varchar or char, or a view that casts the column to text.")));
}

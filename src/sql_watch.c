/*
 * sql_watch.c
 *		hl_watch, the label trigger it installs, and hl_rollback.
 *
 * hl_watch puts three row triggers on the relation that contains a model's
 * labels: after INSERT of a non-null label, after UPDATE that changes the
 * label, and after DELETE of a non-null label.  The trigger function only
 * appends one row to humanloop.label_queue through a saved plan and requests
 * a wake-up of the database's worker at commit.  An annotator's INSERT
 * therefore pays for one small insert and a lookup of the model's row.
 *
 * The trigger function is SECURITY DEFINER, so annotators need no privilege
 * on the queue.  Because any role may attach it to a table of its own, it
 * queues a change only when the model named in its arguments keeps its
 * labels in the table it fires on.
 */
#include "compat.h"

#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "catalog.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(hl_watch);
PG_FUNCTION_INFO_V1(hl_label_trigger);
PG_FUNCTION_INFO_V1(hl_rollback);

static SPIPlanPtr hl_queue_plan = NULL;

/* Run one SQL statement through SPI, raising an error on failure. */
static void
hl_spi_exec(const char *sql, int expected)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret != expected)
		elog(ERROR, "could not run \"%s\": SPI error %d", sql, ret);
}

/* Drop the label triggers of model_id from relation relid (named rel); SPI is connected. */
static void
hl_drop_watch_triggers_in(int32 model_id, Oid relid, const char *rel)
{
	uint64		n;
	char	  **names;

	hl_spi_exec(psprintf("SELECT tgname FROM pg_catalog.pg_trigger WHERE tgrelid = %u"
						 " AND tgname IN ('hl_watch_%d_insert', 'hl_watch_%d_update', 'hl_watch_%d_delete')",
						 relid, model_id, model_id, model_id), SPI_OK_SELECT);
	n = SPI_processed;
	names = palloc(sizeof(char *) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	for (uint64 i = 0; i < n; i++)
		hl_spi_exec(psprintf("DROP TRIGGER %s ON %s", quote_identifier(names[i]), rel),
					SPI_OK_UTILITY);
}

void
hl_drop_watch_triggers(const HlModelDef *def)
{
	Oid			relid = OidIsValid(def->labels_relation) ? def->labels_relation : def->relation;

	/* A dropped relation took its triggers with it. */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	hl_drop_watch_triggers_in(def->model_id, relid,
							  quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														 get_rel_name(relid)));
	SPI_finish();
}

/* Store whether model_id is watched. */
static void
hl_set_watched(int32 model_id, bool watch)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	hl_spi_exec(psprintf("UPDATE humanloop.models SET watched = %s WHERE model_id = %d",
						 watch ? "true" : "false", model_id), SPI_OK_UPDATE);
	SPI_finish();
}

/*
 * hl_watch(name, watch) returns whether the model is watched afterwards.
 * A NULL watch is its default, true.
 */
Datum
hl_watch(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		watch;
	HlModelDef *def;
	Oid			relid;
	const char *rel;
	const char *id_column;
	const char *label;
	const char *compared_label;
	const char *args;
	char		relkind;

	hl_require_model_name(fcinfo, 0);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	watch = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, true);

	if (watch && !hl_worker_enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot watch model \"%s\": the humanloop background worker is not running", name),
				 errdetail("Watching a model feeds its label changes to the background worker, which runs only when humanloop is preloaded."),
				 errhint("Add humanloop to shared_preload_libraries in postgresql.conf and restart the server; hl_train works without it.")));

	relid = OidIsValid(def->labels_relation) ? def->labels_relation : def->relation;
	id_column = OidIsValid(def->labels_relation) ? def->labels_id_column : def->id_column;
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		if (watch)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the relation of the labels of model \"%s\" no longer exists", name),
					 errhint("Drop the model with hl_drop_model('%s') and create it again.", name)));

		/* Its triggers went with the relation, so only the flag is left. */
		hl_set_watched(def->model_id, false);
		PG_RETURN_BOOL(false);
	}
	relkind = get_rel_relkind(relid);
	if (watch && relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot watch model \"%s\": its labels are in \"%s\", which is not a table",
						name, get_rel_name(relid)),
				 errhint("Only tables can have the triggers that record label changes; call hl_train after labelling instead.")));

	rel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
	label = quote_identifier(def->label_column);

	/*
	 * The update trigger compares the old and new label.  A type without an
	 * equality operator, such as json for span labels, is compared as text.
	 */
	compared_label = label;
	if (watch)
	{
		AttrNumber	label_attno = get_attnum(relid, def->label_column);
		TypeCacheEntry *label_type;

		if (label_attno == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("label column \"%s\" of model \"%s\" no longer exists in \"%s\"",
							def->label_column, name, get_rel_name(relid)),
					 errhint("Rename the column back, or drop the model with hl_drop_model('%s') and create it again.", name)));
		label_type = lookup_type_cache(getBaseType(get_atttype(relid, label_attno)), TYPECACHE_EQ_OPR);
		if (!OidIsValid(label_type->eq_opr))
			compared_label = psprintf("%s::text", label);
	}
	args = psprintf("%d, %s, %s", def->model_id,
					quote_literal_cstr(id_column), quote_literal_cstr(def->label_column));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* Drop the model's triggers that exist, so watching twice is harmless. */
	hl_drop_watch_triggers_in(def->model_id, relid, rel);

	if (watch)
	{
		hl_spi_exec(psprintf("CREATE TRIGGER hl_watch_%d_insert AFTER INSERT ON %s FOR EACH ROW"
							 " WHEN (NEW.%s IS NOT NULL) EXECUTE FUNCTION humanloop.label_trigger(%s)",
							 def->model_id, rel, label, args), SPI_OK_UTILITY);
		hl_spi_exec(psprintf("CREATE TRIGGER hl_watch_%d_update AFTER UPDATE OF %s ON %s FOR EACH ROW"
							 " WHEN (OLD.%s IS DISTINCT FROM NEW.%s) EXECUTE FUNCTION humanloop.label_trigger(%s)",
							 def->model_id, label, rel, compared_label, compared_label, args), SPI_OK_UTILITY);
		hl_spi_exec(psprintf("CREATE TRIGGER hl_watch_%d_delete AFTER DELETE ON %s FOR EACH ROW"
							 " WHEN (OLD.%s IS NOT NULL) EXECUTE FUNCTION humanloop.label_trigger(%s)",
							 def->model_id, rel, label, args), SPI_OK_UTILITY);
	}

	SPI_finish();
	hl_set_watched(def->model_id, watch);

	if (watch)
		hl_worker_request();
	PG_RETURN_BOOL(watch);
}

/*
 * Build the oid[] of rel and, when rel is a partition, of its ancestors,
 * because a row trigger on a partitioned table fires with the partition as
 * its relation.
 */
static ArrayType *
hl_trigger_relations(Relation rel)
{
	List	   *relids = list_make1_oid(RelationGetRelid(rel));
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;

	if (rel->rd_rel->relispartition)
		relids = list_concat(relids, get_partition_ancestors(RelationGetRelid(rel)));

	elems = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

/* Parse a trigger's model id argument.  Returns false unless it is a positive int4. */
static bool
hl_parse_model_id(const char *text, int32 *model_id)
{
	char	   *end;
	long		value;

	/* Only the digits hl_watch writes: no sign, white space or leading zero. */
	if (text[0] < '1' || text[0] > '9')
		return false;
	errno = 0;
	value = strtol(text, &end, 10);
	if (*end != '\0' || errno != 0 || value > PG_INT32_MAX)
		return false;
	*model_id = (int32) value;
	return true;
}

/*
 * humanloop.label_trigger(model_id, id_column, label_column): record one
 * label change
 */
Datum
hl_label_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	TupleDesc	desc;
	HeapTuple	tuple;
	int			id_attno;
	int			label_attno;
	char		change;
	char	   *item;
	int32		model_id;
	uint64		queued;
	Datum		values[6];
	char		nulls[6] = "      ";
	Oid			argtypes[6] = {INT4OID, TEXTOID, CHAROID, OIDARRAYOID, TEXTOID, TEXTOID};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("humanloop.label_trigger must be fired as an AFTER ROW trigger"),
				 errhint("Install it with hl_watch.")));
	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs != 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("humanloop.label_trigger needs 3 arguments, not %d", trigger->tgnargs),
				 errhint("Install it with hl_watch.")));

	desc = RelationGetDescr(trigdata->tg_relation);
	id_attno = SPI_fnumber(desc, trigger->tgargs[1]);
	label_attno = SPI_fnumber(desc, trigger->tgargs[2]);
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;

	/* A new label, an edited one, or a removed one. */
	if (label_attno <= 0 || id_attno <= 0)
	{
		/*
		 * A label or id column renamed since hl_watch must not fail the
		 * annotators' writes.  An edit makes the worker retrain, which fails
		 * and names the column in hl_worker_status.
		 */
		change = 'U';
	}
	else if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		change = 'I';
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		change = 'D';
	else
	{
		bool		old_null;
		bool		new_null;

		(void) SPI_getbinval(trigdata->tg_trigtuple, desc, label_attno, &old_null);
		(void) SPI_getbinval(trigdata->tg_newtuple, desc, label_attno, &new_null);
		change = old_null ? 'I' : (new_null ? 'D' : 'U');
	}

	if (!hl_parse_model_id(trigger->tgargs[0], &model_id))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" passes model id \"%s\", which is not a positive integer",
						trigger->tgname, trigger->tgargs[0]),
				 errhint("Drop the trigger, and call hl_watch for the model whose labels are in this table.")));
	item = id_attno > 0 ? SPI_getvalue(tuple, desc, id_attno) : NULL;
	values[0] = Int32GetDatum(model_id);
	if (item != NULL)
		values[1] = CStringGetTextDatum(item);
	else
		nulls[1] = 'n';
	values[2] = CharGetDatum(change);
	values[3] = PointerGetDatum(hl_trigger_relations(trigdata->tg_relation));
	values[4] = CStringGetTextDatum(trigger->tgargs[1]);
	values[5] = CStringGetTextDatum(trigger->tgargs[2]);

	/*
	 * The insert runs as the extension's owner.  It adds a row only when the
	 * model keeps its labels in the trigger's relation and columns, so a role
	 * that puts this trigger on a table of its own, or on other columns of
	 * the model's table, cannot queue work for a model.
	 */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (hl_queue_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO humanloop.label_queue (model_id, item_id, change)"
									   " SELECT m.model_id, $2, $3 FROM humanloop.models m"
									   " WHERE m.model_id OPERATOR(pg_catalog.=) $1"
									   " AND COALESCE(m.labels_relation, m.relation)::pg_catalog.oid"
									   " OPERATOR(pg_catalog.=) ANY ($4)"
									   " AND COALESCE(m.labels_id_column, m.id_column) OPERATOR(pg_catalog.=) $5"
									   " AND m.label_column OPERATOR(pg_catalog.=) $6",
									   6, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the label queue insert");
		hl_queue_plan = plan;
	}
	if (SPI_execute_plan(hl_queue_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a label change");
	queued = SPI_processed;
	SPI_finish();

	if (queued != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on relation \"%s\" does not name a model whose labels are in that relation and those columns",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("The trigger names model %d with id column \"%s\" and label column \"%s\". humanloop.label_trigger queues changes only for a model whose labels are in those columns of the table it fires on.",
						   model_id, trigger->tgargs[1], trigger->tgargs[2]),
				 errhint("Drop the trigger, and call hl_watch for the model whose labels are in this table.")));

	hl_worker_wake_at_commit();
	return PointerGetDatum(NULL);
}

/*
 * hl_rollback(name, version) returns the version that was current
 */
Datum
hl_rollback(PG_FUNCTION_ARGS)
{
	char	   *name;
	int32		version;
	HlModelDef *def;

	hl_require_model_name(fcinfo, 0);
	hl_require_arg(fcinfo, 1, "version",
				   "Pass the number of a stored version. hl_model_versions lists them.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	version = PG_GETARG_INT32(1);
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, true);
	PG_RETURN_INT32(hl_catalog_set_current_version(def, version));
}

/*
 * sql_model.c
 *		SQL entry points that define and drop models.
 */
#include "compat.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "text_source.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(hl_create_model);
PG_FUNCTION_INFO_V1(hl_drop_model);

/* Return argument argno as a C string, or NULL when the argument is NULL. */
static char *
hl_arg_cstring(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * hl_create_model(name, relation, text_column, label_column, id_column,
 *				   labels_relation, labels_id_column, task, options)
 */
Datum
hl_create_model(PG_FUNCTION_ARGS)
{
	HlModelDef	def;
	Jsonb	   *options;

	hl_require_arg(fcinfo, 0, "model name",
				   psprintf("Pass a name of 1 to %d bytes for the new model.", HL_MODEL_NAME_MAX));
	hl_require_arg(fcinfo, 1, "relation",
				   "Pass the table or view that contains the texts, such as 'public.tickets'.");
	hl_require_arg(fcinfo, 2, "text_column",
				   "Pass the name of the column that contains the texts.");
	hl_require_arg(fcinfo, 3, "label_column",
				   "Pass the name of the column that contains the labels.");
	hl_require_arg(fcinfo, 7, "task",
				   "Pass 'classification' or 'spans', or leave task out for 'classification'.");

	memset(&def, 0, sizeof(def));
	def.name = hl_arg_cstring(fcinfo, 0);
	def.relation = PG_GETARG_OID(1);
	def.text_column = hl_arg_cstring(fcinfo, 2);
	def.label_column = hl_arg_cstring(fcinfo, 3);
	def.id_column = hl_arg_cstring(fcinfo, 4);
	def.labels_relation = PG_ARGISNULL(5) ? InvalidOid : PG_GETARG_OID(5);
	def.labels_id_column = hl_arg_cstring(fcinfo, 6);
	def.task = hl_arg_cstring(fcinfo, 7);
	options = PG_ARGISNULL(8) ? NULL : PG_GETARG_JSONB_P(8);

	hl_check_model_name(def.name);
	if (strcmp(def.task, "classification") != 0 && strcmp(def.task, "spans") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown task \"%s\"", def.task),
				 errhint("Valid tasks are: classification, spans.")));

	/* Span offsets count characters, which the tagger decodes as UTF-8. */
	if (strcmp(def.task, "spans") == 0 && GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("span models need a database with encoding UTF8, not %s",
						GetDatabaseEncodingName()),
				 errhint("Create the model in a database created with ENCODING 'UTF8'.")));
	hl_options_parse(options, &def);
	hl_source_prepare(&def);

	if (options == NULL)
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

	PG_RETURN_INT32(hl_catalog_insert_model(&def, options));
}

/*
 * hl_drop_model(name, if_exists).  A NULL if_exists is its default, false.
 */
Datum
hl_drop_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		if_exists;

	hl_require_model_name(fcinfo, 0);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if_exists = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);

	/* Triggers left behind would reject every later label change. */
	if (hl_catalog_model_exists(name))
		hl_drop_watch_triggers(hl_catalog_fetch_model(name, true));

	if (hl_catalog_delete_model(name))
		PG_RETURN_BOOL(true);

	if (!if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("SELECT name FROM hl_models lists the models.")));
	ereport(NOTICE,
			(errmsg("model \"%s\" does not exist, skipping", name)));
	PG_RETURN_BOOL(false);
}

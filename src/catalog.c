/*
 * catalog.c
 *		Reading and writing humanloop's own tables through SPI.
 *
 * humanloop.models contains one row per model definition and
 * humanloop.model_versions one row per trained version.  Writers run in the
 * caller's transaction, so a failed or rolled-back training leaves the
 * previous version current.  Every statement passes its values as SPI
 * parameters; nothing a user typed is pasted into SQL text here.
 */
#include "compat.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "abstention.h"
#include "catalog.h"
#include "self_training.h"

/* Model options accepted in the options jsonb, for messages. */
#define HL_OPTION_NAMES "hash_bits, word_ngrams, char_ngram_min, char_ngram_max, abstain_probability, abstention, prior_precision, full_retrain_labels, novelty and self_training (classifiers), allow_overlap and word_classes (span models)"

/* Start SPI, raising an error when that fails. */
static void
hl_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Return the text of column attno of the current SPI row, copied to cxt. */
static char *
hl_spi_getstring(HeapTuple tuple, int attno, MemoryContext cxt)
{
	char	   *value = SPI_getvalue(tuple, SPI_tuptable->tupdesc, attno);
	char	   *copy;

	if (value == NULL)
		return NULL;
	copy = MemoryContextStrdup(cxt, value);
	pfree(value);
	return copy;
}

/* Return column attno of the current SPI row as int32, or dflt when NULL. */
static int32
hl_spi_getint32(HeapTuple tuple, int attno, int32 dflt)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, SPI_tuptable->tupdesc, attno, &isnull);

	return isnull ? dflt : DatumGetInt32(value);
}

/* Return column attno of the current SPI row as an Oid, or InvalidOid. */
static Oid
hl_spi_getoid(HeapTuple tuple, int attno)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, SPI_tuptable->tupdesc, attno, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(value);
}

void
hl_check_model_name(const char *name)
{
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty"),
				 errhint("Pass a name of 1 to %d bytes.", HL_MODEL_NAME_MAX)));
	if (strlen(name) > HL_MODEL_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name \"%s\" is too long", name),
				 errdetail("Model names are at most %d bytes.", HL_MODEL_NAME_MAX),
				 errhint("Pass a shorter name.")));
}

void
hl_require_arg(FunctionCallInfo fcinfo, int argno, const char *name, const char *hint)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("%s", hint)));
}

void
hl_require_model_name(FunctionCallInfo fcinfo, int argno)
{
	hl_require_arg(fcinfo, argno, "model name",
				   "Pass the name of a model. SELECT name FROM hl_models lists the models.");
}

char *
hl_json_value_text(const JsonbValue *value)
{
	StringInfoData text;

	switch (value->type)
	{
		case jbvNull:
			return "null";
		case jbvBool:
			return value->val.boolean ? "true" : "false";
		case jbvNumeric:
			return hl_json_number_text(value);
		case jbvString:
			/* A long string is cut, so that the message stays readable. */
			initStringInfo(&text);
			escape_json(&text, pnstrdup(value->val.string.val, Min(value->val.string.len, 60)));
			if (value->val.string.len > 60)
				appendStringInfoString(&text, "...");
			return text.data;
		default:
			return "an object or array";
	}
}

double
hl_option_number(const char *key, JsonbValue *value)
{
	if (value->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is %s, but must be a number", key, hl_json_value_text(value)),
				 errhint("Write the value as a JSON number without quotes, such as 1.")));

	/*
	 * A number beyond double's range becomes an infinity, which every range
	 * check then rejects with the option's name, instead of a bare overflow.
	 */
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(value->val.numeric)));
}

char *
hl_json_number_text(const JsonbValue *value)
{
	char	   *text;

	Assert(value->type == jbvNumeric);
	text = DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(value->val.numeric)));

	/*
	 * 1e400 prints as 401 digits, so a value still long without trailing
	 * zeros is shown in scientific notation, with a double's 17 digits.
	 */
	if (strlen(text) > 24)
		text = numeric_normalize(value->val.numeric);
	if (strlen(text) > 24)
		text = numeric_out_sci(value->val.numeric, 16);
	return text;
}

int
hl_option_int(const char *key, JsonbValue *value, int min, int max)
{
	double		number = hl_option_number(key, value);

	/* Test the range first, because casting a double outside int's range is undefined. */
	if (!(number >= min && number <= max) || number != floor(number))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is %s, but must be an integer from %d to %d",
						key, hl_json_number_text(value), min, max),
				 errhint("Pass a whole number in that range, or leave the option out for its default.")));
	return (int) number;
}

/* Return the boolean value of span model option key, rejecting it for classifiers. */
static bool
hl_option_span_bool(const char *key, const JsonbValue *value, bool spans)
{
	if (!spans)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model option \"%s\" applies only to span models", key),
				 errhint("Create the model with task => 'spans', or leave the option out.")));
	if (value->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model option \"%s\" is %s, but must be true or false",
						key, hl_json_value_text(value)),
				 errhint("Write true or false without quotes.")));
	return value->val.boolean;
}

void
hl_options_parse(Jsonb *options, HlModelDef *def)
{
	JsonbIterator *it;
	JsonbValue	value;
	JsonbIteratorToken token;
	const char *message;
	bool		spans = def->task != NULL && strcmp(def->task, "spans") == 0;

	hl_feature_config_default(&def->features);
	def->abstain_probability = HL_DEFAULT_ABSTAIN_PROBABILITY;
	memset(&def->abstention, 0, sizeof(def->abstention));
	def->abstention.score = HL_DEFAULT_CONFIDENCE_SCORE;
	def->abstention.folds = HL_DEFAULT_FOLDS;
	def->prior_precision = 0.0;
	def->allow_overlap = false;
	def->word_classes = true;
	def->novelty = 0;
	def->self_training = 0.0;
	if (spans)
		def->features.hash_bits = HL_SPANS_DEFAULT_HASH_BITS;

	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model options must be a JSON object"),
				 errhint("For example '{\"hash_bits\": 16}'.")));

	it = JsonbIteratorInit(&options->root);
	while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
	{
		char	   *key;

		if (token != WJB_KEY)
			continue;
		key = pnstrdup(value.val.string.val, value.val.string.len);
		token = JsonbIteratorNext(&it, &value, true);
		Assert(token == WJB_VALUE);

		/* Span models have fixed token features and no abstention rule. */
		if (spans && (strcmp(key, "word_ngrams") == 0 || strcmp(key, "char_ngram_min") == 0 ||
					  strcmp(key, "char_ngram_max") == 0 || strcmp(key, "abstain_probability") == 0 ||
					  strcmp(key, "abstention") == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model option \"%s\" applies only to classification models", key),
					 errhint("Leave the option out: span models use fixed window features of each token and have no abstention rule.")));

		if (strcmp(key, "hash_bits") == 0)
			def->features.hash_bits = hl_option_int(key, &value, HL_HASH_BITS_MIN, HL_HASH_BITS_MAX);
		else if (strcmp(key, "word_ngrams") == 0)
			def->features.word_ngram_max = hl_option_int(key, &value, 1, 2);
		else if (strcmp(key, "char_ngram_min") == 0)
			def->features.char_ngram_min = hl_option_int(key, &value, 0, 8);
		else if (strcmp(key, "char_ngram_max") == 0)
			def->features.char_ngram_max = hl_option_int(key, &value, 0, 8);
		else if (strcmp(key, "full_retrain_labels") == 0)
			(void) hl_option_int(key, &value, 1, INT_MAX);
		else if (strcmp(key, "abstain_probability") == 0)
		{
			double		p = hl_option_number(key, &value);

			if (!(p >= 0.0 && p <= 1.0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model option \"abstain_probability\" is %s, but must be from 0 to 1",
								hl_json_number_text(&value)),
						 errhint("Pass a probability such as 0.9, or leave the option out for the default, %g.",
								 HL_DEFAULT_ABSTAIN_PROBABILITY)));
			def->abstain_probability = p;
		}
		else if (strcmp(key, "abstention") == 0)
			hl_abstention_target_parse(&value, &def->abstention);
		else if (strcmp(key, "allow_overlap") == 0)
			def->allow_overlap = hl_option_span_bool(key, &value, spans);
		else if (strcmp(key, "word_classes") == 0)
			def->word_classes = hl_option_span_bool(key, &value, spans);
		else if (strcmp(key, "novelty") == 0)
		{
			if (spans)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model option \"novelty\" applies only to classifiers"),
						 errhint("Leave the option out of span models.")));
			def->novelty = hl_option_int(key, &value, 0, HL_NOVELTY_MAX_DIMENSIONS);
			if (def->novelty > 0 && def->novelty < HL_NOVELTY_MIN_DIMENSIONS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"novelty\" is %d, but must be 0 or from %d to %d",
								def->novelty, HL_NOVELTY_MIN_DIMENSIONS, HL_NOVELTY_MAX_DIMENSIONS),
						 errhint("Rows are normalised to length 1, so a few dimensions cannot tell them apart. 128 was measured on banking77.")));
		}
		else if (strcmp(key, "self_training") == 0)
		{
			double		weight = hl_option_number(key, &value);

			if (spans)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model option \"self_training\" applies only to classifiers"),
						 errhint("Leave the option out of span models.")));
			if (!(weight == 0.0 || (weight >= HL_SELF_TRAINING_MIN_WEIGHT && weight <= 1.0)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model option \"self_training\" is %s, but must be 0 or from %g to 1",
								hl_json_number_text(&value), HL_SELF_TRAINING_MIN_WEIGHT),
						 errhint("It is the weight of a pseudo-labelled row against a labelled one: pass 0.3, or 0 to turn self-training off.")));
			def->self_training = weight;
		}
		else if (strcmp(key, "prior_precision") == 0)
		{
			double		lambda = hl_option_number(key, &value);

			if (!(lambda > 0.0 && lambda <= 1e6))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model option \"prior_precision\" is %s, but must be above 0 and at most 1e6",
								hl_json_number_text(&value)),
						 spans ? errhint("Leave it out for the span models' default of 0.25.")
						 : errhint("Leave it out to choose the prior precision from the data.")));
			def->prior_precision = lambda;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown model option \"%s\"", key),
					 errhint("Valid options are: %s.", HL_OPTION_NAMES)));
		pfree(key);
	}

	/* The novelty score's projection has a row of floats per feature bucket. */
	if ((UINT64CONST(1) << def->features.hash_bits) * def->novelty * sizeof(float) > HL_NOVELTY_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a novelty score of %d dimensions over %u feature buckets would take %llu MB",
						def->novelty, 1U << def->features.hash_bits,
						(unsigned long long) (((UINT64CONST(1) << def->features.hash_bits) * def->novelty *
											   sizeof(float)) >> 20)),
				 errhint("Keep it under %d MB: lower the option \"novelty\" or \"hash_bits\".",
						 HL_NOVELTY_MAX_BYTES >> 20)));

	message = hl_feature_config_check(&def->features);
	if (message != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid feature options: %s", message),
				 errhint("Pass char_ngram_min and char_ngram_max as a range such as 2 and 5, or both as 0 to turn character n-grams off.")));
}

/*
 * Fetch a model definition by name, or by id when name is NULL; see
 * hl_catalog_fetch_model.
 */
static HlModelDef *
hl_catalog_fetch(const char *name, int32 model_id, bool for_update)
{
	MemoryContext outer = CurrentMemoryContext;
	HlModelDef *def;
	Oid			argtypes[1] = {name != NULL ? TEXTOID : INT4OID};
	Datum		values[1];
	HeapTuple	tuple;
	bool		isnull;
	Datum		options;
	int			ret;
	const char *key = name != NULL ? "name = $1" : "model_id = $1";
	char	   *sql = psprintf("SELECT model_id, name, task, relation::oid, id_column, text_column,"
							   "       label_column, labels_relation::oid, labels_id_column,"
							   "       owner::oid, current_version, options"
							   "  FROM humanloop.models WHERE %s", key);

	hl_spi_connect();
	values[0] = name != NULL ? CStringGetTextDatum(name) : Int32GetDatum(model_id);
	ret = SPI_execute_with_args(for_update ? psprintf("%s FOR NO KEY UPDATE", sql) : sql,
								1, argtypes, values, NULL, !for_update, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.models: SPI error %d", ret);
	if (SPI_processed == 0 && for_update)
	{
		/* Row-level security hides other owners' models from FOR UPDATE only. */
		ret = SPI_execute_with_args(psprintf("SELECT owner::text FROM humanloop.models WHERE %s", key),
									1, argtypes, values, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to change model \"%s\"", name),
					 errdetail("The model is owned by role \"%s\".",
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Ask a member of the owning role to do it, or to grant you membership in that role.")));
		SPI_processed = 0;
	}
	if (SPI_processed == 0 && name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model %d does not exist", model_id)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("SELECT name FROM hl_models lists the models; hl_create_model defines one.")));

	tuple = SPI_tuptable->vals[0];
	def = MemoryContextAllocZero(outer, sizeof(HlModelDef));
	def->model_id = hl_spi_getint32(tuple, 1, 0);
	def->name = hl_spi_getstring(tuple, 2, outer);
	def->task = hl_spi_getstring(tuple, 3, outer);
	def->relation = hl_spi_getoid(tuple, 4);
	def->id_column = hl_spi_getstring(tuple, 5, outer);
	def->text_column = hl_spi_getstring(tuple, 6, outer);
	def->label_column = hl_spi_getstring(tuple, 7, outer);
	def->labels_relation = hl_spi_getoid(tuple, 8);
	def->labels_id_column = hl_spi_getstring(tuple, 9, outer);
	def->owner = hl_spi_getoid(tuple, 10);
	def->current_version = hl_spi_getint32(tuple, 11, 0);

	options = SPI_getbinval(tuple, SPI_tuptable->tupdesc, 12, &isnull);
	{
		MemoryContext spi = MemoryContextSwitchTo(outer);

		hl_options_parse(isnull ? NULL : DatumGetJsonbP(options), def);
		MemoryContextSwitchTo(spi);
	}

	SPI_finish();
	return def;
}

HlModelDef *
hl_catalog_fetch_model(const char *name, bool for_update)
{
	return hl_catalog_fetch(name, 0, for_update);
}

HlModelDef *
hl_catalog_fetch_model_by_id(int32 model_id, bool for_update)
{
	return hl_catalog_fetch(NULL, model_id, for_update);
}

int32
hl_catalog_insert_model(const HlModelDef *def, Jsonb *options)
{
	Oid			argtypes[9] = {TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID,
	TEXTOID, OIDOID, TEXTOID, JSONBOID};
	Datum		values[9];
	char		nulls[9] = "         ";
	int32		model_id;
	int			ret;

	values[0] = CStringGetTextDatum(def->name);
	values[1] = CStringGetTextDatum(def->task);
	values[2] = ObjectIdGetDatum(def->relation);
	values[3] = CStringGetTextDatum(def->id_column);
	values[4] = CStringGetTextDatum(def->text_column);
	values[5] = CStringGetTextDatum(def->label_column);
	values[6] = ObjectIdGetDatum(def->labels_relation);
	if (!OidIsValid(def->labels_relation))
		nulls[6] = 'n';
	if (def->labels_id_column != NULL)
		values[7] = CStringGetTextDatum(def->labels_id_column);
	else
		nulls[7] = 'n';
	values[8] = JsonbPGetDatum(options);

	hl_spi_connect();

	/* Check first, so that a clash gets a message of ours, not the unique index's. */
	ret = SPI_execute_with_args("SELECT 1 FROM humanloop.models WHERE name = $1",
								1, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.models: SPI error %d", ret);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", def->name),
				 errhint("Choose another name, or drop the model first with hl_drop_model('%s').",
						 def->name)));

	ret = SPI_execute_with_args("INSERT INTO humanloop.models"
								" (name, task, relation, id_column, text_column,"
								"  label_column, labels_relation, labels_id_column, options)"
								" VALUES ($1, $2, $3::regclass, $4, $5, $6, $7::regclass, $8, $9)"
								" RETURNING model_id",
								9, argtypes, values, nulls, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert into humanloop.models: SPI error %d", ret);
	model_id = hl_spi_getint32(SPI_tuptable->vals[0], 1, 0);

	SPI_finish();
	return model_id;
}

bool
hl_catalog_delete_model(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			ret;
	bool		found;

	values[0] = CStringGetTextDatum(name);
	hl_spi_connect();
	ret = SPI_execute_with_args("DELETE FROM humanloop.models WHERE name = $1",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete from humanloop.models: SPI error %d", ret);
	found = SPI_processed > 0;

	/* Row-level security hides other owners' rows from DELETE, not from SELECT. */
	if (!found)
	{
		ret = SPI_execute_with_args("SELECT owner::text FROM humanloop.models WHERE name = $1",
									1, argtypes, values, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to drop model \"%s\"", name),
					 errdetail("The model is owned by role \"%s\".",
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Ask a member of the owning role to drop it.")));
	}

	SPI_finish();
	return found;
}

int32
hl_catalog_add_version(int32 model_id, const char *kind, int32 labelled_rows,
					   Datum labels, double seconds, const char *metrics_json,
					   bytea *posterior, int32 base_version, int32 root_version)
{
	Oid			argtypes[9] = {INT4OID, INT4OID, TEXTARRAYOID, FLOAT8OID,
	TEXTOID, BYTEAOID, TEXTOID, INT4OID, INT4OID};
	Datum		values[9];
	char		nulls[9] = "         ";
	int32		version;
	int			ret;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(labelled_rows);
	values[2] = labels;
	values[3] = Float8GetDatum(seconds);
	values[4] = CStringGetTextDatum(metrics_json);
	values[5] = PointerGetDatum(posterior);
	values[6] = CStringGetTextDatum(kind);
	values[7] = Int32GetDatum(base_version);
	values[8] = Int32GetDatum(root_version);
	if (base_version == 0)
		nulls[7] = nulls[8] = 'n';

	hl_spi_connect();

	/*
	 * The caller holds the model's row lock (hl_catalog_fetch_model with
	 * for_update), so no other session computes the same next version.
	 */
	ret = SPI_execute_with_args("INSERT INTO humanloop.model_versions"
								" (model_id, version, kind, labelled_rows, labels,"
								"  train_seconds, metrics, posterior, base_version, root_version)"
								" SELECT $1, coalesce(max(version), 0) + 1, $7, $2, $3, $4, $5::jsonb, $6, $8, $9"
								"   FROM humanloop.model_versions WHERE model_id = $1"
								" RETURNING version",
								9, argtypes, values, nulls, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert into humanloop.model_versions: SPI error %d", ret);
	version = hl_spi_getint32(SPI_tuptable->vals[0], 1, 0);

	values[1] = Int32GetDatum(version);
	ret = SPI_execute_with_args("UPDATE humanloop.models SET current_version = $2"
								" WHERE model_id = $1",
								2, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update humanloop.models: SPI error %d", ret);

	/*
	 * Keep the newest humanloop.keep_versions versions (the current one is
	 * the newest) and every full version that a kept patch is built on.
	 */
	if (hl_keep_versions > 0)
	{
		values[1] = Int32GetDatum(version - hl_keep_versions);
		ret = SPI_execute_with_args("DELETE FROM humanloop.model_versions"
									" WHERE model_id = $1 AND version <= $2"
									"   AND version < (SELECT coalesce(min(coalesce(root_version, version)), $2 + 1)"
									"                    FROM humanloop.model_versions"
									"                   WHERE model_id = $1 AND version > $2)",
									2, argtypes, values, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not prune humanloop.model_versions: SPI error %d", ret);
	}

	SPI_finish();
	return version;
}

int32
hl_catalog_current_version(const char *name, int32 *model_id,
						   HlAbstentionRule *rule)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int32		version;
	int			ret;
	bool		isnull;
	Datum		value;

	/*
	 * The rule is the newest one chosen at or before the current version:
	 * fast updates keep the rule of the full training they start from, and
	 * a rollback goes back to the rule of the version it restores.
	 */
	values[0] = CStringGetTextDatum(name);
	hl_spi_connect();
	ret = SPI_execute_with_args("SELECT m.model_id, m.current_version,"
								"       (m.options->>'abstain_probability')::float8,"
								"       (r.rule->>'threshold')::float8, r.rule->>'score'"
								"  FROM humanloop.models m"
								"  LEFT JOIN LATERAL"
								"       (SELECT v.metrics->'abstention' AS rule"
								"          FROM humanloop.model_versions v"
								"         WHERE v.model_id = m.model_id AND v.version <= m.current_version"
								"           AND v.metrics ? 'abstention'"
								"         ORDER BY v.version DESC LIMIT 1) r ON true"
								" WHERE m.name = $1",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.models: SPI error %d", ret);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("SELECT name FROM hl_models lists the models; hl_create_model defines one.")));
	*model_id = hl_spi_getint32(SPI_tuptable->vals[0], 1, 0);
	version = hl_spi_getint32(SPI_tuptable->vals[0], 2, 0);

	rule->score = HL_SCORE_PROBABILITY;
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	rule->threshold = isnull ? HL_DEFAULT_ABSTAIN_PROBABILITY : DatumGetFloat8(value);

	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
	{
		char	   *score = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);

		rule->threshold = DatumGetFloat8(value);
		if (score == NULL || !hl_confidence_score_parse(score, &rule->score))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("abstention rule of model \"%s\" has an unknown score \"%s\"",
							name, score ? score : ""),
					 errhint("Set the rule again with hl_set_abstention.")));
	}
	SPI_finish();
	return version;
}

bool
hl_catalog_prior_choice(int32 model_id, int32 version, int32 *chosen_rows,
						double *prior_precision)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	bool		found = false;
	int			ret;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(version);
	hl_spi_connect();
	ret = SPI_execute_with_args("SELECT coalesce(round((metrics->>'prior_chosen_rows')::float8)::int4,"
								"                labelled_rows),"
								"       (metrics->>'prior_precision')::float8"
								"  FROM humanloop.model_versions"
								" WHERE model_id = $1 AND version = $2 AND kind = 'full'",
								2, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.model_versions: SPI error %d", ret);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull && DatumGetFloat8(value) > 0.0)
		{
			*chosen_rows = hl_spi_getint32(SPI_tuptable->vals[0], 1, 0);
			*prior_precision = DatumGetFloat8(value);
			found = true;
		}
	}
	SPI_finish();
	return found;
}

bool
hl_catalog_span_temperature(int32 model_id, int32 version, Datum labels,
							int32 *calibrated_rows, double *temperature, double *prior_precision)
{
	Oid			argtypes[3] = {INT4OID, INT4OID, TEXTARRAYOID};
	Datum		values[3];
	bool		found = false;
	int			ret;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(version);
	values[2] = labels;
	hl_spi_connect();
	/* Metrics are written with 6 significant digits, so 1e+06 must read as a row count. */
	ret = SPI_execute_with_args("SELECT round((metrics->>'calibrated_rows')::float8)::int4,"
								"       (metrics->>'temperature')::float8,"
								"       (metrics->>'prior_precision')::float8"
								"  FROM humanloop.model_versions"
								" WHERE model_id = $1 AND version = $2 AND kind = 'full'"
								"   AND labels = $3"
								"   AND metrics->>'calibrated_rows' IS NOT NULL"
								"   AND metrics->>'temperature' IS NOT NULL",
								3, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.model_versions: SPI error %d", ret);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		t = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		Datum		lambda = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);

		*calibrated_rows = hl_spi_getint32(SPI_tuptable->vals[0], 1, 0);
		*temperature = DatumGetFloat8(t);
		*prior_precision = isnull ? 0.0 : DatumGetFloat8(lambda);
		found = *temperature > 0.0 && *calibrated_rows > 0;
	}
	SPI_finish();
	return found;
}

bytea *
hl_catalog_fetch_posterior(int32 model_id, int32 version, MemoryContext cxt)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	Datum		posterior;
	bool		isnull;
	bytea	   *copy;
	int			ret;

	values[0] = Int32GetDatum(model_id);
	values[1] = Int32GetDatum(version);
	hl_spi_connect();
	ret = SPI_execute_with_args("SELECT posterior FROM humanloop.model_versions"
								" WHERE model_id = $1 AND version = $2",
								2, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.model_versions: SPI error %d", ret);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model %d does not exist", version, model_id)));

	posterior = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("posterior of version %d of model %d is null", version, model_id)));

	/* Detoast straight into the caller's context, which outlives SPI. */
	{
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		copy = (bytea *) PG_DETOAST_DATUM_COPY(posterior);
		MemoryContextSwitchTo(spi);
	}

	SPI_finish();
	return copy;
}

int32
hl_catalog_set_current_version(const HlModelDef *def, int32 version)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	int			ret;

	values[0] = Int32GetDatum(def->model_id);
	values[1] = Int32GetDatum(version);
	hl_spi_connect();
	ret = SPI_execute_with_args("SELECT 1 FROM humanloop.model_versions"
								" WHERE model_id = $1 AND version = $2",
								2, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.model_versions: SPI error %d", ret);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" does not exist", version, def->name),
				 errhint("SELECT version FROM hl_model_versions WHERE name = '%s' lists the stored versions.",
						 def->name)));
	ret = SPI_execute_with_args("UPDATE humanloop.models SET current_version = $2 WHERE model_id = $1",
								2, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update humanloop.models: SPI error %d", ret);
	SPI_finish();
	return def->current_version;
}

bool
hl_catalog_model_exists(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	values[0] = CStringGetTextDatum(name);
	hl_spi_connect();
	if (SPI_execute_with_args("SELECT 1 FROM humanloop.models WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.models");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

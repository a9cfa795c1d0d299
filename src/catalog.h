/*
 * catalog.h
 *		Reading and writing humanloop's own tables through SPI.
 */
#ifndef HL_CATALOG_H
#define HL_CATALOG_H

#include "humanloop.h"
#include "utils/jsonb.h"

/* Maximum length of a model name in bytes, as for a PostgreSQL identifier. */
#define HL_MODEL_NAME_MAX 63

/*
 * Fetch the definition of model name.  With for_update the row is locked
 * FOR NO KEY UPDATE until the end of the transaction, which serialises
 * training of one model but lets annotators' rows that refer to the model
 * (reservations, queued label changes) be inserted meanwhile.
 * Raises an error when the model does not exist.
 */
extern HlModelDef *hl_catalog_fetch_model(const char *name, bool for_update);

/* Fetch the definition of a model by id, as hl_catalog_fetch_model. */
extern HlModelDef *hl_catalog_fetch_model_by_id(int32 model_id, bool for_update);

/* Insert a new definition and return its id; name clashes raise an error. */
extern int32 hl_catalog_insert_model(const HlModelDef *def, Jsonb *options);

/* Return whether a model named name exists, whatever role owns it. */
extern bool hl_catalog_model_exists(const char *name);

/* Delete a model and its versions; returns false when it did not exist. */
extern bool hl_catalog_delete_model(const char *name);

/*
 * Store a version as current and return its number; kind is "full" or
 * "update".  A patch posterior names its base version and the full version
 * its chain of patches starts from; both are 0 for a full posterior.
 * Versions older than the newest humanloop.keep_versions go, unless a kept
 * patch needs them.
 */
extern int32 hl_catalog_add_version(int32 model_id, const char *kind,
									int32 labelled_rows, Datum labels,
									double seconds, const char *metrics_json,
									bytea *posterior, int32 base_version,
									int32 root_version);

/*
 * Make an existing version of def current and return the version that was
 * current.  The caller holds the model's row lock.
 */
extern int32 hl_catalog_set_current_version(const HlModelDef *def, int32 version);

/*
 * Return the current version of model name (0 when untrained), and set its
 * id and abstention rule: the newest rule stored with a version up to the
 * current one, else top-class probability below the model option
 * abstain_probability.
 */
extern int32 hl_catalog_current_version(const char *name, int32 *model_id,
										HlAbstentionRule *rule);

/*
 * Fetch how full version version of model_id chose its prior precision:
 * the labelled rows it was chosen on and its value.  Returns false when
 * the version is not a full one or records no prior precision.
 */
extern bool hl_catalog_prior_choice(int32 model_id, int32 version,
									int32 *chosen_rows, double *prior_precision);

/*
 * Read the temperature of full version version of a span model, the
 * labelled rows of the training that last held rows out to fit it, and the
 * version's prior precision.  False when the version has none, or when its
 * span labels differ from labels (a text[]).
 */
extern bool hl_catalog_span_temperature(int32 model_id, int32 version, Datum labels,
										int32 *calibrated_rows, double *temperature,
										double *prior_precision);

/* Fetch a version's posterior, detoasted, into memory context cxt. */
extern bytea *hl_catalog_fetch_posterior(int32 model_id, int32 version,
										 MemoryContext cxt);

/* Validate the options jsonb of a model and store them into def. */
extern void hl_options_parse(Jsonb *options, HlModelDef *def);

/* Return the number of a JSON option, raising an error unless it is a number. */
extern double hl_option_number(const char *key, JsonbValue *value);

/*
 * Return a JSON number as numeric_out prints it, for messages.  Unlike %g,
 * it shows 2147483648 and 0.1234567 without an exponent or rounding.
 */
extern char *hl_json_number_text(const JsonbValue *value);

/* Return a scalar JSON value as it would be written in JSON, for a message. */
extern char *hl_json_value_text(const JsonbValue *value);

/* Return an integer JSON option within [min, max], else raise an error. */
extern int	hl_option_int(const char *key, JsonbValue *value, int min, int max);

/* Raise an error unless name is a valid model name. */
extern void hl_check_model_name(const char *name);

/*
 * Raise null_value_not_allowed when argument argno is NULL.  name is the
 * argument as the message shows it, and hint is the errhint text.  The SQL
 * functions are not STRICT, so a NULL raises this instead of returning NULL.
 */
extern void hl_require_arg(FunctionCallInfo fcinfo, int argno, const char *name,
						   const char *hint);

/* Raise null_value_not_allowed when the model name, argument argno, is NULL. */
extern void hl_require_model_name(FunctionCallInfo fcinfo, int argno);

#endif							/* HL_CATALOG_H */

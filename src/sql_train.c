/*
 * sql_train.c
 *		hl_train: the SQL entry point of full training.
 */
#include "compat.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "catalog.h"
#include "text_source.h"
#include "train.h"

PG_FUNCTION_INFO_V1(hl_train);

/*
 * Return the ids of the queued label changes of a model that this statement
 * can see, or NULL when there are none.  They were committed before the
 * training reads its rows, so the new version contains them.
 */
static Datum
hl_visible_queue_ids(int32 model_id, bool *isnull)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	Datum		ids;

	values[0] = Int32GetDatum(model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT pg_catalog.array_agg(queue_id) FROM humanloop.label_queue"
							  " WHERE model_id OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.label_queue");
	ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
		ids = SPI_datumTransfer(ids, false, -1);
	SPI_finish();
	return ids;
}

/*
 * Delete the given changes of model_id from the queue, unless none_queued,
 * so the background worker does not apply them again.  Then end the
 * worker's failure backoff of the model, because a new version succeeded.
 * Only the extension's owner may write these tables, so the statements run
 * as that role.  The caller owns the model (hl_catalog_fetch_model checked).
 */
static void
hl_dequeue_changes(int32 model_id, Datum ids, bool none_queued)
{
	Oid			argtypes[2] = {INT8ARRAYOID, INT4OID};
	Datum		values[2];
	Oid			save_userid;
	int			save_sec_context;
	Oid			extension_owner;
	bool		isnull;

	values[0] = ids;
	values[1] = Int32GetDatum(model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'humanloop'",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the owner of extension humanloop");
	extension_owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(extension_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (!none_queued &&
		SPI_execute_with_args("DELETE FROM humanloop.label_queue"
							  " WHERE queue_id OPERATOR(pg_catalog.=) ANY ($1)",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from humanloop.label_queue");
	if (SPI_execute_with_args("UPDATE humanloop.worker_state SET failures = 0, retry_at = NULL"
							  " WHERE model_id OPERATOR(pg_catalog.=) $2"
							  " AND failures OPERATOR(pg_catalog.>) 0",
							  2, argtypes, values, none_queued ? "n " : "  ", false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update humanloop.worker_state");
	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
}

/*
 * hl_train(name) returns (version, labelled_rows, classes, seconds, metrics)
 */
Datum
hl_train(PG_FUNCTION_ARGS)
{
	char	   *name;
	HlModelDef *def;
	HlTrainResult result;
	Datum		queued;
	bool		none_queued;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	hl_require_model_name(fcinfo, 0);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	hl_check_model_name(name);
	def = hl_catalog_fetch_model(name, true);
	hl_source_check(def);

	/*
	 * The lock above keeps the worker off this model.  Changes queued before
	 * the training reads its rows are in the new version.  Later ones stay
	 * queued for the worker.
	 */
	queued = hl_visible_queue_ids(def->model_id, &none_queued);
	hl_train_model(def, &result);
	hl_dequeue_changes(def->model_id, queued, none_queued);

	values[0] = Int32GetDatum(result.version);
	values[1] = Int32GetDatum(result.labelled_rows);
	values[2] = Int32GetDatum(result.classes);
	values[3] = Float8GetDatum(result.seconds);
	values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(result.metrics_json));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

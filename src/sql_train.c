/*
 * sql_train.c
 *		hl_train: the SQL entry point of full training.
 */
#include "compat.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "catalog.h"
#include "text_source.h"
#include "train.h"

PG_FUNCTION_INFO_V1(hl_train);

/*
 * hl_train(name) returns (version, labelled_rows, classes, seconds, metrics)
 */
Datum
hl_train(PG_FUNCTION_ARGS)
{
	char	   *name;
	HlModelDef *def;
	HlTrainResult result;
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
	hl_train_model(def, &result);

	values[0] = Int32GetDatum(result.version);
	values[1] = Int32GetDatum(result.labelled_rows);
	values[2] = Int32GetDatum(result.classes);
	values[3] = Float8GetDatum(result.seconds);
	values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(result.metrics_json));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

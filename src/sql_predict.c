/*
 * sql_predict.c
 *		SQL entry points that score text with a model's current version:
 *		hl_predict, hl_predict_proba and hl_classify.
 *
 * A NULL or empty text is scored as an empty document (the model then
 * answers from its biases alone), so a scan over a table with missing
 * texts does not fail halfway.  A NULL model name is an error.
 */
#include "compat.h"

#include <math.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "abstention.h"
#include "catalog.h"
#include "model_cache.h"

PG_FUNCTION_INFO_V1(hl_predict);
PG_FUNCTION_INFO_V1(hl_predict_proba);
PG_FUNCTION_INFO_V1(hl_classify);

/* Load the model named by argument 0 and score the text of argument 1. */
static HlModel *
hl_score_args(FunctionCallInfo fcinfo, HlPrediction *prediction)
{
	HlModel    *model;
	const char *body = "";
	size_t		len = 0;

	hl_require_model_name(fcinfo, 0);
	model = hl_model_for_call(fcinfo, PG_GETARG_TEXT_PP(0));
	if (hl_model_is_spans(model))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is a span model", text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errhint("Use hl_predict_spans to tag a text with it.")));

	if (!PG_ARGISNULL(1))
	{
		text	   *input = PG_GETARG_TEXT_PP(1);

		body = VARDATA_ANY(input);
		len = VARSIZE_ANY_EXHDR(input);
		hl_check_text_length(len, "input text");
	}

	hl_model_score(model, body, len, prediction);
	return model;
}

/*
 * hl_predict(name, input) returns the most probable label
 */
Datum
hl_predict(PG_FUNCTION_ARGS)
{
	HlPrediction prediction;
	HlModel    *model = hl_score_args(fcinfo, &prediction);

	PG_RETURN_TEXT_P(cstring_to_text(model->labels[prediction.label]));
}

/* Order class indexes by descending probability, then by label name. */
static const HlModel *hl_sort_model;

static int
hl_compare_by_probability(const void *a, const void *b)
{
	uint32		ka = *(const uint32 *) a;
	uint32		kb = *(const uint32 *) b;
	float		pa = hl_sort_model->proba[ka];
	float		pb = hl_sort_model->proba[kb];

	if (pa != pb)
		return pa > pb ? -1 : 1;
	return strcmp(hl_sort_model->labels[ka], hl_sort_model->labels[kb]);
}

/*
 * hl_predict_proba(name, input) returns one (label, probability) row per
 * class, most probable first.  A phantom class is not listed, so with a
 * single real class the probabilities add up to less than one.
 */
Datum
hl_predict_proba(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HlPrediction prediction;
	HlModel    *model;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	uint32	   *order;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	model = hl_score_args(fcinfo, &prediction);

	order = palloc(sizeof(uint32) * model->n_labels);
	for (uint32 k = 0; k < model->n_labels; k++)
		order[k] = k;
	hl_sort_model = model;
	qsort(order, model->n_labels, sizeof(uint32), hl_compare_by_probability);

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	for (uint32 i = 0; i < model->n_labels; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(model->labels[order[i]]);
		values[1] = Float8GetDatum(model->proba[order[i]]);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}

/*
 * hl_classify(name, input) returns hl_prediction: label, probability,
 * entropy, mutual information, abstain and novelty (NULL without a
 * novelty score)
 */
Datum
hl_classify(PG_FUNCTION_ARGS)
{
	HlPrediction prediction;
	HlModel    *model;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	model = hl_score_args(fcinfo, &prediction);

	values[0] = CStringGetTextDatum(model->labels[prediction.label]);
	values[1] = Float8GetDatum(prediction.probability);
	values[2] = Float8GetDatum(prediction.entropy);
	values[3] = Float8GetDatum(prediction.mutual_information);
	values[4] = BoolGetDatum(hl_abstain(&model->abstention, &prediction));
	values[5] = Float8GetDatum(prediction.novelty);
	nulls[5] = isnan(prediction.novelty);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

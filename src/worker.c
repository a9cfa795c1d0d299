/*
 * worker.c
 *		The per-database background worker that keeps watched models current,
 *		and the registration of the launcher that starts it (launcher.c).
 *
 * A worker serves one database while that database has a watched model.
 * It sleeps on its latch.  The label triggers installed by hl_watch
 * record each change in humanloop.label_queue and set the worker's latch
 * when their transaction commits; the worker then waits for
 * humanloop.worker_debounce of quiet (so a burst becomes one update) and
 * processes every model with queued changes, each in a transaction of its
 * own and with the privileges of the model's owner.  New labels get the
 * fast Bayesian update; edits, removals, a new class, or enough labels since
 * the last full retrain (humanloop.full_retrain_labels) get a full retrain.
 * Span models have no fast update, so each batch of their changes gets a
 * full retrain, at most once per humanloop.span_retrain_interval.
 * A failed update is rolled back whole, so the queue and the current version
 * stay as they were; the error is recorded in humanloop.worker_state and the
 * model is retried with exponential backoff while other models go on.
 *
 * When its database has no watched model left, or no extension, the worker
 * releases its slot and exits with status 0, and the launcher does not
 * start it again until a commit requests it (worker_slots.c).  Any other
 * exit leaves the slot to the launcher, which restarts the worker.
 *
 * Each transaction of the launcher and the workers sets a new statement
 * start time first, since now() in a background worker otherwise stays at
 * the time the process started.
 */
#include "compat.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "model_cache.h"
#include "text_source.h"
#include "train.h"
#include "update.h"
#include "worker.h"
#include "worker_slots.h"

/* A model with queued changes, as the worker's scan found it. */
typedef struct HlPendingModel
{
	int32		model_id;
	int64		last_queue_id;
	int32		changes;
	bool		edits;			/* an edited or removed label */
	int32		labels_since_full;
	int32		full_retrain_labels;	/* the model's option, or -1 */
	int32		failures;
} HlPendingModel;

bool		hl_worker_enabled = false;
int			hl_full_retrain_labels = 200;
int			hl_worker_naptime = 10000;

static int	hl_worker_debounce = 20;

/* The minimum rest between two full retrains of a span model, in ms. */
static int	hl_span_retrain_interval = 60 * 1000;

static char hl_database_name[NAMEDATALEN];

/* This worker's slot and the launch it belongs to. */
static HlWorkerSlot *hl_my_slot = NULL;
static uint32 hl_my_generation = 0;

void
hl_worker_init(void)
{
	BackgroundWorker worker;

	hl_worker_enabled = process_shared_preload_libraries_in_progress;

	DefineCustomIntVariable("humanloop.worker_naptime",
							"Sets how long a humanloop worker sleeps when nothing wakes it.",
							"Label triggers wake the worker at commit; the nap is a safety net.  In milliseconds.",
							&hl_worker_naptime,
							10000, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("humanloop.worker_debounce",
							"Sets the quiet time a humanloop worker waits for after a label change.",
							"Changes committed within this time of each other become one update.  "
							"The wait ends after ten such periods even if changes keep coming.  In milliseconds.",
							&hl_worker_debounce,
							20, 0, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("humanloop.full_retrain_labels",
							"Sets after how many new labels the worker retrains a model in full.",
							"Between full retrains new labels get a fast approximate update.  "
							"A model's option \"full_retrain_labels\" overrides it.",
							&hl_full_retrain_labels,
							200, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("humanloop.span_retrain_interval",
							"Sets the minimum rest of a humanloop worker between two retrains of a span model.",
							"Span models have no fast update, so the worker retrains them in full for each batch of label changes, "
							"and waits this long from the end of one retrain to the start of the next.  "
							"In milliseconds; 0 retrains for every batch.",
							&hl_span_retrain_interval,
							60 * 1000, 0, 24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	if (!hl_worker_enabled)
		return;

	/* A PGC_POSTMASTER setting can only be defined while preloading. */
	DefineCustomIntVariable("humanloop.max_workers",
							"Sets the maximum number of databases with a humanloop worker.",
							"Each worker is a background worker process, so max_worker_processes "
							"must leave room for them and the launcher.",
							&hl_max_workers,
							8, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	hl_worker_slots_init();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "humanloop", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "hl_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "humanloop launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "humanloop launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * Return the watched models with queued changes whose retry_at has passed.
 * A change queued after a model's last failure, such as the corrected
 * label, ends the failure backoff at once.  A further failure needs a still
 * newer change to skip the wait, so a label that stays bad cannot make the
 * worker retry in a loop.
 */
static List *
hl_pending_models(void)
{
	MemoryContext outer = CurrentMemoryContext;
	List	   *pending = NIL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT q.model_id, max(q.queue_id), count(*)::int4,"
					"       bool_or(q.change <> 'I'),"
					"       coalesce(max(s.labels_since_full), 0)::int4,"
					"       coalesce(max((m.options->>'full_retrain_labels')::int4), -1),"
					"       coalesce(max(s.failures), 0)::int4"
					"  FROM humanloop.label_queue q"
					"  JOIN humanloop.models m ON m.model_id = q.model_id"
					"  LEFT JOIN humanloop.worker_state s ON s.model_id = q.model_id"
					" WHERE m.watched AND (s.retry_at IS NULL OR s.retry_at <= pg_catalog.now()"
					"       OR (s.failures > 0 AND EXISTS (SELECT 1 FROM humanloop.label_queue c"
					"            WHERE c.model_id = q.model_id AND c.queued_at > s.last_error_at)))"
					" GROUP BY q.model_id ORDER BY q.model_id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.label_queue");

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HlPendingModel *p = MemoryContextAllocZero(outer, sizeof(HlPendingModel));
		bool		isnull;

		p->model_id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
		p->last_queue_id = DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull));
		p->changes = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
		p->edits = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
		p->labels_since_full = DatumGetInt32(SPI_getbinval(tuple, desc, 5, &isnull));
		p->full_retrain_labels = DatumGetInt32(SPI_getbinval(tuple, desc, 6, &isnull));
		p->failures = DatumGetInt32(SPI_getbinval(tuple, desc, 7, &isnull));
		{
			MemoryContext old = MemoryContextSwitchTo(outer);

			pending = lappend(pending, p);
			MemoryContextSwitchTo(old);
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return pending;
}

/*
 * Record the outcome of one model's update in humanloop.worker_state.  After
 * a success, rest_ms > 0 keeps the worker from processing the model again
 * until that many milliseconds from now (retry_at).
 */
static void
hl_record_state(int32 model_id, bool full, int32 changes, const char *error,
				int32 failures, int32 rest_ms)
{
	Oid			argtypes[6] = {INT4OID, BOOLOID, INT4OID, TEXTOID, INT4OID, INT4OID};
	Datum		values[6];
	char		nulls[6] = "      ";

	values[0] = Int32GetDatum(model_id);
	values[1] = BoolGetDatum(full);
	values[2] = Int32GetDatum(changes);
	if (error != NULL)
		values[3] = CStringGetTextDatum(error);
	else
		nulls[3] = 'n';
	values[4] = Int32GetDatum(failures);
	values[5] = Int32GetDatum(rest_ms);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (error == NULL)
		SPI_execute_with_args("INSERT INTO humanloop.worker_state AS s"
							  " (model_id, last_update, last_full_retrain, labels_since_full, retry_at)"
							  " SELECT $1, now(), CASE WHEN $2 THEN now() END, CASE WHEN $2 THEN 0 ELSE $3 END,"
							  "        CASE WHEN $6 > 0 THEN clock_timestamp() + $6 * interval '1 ms' END"
							  "  WHERE EXISTS (SELECT 1 FROM humanloop.models m WHERE m.model_id = $1)"
							  " ON CONFLICT (model_id) DO UPDATE SET"
							  "  last_update = now(),"
							  "  last_full_retrain = CASE WHEN $2 THEN now() ELSE s.last_full_retrain END,"
							  "  labels_since_full = CASE WHEN $2 THEN 0 ELSE s.labels_since_full + $3 END,"
							  "  failures = 0,"
							  "  retry_at = CASE WHEN $6 > 0 THEN clock_timestamp() + $6 * interval '1 ms' END",
							  6, argtypes, values, nulls, false, 0);
	else
		SPI_execute_with_args("INSERT INTO humanloop.worker_state AS s"
							  " (model_id, failures, retry_at, last_error, last_error_at)"
							  " SELECT $1, $5, now() + least(600, 2 ^ $5) * interval '1 second', $4, now()"
							  "  WHERE EXISTS (SELECT 1 FROM humanloop.models m WHERE m.model_id = $1)"
							  " ON CONFLICT (model_id) DO UPDATE SET"
							  "  failures = $5,"
							  "  retry_at = now() + least(600, 2 ^ $5) * interval '1 second',"
							  "  last_error = $4, last_error_at = now()",
							  6, argtypes, values, nulls, false, 0);
	SPI_finish();
}

/*
 * Count again the queued changes of p up to its last_queue_id, and whether
 * one of them edits or removes a label.  Read its failures again too,
 * because an hl_train resets them.
 */
static void
hl_recount_queue(HlPendingModel *p)
{
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		values[2];
	bool		isnull;

	values[0] = Int32GetDatum(p->model_id);
	values[1] = Int64GetDatum(p->last_queue_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT count(*)::int4, coalesce(bool_or(change <> 'I'), false),"
							  "       coalesce((SELECT s.failures FROM humanloop.worker_state s"
							  "                 WHERE s.model_id = $1), 0)"
							  "  FROM humanloop.label_queue WHERE model_id = $1 AND queue_id <= $2",
							  2, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read humanloop.label_queue");
	p->changes = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	p->edits = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	p->failures = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	SPI_finish();
}

/*
 * Stop watching model_id when its relation or the relation of its labels no
 * longer exists, and log it.  A missing table met through a view or a
 * function is no reason to stop.  Triggers left on a surviving labels
 * relation stay until hl_drop_model: dropping them here would wait for the
 * annotators' locks on that table.
 */
static void
hl_stop_watching_if_dropped(int32 model_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Oid			relation;
	Oid			labels_relation;
	bool		dropped;

	values[0] = Int32GetDatum(model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT relation::oid, labels_relation::oid FROM humanloop.models"
							  " WHERE model_id = $1 FOR KEY SHARE",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read model %d", model_id);

	/* A model dropped meanwhile needs nothing more. */
	if (SPI_processed == 0)
	{
		SPI_finish();
		return;
	}
	relation = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	labels_relation = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		labels_relation = InvalidOid;
	dropped = !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relation)) ||
		(OidIsValid(labels_relation) &&
		 !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(labels_relation)));
	if (dropped &&
		SPI_execute_with_args("UPDATE humanloop.models SET watched = false WHERE model_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not stop watching model %d", model_id);
	SPI_finish();
	if (dropped)
		ereport(LOG,
				(errmsg("humanloop: stopped watching model %d because its relation no longer exists", model_id),
				 errhint("Drop the model with hl_drop_model, and create it again on the new relation.")));
}

/*
 * Update one model in a transaction of its own, as its owner.  Returns the
 * new version, or 0 when an hl_train took the queued changes first.  Errors
 * propagate to the caller, which rolls back.
 */
static int32
hl_update_one(HlPendingModel *p, bool *full, int32 *labelled)
{
	HlModelDef *def;
	HlTrainResult result;
	Oid			save_userid;
	int			save_sec_context;
	int32		threshold;
	bool		spans;
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		values[2];

	def = hl_catalog_fetch_model_by_id(p->model_id, true);

	/*
	 * An hl_train that held the model's lock may have stored a version,
	 * learned the changes read before the wait and taken them off the
	 * queue.  The snapshot taken before the wait does not include them.
	 */
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	hl_recount_queue(p);
	if (p->changes == 0)
		return 0;

	/* Act with the owner's privileges, as REFRESH MATERIALIZED VIEW does. */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(def->owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	hl_source_check(def);
	spans = strcmp(def->task, "spans") == 0;
	threshold = p->full_retrain_labels > 0 ? p->full_retrain_labels : hl_full_retrain_labels;
	*full = spans || p->edits || def->current_version == 0 ||
		p->labels_since_full + p->changes >= threshold;
	if (!*full)
		*full = !hl_update_model(def, p->last_queue_id, &result);
	if (*full)
		hl_train_model(def, &result);

	SetUserIdAndSecContext(save_userid, save_sec_context);

	/* The changes are in the new version: take them off the queue. */
	values[0] = Int32GetDatum(p->model_id);
	values[1] = Int64GetDatum(p->last_queue_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM humanloop.label_queue WHERE model_id = $1 AND queue_id <= $2",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from humanloop.label_queue");
	SPI_finish();

	/* A span retrain can take a minute of CPU; the next one waits for the interval. */
	hl_record_state(p->model_id, *full, p->changes, NULL, 0,
					spans ? hl_span_retrain_interval : 0);
	*labelled = result.labelled_rows;
	return result.version;
}

/*
 * Copy the error being handled into work_context, clear it and abort its
 * transaction.  work_context is current again on return: the abort leaves
 * TopMemoryContext current, where anything allocated next would stay.
 */
static ErrorData *
hl_catch_error(MemoryContext work_context)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(work_context);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(work_context);
	return edata;
}

/*
 * Record the failure of p's update in a transaction of its own.  An error
 * here, such as the model dropped meanwhile, is logged and does not end
 * the worker.  NOTE: the failure count is then not stored, so the model
 * is retried at the next naptime instead of after a backoff.
 */
static void
hl_record_failure(HlPendingModel *p, const char *message, int sqlerrcode,
				  MemoryContext work_context)
{
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		hl_record_state(p->model_id, false, 0, message, p->failures + 1, 0);

		/*
		 * A dropped relation never comes back under the model's oid, so
		 * retrying would only fill the log.
		 */
		if (sqlerrcode == ERRCODE_UNDEFINED_TABLE)
			hl_stop_watching_if_dropped(p->model_id);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = hl_catch_error(work_context);

		ereport(LOG,
				(errmsg("humanloop: could not record the failure of model %d: %s",
						p->model_id, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* Update one pending model, catching and recording its failure. */
static void
hl_process_model(HlPendingModel *p, MemoryContext work_context)
{
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		instr_time	elapsed;
		bool		full = false;
		int32		labelled = 0;
		int32		version;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "humanloop: updating a model");
		version = hl_update_one(p, &full, &labelled);
		PopActiveSnapshot();
		CommitTransactionCommand();

		/* Committed: the copy the fast update changed is now that version. */
		if (version > 0)
			hl_model_cache_commit_pending(version);

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		if (version > 0)
			ereport(LOG,
					(errmsg_plural("humanloop: model %d version %d: %s with %d label change, %d labelled rows, %.1f ms",
								   "humanloop: model %d version %d: %s with %d label changes, %d labelled rows, %.1f ms",
								   p->changes,
								   p->model_id, version, full ? "full retrain" : "fast update",
								   p->changes, labelled, INSTR_TIME_GET_MILLISEC(elapsed))));
	}
	PG_CATCH();
	{
		ErrorData  *edata = hl_catch_error(work_context);
		char	   *message;

		hl_model_cache_discard_pending();

		/*
		 * The error context names the row of a bad label (for example a span
		 * label that is not JSON), so it is recorded with the message.
		 */
		message = edata->context != NULL ?
			psprintf("%s (%s)", edata->message, edata->context) : edata->message;
		ereport(LOG,
				(errmsg("humanloop: could not update model %d: %s", p->model_id, message),
				 errdetail("Its queued changes stay queued; retry %d follows with backoff.",
						   p->failures + 1)));

		hl_record_failure(p, message, edata->sqlerrcode, work_context);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Process every pending model; one model's failure does not stop the
 * others.
 */
static void
hl_process_queue(void)
{
	MemoryContext work_context = AllocSetContextCreate(CurrentMemoryContext,
													   "humanloop worker",
													   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(work_context);
	List	   *volatile pending = NIL;
	ListCell   *lc;

	PG_TRY();
	{
		pending = hl_pending_models();
	}
	PG_CATCH();
	{
		ErrorData  *edata = hl_catch_error(work_context);

		ereport(LOG,
				(errmsg("humanloop: could not read the label queue: %s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();

	foreach(lc, pending)
	{
		CHECK_FOR_INTERRUPTS();
		hl_process_model(lfirst(lc), work_context);
	}

	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work_context);
}

/* Wait until no latch has been set for humanloop.worker_debounce, ten periods at most. */
static void
hl_debounce(void)
{
	for (int i = 0; i < 10 && hl_worker_debounce > 0; i++)
	{
		int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   hl_worker_debounce, PG_WAIT_EXTENSION);

		if (!(rc & WL_LATCH_SET))
			return;
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}


/*
 * Return the number of watched models of this database, or -1 when it has
 * no humanloop extension.
 */
static int64
hl_count_watched_models(void)
{
	int64		count = -1;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(get_extension_oid("humanloop", true)))
	{
		bool		isnull;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT count(*) FROM humanloop.models WHERE watched", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not count the watched models in humanloop.models");
		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return count;
}

/*
 * Return the milliseconds until the earliest retry_at of a watched model
 * with queued changes, or -1 when no model waits for its retry_at.  A model
 * waits there after a failure or after a span retrain.
 */
static int64
hl_next_retry_delay(void)
{
	int64		delay = -1;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(get_extension_oid("humanloop", true)))
	{
		bool		isnull;
		Datum		value;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT ceil(extract(epoch FROM min(s.retry_at) - clock_timestamp()) * 1000)::int8"
						"  FROM humanloop.worker_state s"
						"  JOIN humanloop.models m ON m.model_id = s.model_id"
						" WHERE m.watched AND s.retry_at > clock_timestamp()"
						"   AND EXISTS (SELECT 1 FROM humanloop.label_queue q WHERE q.model_id = s.model_id)",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read humanloop.worker_state");
		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			delay = Max(DatumGetInt64(value), 1);
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return delay;
}

/*
 * Release this worker's slot and exit when the database has no watched
 * model, unless a commit asked for the worker meanwhile.  Returns when the
 * worker has work.  serving is true once the worker has served the
 * database, and only then is its exit logged at LOG level.
 */
static void
hl_exit_unless_watched(bool serving)
{
	for (;;)
	{
		uint32		requests;
		int64		watched;
		bool		released = false;

		SpinLockAcquire(&hl_shared->mutex);
		requests = hl_my_slot->watch_requests;
		SpinLockRelease(&hl_shared->mutex);

		watched = hl_count_watched_models();
		if (watched > 0)
			return;

		/* A commit after the count may have watched a model: count again. */
		SpinLockAcquire(&hl_shared->mutex);
		if (hl_my_slot->watch_requests == requests)
		{
			hl_my_slot->database = InvalidOid;
			hl_my_slot->state = HL_SLOT_FREE;
			hl_my_slot->pid = 0;
			hl_my_slot->latch = NULL;
			released = true;
		}
		SpinLockRelease(&hl_shared->mutex);
		if (!released)
			continue;

		if (serving)
			ereport(LOG,
					(errmsg("humanloop worker for database \"%s\" stopped: %s", hl_database_name,
							watched < 0 ? "the extension was dropped" : "no model is watched")));
		else
			ereport(DEBUG1,
					(errmsg("humanloop worker for database \"%s\" exits at once: %s", hl_database_name,
							watched < 0 ? "no humanloop extension" : "no model is watched")));
		proc_exit(0);
	}
}

/*
 * Hand the slot back to the launcher when the worker exits without
 * releasing it (an error, pg_terminate_backend, shutdown), so that the
 * launcher restarts it.
 */
static void
hl_worker_exit(int code, Datum arg)
{
	bool		marked = false;
	Latch	   *launcher = NULL;

	SpinLockAcquire(&hl_shared->mutex);
	if (hl_my_slot->generation == hl_my_generation && hl_my_slot->pid == MyProcPid)
	{
		hl_my_slot->state = HL_SLOT_EXITED;
		hl_my_slot->pid = 0;
		hl_my_slot->latch = NULL;
		launcher = hl_shared->launcher_latch;
		marked = true;
	}
	SpinLockRelease(&hl_shared->mutex);

	if (launcher != NULL)
		SetLatch(launcher);
	if (marked)
		ereport(LOG, (errmsg("humanloop worker for database \"%s\" stopped with exit code %d",
							 hl_database_name, code)));
}

void
hl_worker_main(Datum arg)
{
	int			index = DatumGetInt32(arg);
	HlWorkerStartInfo info;
	bool		attached = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&info, MyBgworkerEntry->bgw_extra, sizeof(info));
	if (index < 0 || index >= hl_shared->n_slots)
		elog(ERROR, "humanloop worker slot %d is outside 0..%d", index, hl_shared->n_slots - 1);
	hl_my_slot = &hl_shared->slots[index];
	hl_my_generation = info.generation;

	/*
	 * Connect as the bootstrap superuser; every update runs with its model
	 * owner's privileges (hl_update_one), never with these.
	 */
	BackgroundWorkerInitializeConnectionByOid(info.database, InvalidOid, 0);

	/*
	 * An update reads what an hl_train it waited for has committed, so it
	 * needs a fresh snapshot per statement, whatever the server's default.
	 */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);


	/* Attach only to the launch that started this process. */
	SpinLockAcquire(&hl_shared->mutex);
	if (hl_my_slot->database == info.database && hl_my_slot->generation == info.generation &&
		hl_my_slot->state == HL_SLOT_STARTING)
	{
		hl_my_slot->state = HL_SLOT_RUNNING;
		hl_my_slot->pid = MyProcPid;
		hl_my_slot->latch = MyLatch;
		attached = true;
	}
	SpinLockRelease(&hl_shared->mutex);
	if (!attached)
		proc_exit(0);
	before_shmem_exit(hl_worker_exit, (Datum) 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	strlcpy(hl_database_name, get_database_name(info.database), NAMEDATALEN);
	CommitTransactionCommand();

	hl_exit_unless_watched(false);
	ereport(LOG, (errmsg("humanloop worker for database \"%s\" started",
						 hl_database_name)));

	/* Changes queued while no worker ran are processed at once. */
	for (;;)
	{
		int			rc;
		int64		timeout = hl_worker_naptime;
		int64		retry_delay;

		hl_process_queue();

		/* Wake up for the next model whose retry_at comes before the nap ends. */
		retry_delay = hl_next_retry_delay();
		if (retry_delay >= 0 && retry_delay < timeout)
			timeout = retry_delay;
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   (long) timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (rc & WL_LATCH_SET)
			hl_debounce();
		hl_exit_unless_watched(true);
	}
}

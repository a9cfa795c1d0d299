/*
 * worker.c
 *		The background worker that keeps watched models current: a launcher
 *		and one worker per database, sharing a small array in shared memory.
 *
 * With shared_preload_libraries = 'humanloop' the postmaster starts the
 * launcher.  It reads pg_database and starts a worker for every database
 * that accepts connections.  A worker whose database lacks the extension
 * exits at once, and hl_watch requests a worker from the launcher when its
 * database has none.  At most humanloop.max_workers databases have a worker.
 *
 * A worker sleeps on its latch.  The label triggers installed by hl_watch
 * record each change in humanloop.label_queue and set the worker's latch
 * when their transaction commits; the worker then waits for
 * humanloop.worker_debounce of quiet (so a burst becomes one update) and
 * processes every model with queued changes, each in a transaction of its
 * own and with the privileges of the model's owner.  New labels get the
 * fast Bayesian update; edits, removals, a new class, or enough labels since
 * the last full retrain (humanloop.full_retrain_labels) get a full retrain.
 * A failed update is rolled back whole, so the queue and the current version
 * stay as they were; the error is recorded in humanloop.worker_state and the
 * model is retried with exponential backoff while other models go on.
 *
 * Each transaction of the launcher and the workers sets a new statement
 * start time first, since now() in a background worker otherwise stays at
 * the time the process started.
 *
 * Shared memory: HlWorkerShared, protected by its spinlock.  A slot with a
 * database and pid 0 is a request the launcher has not served yet.
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

#include "catalog.h"
#include "model_cache.h"
#include "text_source.h"
#include "train.h"
#include "update.h"
#include "worker.h"

/* One database's worker, or a request for one. */
typedef struct HlWorkerSlot
{
	Oid			database;		/* InvalidOid: free */
	pid_t		pid;			/* 0: requested or starting */
	Latch	   *latch;
} HlWorkerSlot;

typedef struct HlWorkerShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	int			n_slots;
	HlWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} HlWorkerShared;

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

static int	hl_max_workers = 8;
static int	hl_worker_naptime = 10000;
static int	hl_worker_debounce = 20;

static HlWorkerShared *hl_shared = NULL;
static char hl_database_name[NAMEDATALEN];
static bool hl_wake_pending = false;
static bool hl_xact_callback_registered = false;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Size of the shared state. */
static Size
hl_shared_size(void)
{
	return add_size(offsetof(HlWorkerShared, slots),
					mul_size(sizeof(HlWorkerSlot), hl_max_workers));
}

#if PG_VERSION_NUM >= 150000
/* Reserve the shared state (PostgreSQL 15 and later ask in this hook). */
static void
hl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hl_shared_size());
}
#endif

/* Create or attach to the shared state. */
static void
hl_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	hl_shared = ShmemInitStruct("humanloop worker state", hl_shared_size(), &found);
	if (!found)
	{
		memset(hl_shared, 0, hl_shared_size());
		SpinLockInit(&hl_shared->mutex);
		hl_shared->n_slots = hl_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

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
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = hl_shmem_request;
#else
	RequestAddinShmemSpace(hl_shared_size());
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = hl_shmem_startup;

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

/* Return the slot of database, or NULL; the caller holds the spinlock. */
static HlWorkerSlot *
hl_find_slot(Oid database)
{
	for (int i = 0; i < hl_shared->n_slots; i++)
		if (hl_shared->slots[i].database == database)
			return &hl_shared->slots[i];
	return NULL;
}

void
hl_worker_request(void)
{
	HlWorkerSlot *slot;
	Latch	   *launcher = NULL;
	bool		full = false;

	if (!hl_worker_enabled || hl_shared == NULL)
		return;

	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(MyDatabaseId);
	if (slot == NULL)
	{
		slot = hl_find_slot(InvalidOid);
		if (slot == NULL)
			full = true;
		else
		{
			slot->database = MyDatabaseId;
			slot->pid = 0;
			slot->latch = NULL;
			launcher = hl_shared->launcher_latch;
		}
	}
	SpinLockRelease(&hl_shared->mutex);

	if (full)
		ereport(WARNING,
				(errmsg("no humanloop worker is free for database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errhint("Raise humanloop.max_workers (currently %d) and restart the server.",
						 hl_max_workers)));
	if (launcher != NULL)
		SetLatch(launcher);
}

/* At commit, set the latch of the database's worker if a label changed. */
static void
hl_xact_callback(XactEvent event, void *arg)
{
	Latch	   *latch = NULL;
	HlWorkerSlot *slot;

	if (!hl_wake_pending)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		hl_wake_pending = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;

	hl_wake_pending = false;
	if (hl_shared == NULL)
		return;
	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(MyDatabaseId);
	if (slot != NULL)
		latch = slot->latch;
	SpinLockRelease(&hl_shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

void
hl_worker_wake_at_commit(void)
{
	if (!hl_xact_callback_registered)
	{
		RegisterXactCallback(hl_xact_callback, NULL);
		hl_xact_callback_registered = true;
	}
	hl_wake_pending = true;
}

/* Start the worker of database; returns false when no worker process is free. */
static bool
hl_start_worker(Oid database)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "humanloop", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "hl_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "humanloop worker for database %u", database);
	strlcpy(worker.bgw_type, "humanloop worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(database);
	worker.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/* Claim a slot for database and start its worker, unless it has one. */
static void
hl_launch_for(Oid database)
{
	HlWorkerSlot *slot;

	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(database);
	if (slot == NULL)
	{
		slot = hl_find_slot(InvalidOid);
		if (slot != NULL)
		{
			slot->database = database;
			slot->pid = 0;
			slot->latch = NULL;
		}
	}
	SpinLockRelease(&hl_shared->mutex);

	if (slot == NULL)
	{
		ereport(LOG,
				(errmsg("humanloop launcher: no worker slot for database %u", database),
				 errhint("Raise humanloop.max_workers.")));
		return;
	}
	if (!hl_start_worker(database))
	{
		ereport(LOG,
				(errmsg("humanloop launcher: could not start a worker for database %u", database),
				 errhint("Raise max_worker_processes.")));
		SpinLockAcquire(&hl_shared->mutex);
		slot->database = InvalidOid;
		SpinLockRelease(&hl_shared->mutex);
	}
}

/* Start a worker for every database that accepts connections. */
static void
hl_launch_all(void)
{
	List	   *databases = NIL;
	ListCell   *lc;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	MemoryContext outer = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(outer);
		databases = lappend_oid(databases, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();

	foreach(lc, databases)
		hl_launch_for(lfirst_oid(lc));
	list_free(databases);
}

/* Start workers for requests that hl_watch left in the slots. */
static void
hl_launch_requested(void)
{
	Oid			requested[1024];
	int			n = 0;

	SpinLockAcquire(&hl_shared->mutex);
	for (int i = 0; i < hl_shared->n_slots && n < (int) lengthof(requested); i++)
		if (hl_shared->slots[i].database != InvalidOid && hl_shared->slots[i].pid == 0)
		{
			requested[n++] = hl_shared->slots[i].database;
			hl_shared->slots[i].pid = -1;	/* starting */
		}
	SpinLockRelease(&hl_shared->mutex);

	for (int i = 0; i < n; i++)
		if (!hl_start_worker(requested[i]))
		{
			ereport(LOG,
					(errmsg("humanloop launcher: could not start a worker for database %u", requested[i]),
					 errhint("Raise max_worker_processes.")));
			SpinLockAcquire(&hl_shared->mutex);
			for (int j = 0; j < hl_shared->n_slots; j++)
				if (hl_shared->slots[j].database == requested[i])
					hl_shared->slots[j].database = InvalidOid;
			SpinLockRelease(&hl_shared->mutex);
		}
}

/* Forget the launcher's latch when it exits. */
static void
hl_launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&hl_shared->mutex);
	hl_shared->launcher_latch = NULL;
	SpinLockRelease(&hl_shared->mutex);
	ereport(LOG, (errmsg("humanloop launcher stopped")));
}

void
hl_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* No database: the launcher reads only the shared catalog pg_database. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&hl_shared->mutex);
	hl_shared->launcher_latch = MyLatch;
	SpinLockRelease(&hl_shared->mutex);
	before_shmem_exit(hl_launcher_exit, (Datum) 0);
	ereport(LOG, (errmsg("humanloop launcher started")));

	/* Start a worker for each database once; later ones come on request. */
	hl_launch_all();

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 hl_worker_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		hl_launch_requested();
	}
}

/* Free this worker's slot when it exits. */
static void
hl_worker_exit(int code, Datum arg)
{
	HlWorkerSlot *slot;

	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(MyDatabaseId);
	if (slot != NULL && slot->pid == MyProcPid)
	{
		slot->database = InvalidOid;
		slot->pid = 0;
		slot->latch = NULL;
	}
	SpinLockRelease(&hl_shared->mutex);
	if (DatumGetBool(arg))
		ereport(LOG, (errmsg("humanloop worker for database \"%s\" stopped",
							 hl_database_name)));
}

/* Return the models with queued changes whose backoff has passed. */
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
					" WHERE m.watched AND (s.retry_at IS NULL OR s.retry_at <= pg_catalog.now())"
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

/* Record the outcome of one model's update in humanloop.worker_state. */
static void
hl_record_state(int32 model_id, bool full, int32 changes, const char *error,
				int32 failures)
{
	Oid			argtypes[5] = {INT4OID, BOOLOID, INT4OID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = "     ";

	values[0] = Int32GetDatum(model_id);
	values[1] = BoolGetDatum(full);
	values[2] = Int32GetDatum(changes);
	if (error != NULL)
		values[3] = CStringGetTextDatum(error);
	else
		nulls[3] = 'n';
	values[4] = Int32GetDatum(failures);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (error == NULL)
		SPI_execute_with_args("INSERT INTO humanloop.worker_state AS s"
							  " (model_id, last_update, last_full_retrain, labels_since_full)"
							  " VALUES ($1, now(), CASE WHEN $2 THEN now() END, CASE WHEN $2 THEN 0 ELSE $3 END)"
							  " ON CONFLICT (model_id) DO UPDATE SET"
							  "  last_update = now(),"
							  "  last_full_retrain = CASE WHEN $2 THEN now() ELSE s.last_full_retrain END,"
							  "  labels_since_full = CASE WHEN $2 THEN 0 ELSE s.labels_since_full + $3 END,"
							  "  failures = 0, retry_at = NULL",
							  5, argtypes, values, nulls, false, 0);
	else
		SPI_execute_with_args("INSERT INTO humanloop.worker_state AS s"
							  " (model_id, failures, retry_at, last_error, last_error_at)"
							  " VALUES ($1, $5, now() + least(600, 2 ^ $5) * interval '1 second', $4, now())"
							  " ON CONFLICT (model_id) DO UPDATE SET"
							  "  failures = $5,"
							  "  retry_at = now() + least(600, 2 ^ $5) * interval '1 second',"
							  "  last_error = $4, last_error_at = now()",
							  5, argtypes, values, nulls, false, 0);
	SPI_finish();
}

/*
 * Update one model in a transaction of its own, as its owner.  Returns the
 * new version; errors propagate to the caller, which rolls back.
 */
static int32
hl_update_one(HlPendingModel *p, bool *full, int32 *labelled)
{
	HlModelDef *def;
	HlTrainResult result;
	Oid			save_userid;
	int			save_sec_context;
	int32		threshold;
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		values[2];

	def = hl_catalog_fetch_model_by_id(p->model_id, true);

	/* Act with the owner's privileges, as REFRESH MATERIALIZED VIEW does. */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(def->owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	hl_source_check(def);
	threshold = p->full_retrain_labels > 0 ? p->full_retrain_labels : hl_full_retrain_labels;
	*full = p->edits || def->current_version == 0 ||
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

	hl_record_state(p->model_id, *full, p->changes, NULL, 0);
	*labelled = result.labelled_rows;
	return result.version;
}

/* Update one pending model, catching and recording its failure. */
static void
hl_process_model(HlPendingModel *p, MemoryContext work_context)
{
	instr_time	start;
	instr_time	elapsed;
	bool		full = false;
	int32		labelled = 0;
	int32		version;

	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "humanloop: updating a model");
		version = hl_update_one(p, &full, &labelled);
		PopActiveSnapshot();
		CommitTransactionCommand();

		/* Committed: the copy the fast update changed is now that version. */
		hl_model_cache_commit_pending(version);

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		ereport(LOG,
				(errmsg("humanloop: model %d version %d: %s with %d label changes, %d labelled rows, %.1f ms",
						p->model_id, version, full ? "full retrain" : "fast update",
						p->changes, labelled, INSTR_TIME_GET_MILLISEC(elapsed))));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(work_context);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		hl_model_cache_discard_pending();

		ereport(LOG,
				(errmsg("humanloop: could not update model %d: %s", p->model_id, edata->message),
				 errdetail("Its queued changes stay queued; retry %d follows with backoff.",
						   p->failures + 1)));

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		hl_record_state(p->model_id, false, 0, edata->message, p->failures + 1);
		PopActiveSnapshot();
		CommitTransactionCommand();
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Process every pending model; one model's failure does not stop the
 * others.  Returns false when the extension is gone from the database.
 */
static bool
hl_process_queue(void)
{
	MemoryContext work_context = AllocSetContextCreate(CurrentMemoryContext,
													   "humanloop worker",
													   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(work_context);
	List	   *volatile pending = NIL;
	ListCell   *lc;
	bool		has_extension;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	has_extension = OidIsValid(get_extension_oid("humanloop", true));
	CommitTransactionCommand();
	MemoryContextSwitchTo(work_context);

	if (has_extension)
	{
		PG_TRY();
		{
			pending = hl_pending_models();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(work_context);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			ereport(LOG,
					(errmsg("humanloop: could not read the label queue: %s", edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}

	foreach(lc, pending)
	{
		CHECK_FOR_INTERRUPTS();
		hl_process_model(lfirst(lc), work_context);
	}

	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work_context);
	return has_extension;
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

void
hl_worker_main(Datum arg)
{
	Oid			database = DatumGetObjectId(arg);
	HlWorkerSlot *slot;
	bool		has_extension;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Connect as the bootstrap superuser; every update runs with its model
	 * owner's privileges (hl_update_one), never with these.
	 */
	BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);

	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(database);
	if (slot != NULL && (slot->pid <= 0 || slot->pid == MyProcPid))
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
	}
	else
		slot = NULL;
	SpinLockRelease(&hl_shared->mutex);
	if (slot == NULL)
		proc_exit(0);			/* another worker serves this database */

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	has_extension = OidIsValid(get_extension_oid("humanloop", true));
	strlcpy(hl_database_name, get_database_name(database), NAMEDATALEN);
	CommitTransactionCommand();
	before_shmem_exit(hl_worker_exit, BoolGetDatum(has_extension));
	if (!has_extension)
		proc_exit(0);

	ereport(LOG, (errmsg("humanloop worker for database \"%s\" started",
						 hl_database_name)));

	/* Changes queued while no worker ran are processed at once. */
	for (;;)
	{
		int			rc;

		if (!hl_process_queue())
		{
			ereport(LOG, (errmsg("humanloop worker for database \"%s\": the extension was dropped",
								 hl_database_name)));
			proc_exit(0);
		}

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   hl_worker_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (rc & WL_LATCH_SET)
			hl_debounce();
	}
}

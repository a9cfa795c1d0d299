/*
 * launcher.c
 *		The humanloop launcher: starts, watches and restarts the per-database
 *		workers.
 *
 * The postmaster starts the launcher when humanloop is preloaded.  The
 * launcher cannot look inside a database, because it connects to none, so
 * it finds the databases that need a worker in two ways:
 *
 * - At its start it reads pg_database and starts a short-lived worker in
 *   each database that accepts connections, as many at once as slots are
 *   free.  A worker whose database has no watched model releases its slot
 *   and exits at once, and the launcher goes on with the next database.
 * - Later, the commit of hl_watch or of a watched label change claims a
 *   slot for its database (worker_slots.c), and the launcher starts it.
 *
 * Every worker is registered with the launcher as its notify process, so
 * the postmaster sets the launcher's latch when a worker starts or stops.
 * A worker that exits without releasing its slot (an error, a
 * pg_terminate_backend) is started again after a delay.  The delay doubles,
 * from 1 second up to 1 minute, for each such exit within a minute of the
 * start, so a worker that keeps failing does not spin.
 */
#include "compat.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "worker.h"
#include "worker_slots.h"

/* The first restart delay, and its cap after repeated quick exits. */
#define HL_RESTART_DELAY_MS 1000
#define HL_RESTART_DELAY_MAX_MS 60000

/* A worker that ran this long before failing is restarted after the first delay again. */
#define HL_QUICK_EXIT_MS 60000

/* The launcher's handle of each slot's worker, valid for the generation in hl_handle_generations. */
static BackgroundWorkerHandle **hl_handles = NULL;
static uint32 *hl_handle_generations = NULL;

/* Databases read from pg_database at start that have not had a slot yet. */
static List *hl_databases_to_probe = NIL;

/* Register a worker for slot number index; returns false when no process is free. */
static bool
hl_register_worker(int index, Oid database, uint32 generation)
{
	BackgroundWorker worker;
	HlWorkerStartInfo info;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "humanloop", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "hl_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "humanloop worker for database %u", database);
	strlcpy(worker.bgw_type, "humanloop worker", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(index);
	info.database = database;
	info.generation = generation;
	StaticAssertStmt(sizeof(info) <= BGW_EXTRALEN, "HlWorkerStartInfo must fit in bgw_extra");
	memcpy(worker.bgw_extra, &info, sizeof(info));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return false;

	if (hl_handles[index] != NULL)
		pfree(hl_handles[index]);
	hl_handles[index] = handle;
	hl_handle_generations[index] = generation;
	return true;
}

/* Return whether database still exists. */
static bool
hl_database_exists(Oid database)
{
	bool		exists;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(database));
	CommitTransactionCommand();
	return exists;
}

/* Read the databases that accept connections into hl_databases_to_probe. */
static void
hl_read_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

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
		old = MemoryContextSwitchTo(TopMemoryContext);
		hl_databases_to_probe = lappend_oid(hl_databases_to_probe, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Give databases still to probe a free slot each, while slots are free. */
static void
hl_probe_databases(void)
{
	while (hl_databases_to_probe != NIL)
	{
		Oid			database = linitial_oid(hl_databases_to_probe);
		bool		claimed = true;

		SpinLockAcquire(&hl_shared->mutex);
		if (hl_find_slot(database) == NULL)
		{
			HlWorkerSlot *slot = hl_find_slot(InvalidOid);

			if (slot != NULL)
				hl_slot_request(slot, database);
			else
				claimed = false;
		}
		SpinLockRelease(&hl_shared->mutex);

		/* Every slot is taken: try again when a worker exits. */
		if (!claimed)
			return;
		hl_databases_to_probe = list_delete_first(hl_databases_to_probe);
	}
}

/*
 * Turn the slots whose worker exited without releasing them into requests
 * for a restart after the delay, and log each.
 */
static void
hl_reap_workers(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < hl_shared->n_slots; i++)
	{
		HlWorkerSlot *slot = &hl_shared->slots[i];
		bool		stopped = false;
		Oid			database = InvalidOid;
		int			delay_ms = 0;
		pid_t		pid;

		/* The handle also reports a worker that died before it could mark its slot. */
		if (hl_handles[i] != NULL &&
			GetBackgroundWorkerPid(hl_handles[i], &pid) == BGWH_STOPPED)
		{
			stopped = true;
			pfree(hl_handles[i]);
			hl_handles[i] = NULL;
		}

		SpinLockAcquire(&hl_shared->mutex);
		if (slot->state == HL_SLOT_EXITED ||
			(stopped && slot->generation == hl_handle_generations[i] &&
			 (slot->state == HL_SLOT_STARTING || slot->state == HL_SLOT_RUNNING)))
		{
			if (TimestampDifferenceExceeds(slot->started_at, now, HL_QUICK_EXIT_MS))
				slot->quick_exits = 0;
			delay_ms = HL_RESTART_DELAY_MS << Min(slot->quick_exits, 6);
			delay_ms = Min(delay_ms, HL_RESTART_DELAY_MAX_MS);
			slot->quick_exits++;
			slot->state = HL_SLOT_REQUESTED;
			slot->pid = 0;
			slot->latch = NULL;
			slot->restart_at = TimestampTzPlusMilliseconds(now, delay_ms);
			database = slot->database;
		}
		SpinLockRelease(&hl_shared->mutex);

		if (OidIsValid(database))
			ereport(LOG,
					(errmsg("humanloop launcher: the worker for database %u exited unexpectedly, restarting it in %d ms",
							database, delay_ms)));
	}
}

/*
 * Start the workers of requested slots whose time has come.  Returns the
 * milliseconds until the next delayed start, or -1 when none waits.
 */
static long
hl_start_requested(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next_ms = -1;

	for (int i = 0; i < hl_shared->n_slots; i++)
	{
		HlWorkerSlot *slot = &hl_shared->slots[i];
		Oid			database = InvalidOid;
		uint32		generation = 0;
		bool		restart = false;

		SpinLockAcquire(&hl_shared->mutex);
		if (slot->state == HL_SLOT_REQUESTED)
		{
			if (slot->restart_at <= now)
			{
				database = slot->database;
				generation = ++slot->generation;
				restart = slot->quick_exits > 0;
				slot->state = HL_SLOT_STARTING;
				slot->started_at = now;
			}
			else
			{
				long		wait_ms = (long) ((slot->restart_at - now) / 1000) + 1;

				if (next_ms < 0 || wait_ms < next_ms)
					next_ms = wait_ms;
			}
		}
		SpinLockRelease(&hl_shared->mutex);

		if (!OidIsValid(database))
			continue;

		/* A database dropped since its worker failed needs no worker. */
		if (restart && !hl_database_exists(database))
		{
			ereport(LOG,
					(errmsg("humanloop launcher: database %u no longer exists, its worker is not restarted",
							database)));
			SpinLockAcquire(&hl_shared->mutex);
			if (slot->generation == generation)
			{
				slot->database = InvalidOid;
				slot->state = HL_SLOT_FREE;
			}
			SpinLockRelease(&hl_shared->mutex);
			continue;
		}

		if (!hl_register_worker(i, database, generation))
		{
			ereport(LOG,
					(errmsg("humanloop launcher: could not start a worker for database %u", database),
					 errdetail("No background worker process is free."),
					 errhint("Raise max_worker_processes; it must leave room for humanloop.max_workers + 1 processes.")));
			SpinLockAcquire(&hl_shared->mutex);
			if (slot->generation == generation)
			{
				slot->database = InvalidOid;
				slot->state = HL_SLOT_FREE;
			}
			SpinLockRelease(&hl_shared->mutex);
		}
	}
	return next_ms;
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

	hl_handles = MemoryContextAllocZero(TopMemoryContext,
										sizeof(BackgroundWorkerHandle *) * hl_shared->n_slots);
	hl_handle_generations = MemoryContextAllocZero(TopMemoryContext,
												   sizeof(uint32) * hl_shared->n_slots);

	/*
	 * NOTE: after a restart of the launcher alone (it failed, the server
	 * did not), it has no handles of the running workers.  Their own exit
	 * still marks their slots for a restart, but a worker that dies before
	 * it attaches to its slot keeps the slot until the server restarts.
	 */
	SpinLockAcquire(&hl_shared->mutex);
	hl_shared->launcher_latch = MyLatch;
	SpinLockRelease(&hl_shared->mutex);
	before_shmem_exit(hl_launcher_exit, (Datum) 0);
	ereport(LOG, (errmsg("humanloop launcher started")));

	hl_read_databases();

	for (;;)
	{
		long		timeout;
		long		next_start;

		hl_reap_workers();
		hl_probe_databases();
		next_start = hl_start_requested();

		timeout = hl_worker_naptime;
		if (next_start >= 0 && next_start < timeout)
			timeout = next_start;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

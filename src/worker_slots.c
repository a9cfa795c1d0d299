/*
 * worker_slots.c
 *		The shared array of worker slots, and how ordinary backends use it:
 *		hl_watch and the label triggers make sure that their database has a
 *		worker and wake it when their transaction commits.
 *
 * A backend acts only at commit, because a worker that starts or looks
 * for watched models before the commit would not see them.  At commit it
 * claims a free slot for its database when there is none, which the
 * launcher then serves, or bumps the slot's watch_requests and sets the
 * running worker's latch.  A worker that finds no watched model and is
 * about to release its slot checks watch_requests first, so a commit that
 * its snapshot missed cannot leave a watched model without a worker.
 */
#include "compat.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "worker.h"
#include "worker_slots.h"

HlWorkerShared *hl_shared = NULL;
int			hl_max_workers = 8;

static bool hl_worker_needed = false;
static bool hl_xact_callback_registered = false;

#ifdef HL_HAVE_SHMEM_REQUEST_HOOK
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

#ifdef HL_HAVE_SHMEM_REQUEST_HOOK
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
hl_worker_slots_init(void)
{
#ifdef HL_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = hl_shmem_request;
#else
	RequestAddinShmemSpace(hl_shared_size());
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = hl_shmem_startup;
}

HlWorkerSlot *
hl_find_slot(Oid database)
{
	for (int i = 0; i < hl_shared->n_slots; i++)
	{
		HlWorkerSlot *slot = &hl_shared->slots[i];

		if (slot->database == database && (OidIsValid(database) || slot->state == HL_SLOT_FREE))
			return slot;
	}
	return NULL;
}

void
hl_slot_request(HlWorkerSlot *slot, Oid database)
{
	slot->database = database;
	slot->state = HL_SLOT_REQUESTED;
	slot->pid = 0;
	slot->latch = NULL;
	slot->restart_at = 0;
	slot->quick_exits = 0;
}

/*
 * At commit of a transaction that watched a model or changed a watched
 * label, make sure the database has a worker and wake it.
 */
static void
hl_xact_callback(XactEvent event, void *arg)
{
	HlWorkerSlot *slot;
	Latch	   *latch = NULL;

	if (!hl_worker_needed)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		hl_worker_needed = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;

	hl_worker_needed = false;
	if (hl_shared == NULL)
		return;

	SpinLockAcquire(&hl_shared->mutex);
	slot = hl_find_slot(MyDatabaseId);
	if (slot != NULL)
	{
		slot->watch_requests++;
		latch = slot->latch;
	}
	else
	{
		/* No slot: ask the launcher, unless every slot is taken. */
		slot = hl_find_slot(InvalidOid);
		if (slot != NULL)
		{
			hl_slot_request(slot, MyDatabaseId);
			latch = hl_shared->launcher_latch;
		}
	}
	SpinLockRelease(&hl_shared->mutex);

	if (latch != NULL)
		SetLatch(latch);
}

/* Call hl_xact_callback at the end of the current transaction. */
static void
hl_need_worker_at_commit(void)
{
	if (!hl_xact_callback_registered)
	{
		RegisterXactCallback(hl_xact_callback, NULL);
		hl_xact_callback_registered = true;
	}
	hl_worker_needed = true;
}

void
hl_worker_request(void)
{
	bool		full;

	if (!hl_worker_enabled || hl_shared == NULL)
		return;

	hl_need_worker_at_commit();

	/* Warn now, while the caller can still see it.  The slot is claimed at commit. */
	SpinLockAcquire(&hl_shared->mutex);
	full = hl_find_slot(MyDatabaseId) == NULL && hl_find_slot(InvalidOid) == NULL;
	SpinLockRelease(&hl_shared->mutex);
	if (full)
		ereport(WARNING,
				(errmsg("no humanloop worker is free for database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("All %d worker slots serve other databases.", hl_max_workers),
				 errhint("Raise humanloop.max_workers and restart the server; label changes stay queued until a worker is free.")));
}

void
hl_worker_wake_at_commit(void)
{
	hl_need_worker_at_commit();
}

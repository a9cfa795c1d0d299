/*
 * worker_slots.h
 *		The shared-memory array through which backends, the launcher and the
 *		per-database workers agree on which database has a worker.
 */
#ifndef HL_WORKER_SLOTS_H
#define HL_WORKER_SLOTS_H

#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* The life cycle of a slot; every change happens under HlWorkerShared.mutex. */
typedef enum HlSlotState
{
	HL_SLOT_FREE = 0,			/* no database */
	HL_SLOT_REQUESTED,			/* the launcher starts a worker at restart_at */
	HL_SLOT_STARTING,			/* registered with the postmaster, not attached yet */
	HL_SLOT_RUNNING,			/* the worker runs with pid and latch */
	HL_SLOT_EXITED				/* the worker failed or was terminated */
} HlSlotState;

/* One database's worker, or a request for one. */
typedef struct HlWorkerSlot
{
	Oid			database;
	HlSlotState state;
	uint32		generation;		/* bumped at each start, so a stale worker cannot attach */
	pid_t		pid;			/* 0 unless RUNNING */
	Latch	   *latch;			/* NULL unless RUNNING */
	uint32		watch_requests; /* bumped at each commit that needs this worker */
	TimestampTz restart_at;		/* REQUESTED: the earliest start */
	TimestampTz started_at;		/* STARTING, RUNNING: when the launcher started it */
	int			quick_exits;	/* failed exits in a row soon after a start */
} HlWorkerSlot;

typedef struct HlWorkerShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	int			n_slots;
	HlWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} HlWorkerShared;

/* What a launcher passes to a worker in bgw_extra. */
typedef struct HlWorkerStartInfo
{
	Oid			database;
	uint32		generation;
} HlWorkerStartInfo;

/* Set when humanloop is preloaded, after the postmaster created the state. */
extern HlWorkerShared *hl_shared;

/* humanloop.max_workers: the number of slots. */
extern int	hl_max_workers;

/* Install the hooks that reserve and create the shared state (preloading only). */
extern void hl_worker_slots_init(void);

/* Return the slot of database, or NULL; the caller holds the spinlock. */
extern HlWorkerSlot *hl_find_slot(Oid database);

/* Reset slot to serve database from the launcher's next pass; the caller holds the spinlock. */
extern void hl_slot_request(HlWorkerSlot *slot, Oid database);

#endif							/* HL_WORKER_SLOTS_H */

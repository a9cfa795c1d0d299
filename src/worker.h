/*
 * worker.h
 *		The background worker that keeps watched models current: a launcher
 *		and one worker per database, sharing a small array in shared memory.
 */
#ifndef HL_WORKER_H
#define HL_WORKER_H

#include "humanloop.h"

/* Whether humanloop was loaded by shared_preload_libraries, so workers run. */
extern bool hl_worker_enabled;

extern int	hl_full_retrain_labels;

/* humanloop.worker_naptime, in milliseconds: the longest sleep of the launcher and the workers. */
extern int	hl_worker_naptime;

/* Define the worker's settings and, when preloaded, its shared memory and launcher. */
extern void hl_worker_init(void);

/* Make sure a worker runs for the current database, asking the launcher if not. */
extern void hl_worker_request(void);

/* Wake the current database's worker when the current transaction commits. */
extern void hl_worker_wake_at_commit(void);

/* Drop the label triggers hl_watch installed for def, if any. */
extern void hl_drop_watch_triggers(const HlModelDef *def);

/* Entry points of the background workers, named in their registration. */
extern PGDLLEXPORT void hl_launcher_main(Datum arg);
extern PGDLLEXPORT void hl_worker_main(Datum arg);

#endif							/* HL_WORKER_H */

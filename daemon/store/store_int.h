/*
 * store_int.h: what store.c (open, schema, workflows, tokens, reads) and store_log.c (the batched attempt log,
 * pruning, counters) share, with store_shared.c (the token cache). Only these files include it; nothing else
 * sees struct store.
 */
#ifndef HOPPER_STORE_INT_H
#define HOPPER_STORE_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Open attempts are found by row id in a chained table; a daemon has about as many as it has workers. */
#define STORE_REC_BUCKETS 256

/* store_log.c's prepared statements. */
enum log_stmt_id {
	LSTMT_BEGIN,
	LSTMT_COMMIT,
	LSTMT_ROLLBACK,
	LSTMT_START,
	LSTMT_FINISH,
	LSTMT_EVENT,
	LSTMT_STEP,
	LSTMT_TOUCH,
	LSTMT_RESTATE,
	LSTMT_PRUNE_EVENTS,
	LSTMT_PRUNE_STEPS,
	LSTMT_PRUNE_ATTEMPTS,
	LSTMT_PRUNE_LOOSE_STEPS,
	LSTMT_REAP,
	LSTMT_MAX_ID,
	LSTMT_COUNT
};

struct store_op;
struct store_rec;

struct store {
	sqlite3 *db;
	sqlite3_stmt **stmt;              /* store.c's statements (STMT_COUNT of them) */
	sqlite3_stmt *lstmt[LSTMT_COUNT]; /* store_log.c's */
	int64_t last_id;                  /* highest attempt id handed out; new ids go above it */

	/* The queue store_flush writes, oldest first, and what it holds. Owned. */
	struct store_op *head, *tail;
	size_t nops, bytes;
	/* Attempts started and not yet finished (their start is needed until the finish is queued). Owned. */
	struct store_rec *recs[STORE_REC_BUCKETS];

	struct store_counters c;
	double busy_since;      /* monotonic time the current run of busy flushes began; 0 if none */
	double failed_at;       /* monotonic time of the last failed batch; 0 if none */
	unsigned logged;        /* error kinds (1 << kind) already logged since the last good commit */
	uint64_t dropped_since; /* rows dropped since the last good commit, for the recovery line */
};

/* store_log.c: called by store_open / store_close. */
int store_log_prepare(struct store *st, char **cause);
void store_log_free(struct store *st);

#endif

/*
 * store: the SQLite execution log. The only module (store.c, store_log.c) that includes sqlite3.h.
 *
 * One row per attempt (table `attempts`), its log lines and progress events (table `attempt_events`) and its
 * workflow steps (table `workflow_steps`); schema in schema/migrations/, applied at open through PRAGMA
 * user_version. WAL mode, synchronous=NORMAL: a crash of the daemon loses no committed row; power loss may
 * lose the last turn's.
 *
 * The attempt log is written in batches and never makes the event loop wait (issue #10, item 9): the
 * store_attempt_*, store_event, store_step and store_token_touch calls only queue their rows in memory (they
 * cannot fail on I/O); store_flush, called once per loop turn from hopperd's prepare hook, writes the queue in
 * one transaction. The loop's connection has no busy timeout: a database locked by another writer makes
 * store_flush return at once with the rows kept for the next turn. A failing database (disk full, I/O error)
 * costs the batch, which is counted (store_counters) and logged once per kind, and jobs keep running: Redis
 * holds the jobs' truth, the log their history.
 *
 * An attempt's row is exact (item 8): the store keeps each open attempt's start in memory until its finish
 * is written, and the finish writes the whole row (an upsert), so an attempt whose start was in a dropped
 * batch still gets its one row when its finish commits.
 */
#ifndef HOPPER_STORE_H
#define HOPPER_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* An attempt's start. The strings are copied. */
struct store_attempt {
	const char *job_id; /* required */
	const char *type;
	const char *queue;
	const char *node;
	int attempt; /* 1-based; 0 for a message that never became a job (malformed) */
	int worker_pid;
	int64_t fence; /* the attempt's fencing token from the claim; 0 = none (a message that never became a job) */
	double created_at; /* the job's real creation time (its hash's created/enqueued time); 0 = unknown: NULL */
	double started_at;
	const char *owner; /* the job's owner; NULL for none (the logs op shows such rows to admin only) */
};

/* Opens or creates the database and brings its schema up to date. NULL on error with *cause set (caller frees). */
struct store *store_open(const char *path, char **cause);
/* Tries once to commit what is pending (store_flush), then closes. NULL is allowed. */
void store_close(struct store *st);

/*
 * Queues an attempt's start (state "running"). Returns its row id (>0), the handle of the later calls, or -1
 * if a is unusable (no job_id). The id is that of the row the attempt will have in the database.
 */
int64_t store_attempt_start(struct store *st, const struct store_attempt *a);
/*
 * Queues an attempt's end. state: succeeded, failed, retrying, dead, cancelled, requeued (stopped by a
 * shutdown), superseded (its fencing token was refused: another claim owns the job, the outcome was not
 * applied) or reaped (its owner was declared dead and the job taken back). error and result_json may be NULL.
 * Returns 0, or -1 for an unknown row (never started, or already finished) or state (logged). The row's
 * handle is invalid afterwards.
 */
int store_attempt_finish(struct store *st, int64_t row, const char *state, double finished_at, const char *error,
                         const char *result_json);
/*
 * Queues a change of a finished attempt's state, for an outcome Redis refused after its row was written
 * (a finish whose reply is "superseded"): the rows of job_id with this fence get `state` (a final state, as
 * for store_attempt_finish) and, if error is not NULL, `error`. Returns 0, or -1 without job_id, a fence or
 * a final state.
 */
int store_attempt_restate(struct store *st, const char *job_id, int64_t fence, const char *state, const char *error);
/* Queues a log line (kind "log") or a progress event (kind "progress") of an open attempt. Strings may be NULL.
 * Returns 0, or -1 for an unknown row or kind. */
int store_event(struct store *st, int64_t row, double at, const char *kind, const char *level, int progress,
                const char *stage, const char *message);
/*
 * Writes the queued rows in one transaction. Returns at once, never waiting for a lock:
 *    0  committed, or nothing was pending;
 *    1  the database is locked by another connection: the rows stay queued for the next turn (store_pending);
 *   -1  the store is failing (disk full, I/O error, a lock held past STORE_BUSY_MAX_S): the batch is dropped
 *       and counted; a later turn tries again with new rows.
 * The caller sends an attempt's final word to Redis only after a 0 or -1, so the row precedes it unless the
 * store is failing.
 */
int store_flush(struct store *st);
/* 1 if rows are queued for store_flush. */
int store_pending(const struct store *st);

/* What the store did since it was opened (the control socket's stats op shows them). */
struct store_counters {
	uint64_t rows_written; /* rows inserted or updated by committed batches */
	uint64_t commits;      /* batches committed */
	uint64_t busy_retries; /* flushes (or prune steps) that found the database locked and kept their rows */
	uint64_t errors_busy;  /* batches dropped because the lock stayed held past STORE_BUSY_MAX_S */
	uint64_t errors_full;  /* SQLITE_FULL: the disk (or its quota) is full */
	uint64_t errors_io;    /* SQLITE_IOERR and other file-level failures */
	uint64_t errors_other; /* anything else (a constraint, a corrupt file...) */
	uint64_t rows_dropped; /* queued rows that never reached the database (failed batches, queue cap) */
	uint64_t pruned;       /* rows deleted by store_prune_step (attempts, events and steps) */
	uint64_t pending;      /* rows queued now */
};
void store_counters(const struct store *st, struct store_counters *out);
/* The counters as a JSON object, names as in struct store_counters. New reference. */
json_t *store_counters_json(const struct store *st);

/*
 * One bounded step of pruning: deletes at most max_rows rows belonging to the oldest attempts that finished
 * before `before` (their events and workflow steps first, then the attempts), in a transaction of its own.
 * Returns the rows deleted, 0 when nothing older is left, or -1 (database locked or failing: counted; try
 * again on a later turn). Never one big DELETE: the loop calls it once per turn until it returns 0.
 */
int store_prune_step(struct store *st, double before, int max_rows);
/*
 * Marks the rows an earlier process of this log left "running" (it was killed) as "reaped" at `at`, with an
 * error saying so; a daemon calls it once at start, before its first attempt. Returns how many, or -1.
 */
int store_reap_running(struct store *st, double at);

/* --- workflow.run (migration 002) --- */
/* One step execution of a workflow run; strings may be NULL except job_id, step_id and state. */
struct store_step {
	int64_t attempt_row; /* the attempts row of the job attempt */
	const char *job_id, *step_id, *type, *state;
	int step_attempt, run_attempt;
	double started_at, finished_at;
	const char *output; /* JSON text excerpt */
	const char *error;
};
/* Queues it (strings copied). Linked to its attempt's row when attempt_row is an open attempt, else NULL.
 * Returns 0, or -1 without job_id, step_id or state. */
int store_step(struct store *st, const struct store_step *r);

/* A stored workflow. From store_workflow_get/list the strings are owned (store_workflow_free). */
struct store_workflow {
	char *name, *description, *definition, *owner;
	int active;
	double created_at, updated_at;
};
/* Inserts or replaces by name (updated_at is the time of this write), committed on return (the workflow and
 * token writes wait at most STORE_ADMIN_BUSY_MS for a lock). Returns 0 or -1 (logged). */
int store_workflow_put(struct store *st, const struct store_workflow *w);
/* 1 with *out filled (caller calls store_workflow_free), 0 if there is none, -1 on error (logged). */
int store_workflow_get(struct store *st, const char *name, struct store_workflow *out);
/* Calls fn for each, by name; w is valid during the call. Returns the count or -1. */
int store_workflow_list(struct store *st, void (*fn)(const struct store_workflow *w, void *arg), void *arg);
/* Committed on return. 1 if removed, 0 if there was none, -1 on error. */
int store_workflow_rm(struct store *st, const char *name);
void store_workflow_free(struct store_workflow *w);
/* --- webhooks of stored workflows (006_webhooks.sql) --- */
struct store_webhook {
	char *token, *workflow, *signature, *secret; /* secret NULL for signature "none" */
	double created_at;
};
/* Creates or replaces the webhook of h->workflow (a new token: rotation), committed on return. 0 or -1 (logged). */
int store_webhook_put(struct store *st, const struct store_webhook *h);
/* By token, or (token NULL) by workflow: 1 with *out filled (caller calls store_webhook_free), 0, or -1. */
int store_webhook_get(struct store *st, const char *token, const char *workflow, struct store_webhook *out);
/* Committed on return. 1 if removed, 0 if there was none, -1 on error. */
int store_webhook_rm(struct store *st, const char *workflow);
/* Frees the strings, wiping the secret. */
void store_webhook_free(struct store_webhook *h);
/* --- control-socket tokens (003_tokens.sql); times 0 mean NULL --- */
struct store_token {
	char id[13];
	char name[65];
	char owner[129];
	char scopes[64]; /* "submit,read" */
	/* Column "hash": the token's verifier (ctl_token_verifier); a row stored before protocol 2 holds
	 * BLAKE2b(secret) until its first unix-socket use replaces it (store_token_set_hash). */
	unsigned char hash[32];
	double created_at, last_used_at, revoked_at;
	int shared; /* 1: in the deployment's shared set (Redis); 0: this node's own (016_tokens_shared.sql) */
};
/* Inserts and commits at once. Returns 0, -2 when the name or id exists, -1 on error (logged). */
int store_token_add(struct store *st, const struct store_token *t);
/* By id / by name. Return 1 (found, *t filled), 0 (absent), -1 (error, logged). */
int store_token_get(struct store *st, const char *id, struct store_token *t);
int store_token_by_name(struct store *st, const char *name, struct store_token *t);
/* Every token, oldest first. Returns the count and *out (caller frees), or -1. */
int store_token_list(struct store *st, struct store_token **out);
/* Sets revoked_at (if not yet) and commits. Returns 1 if revoked now, 0 if it already was or is absent, -1. */
int store_token_revoke(struct store *st, const char *id, double at);
/* Queues last_used_at for the turn's batch. Returns 0. */
int store_token_touch(struct store *st, const char *id, double at);
/* Replaces a token's stored hash (the protocol-2 verifier for a protocol-1 row) and commits. 0 or -1. */
int store_token_set_hash(struct store *st, const char *id, const unsigned char hash[32]);
/*
 * store_shared.c: the cache of the shared set. Writes the n tokens of v as shared rows (by id: name, owner,
 * scopes, hash, created_at, revoked_at; last_used_at stays this node's), in one transaction committed on
 * return. A row of another id holding one of their names is deleted (a name is the shared set's). all: v is
 * the whole set, and every other row becomes shared = 0 (it no longer authenticates; --migrate-shared can
 * still copy it). Returns 0 or -1 (logged; nothing changed).
 */
int store_token_sync(struct store *st, const struct store_token *v, int n, int all);
/* How many rows are shared (1) / this node's own (0). -1 on error. */
int store_token_count(struct store *st, int shared);
/* The same for stored workflows (017_workflows_shared.sql): the n workflows of v become shared rows (by
 * name); all: v is the whole set, and the other shared rows are deleted (removed elsewhere); rows of this
 * node's own (shared = 0) stay unless v names them. 0 or -1 (logged; nothing changed). */
int store_workflow_sync(struct store *st, const struct store_workflow *v, int n, int all);
int store_workflow_count(struct store *st, int shared);
/*
 * A job's attempts (oldest first) and its last `limit` log lines and progress events (oldest first, at most
 * about max_bytes of text; "truncated": true when cut), and its first `limit` workflow step rows in the
 * order they ran (workflow.run; [] for other jobs): {"attempts": [...], "lines": [...], "steps": [...]}.
 * owner: only the rows of attempts of that owner (a job id may have been reused by another owner once the
 * earlier job's hash expired); NULL: every row (admin). Tries to commit the queued rows first (store_flush),
 * so the job's latest rows are in. New reference.
 */
json_t *store_job_log(struct store *st, const char *job_id, const char *owner, int limit, size_t max_bytes);

#endif

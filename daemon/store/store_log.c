/*
 * store_log: the attempt log's write path (see store.h for the model): the queue of rows, store_flush's one
 * transaction per turn, the error counters, bounded pruning.
 *
 * Rows are queued as ops (start, finish, event, step, token touch) and written only by store_flush, under
 * BEGIN IMMEDIATE with no busy timeout: a lock held by another connection returns at once (the queue stays),
 * a failure costs the batch. So no write ever waits on the loop thread, and a transaction is never left open
 * between turns.
 *
 * An attempt's start is kept in a record (struct store_rec) until its finish is queued. The finish writes
 * the whole row as an upsert, and an event or step of an attempt whose running row is not yet in the
 * database writes that row first (INSERT OR IGNORE): an attempt whose start went down with a dropped batch
 * still gets its row. Ops hold references on their record, so it lives until the last op using it is freed.
 *
 * Row ids are handed out at queue time (one past the highest this store has seen or handed out), so callers
 * get their handle before anything is written; this daemon is the only writer of its attempts table.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "store_int.h"
#include "xmalloc.h"

/* A lock held this long by another writer costs the batch (counted as errors_busy), so that the finishes
 * waiting for it reach Redis; it is the busy timeout the loop used to wait, now spread over many turns. */
#define STORE_BUSY_MAX_S 5.0
/* The queue's ceiling while the database is locked: beyond it new rows are dropped (counted). 64 MiB is
 * about 200,000 attempts with their log lines, minutes of a busy daemon. */
#define STORE_QUEUE_MAX_BYTES (64u * 1024 * 1024)

static const char *const lstmt_sql[LSTMT_COUNT] = {
        [LSTMT_BEGIN] = "BEGIN IMMEDIATE",
        [LSTMT_COMMIT] = "COMMIT",
        [LSTMT_ROLLBACK] = "ROLLBACK",
        [LSTMT_START] = "INSERT OR IGNORE INTO attempts (id, job_id, type, queue, attempt, state, node, worker_pid, "
                        "created_at, started_at, fence, owner) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, "
                        "?10, ?11)",
        /* The whole row, so a lost start does not lose the attempt; never over another job's row. */
        [LSTMT_FINISH] =
                "INSERT INTO attempts (id, job_id, type, queue, attempt, node, worker_pid, created_at, "
                "started_at, fence, owner, state, finished_at, duration_ms, error, result) VALUES (?1, ?2, ?3, "
                "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, (?13 - ?9) * 1000, ?14, ?15) ON CONFLICT(id) DO "
                "UPDATE SET state = excluded.state, finished_at = excluded.finished_at, duration_ms = "
                "excluded.duration_ms, error = excluded.error, result = excluded.result WHERE "
                "attempts.job_id = excluded.job_id",
        [LSTMT_EVENT] = "INSERT INTO attempt_events (attempt_id, at, kind, level, progress, stage, message) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        /* A step row links to its attempt only if that row exists. */
        [LSTMT_STEP] = "INSERT INTO workflow_steps (attempt_id, job_id, step_id, type, step_attempt, run_attempt, "
                       "state, started_at, finished_at, duration_ms, output, error) VALUES ((SELECT id FROM attempts "
                       "WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, (?9 - ?8) * 1000, ?10, ?11)",
        [LSTMT_TOUCH] = "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
        /* Uses the job_id index; a job has a handful of attempts. */
        [LSTMT_RESTATE] = "UPDATE attempts SET state = ?3, error = coalesce(?4, error) WHERE job_id = ?1 AND "
                          "fence = ?2 AND finished_at IS NOT NULL",
        /*
         * Pruning, in bounded steps: ?2 oldest finished attempts are the step's set; their events (then steps)
         * go at most ?3 rows at a time, and the attempts only once nothing of theirs is left, so the cascade
         * finds nothing and a step deletes at most max_rows rows. Running attempts have no finished_at.
         */
        [LSTMT_PRUNE_EVENTS] = "DELETE FROM attempt_events WHERE id IN (SELECT id FROM attempt_events WHERE "
                               "attempt_id IN (SELECT id FROM attempts WHERE finished_at < ?1 ORDER BY "
                               "finished_at, id LIMIT ?2) LIMIT ?3)",
        [LSTMT_PRUNE_STEPS] = "DELETE FROM workflow_steps WHERE id IN (SELECT id FROM workflow_steps WHERE "
                              "attempt_id IN (SELECT id FROM attempts WHERE finished_at < ?1 ORDER BY "
                              "finished_at, id LIMIT ?2) LIMIT ?3)",
        [LSTMT_PRUNE_ATTEMPTS] = "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE finished_at < ?1 "
                                 "ORDER BY finished_at, id LIMIT ?2)",
        /* Step rows whose attempt row was lost (attempt_id NULL). */
        [LSTMT_PRUNE_LOOSE_STEPS] = "DELETE FROM workflow_steps WHERE id IN (SELECT id FROM workflow_steps WHERE "
                                    "attempt_id IS NULL AND finished_at < ?1 LIMIT ?2)",
        [LSTMT_REAP] = "UPDATE attempts SET state = 'reaped', finished_at = ?1, duration_ms = (?1 - started_at) * "
                       "1000, error = coalesce(error, ?2) WHERE state = 'running'",
        [LSTMT_MAX_ID] = "SELECT coalesce(max(id), 0) FROM attempts",
};

/* The states an attempt can end in (store.h, store_attempt_finish). */
static const char *const finish_states[] = {"succeeded", "failed",     "retrying", "dead",  "cancelled",
                                            "requeued",  "superseded", "reaped",   "parked"};

/* Kinds of failure, each logged once until a batch commits again. */
enum fail_kind { FAIL_BUSY, FAIL_FULL, FAIL_IO, FAIL_OTHER, FAIL_CAP };

static const char *const fail_names[] = {
        [FAIL_BUSY] = "database locked too long",
        [FAIL_FULL] = "disk full",
        [FAIL_IO] = "I/O error",
        [FAIL_OTHER] = "error",
        [FAIL_CAP] = "queue full while the database is locked",
};

struct store_rec {
	struct store_rec *next; /* bucket chain */
	int refs;               /* the open-attempt table's, and one per queued op that uses it */
	int64_t row;
	char *job_id, *type, *queue, *node;
	char *owner; /* the job's owner (005_attempt_owner.sql); NULL for none */
	int attempt, worker_pid;
	int64_t fence;
	double created_at, started_at;
	int in_db; /* its running row is committed */
	int in_tx; /* its running row was written in the open transaction */
	/* Its finish is in the queue, behind its start: the finish writes the whole row in the same
	 * transaction, so the start's INSERT is skipped (one statement per attempt instead of two for a job
	 * that starts and ends within one flush, the common case for short jobs). */
	int finish_queued;
};

enum op_kind { OP_START, OP_FINISH, OP_EVENT, OP_STEP, OP_TOUCH, OP_RESTATE };

/* String slots per kind. */
enum { S_STATE = 0, S_ERROR, S_RESULT };                       /* OP_FINISH */
enum { S_KIND = 0, S_LEVEL, S_STAGE, S_MESSAGE };              /* OP_EVENT */
enum { S_JOB = 0, S_STEP_ID, S_TYPE, S_SSTATE, S_OUT, S_ERR }; /* OP_STEP */
enum { S_TOKEN = 0 };                                          /* OP_TOUCH */
enum { S_RJOB = 0, S_RSTATE, S_RERROR };                       /* OP_RESTATE (row: the fence) */
#define OP_STRINGS 6

struct store_op {
	struct store_op *next;
	enum op_kind kind;
	struct store_rec *rec; /* a reference, or NULL (a step of an unknown attempt, a touch) */
	int64_t row;
	double t1, t2; /* event: at; finish: finished_at; step: started, finished; touch: at */
	int i1, i2;    /* event: progress (-1 = none); step: step_attempt, run_attempt */
	char *s[OP_STRINGS];
	size_t bytes;
};

/* --- open attempts --- */

static void
rec_unref(struct store_rec *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	free(r->job_id);
	free(r->type);
	free(r->queue);
	free(r->node);
	free(r->owner);
	free(r);
}

static struct store_rec **
rec_slot(struct store *st, int64_t row)
{
	struct store_rec **pp = &st->recs[(uint64_t)row % STORE_REC_BUCKETS];
	while (*pp != NULL && (*pp)->row != row)
		pp = &(*pp)->next;
	return pp;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* --- error accounting --- */

static enum fail_kind
fail_kind_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return FAIL_BUSY;
	case SQLITE_FULL: return FAIL_FULL;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_NOLFS:
	case SQLITE_PROTOCOL: return FAIL_IO;
	default: return FAIL_OTHER;
	}
}

static int
is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Counts a failure of kind k and logs it if it is the first of its kind since the last good commit. */
static void
fail_note(struct store *st, enum fail_kind k, const char *what, const char *detail)
{
	uint64_t *counter[] = {[FAIL_BUSY] = &st->c.errors_busy,
	                       [FAIL_FULL] = &st->c.errors_full,
	                       [FAIL_IO] = &st->c.errors_io,
	                       [FAIL_OTHER] = &st->c.errors_other,
	                       [FAIL_CAP] = NULL};
	if (counter[k] != NULL)
		(*counter[k])++;
	if (st->logged & (1u << k))
		return;
	st->logged |= 1u << k;
	log_error("store: %s: %s (%s); jobs keep running, their rows are counted as dropped until it passes "
	          "(logged once)",
	          what, fail_names[k], detail);
}

/* --- the queue --- */

static void
op_free(struct store_op *op)
{
	for (int i = 0; i < OP_STRINGS; i++)
		free(op->s[i]);
	rec_unref(op->rec);
	free(op);
}

static struct store_op *
op_new(enum op_kind kind, struct store_rec *rec, int64_t row)
{
	struct store_op *op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->rec = rec;
	op->row = row;
	op->bytes = sizeof(*op);
	if (rec != NULL)
		rec->refs++;
	return op;
}

static void
op_str(struct store_op *op, int slot, const char *v)
{
	op->s[slot] = dup_or_null(v);
	if (v != NULL)
		op->bytes += strlen(v) + 1;
}

/* Appends op to the queue, or drops it (counted) when the queue is at its ceiling. Takes ownership of op.
 * Returns 1 if it was queued, 0 if dropped. */
static int
op_queue(struct store *st, struct store_op *op)
{
	if (st->bytes + op->bytes > STORE_QUEUE_MAX_BYTES) {
		st->c.rows_dropped++;
		st->dropped_since++;
		fail_note(st, FAIL_CAP, "queue", "rows dropped");
		op_free(op);
		return 0;
	}
	if (st->tail != NULL)
		st->tail->next = op;
	else
		st->head = op;
	st->tail = op;
	st->nops++;
	st->bytes += op->bytes;
	return 1;
}

/* Frees the whole queue. Committed: the running rows written stay known as written; else they are not. */
static void
queue_clear(struct store *st, int committed)
{
	for (struct store_op *op = st->head; op != NULL; op = op->next)
		if (op->rec != NULL) {
			op->rec->in_db |= committed && op->rec->in_tx;
			op->rec->in_tx = 0;
		}
	struct store_op *op = st->head;
	while (op != NULL) {
		struct store_op *next = op->next;
		op_free(op);
		op = next;
	}
	st->head = st->tail = NULL;
	st->nops = 0;
	st->bytes = 0;
}

/* --- statements --- */

static void
bind_text(sqlite3_stmt *s, int i, const char *v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = v != NULL ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static void
bind_int64(sqlite3_stmt *s, int i, int64_t v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_int64(s, i, v);
}

static void
bind_double(sqlite3_stmt *s, int i, double v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_double(s, i, v);
}

/* A time of 0 means unknown: NULL, not 1970. */
static void
bind_time(sqlite3_stmt *s, int i, double v, int *rc)
{
	if (v > 0)
		bind_double(s, i, v, rc);
	else if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_null(s, i);
}

/* Steps a bound statement, resets it and drops its bindings. Returns SQLite's code (SQLITE_DONE on success). */
static int
lstmt_run(struct store *st, enum log_stmt_id id, int bind_rc)
{
	sqlite3_stmt *s = st->lstmt[id];
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		rc = sqlite3_extended_errcode(st->db) != SQLITE_OK ? sqlite3_extended_errcode(st->db) : rc;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* Binds an attempt's start columns (?1 to ?11 of START and FINISH). */
static void
bind_rec(sqlite3_stmt *s, const struct store_rec *r, int *rc)
{
	bind_int64(s, 1, r->row, rc);
	bind_text(s, 2, r->job_id, rc);
	bind_text(s, 3, r->type, rc);
	bind_text(s, 4, r->queue, rc);
	bind_int64(s, 5, r->attempt, rc);
	bind_text(s, 6, r->node, rc);
	bind_int64(s, 7, r->worker_pid, rc);
	bind_time(s, 8, r->created_at, rc);
	bind_double(s, 9, r->started_at, rc);
	if (r->fence > 0)
		bind_int64(s, 10, r->fence, rc);
	else if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_null(s, 10);
	bind_text(s, 11, r->owner, rc);
}

/* Writes an open attempt's running row unless it is already in (or in this transaction). */
static int
rec_ensure(struct store *st, struct store_rec *r, int *rows)
{
	if (r == NULL || r->in_db || r->in_tx)
		return SQLITE_DONE;
	int rc = SQLITE_OK;
	bind_rec(st->lstmt[LSTMT_START], r, &rc);
	rc = lstmt_run(st, LSTMT_START, rc);
	if (rc == SQLITE_DONE) {
		r->in_tx = 1;
		(*rows)++;
	}
	return rc;
}

static int
run_finish(struct store *st, const struct store_op *op)
{
	sqlite3_stmt *s = st->lstmt[LSTMT_FINISH];
	int rc = SQLITE_OK;
	bind_rec(s, op->rec, &rc);
	bind_text(s, 12, op->s[S_STATE], &rc);
	bind_double(s, 13, op->t1, &rc);
	bind_text(s, 14, op->s[S_ERROR], &rc);
	bind_text(s, 15, op->s[S_RESULT], &rc);
	rc = lstmt_run(st, LSTMT_FINISH, rc);
	/* Nothing changed: the id holds another job's row (a second writer): not ours to overwrite. */
	if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0)
		return SQLITE_CONSTRAINT;
	return rc;
}

static int
run_event(struct store *st, const struct store_op *op)
{
	sqlite3_stmt *s = st->lstmt[LSTMT_EVENT];
	int rc = SQLITE_OK;
	bind_int64(s, 1, op->row, &rc);
	bind_double(s, 2, op->t1, &rc);
	bind_text(s, 3, op->s[S_KIND], &rc);
	bind_text(s, 4, op->s[S_LEVEL], &rc);
	/* A log line has no progress; a 0 there would read as "progress went back to 0". */
	if (op->i1 >= 0)
		bind_int64(s, 5, op->i1, &rc);
	else if (rc == SQLITE_OK)
		rc = sqlite3_bind_null(s, 5);
	bind_text(s, 6, op->s[S_STAGE], &rc);
	bind_text(s, 7, op->s[S_MESSAGE], &rc);
	return lstmt_run(st, LSTMT_EVENT, rc);
}

static int
run_step(struct store *st, const struct store_op *op)
{
	sqlite3_stmt *s = st->lstmt[LSTMT_STEP];
	int rc = SQLITE_OK;
	bind_int64(s, 1, op->row, &rc);
	bind_text(s, 2, op->s[S_JOB], &rc);
	bind_text(s, 3, op->s[S_STEP_ID], &rc);
	bind_text(s, 4, op->s[S_TYPE], &rc);
	bind_int64(s, 5, op->i1, &rc);
	bind_int64(s, 6, op->i2, &rc);
	bind_text(s, 7, op->s[S_SSTATE], &rc);
	bind_double(s, 8, op->t1, &rc);
	bind_double(s, 9, op->t2, &rc);
	bind_text(s, 10, op->s[S_OUT], &rc);
	bind_text(s, 11, op->s[S_ERR], &rc);
	return lstmt_run(st, LSTMT_STEP, rc);
}

static int
run_touch(struct store *st, const struct store_op *op)
{
	int rc = SQLITE_OK;
	bind_text(st->lstmt[LSTMT_TOUCH], 1, op->s[S_TOKEN], &rc);
	bind_double(st->lstmt[LSTMT_TOUCH], 2, op->t1, &rc);
	return lstmt_run(st, LSTMT_TOUCH, rc);
}

static int
run_restate(struct store *st, const struct store_op *op)
{
	sqlite3_stmt *s = st->lstmt[LSTMT_RESTATE];
	int rc = SQLITE_OK;
	bind_text(s, 1, op->s[S_RJOB], &rc);
	bind_int64(s, 2, op->row, &rc);
	bind_text(s, 3, op->s[S_RSTATE], &rc);
	bind_text(s, 4, op->s[S_RERROR], &rc);
	return lstmt_run(st, LSTMT_RESTATE, rc);
}

/* Writes one op inside the open transaction; *rows counts the rows it wrote. Returns SQLite's code. */
static int
op_run(struct store *st, struct store_op *op, int *rows)
{
	int rc = SQLITE_DONE;
	switch (op->kind) {
	case OP_START:
		if (op->rec != NULL && op->rec->finish_queued)
			return SQLITE_DONE; /* its finish, later in this transaction, writes the whole row */
		return rec_ensure(st, op->rec, rows);
	case OP_FINISH: rc = run_finish(st, op); break;
	case OP_EVENT:
		rc = rec_ensure(st, op->rec, rows);
		if (rc == SQLITE_DONE)
			rc = run_event(st, op);
		break;
	case OP_STEP:
		rc = rec_ensure(st, op->rec, rows);
		if (rc == SQLITE_DONE)
			rc = run_step(st, op);
		break;
	case OP_TOUCH: rc = run_touch(st, op); break;
	case OP_RESTATE: rc = run_restate(st, op); break;
	}
	if (rc == SQLITE_DONE)
		(*rows)++;
	return rc;
}

/* --- store_flush --- */

static void
rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		lstmt_run(st, LSTMT_ROLLBACK, SQLITE_OK);
}

/* The batch is lost: counted, logged once per kind. Returns -1. */
static int
batch_fail(struct store *st, int rc, const char *what)
{
	const char *detail = sqlite3_errstr(rc);
	rollback(st);
	fail_note(st, fail_kind_of(rc) == FAIL_BUSY ? FAIL_OTHER : fail_kind_of(rc), what, detail);
	st->c.rows_dropped += st->nops;
	st->dropped_since += st->nops;
	queue_clear(st, 0);
	st->busy_since = 0;
	return -1;
}

/* Another connection holds the write lock: keep the rows for the next turn, unless it has lasted too long. */
static int
batch_busy(struct store *st)
{
	double now = clock_mono();
	rollback(st);
	for (struct store_op *op = st->head; op != NULL; op = op->next)
		if (op->rec != NULL)
			op->rec->in_tx = 0;
	st->c.busy_retries++;
	if (st->busy_since == 0) {
		st->busy_since = now;
		return 1;
	}
	if (now - st->busy_since <= STORE_BUSY_MAX_S)
		return 1;
	fail_note(st, FAIL_BUSY, "commit", "another connection holds the write lock");
	st->c.rows_dropped += st->nops;
	st->dropped_since += st->nops;
	queue_clear(st, 0);
	st->busy_since = 0;
	return -1;
}

static void
batch_done(struct store *st, int rows)
{
	st->c.commits++;
	st->c.rows_written += (uint64_t)rows;
	queue_clear(st, 1);
	st->busy_since = 0;
	if (st->logged != 0) {
		log_info("store: writing again; %llu rows were dropped meanwhile",
		         (unsigned long long)st->dropped_since);
		st->logged = 0;
		st->dropped_since = 0;
	}
}

int
store_flush(struct store *st)
{
	if (st->head == NULL) {
		st->busy_since = 0;
		return 0;
	}
	int rc = lstmt_run(st, LSTMT_BEGIN, SQLITE_OK);
	if (is_busy(rc))
		return batch_busy(st);
	if (rc != SQLITE_DONE)
		return batch_fail(st, rc, "begin");
	int rows = 0;
	for (struct store_op *op = st->head; op != NULL; op = op->next) {
		rc = op_run(st, op, &rows);
		if (rc == SQLITE_DONE)
			continue;
		if (is_busy(rc))
			return batch_busy(st);
		/* A failure of the file (or one SQLite answered by dropping the transaction) costs the batch;
		 * a row the schema refuses costs only that row. */
		if (fail_kind_of(rc) != FAIL_OTHER || sqlite3_get_autocommit(st->db))
			return batch_fail(st, rc, "write");
		fail_note(st, FAIL_OTHER, "row refused", sqlite3_errstr(rc));
		st->c.rows_dropped++;
		st->dropped_since++;
	}
	rc = lstmt_run(st, LSTMT_COMMIT, SQLITE_OK);
	if (is_busy(rc))
		return batch_busy(st);
	if (rc != SQLITE_DONE)
		return batch_fail(st, rc, "commit");
	batch_done(st, rows);
	return 0;
}

int
store_pending(const struct store *st)
{
	return st->head != NULL;
}

/* --- the queued writes --- */

int64_t
store_attempt_start(struct store *st, const struct store_attempt *a)
{
	if (a->job_id == NULL) {
		log_error("store: attempt start without a job id");
		return -1;
	}
	struct store_rec *r = xcalloc(1, sizeof(*r));
	r->refs = 1;
	r->row = ++st->last_id;
	r->job_id = xstrdup(a->job_id);
	r->type = dup_or_null(a->type);
	r->queue = dup_or_null(a->queue);
	r->node = dup_or_null(a->node);
	r->owner = dup_or_null(a->owner);
	r->attempt = a->attempt;
	r->worker_pid = a->worker_pid;
	r->fence = a->fence;
	r->created_at = a->created_at;
	r->started_at = a->started_at;
	struct store_rec **slot = rec_slot(st, r->row);
	*slot = r;
	op_queue(st, op_new(OP_START, r, r->row));
	return r->row;
}

static int
finish_state_valid(const char *state)
{
	for (size_t i = 0; state != NULL && i < sizeof(finish_states) / sizeof(finish_states[0]); i++)
		if (strcmp(state, finish_states[i]) == 0)
			return 1;
	return 0;
}

int
store_attempt_finish(struct store *st, int64_t row, const char *state, double finished_at, const char *error,
                     const char *result_json)
{
	if (!finish_state_valid(state)) {
		log_error("store: attempt %lld: no such final state \"%s\"", (long long)row, state ? state : "(null)");
		return -1;
	}
	struct store_rec **slot = rec_slot(st, row), *r = *slot;
	if (r == NULL) {
		log_warn("store: attempt finish: no open attempt %lld", (long long)row);
		return -1;
	}
	*slot = r->next;
	r->next = NULL;
	struct store_op *op = op_new(OP_FINISH, r, row);
	rec_unref(r); /* the table's reference; the op holds its own */
	op->t1 = finished_at;
	op_str(op, S_STATE, state);
	op_str(op, S_ERROR, error);
	op_str(op, S_RESULT, result_json);
	if (op_queue(st, op)) /* (else r may be gone with the dropped op) */
		r->finish_queued = 1;
	return 0;
}

int
store_attempt_restate(struct store *st, const char *job_id, int64_t fence, const char *state, const char *error)
{
	if (job_id == NULL || fence <= 0 || !finish_state_valid(state)) {
		log_error("store: restate of %s fence %lld to \"%s\" refused", job_id ? job_id : "(null)",
		          (long long)fence, state ? state : "(null)");
		return -1;
	}
	struct store_op *op = op_new(OP_RESTATE, NULL, fence);
	op_str(op, S_RJOB, job_id);
	op_str(op, S_RSTATE, state);
	op_str(op, S_RERROR, error);
	op_queue(st, op);
	return 0;
}

int
store_event(struct store *st, int64_t row, double at, const char *kind, const char *level, int progress,
            const char *stage, const char *message)
{
	int is_progress = kind != NULL && strcmp(kind, "progress") == 0;
	if (!is_progress && (kind == NULL || strcmp(kind, "log") != 0)) {
		log_error("store: attempt %lld: no such event kind \"%s\"", (long long)row, kind ? kind : "(null)");
		return -1;
	}
	struct store_rec *r = *rec_slot(st, row);
	if (r == NULL) {
		log_warn("store: event: no open attempt %lld", (long long)row);
		return -1;
	}
	struct store_op *op = op_new(OP_EVENT, r, row);
	op->t1 = at;
	op->i1 = is_progress ? progress : -1;
	op_str(op, S_KIND, kind);
	op_str(op, S_LEVEL, level);
	op_str(op, S_STAGE, stage);
	op_str(op, S_MESSAGE, message);
	op_queue(st, op);
	return 0;
}

int
store_step(struct store *st, const struct store_step *r)
{
	if (r->job_id == NULL || r->step_id == NULL || r->state == NULL) {
		log_error("store: workflow step without a job id, step id or state");
		return -1;
	}
	struct store_op *op = op_new(OP_STEP, *rec_slot(st, r->attempt_row), r->attempt_row);
	op->t1 = r->started_at;
	op->t2 = r->finished_at;
	op->i1 = r->step_attempt;
	op->i2 = r->run_attempt;
	op_str(op, S_JOB, r->job_id);
	op_str(op, S_STEP_ID, r->step_id);
	op_str(op, S_TYPE, r->type);
	op_str(op, S_SSTATE, r->state);
	op_str(op, S_OUT, r->output);
	op_str(op, S_ERR, r->error);
	op_queue(st, op);
	return 0;
}

int
store_token_touch(struct store *st, const char *id, double at)
{
	struct store_op *op = op_new(OP_TOUCH, NULL, 0);
	op->t1 = at;
	op_str(op, S_TOKEN, id);
	op_queue(st, op);
	return 0;
}

/* --- counters --- */

void
store_counters(const struct store *st, struct store_counters *out)
{
	*out = st->c;
	out->pending = st->nops;
}

json_t *
store_counters_json(const struct store *st)
{
	struct store_counters c;
	store_counters(st, &c);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rows_written",
	                 (json_int_t)c.rows_written, "commits", (json_int_t)c.commits, "busy_retries",
	                 (json_int_t)c.busy_retries, "errors_busy", (json_int_t)c.errors_busy, "errors_full",
	                 (json_int_t)c.errors_full, "errors_io", (json_int_t)c.errors_io, "errors_other",
	                 (json_int_t)c.errors_other, "rows_dropped", (json_int_t)c.rows_dropped, "pruned",
	                 (json_int_t)c.pruned, "pending", (json_int_t)c.pending);
}

/* --- pruning and start-up --- */

/* Runs one prune statement with (before, set, limit); returns rows deleted or -1 with rc_out set. */
static int
prune_run(struct store *st, enum log_stmt_id id, double before, int set, int limit, int *rc_out)
{
	sqlite3_stmt *s = st->lstmt[id];
	int rc = SQLITE_OK;
	bind_double(s, 1, before, &rc);
	bind_int64(s, 2, set, &rc);
	if (sqlite3_bind_parameter_count(s) >= 3)
		bind_int64(s, 3, limit, &rc);
	rc = lstmt_run(st, id, rc);
	*rc_out = rc;
	return rc == SQLITE_DONE ? sqlite3_changes(st->db) : -1;
}

/* The deletes of one step inside its transaction; returns rows deleted or -1 with *rc set. */
static int
prune_body(struct store *st, double before, int max_rows, int *rc)
{
	int n = prune_run(st, LSTMT_PRUNE_EVENTS, before, max_rows, max_rows, rc);
	if (n < 0 || n == max_rows)
		return n;
	int m = prune_run(st, LSTMT_PRUNE_STEPS, before, max_rows, max_rows - n, rc);
	if (m < 0)
		return -1;
	if ((n += m) == max_rows)
		return n;
	/* Every event and step of the step's set is gone (neither limit was reached): the attempts go alone. */
	m = prune_run(st, LSTMT_PRUNE_ATTEMPTS, before, max_rows - n, 0, rc);
	if (m < 0)
		return -1;
	if ((n += m) == max_rows)
		return n;
	m = prune_run(st, LSTMT_PRUNE_LOOSE_STEPS, before, max_rows - n, 0, rc);
	return m < 0 ? -1 : n + m;
}

int
store_prune_step(struct store *st, double before, int max_rows)
{
	if (max_rows < 1)
		max_rows = 1;
	int rc = lstmt_run(st, LSTMT_BEGIN, SQLITE_OK);
	int n = rc == SQLITE_DONE ? prune_body(st, before, max_rows, &rc) : -1;
	if (n >= 0) {
		rc = lstmt_run(st, LSTMT_COMMIT, SQLITE_OK);
		n = rc == SQLITE_DONE ? n : -1;
	}
	if (n >= 0) {
		st->c.pruned += (uint64_t)n;
		return n;
	}
	rollback(st);
	if (is_busy(rc))
		st->c.busy_retries++;
	else
		fail_note(st, fail_kind_of(rc), "prune", sqlite3_errstr(rc));
	return -1;
}

int
store_reap_running(struct store *st, double at)
{
	int rc = SQLITE_OK;
	bind_double(st->lstmt[LSTMT_REAP], 1, at, &rc);
	bind_text(st->lstmt[LSTMT_REAP], 2, "the daemon running it stopped before the attempt ended", &rc);
	rc = lstmt_run(st, LSTMT_REAP, rc);
	if (rc != SQLITE_DONE) {
		log_error("store: marking leftover running attempts: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	int n = sqlite3_changes(st->db);
	if (n > 0)
		log_info("store: %d attempts an earlier run left running are marked reaped", n);
	return n;
}

/* --- open / close --- */

int
store_log_prepare(struct store *st, char **cause)
{
	for (int i = 0; i < LSTMT_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, lstmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->lstmt[i], NULL) !=
		    SQLITE_OK) {
			*cause = xasprintf("preparing \"%s\": %s", lstmt_sql[i], sqlite3_errmsg(st->db));
			return -1;
		}
	}
	sqlite3_stmt *s = st->lstmt[LSTMT_MAX_ID];
	if (sqlite3_step(s) != SQLITE_ROW) {
		*cause = xasprintf("reading the highest attempt id: %s", sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	st->last_id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

void
store_log_free(struct store *st)
{
	if (st->nops > 0)
		log_error("store: closing with %zu rows not written", st->nops);
	queue_clear(st, 0);
	for (int i = 0; i < STORE_REC_BUCKETS; i++) {
		struct store_rec *r = st->recs[i];
		while (r != NULL) {
			struct store_rec *next = r->next;
			rec_unref(r);
			r = next;
		}
		st->recs[i] = NULL;
	}
	for (int i = 0; i < LSTMT_COUNT; i++)
		sqlite3_finalize(st->lstmt[i]);
}

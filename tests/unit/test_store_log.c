/*
 * test_store_log: the attempt log's v2 write path on real SQLite files: fence and real times in the row,
 * superseded/reaped states, store_flush's three answers (a lock held by another process, a full tmpfs), the
 * counters, bounded prune steps over 200,000 rows, leftover running rows marked reaped.
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "t.h"

struct tmp {
	char dir[64];
	char db[128];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/hopper-test-slog-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(t->db, sizeof(t->db), "%s/store.db", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char path[160];
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", t->db, suffixes[i]);
		unlink(path);
	}
	rmdir(t->dir);
}

static sqlite3 *
raw_open(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "raw_open %s: %s\n", path, db != NULL ? sqlite3_errmsg(db) : "?");
		exit(1);
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t
raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		fprintf(stderr, "raw_int \"%s\": %s\n", sql, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return v;
}

static int64_t
raw_int_once(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	int64_t v = raw_int(db, sql);
	sqlite3_close(db);
	return v;
}

static struct store_attempt
attempt_of(const char *job_id, int64_t fence, double created_at, double started_at)
{
	struct store_attempt a = {.job_id = job_id,
	                          .type = "noop",
	                          .queue = "default",
	                          .node = "node-a",
	                          .attempt = 1,
	                          .worker_pid = 77,
	                          .fence = fence,
	                          .created_at = created_at,
	                          .started_at = started_at};
	return a;
}

static void
test_fence_and_states(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-f", 42, 1764000000.25, 1764000001);
	int64_t r1 = store_attempt_start(st, &a);
	a.job_id = "job-unknown-created", a.fence = 43, a.created_at = 0;
	int64_t r2 = store_attempt_start(st, &a);
	a.job_id = "job-reaped", a.fence = 44;
	int64_t r3 = store_attempt_start(st, &a);
	a.job_id = "job-parked", a.fence = 45;
	int64_t r4 = store_attempt_start(st, &a);
	T_CHECK("states: nothing written before the flush", raw_int_once(t.db, "SELECT count(*) FROM attempts") == 0);
	T_CHECK("states: an unknown final state is refused",
	        store_attempt_finish(st, r1, "exploded", 1764000002, NULL, NULL) == -1);
	T_CHECK("states: the attempt stays open after a refused finish",
	        store_attempt_finish(st, r1, "superseded", 1764000002, "fencing token 42 refused", NULL) == 0);
	T_CHECK("states: reaped accepted", store_attempt_finish(st, r3, "reaped", 1764000003, NULL, NULL) == 0);
	T_CHECK("states: parked (a durable wait) accepted",
	        store_attempt_finish(st, r4, "parked", 1764000003, "parked: sleep until X", NULL) == 0);
	T_CHECK("states: a second finish of one attempt is refused",
	        store_attempt_finish(st, r1, "succeeded", 1764000004, NULL, NULL) == -1);
	T_CHECK("states: flush commits", store_flush(st) == 0);
	T_CHECK("states: the fence and the real created_at are in the row",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-f' AND fence = 42 AND "
	                           "created_at = 1764000000.25 AND state = 'superseded' AND "
	                           "error = 'fencing token 42 refused' AND duration_ms = 1000") == 1);
	T_CHECK("states: an unknown created_at is NULL, not 1970",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-unknown-created' AND "
	                           "created_at IS NULL AND fence = 43 AND state = 'running'") == 1);
	T_CHECK("states: reaped row", raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE state = 'reaped'") == 1);
	T_CHECK("states: parked row",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-parked' AND "
	                           "state = 'parked' AND fence = 45") == 1);
	T_CHECK("states: still open attempt finishes later",
	        store_attempt_finish(st, r2, "succeeded", 1764000005, NULL, "{}") == 0 && store_flush(st) == 0);
	struct store_counters c;
	store_counters(st, &c);
	/* 5 row writes: r1, r3 and r4 started and ended within the first flush, so their finish wrote the whole row
	 * and their start's INSERT was skipped (checked above: fence, created_at, duration_ms are in the row);
	 * r2 took its start and, in the second flush, its finish; r4 (parked) is one more. */
	T_CHECK("states: counters", c.commits == 2 && c.rows_written == 5 && c.pending == 0 && c.rows_dropped == 0);
	json_t *j = store_counters_json(st);
	T_CHECK("states: counters as JSON", json_integer_value(json_object_get(j, "commits")) == 2 &&
	                                            json_integer_value(json_object_get(j, "rows_written")) == 5 &&
	                                            json_object_get(j, "errors_full") != NULL);
	json_decref(j);
	store_close(st);
	tmp_remove(&t);
}

/* A child process takes the write lock, says so on the pipe, holds it for hold_s seconds and commits. */
static pid_t
lock_holder(const char *path, int hold_s, int *ready_fd)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		sqlite3 *db = raw_open(path);
		int rc = sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE tokens SET name = name", NULL, NULL, NULL);
		char ok = rc == SQLITE_OK ? 'y' : 'n';
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		sleep((unsigned)hold_s);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
		_exit(0);
	}
	close(p[1]);
	*ready_fd = p[0];
	return pid;
}

/*
 * Busy: while another process holds the write lock, store_flush returns 1 and keeps the rows. The holder
 * releases after 3 s by itself, so a flush that waited for the lock (as the old 5 s busy timeout did) would
 * have committed and returned 0: the answer 1 shows it did not wait.
 */
static void
test_busy(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	int ready;
	pid_t pid = lock_holder(t.db, 3, &ready);
	char ok = 0;
	T_CHECK("busy: the other process holds the write lock", read(ready, &ok, 1) == 1 && ok == 'y');
	struct store_attempt a = attempt_of("job-busy", 1, 1000, 1001);
	int64_t row = store_attempt_start(st, &a);
	store_attempt_finish(st, row, "succeeded", 1002, NULL, NULL);
	T_CHECK("busy: flush returns 1 at once (did not wait for the lock)", store_flush(st) == 1);
	T_CHECK("busy: the rows are kept", store_pending(st));
	T_CHECK("busy: again 1 while held", store_flush(st) == 1);
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("busy: counted as retries, nothing dropped",
	        c.busy_retries == 2 && c.rows_dropped == 0 && c.errors_busy == 0 && c.pending == 2);
	int status = 0;
	waitpid(pid, &status, 0);
	close(ready);
	T_CHECK("busy: holder done", WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_CHECK("busy: next flush commits the kept rows", store_flush(st) == 0 && !store_pending(st));
	T_CHECK("busy: the row is whole",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-busy' AND state = "
	                           "'succeeded'") == 1);
	/* Workflow and token writes wait a moment for a lock, then fail cleanly. */
	pid = lock_holder(t.db, 2, &ready);
	read(ready, &ok, 1);
	char name[] = "wf", def[] = "{\"steps\":[]}";
	struct store_workflow w = {.name = name, .definition = def, .active = 1, .updated_at = 5};
	T_CHECK("busy: a workflow put under a held lock fails, no crash", store_workflow_put(st, &w) == -1);
	waitpid(pid, &status, 0);
	close(ready);
	T_CHECK("busy: and succeeds once it is released", store_workflow_put(st, &w) == 0);
	store_close(st);
	tmp_remove(&t);
}

/* A lock held past STORE_BUSY_MAX_S (5 s) costs the batch, so the finishes waiting on it can go to Redis. */
static void
test_busy_too_long(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	sqlite3 *other = raw_open(t.db);
	sqlite3_exec(other, "BEGIN IMMEDIATE; UPDATE tokens SET name = name", NULL, NULL, NULL);
	struct store_attempt a = attempt_of("job-long", 1, 1000, 1001);
	int64_t row = store_attempt_start(st, &a);
	T_CHECK("busy too long: first flush busy", store_flush(st) == 1);
	sleep(6);
	T_CHECK("busy too long: dropped after the limit", store_flush(st) == -1 && !store_pending(st));
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("busy too long: counted", c.errors_busy == 1 && c.rows_dropped == 1);
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	T_CHECK("busy too long: the attempt still finishes with its whole row",
	        store_attempt_finish(st, row, "failed", 1003, "x", NULL) == 0 && store_flush(st) == 0 &&
	                raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-long' AND "
	                                   "state = 'failed' AND fence = 1") == 1);
	store_close(st);
	tmp_remove(&t);
}

/* Writes until the file system is full (leaves the filler file). */
static void
fill_fs(const char *path)
{
	FILE *f = fopen(path, "w");
	static char block[4096];
	if (f == NULL)
		return;
	while (fwrite(block, 1, sizeof(block), f) == sizeof(block))
		;
	fclose(f);
}

/* SQLITE_FULL on a real full file system: counted, batch dropped, no crash; rows commit again with space. */
static void
test_full(void)
{
	if (geteuid() != 0) {
		printf("# skip full: mounting a tmpfs needs root (CI runs as root)\n");
		return;
	}
	struct tmp t;
	char *cause = NULL, filler[160];
	tmp_make(&t);
	if (mount("tmpfs", t.dir, "tmpfs", 0, "size=4m") != 0) {
		printf("not ok - full: mount tmpfs on %s: %s\n", t.dir, strerror(errno));
		t_failed = 1;
		rmdir(t.dir);
		return;
	}
	snprintf(filler, sizeof(filler), "%s/filler", t.dir);
	struct store *st = store_open(t.db, &cause);
	T_CHECK("full: opens on the tmpfs", st != NULL);
	if (st == NULL)
		goto out;
	struct store_attempt a = attempt_of("job-open", 9, 1000, 1001);
	int64_t open_row = store_attempt_start(st, &a);
	T_CHECK("full: first batch commits", store_flush(st) == 0);
	fill_fs(filler);
	char *big = malloc(256 * 1024);
	memset(big, 'x', 256 * 1024 - 1);
	big[256 * 1024 - 1] = '\0';
	for (int i = 0; i < 32; i++) { /* 8 MiB of rows: more than the WAL could hold on 4 MiB */
		a.job_id = "job-lost";
		int64_t r = store_attempt_start(st, &a);
		store_attempt_finish(st, r, "succeeded", 1002, NULL, big);
	}
	store_event(st, open_row, 1001.5, "log", "info", 0, NULL, "written while full");
	int rc = store_flush(st);
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("full: flush reports a failing store", rc == -1);
	T_CHECK("full: counted as disk full", c.errors_full >= 1);
	T_CHECK("full: the batch is dropped and counted", c.rows_dropped == 65 && !store_pending(st));
	T_CHECK("full: a second failing turn, no crash",
	        (store_event(st, open_row, 1001.6, "log", "info", 0, NULL, "still full"), store_flush(st) == -1));
	unlink(filler);
	T_CHECK("full: with space again the next turn commits",
	        store_attempt_finish(st, open_row, "succeeded", 1003, NULL, "{}") == 0 && store_flush(st) == 0);
	T_CHECK("full: the open attempt's row is whole",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-open' AND state = 'succeeded' "
	                           "AND fence = 9") == 1);
	T_CHECK("full: no row of the dropped batch", raw_int_once(t.db, "SELECT count(*) FROM attempts") == 1);
	free(big);
	store_close(st);
out:
	umount(t.dir);
	rmdir(t.dir);
}

/* Counts the rows of the three tables. */
static int64_t
total_rows(sqlite3 *db)
{
	return raw_int(db, "SELECT (SELECT count(*) FROM attempts) + (SELECT count(*) FROM attempt_events) + "
	                   "(SELECT count(*) FROM workflow_steps)");
}

/* 200,000 old attempts (a third with 3 events, some with a step) pruned in steps of at most 500 rows. */
static void
test_prune_chunks(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-running", 1, 10, 10);
	store_attempt_start(st, &a); /* running since long ago: never pruned */
	a.job_id = "job-recent", a.started_at = 5000;
	int64_t recent = store_attempt_start(st, &a);
	store_attempt_finish(st, recent, "succeeded", 5001, NULL, NULL);
	store_flush(st);
	sqlite3 *db = raw_open(t.db);
	sqlite3_exec(db,
	             "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
	             "INSERT INTO attempts (id, job_id, state, started_at, finished_at) SELECT 100 + i, 'old-' || i, "
	             "'succeeded', i * 0.001, i * 0.001 + 0.0005 FROM n; "
	             "INSERT INTO attempt_events (attempt_id, at, kind, message) SELECT id, started_at, 'log', 'x' "
	             "FROM attempts, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) WHERE id >= 100 AND id % 3 = 0; "
	             "INSERT INTO workflow_steps (attempt_id, job_id, step_id, state, finished_at) SELECT id, job_id, "
	             "'s', 'succeeded', finished_at FROM attempts WHERE id >= 100 AND id % 10 = 0; COMMIT",
	             NULL, NULL, NULL);
	int64_t before = total_rows(db);
	int64_t expect = 200000 + 3 * 66667 + 20000;
	T_CHECK("prune chunks: setup", before == expect + 2);
	int steps = 0, bounded = 1, counted = 1, n;
	int64_t deleted = 0;
	while ((n = store_prune_step(st, 1000, 500)) > 0) {
		if (n > 500)
			bounded = 0;
		deleted += n;
		if (++steps % 50 == 0 && total_rows(db) != before - deleted)
			counted = 0;
		if (steps > 10000)
			break;
	}
	T_CHECK("prune chunks: ends with 0 (nothing left), not an error", n == 0);
	T_CHECK("prune chunks: every step deleted at most 500 rows", bounded);
	T_CHECK("prune chunks: the returned counts are the rows really deleted", counted);
	T_CHECK("prune chunks: all old rows deleted", deleted == expect && total_rows(db) == 2);
	T_CHECK("prune chunks: in many steps", steps >= (int)(expect / 500));
	T_CHECK("prune chunks: running and recent attempts kept",
	        raw_int(db, "SELECT count(*) FROM attempts WHERE job_id IN ('job-running', 'job-recent')") == 2);
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("prune chunks: counted", c.pruned == (uint64_t)expect);
	/* A locked database: the step says -1 and the next one goes on. */
	sqlite3_exec(db, "INSERT INTO attempts (job_id, state, finished_at) VALUES ('old-again', 'failed', 1)", NULL,
	             NULL, NULL);
	sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE tokens SET name = name", NULL, NULL, NULL);
	T_CHECK("prune chunks: a held lock gives -1 at once", store_prune_step(st, 1000, 500) == -1);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	T_CHECK("prune chunks: the next step deletes", store_prune_step(st, 1000, 500) == 1);
	sqlite3_close(db);
	store_close(st);
	tmp_remove(&t);
}

/* A finish Redis refused after its row was committed: the row of that job and fence becomes superseded. */
static void
test_restate(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-r", 3, 100, 101);
	int64_t r = store_attempt_start(st, &a);
	store_attempt_finish(st, r, "succeeded", 102, NULL, "{}");
	a.fence = 4;
	r = store_attempt_start(st, &a);
	store_attempt_finish(st, r, "succeeded", 103, NULL, "{}");
	T_CHECK("restate: rows committed", store_flush(st) == 0);
	T_CHECK("restate: queued", store_attempt_restate(st, "job-r", 3, "superseded", "fencing token 3 refused") == 0);
	T_CHECK("restate: an unknown state is refused", store_attempt_restate(st, "job-r", 3, "bogus", NULL) == -1);
	T_CHECK("restate: no fence is refused", store_attempt_restate(st, "job-r", 0, "superseded", NULL) == -1);
	T_CHECK("restate: flush", store_flush(st) == 0);
	T_CHECK("restate: the row of that fence is superseded, with the error",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-r' AND fence = 3 AND "
	                           "state = 'superseded' AND error = 'fencing token 3 refused'") == 1);
	T_CHECK("restate: the other fence's row keeps its outcome",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-r' AND fence = 4 AND "
	                           "state = 'succeeded'") == 1);
	/* Queued behind the finish in one batch: it applies after it. */
	a.fence = 5;
	r = store_attempt_start(st, &a);
	store_attempt_finish(st, r, "succeeded", 104, NULL, NULL);
	store_attempt_restate(st, "job-r", 5, "superseded", NULL);
	T_CHECK("restate: in the finish's own batch, applied after it",
	        store_flush(st) == 0 && raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE fence = 5 AND "
	                                                   "state = 'superseded' AND error IS NULL") == 1);
	store_close(st);
	tmp_remove(&t);
}

/* Rows an earlier, killed run left "running" are marked reaped by the next start. */
static void
test_reap_running(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-killed", 5, 100, 101);
	store_attempt_start(st, &a);
	a.job_id = "job-done";
	int64_t done = store_attempt_start(st, &a);
	store_attempt_finish(st, done, "succeeded", 102, NULL, NULL);
	store_flush(st);
	store_close(st); /* as if killed: job-killed never finished */
	st = store_open(t.db, &cause);
	T_CHECK("reap: one leftover marked", store_reap_running(st, 200) == 1);
	T_CHECK("reap: its row says reaped, with an error and an end",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-killed' AND state = 'reaped' "
	                           "AND finished_at = 200 AND error IS NOT NULL AND fence = 5") == 1);
	T_CHECK("reap: finished rows untouched",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-done' AND state = 'succeeded'") ==
	                1);
	T_CHECK("reap: nothing left the second time", store_reap_running(st, 300) == 0);
	a.job_id = "job-next";
	T_CHECK("reap: ids continue above the old rows", store_attempt_start(st, &a) == done + 1);
	store_close(st);
	tmp_remove(&t);
}

/* With the database locked, the queue stops growing at its ceiling (counted), and what it kept commits. */
static void
test_queue_cap(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	sqlite3 *other = raw_open(t.db);
	sqlite3_exec(other, "BEGIN IMMEDIATE; UPDATE tokens SET name = name", NULL, NULL, NULL);
	size_t len = 1 << 20;
	char *big = malloc(len);
	memset(big, 'y', len - 1);
	big[len - 1] = '\0';
	struct store_attempt a = attempt_of("job-cap", 1, 1, 2);
	for (int i = 0; i < 80; i++) {
		int64_t r = store_attempt_start(st, &a);
		store_attempt_finish(st, r, "succeeded", 3, NULL, big);
	}
	T_CHECK("cap: busy", store_flush(st) == 1);
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("cap: rows beyond the ceiling dropped and counted", c.rows_dropped > 0 && c.rows_dropped < 80);
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	T_CHECK("cap: the kept rows commit", store_flush(st) == 0);
	int64_t rows = raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE state = 'succeeded'");
	T_CHECK("cap: every attempt is either written or counted as dropped",
	        rows > 0 && (uint64_t)rows + c.rows_dropped == 80);
	free(big);
	store_close(st);
	tmp_remove(&t);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_fence_and_states();
	test_busy();
	test_busy_too_long();
	test_full();
	test_prune_chunks();
	test_reap_running();
	test_restate();
	test_queue_cap();
	T_DONE();
}

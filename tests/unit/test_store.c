/*
 * test_store: the SQLite execution log, on real database files. Each test has its own temp dir and removes it.
 * The test reads the database back through its own sqlite3 connection, as hopperctl or a backup would.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded.h"
#include "store.h"
#include "t.h"

struct tmp {
	char dir[64];
	char db[128];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/hopper-test-store-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(t->db, sizeof(t->db), "%s/store.db", t->dir);
}

/* Removes the database and its side files, then the dir: rmdir fails if anything else was left behind. */
static void
tmp_remove(struct tmp *t, const char *test)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char path[160], name[128];
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", t->db, suffixes[i]);
		if (unlink(path) != 0 && errno != ENOENT)
			perror(path);
	}
	snprintf(name, sizeof(name), "%s: temp dir removed", test);
	T_CHECK(name, rmdir(t->dir) == 0);
}

/* A plain connection of the test's own. */
static sqlite3 *
raw_open(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		fprintf(stderr, "raw_open %s: %s\n", path, db != NULL ? sqlite3_errmsg(db) : "?");
		exit(1);
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* First column of the first row as an integer; -1 on error or no row. */
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

/* One query on a fresh connection, for checks that need nothing else. */
static int64_t
raw_int_once(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	int64_t v = raw_int(db, sql);
	sqlite3_close(db);
	return v;
}

static int
migration_count(void)
{
	/* The last migration's number (numbers are reserved per subsystem, so a build may skip some). */
	int n = 0;
	while (embedded_migrations[n].name != NULL)
		n++;
	return n > 0 ? atoi(embedded_migrations[n - 1].name) : 0;
}

static struct store_attempt
attempt_of(const char *job_id, double started_at)
{
	struct store_attempt a = {
	        .job_id = job_id,
	        .type = "resize",
	        .queue = "default",
	        .node = "node-a",
	        .attempt = 1,
	        .worker_pid = 4242,
	        .created_at = started_at - 1,
	        .started_at = started_at,
	};
	return a;
}

static void
test_fresh_open(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	T_CHECK("fresh: opens", st != NULL && cause == NULL);
	T_CHECK("fresh: nothing pending", st != NULL && !store_pending(st));
	store_close(st);

	sqlite3 *db = raw_open(t.db);
	T_CHECK("fresh: user_version = number of migrations", raw_int(db, "PRAGMA user_version") == migration_count());
	T_CHECK("fresh: tables and indexes exist",
	        raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('attempts', 'attempt_events', "
	                    "'attempts_job_id', 'attempts_finished_at', 'attempt_events_attempt_id')") == 5);
	T_CHECK("fresh: WAL journal mode persisted",
	        raw_int(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
	sqlite3_close(db);
	tmp_remove(&t, "fresh");
}

static void
test_reopen(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-1", 1000);
	T_CHECK("reopen: first start", st != NULL && store_attempt_start(st, &a) == 1);
	store_flush(st);
	store_close(st);

	st = store_open(t.db, &cause);
	T_CHECK("reopen: opens again", st != NULL && cause == NULL);
	T_CHECK("reopen: row kept", raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-1'") == 1);
	T_CHECK("reopen: version unchanged", raw_int_once(t.db, "PRAGMA user_version") == migration_count());
	a.job_id = "job-2";
	T_CHECK("reopen: next id follows", st != NULL && store_attempt_start(st, &a) == 2);
	store_close(st);
	T_CHECK("reopen: both rows", raw_int_once(t.db, "SELECT count(*) FROM attempts") == 2);
	tmp_remove(&t, "reopen");
}

static void
test_newer_refused(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	sqlite3 *db = raw_open(t.db);
	sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL);
	sqlite3_close(db);

	struct store *st = store_open(t.db, &cause);
	T_CHECK("newer: refused", st == NULL);
	T_CHECK("newer: cause names the version", cause != NULL && strstr(cause, "999") != NULL);
	free(cause);
	T_CHECK("newer: version untouched", raw_int_once(t.db, "PRAGMA user_version") == 999);
	T_CHECK("newer: no schema written",
	        raw_int_once(t.db, "SELECT count(*) FROM sqlite_master WHERE name = 'attempts'") == 0);
	store_close(st);
	tmp_remove(&t, "newer");
}

static void
test_open_bad_path(void)
{
	char *cause = NULL;
	struct store *st = store_open("/nonexistent-hopper-dir/sub/store.db", &cause);
	T_CHECK("bad path: refused with a cause", st == NULL && cause != NULL);
	T_CHECK("bad path: cause names the path", cause != NULL && strstr(cause, "/nonexistent-hopper-dir") != NULL);
	free(cause);
}

/* Checks every column of attempt `id` against what test_roundtrip wrote. */
static void
check_attempt_row(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2(db,
	                   "SELECT job_id, type, queue, attempt, state, node, worker_pid, created_at, started_at, "
	                   "finished_at, duration_ms, error, result FROM attempts WHERE id = ?",
	                   -1, &s, NULL);
	sqlite3_bind_int64(s, 1, id);
	T_CHECK("roundtrip: row found", sqlite3_step(s) == SQLITE_ROW);
	T_STREQ("roundtrip: job_id", (const char *)sqlite3_column_text(s, 0), "job-rt");
	T_STREQ("roundtrip: type", (const char *)sqlite3_column_text(s, 1), "resize");
	T_STREQ("roundtrip: queue", (const char *)sqlite3_column_text(s, 2), "default");
	T_CHECK("roundtrip: attempt", sqlite3_column_int(s, 3) == 1);
	T_STREQ("roundtrip: state", (const char *)sqlite3_column_text(s, 4), "succeeded");
	T_STREQ("roundtrip: node", (const char *)sqlite3_column_text(s, 5), "node-a");
	T_CHECK("roundtrip: worker_pid", sqlite3_column_int(s, 6) == 4242);
	T_NEAR("roundtrip: created_at", sqlite3_column_double(s, 7), 1764000009.5, 1e-6);
	T_NEAR("roundtrip: started_at", sqlite3_column_double(s, 8), 1764000010.5, 1e-6);
	T_NEAR("roundtrip: finished_at", sqlite3_column_double(s, 9), 1764000012.75, 1e-6);
	T_NEAR("roundtrip: duration_ms", sqlite3_column_double(s, 10), 2250.0, 1e-3);
	T_CHECK("roundtrip: error NULL", sqlite3_column_type(s, 11) == SQLITE_NULL);
	T_STREQ("roundtrip: result", (const char *)sqlite3_column_text(s, 12), "{\"ok\":true}");
	sqlite3_finalize(s);
}

/* Checks both events of attempt `id` in order: a log line, then a progress event. */
static void
check_event_rows(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2(db,
	                   "SELECT at, kind, level, progress, stage, message FROM attempt_events WHERE attempt_id = ? "
	                   "ORDER BY id",
	                   -1, &s, NULL);
	sqlite3_bind_int64(s, 1, id);
	T_CHECK("roundtrip: log event found", sqlite3_step(s) == SQLITE_ROW);
	T_NEAR("roundtrip: log at", sqlite3_column_double(s, 0), 1764000011.0, 1e-6);
	T_STREQ("roundtrip: log kind", (const char *)sqlite3_column_text(s, 1), "log");
	T_STREQ("roundtrip: log level", (const char *)sqlite3_column_text(s, 2), "info");
	T_CHECK("roundtrip: log has no progress", sqlite3_column_type(s, 3) == SQLITE_NULL);
	T_CHECK("roundtrip: log has no stage", sqlite3_column_type(s, 4) == SQLITE_NULL);
	T_STREQ("roundtrip: log message", (const char *)sqlite3_column_text(s, 5), "scaling \"x\" 50%");
	T_CHECK("roundtrip: progress event found", sqlite3_step(s) == SQLITE_ROW);
	T_NEAR("roundtrip: progress at", sqlite3_column_double(s, 0), 1764000012.0, 1e-6);
	T_STREQ("roundtrip: progress kind", (const char *)sqlite3_column_text(s, 1), "progress");
	T_CHECK("roundtrip: progress has no level", sqlite3_column_type(s, 2) == SQLITE_NULL);
	T_CHECK("roundtrip: progress value", sqlite3_column_int(s, 3) == 42);
	T_STREQ("roundtrip: progress stage", (const char *)sqlite3_column_text(s, 4), "encode");
	T_CHECK("roundtrip: progress has no message", sqlite3_column_type(s, 5) == SQLITE_NULL);
	T_CHECK("roundtrip: exactly two events", sqlite3_step(s) == SQLITE_DONE);
	sqlite3_finalize(s);
}

static void
test_roundtrip(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-rt", 1764000010.5);
	int64_t id = st != NULL ? store_attempt_start(st, &a) : -1;
	T_CHECK("roundtrip: start", id > 0);
	T_CHECK("roundtrip: log event",
	        store_event(st, id, 1764000011.0, "log", "info", 7, NULL, "scaling \"x\" 50%") == 0);
	T_CHECK("roundtrip: progress event",
	        store_event(st, id, 1764000012.0, "progress", NULL, 42, "encode", NULL) == 0);
	T_CHECK("roundtrip: finish",
	        store_attempt_finish(st, id, "succeeded", 1764000012.75, NULL, "{\"ok\":true}") == 0);
	T_CHECK("roundtrip: flush", store_flush(st) == 0);

	sqlite3 *db = raw_open(t.db);
	check_attempt_row(db, id);
	check_event_rows(db, id);
	sqlite3_close(db);
	store_close(st);
	tmp_remove(&t, "roundtrip");
}

static void
test_group_commit(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	sqlite3 *reader = raw_open(t.db);
	struct store_attempt a = attempt_of("job-gc", 1000);
	T_CHECK("group commit: flush with nothing pending", st != NULL && store_flush(st) == 0);
	int64_t id = store_attempt_start(st, &a);
	T_CHECK("group commit: finish", store_attempt_finish(st, id, "failed", 1001, "boom", NULL) == 0);
	T_CHECK("group commit: pending", store_pending(st));
	T_CHECK("group commit: invisible before flush", raw_int(reader, "SELECT count(*) FROM attempts") == 0);
	T_CHECK("group commit: flush", store_flush(st) == 0);
	T_CHECK("group commit: nothing pending after", !store_pending(st));
	T_CHECK("group commit: visible after flush",
	        raw_int(reader, "SELECT count(*) FROM attempts WHERE state = 'failed'") == 1);
	sqlite3_close(reader);
	store_close(st);
	tmp_remove(&t, "group commit");
}

static void
test_prune(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-old", 90);
	int64_t old = st != NULL ? store_attempt_start(st, &a) : -1;
	a.job_id = "job-new", a.started_at = 990;
	int64_t recent = store_attempt_start(st, &a);
	a.job_id = "job-running", a.started_at = 95;
	int64_t running = store_attempt_start(st, &a);
	store_event(st, old, 91, "log", "info", 0, NULL, "old 1");
	store_event(st, old, 92, "progress", NULL, 50, NULL, NULL);
	store_event(st, recent, 991, "log", "info", 0, NULL, "new");
	store_event(st, running, 96, "log", "info", 0, NULL, "still going");
	store_attempt_finish(st, old, "succeeded", 100, NULL, NULL);
	store_attempt_finish(st, recent, "succeeded", 1000, NULL, NULL);
	T_CHECK("prune: setup flushed", store_flush(st) == 0);

	T_CHECK("prune: the old attempt and its two events deleted", store_prune_step(st, 500, 100) == 3);
	T_CHECK("prune: committed by the step itself", !store_pending(st));
	T_CHECK("prune: nothing left", store_prune_step(st, 500, 100) == 0);
	sqlite3 *db = raw_open(t.db);
	T_CHECK("prune: old attempt gone", raw_int(db, "SELECT count(*) FROM attempts WHERE job_id = 'job-old'") == 0);
	T_CHECK("prune: new and running attempts kept", raw_int(db, "SELECT count(*) FROM attempts") == 2);
	T_CHECK("prune: old events gone, others kept", raw_int(db, "SELECT count(*) FROM attempt_events") == 2);
	T_CHECK("prune: no orphan events", raw_int(db, "SELECT count(*) FROM attempt_events "
	                                               "WHERE attempt_id NOT IN (SELECT id FROM attempts)") == 0);
	sqlite3_close(db);
	store_close(st);
	tmp_remove(&t, "prune");
}

static void
test_many(void)
{
	struct tmp t;
	char *cause = NULL;
	int ok = 0;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	for (int i = 0; st != NULL && i < 10000; i++) {
		char job_id[32];
		snprintf(job_id, sizeof(job_id), "job-%d", i);
		struct store_attempt a = attempt_of(job_id, 1000 + i);
		int64_t id = store_attempt_start(st, &a);
		if (id > 0 && store_attempt_finish(st, id, "succeeded", 1000.5 + i, NULL, "{}") == 0)
			ok++;
	}
	T_CHECK("many: 10,000 start/finish pairs", ok == 10000);
	T_CHECK("many: one flush", st != NULL && store_flush(st) == 0);
	T_CHECK("many: all rows committed",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts "
	                           "WHERE state = 'succeeded' AND duration_ms = 500") == 10000);
	store_close(st);
	tmp_remove(&t, "many");
}

static void
test_close_commits(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-close", 1000);
	int64_t id = st != NULL ? store_attempt_start(st, &a) : -1;
	store_event(st, id, 1000.5, "log", "warn", 0, NULL, "about to close");
	store_attempt_finish(st, id, "cancelled", 1001, "shutdown", NULL);
	store_close(st);
	T_CHECK("close: pending attempt committed",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE state = 'cancelled'") == 1);
	T_CHECK("close: pending event committed", raw_int_once(t.db, "SELECT count(*) FROM attempt_events") == 1);
	store_close(NULL);
	tmp_remove(&t, "close");
}

/* A failed write is refused and logged, and does not spoil the rest of the turn's transaction. */
static void
test_bad_writes(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-good", 1000);
	int64_t id = st != NULL ? store_attempt_start(st, &a) : -1;
	T_CHECK("bad writes: finish of an unknown attempt",
	        store_attempt_finish(st, 999, "failed", 1, NULL, NULL) == -1);
	T_CHECK("bad writes: event of an unknown attempt", store_event(st, 999, 1, "log", "info", 0, NULL, "x") == -1);
	T_CHECK("bad writes: unknown event kind", store_event(st, id, 1, "chatter", NULL, 0, NULL, "x") == -1);
	T_CHECK("bad writes: NULL event kind", store_event(st, id, 1, NULL, NULL, 0, NULL, "x") == -1);
	a.job_id = NULL;
	T_CHECK("bad writes: NULL job id", store_attempt_start(st, &a) == -1);
	T_CHECK("bad writes: good finish still works",
	        store_attempt_finish(st, id, "succeeded", 1001, NULL, NULL) == 0);
	T_CHECK("bad writes: flush", store_flush(st) == 0);
	T_CHECK("bad writes: only the good row",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts") == 1 &&
	                raw_int_once(t.db, "SELECT count(*) FROM attempts "
	                                   "WHERE job_id = 'job-good' AND state = 'succeeded'") == 1);
	store_close(st);
	tmp_remove(&t, "bad writes");
}

/*
 * A failing COMMIT, made with a commit hook that SQLite's auto-extension mechanism installs on every new
 * connection (the store's included): the turn's writes are lost, and their ids must not be handed out again.
 */
static int fail_commits;

static int
commit_hook(void *arg)
{
	return fail_commits; /* non-zero turns the COMMIT into a rollback */
}

static int
install_commit_hook(sqlite3 *db, const char **err, const struct sqlite3_api_routines *api)
{
	sqlite3_commit_hook(db, commit_hook, NULL);
	return SQLITE_OK;
}

static void
test_commit_failure(void)
{
	struct tmp t;
	char *cause = NULL;
	tmp_make(&t);
	sqlite3_auto_extension((void (*)(void))install_commit_hook);
	struct store *st = store_open(t.db, &cause);
	struct store_attempt a = attempt_of("job-kept", 1000);
	int64_t kept = st != NULL ? store_attempt_start(st, &a) : -1;
	T_CHECK("commit failure: first turn commits", store_flush(st) == 0);
	a.job_id = "job-lost";
	int64_t lost = store_attempt_start(st, &a);
	fail_commits = 1;
	T_CHECK("commit failure: flush fails", store_flush(st) == -1);
	fail_commits = 0;
	T_CHECK("commit failure: nothing pending after", !store_pending(st));
	a.job_id = "job-after";
	int64_t after = store_attempt_start(st, &a);
	T_CHECK("commit failure: lost id not reused", after > lost && lost > kept);
	T_CHECK("commit failure: the attempt whose start was lost can still finish",
	        store_attempt_finish(st, lost, "succeeded", 1001, NULL, NULL) == 0);
	T_CHECK("commit failure: a finished attempt takes no more events",
	        store_event(st, lost, 1001, "log", "info", 0, NULL, "x") == -1);
	T_CHECK("commit failure: next turn commits",
	        store_attempt_finish(st, after, "succeeded", 1002, NULL, NULL) == 0 && store_flush(st) == 0);
	struct store_counters c;
	store_counters(st, &c);
	T_CHECK("commit failure: counted", c.errors_other == 1 && c.rows_dropped == 1 && c.commits == 2);
	store_close(st);
	sqlite3_cancel_auto_extension((void (*)(void))install_commit_hook);
	T_CHECK("commit failure: the lost start's attempt has its whole row from its finish",
	        raw_int_once(t.db, "SELECT count(*) FROM attempts WHERE job_id = 'job-lost' AND state = 'succeeded' "
	                           "AND type = 'resize' AND started_at = 1000 AND duration_ms = 1000") == 1);
	T_CHECK("commit failure: one row per attempt", raw_int_once(t.db, "SELECT count(*) FROM attempts") == 3);
	tmp_remove(&t, "commit failure");
}

int
main(void)
{
	test_fresh_open();
	test_reopen();
	test_newer_refused();
	test_open_bad_path();
	test_roundtrip();
	test_group_commit();
	test_prune();
	test_many();
	test_close_commits();
	test_bad_writes();
	test_commit_failure();
	T_DONE();
}

/*
 * store: opening the SQLite execution log and its schema, stored workflows and their webhooks, control-socket
 * tokens, and the reads (see store.h for the model). The attempt log's batched writes are in store_log.c. Only these
 * two files include sqlite3.h.
 *
 * The loop's connection has no busy timeout (a locked database must never make the loop wait): the attempt
 * log retries next turn instead; the rare administrative writes here (a workflow or webhook stored, a token
 * created or revoked) are committed on return and wait at most STORE_ADMIN_BUSY_MS for a lock.
 */
#include "store_int.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "embedded.h"
#include "jsonx.h"
#include "log.h"
#include "xmalloc.h"

/* How long an administrative write (workflow, token) waits for a lock another writer holds before failing:
 * these happen at a person's pace, and a few milliseconds of the loop are worth a write that succeeds. */
#define STORE_ADMIN_BUSY_MS 100
/* store_close runs after the loop: its last flush may wait for a lock as the loop never does. */
#define STORE_CLOSE_BUSY_MS 5000
/* Migration numbers are the file names' leading digits; 9 digits cannot overflow an int. */
#define MIGRATION_DIGITS_MAX 9

enum stmt_id {
	STMT_WF_PUT,
	STMT_WF_GET,
	STMT_WF_LIST,
	STMT_WF_RM,
	STMT_TOKEN_ADD,
	STMT_TOKEN_GET,
	STMT_TOKEN_BY_NAME,
	STMT_TOKEN_LIST,
	STMT_TOKEN_REVOKE,
	STMT_TOKEN_SET_HASH,
	STMT_HOOK_PUT,
	STMT_HOOK_BY_TOKEN,
	STMT_HOOK_BY_WORKFLOW,
	STMT_HOOK_RM,
	STMT_LOG_ATTEMPTS,
	STMT_LOG_EVENTS,
	STMT_LOG_STEPS,
	STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
        /* Storing a name again replaces its definition and keeps its id and created_at. */
        [STMT_WF_PUT] = "INSERT INTO workflows (name, description, definition, owner, active, created_at, "
                        "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO UPDATE SET "
                        "description = ?2, definition = ?3, owner = ?4, active = ?5, updated_at = ?6",
        [STMT_WF_GET] = "SELECT name, description, definition, owner, active, created_at, updated_at FROM workflows "
                        "WHERE name = ?1",
        [STMT_WF_LIST] = "SELECT name, description, definition, owner, active, created_at, updated_at FROM "
                         "workflows ORDER BY name",
        [STMT_WF_RM] = "DELETE FROM workflows WHERE name = ?1",
        /* Control-socket tokens (003_tokens.sql). */
        [STMT_TOKEN_ADD] =
                "INSERT INTO tokens (id, name, owner, scopes, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [STMT_TOKEN_GET] = "SELECT id, name, owner, scopes, hash, created_at, last_used_at, revoked_at, shared FROM "
                           "tokens WHERE id = ?1",
        [STMT_TOKEN_BY_NAME] = "SELECT id, name, owner, scopes, hash, created_at, last_used_at, revoked_at, shared "
                               "FROM tokens WHERE name = ?1",
        [STMT_TOKEN_LIST] = "SELECT id, name, owner, scopes, hash, created_at, last_used_at, revoked_at, shared FROM "
                            "tokens ORDER BY created_at, id",
        [STMT_TOKEN_REVOKE] = "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        [STMT_TOKEN_SET_HASH] = "UPDATE tokens SET hash = ?2 WHERE id = ?1",
        /* Webhooks of stored workflows (006_webhooks.sql). */
        [STMT_HOOK_PUT] = "INSERT INTO webhooks (token, workflow, signature, secret, created_at) VALUES (?1, ?2, "
                          "?3, ?4, ?5) ON CONFLICT (workflow) DO UPDATE SET token = ?1, signature = ?3, secret = ?4, "
                          "created_at = ?5",
        [STMT_HOOK_BY_TOKEN] = "SELECT token, workflow, signature, secret, created_at FROM webhooks WHERE token = ?1",
        [STMT_HOOK_BY_WORKFLOW] = "SELECT token, workflow, signature, secret, created_at FROM webhooks "
                                  "WHERE workflow = ?1",
        [STMT_HOOK_RM] = "DELETE FROM webhooks WHERE workflow = ?1",
        /* A job's history for the control socket's logs op; owner ?3 NULL: every owner's rows (admin). */
        [STMT_LOG_ATTEMPTS] = "SELECT attempt, state, node, worker_pid, started_at, finished_at, duration_ms, error, "
                              "fence, created_at FROM attempts WHERE job_id = ?1 AND (?3 IS NULL OR owner = ?3) "
                              "ORDER BY id",
        [STMT_LOG_EVENTS] = "SELECT a.attempt, e.at, e.kind, e.level, e.progress, e.stage, e.message FROM "
                            "attempt_events e JOIN attempts a ON e.attempt_id = a.id WHERE a.job_id = ?1 "
                            "AND (?3 IS NULL OR a.owner = ?3) ORDER BY e.id DESC LIMIT ?2",
        /* The job's workflow step rows (every try of every step, every run attempt), in the order they ran. */
        [STMT_LOG_STEPS] = "SELECT step_id, type, step_attempt, run_attempt, state, started_at, finished_at, "
                           "duration_ms, output, error FROM workflow_steps WHERE job_id = ?1 AND (?3 IS NULL OR "
                           "attempt_id IN (SELECT id FROM attempts WHERE owner = ?3)) ORDER BY id LIMIT ?2",
};

/* Finalizes and closes without committing: for store_close and for a failed store_open. */
static void
store_free(struct store *st)
{
	store_log_free(st);
	for (int i = 0; st->stmt != NULL && i < STMT_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	free(st->stmt);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_error("store: close: %s", sqlite3_errmsg(st->db));
	free(st);
}

/* Runs SQL without results. On error sets *cause (caller frees). */
static int
db_exec(sqlite3 *db, const char *sql, char **cause)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	*cause = xstrdup(err != NULL ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return -1;
}

/* Runs SQL that returns one integer (a pragma). On error sets *cause (caller frees). */
static int
db_query_int(sqlite3 *db, const char *sql, int *out, char **cause)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(s, 0);
	else
		*cause = xasprintf("%s: %s", sql, rc == SQLITE_DONE ? "no result" : sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/*
 * WAL lets readers (hopperctl, backups) run beside the daemon's open write transaction. The pragma answers
 * with the mode it got, which is not "wal" where WAL cannot work (no shared memory, e.g. some network file
 * systems): refuse then, rather than run with a rollback journal that blocks every reader.
 */
static int
db_set_wal(sqlite3 *db, char **cause)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	int ok = mode != NULL && strcmp(mode, "wal") == 0;
	if (!ok && mode != NULL)
		*cause = xasprintf("cannot use WAL journal mode (got \"%s\")", mode);
	else if (!ok)
		*cause = xasprintf("setting WAL journal mode: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

static int
db_open(struct store *st, const char *path, char **cause)
{
	int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		/* st->db is usually set even on failure (store_free closes it) and holds the better message. */
		*cause = xstrdup(st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/* No busy timeout: a lock another writer holds makes a write return SQLITE_BUSY at once (store_log.c). */
	sqlite3_busy_timeout(st->db, 0);
	/* foreign_keys is per connection and off by default; the events' ON DELETE CASCADE needs it. */
	if (db_set_wal(st->db, cause) != 0 || db_exec(st->db, "PRAGMA synchronous = NORMAL", cause) != 0 ||
	    db_exec(st->db, "PRAGMA foreign_keys = ON", cause) != 0)
		return -1;
	return 0;
}

/* A migration's number: its name's leading digits ("001_init.sql" -> 1), or -1 if it has none. */
static int
migration_number(const char *name)
{
	int n = 0, digits = 0;
	for (; isdigit((unsigned char)*name); name++) {
		if (++digits > MIGRATION_DIGITS_MAX)
			return -1;
		n = n * 10 + (*name - '0');
	}
	return digits > 0 ? n : -1;
}

/*
 * Checks the compiled-in migrations are numbered in increasing order, so that user_version N means "every
 * file up to N applied", and sets *highest to the last number (0 if there are none). A repeat or a file out
 * of order is a broken build; it is reported as a cause rather than by fatal so that store_open has one way
 * to fail. Numbers are reserved per subsystem (004 corestore, 005 security, 006 web, 007 celery), so a
 * build of one branch may skip some: a gap is allowed.
 */
static int
migrations_check(int *highest, char **cause)
{
	int prev = 0;
	for (const struct embedded_file *m = embedded_migrations; m->name != NULL; m++) {
		int n = migration_number(m->name);
		if (n <= prev) {
			*cause = xasprintf("built-in migration %s: expected a number above %d", m->name, prev);
			return -1;
		}
		prev = n;
	}
	*highest = prev;
	return 0;
}

/* Undoes what a failed migration step left open, if SQLite has not already. */
static void
migrate_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Applies migration n and sets user_version = n in one transaction, so a crash leaves the database at a whole
 * version. The version is re-read under the write lock: another process opening the same file may have
 * applied it meanwhile.
 */
static int
migrate_one(sqlite3 *db, const struct embedded_file *m, int n, char **cause)
{
	int version = 0;
	char *bump = xasprintf("PRAGMA user_version = %d", n);
	char *why = NULL;
	int rc = db_exec(db, "BEGIN IMMEDIATE", &why);
	if (rc == 0)
		rc = db_query_int(db, "PRAGMA user_version", &version, &why);
	if (rc == 0 && version < n)
		rc = db_exec(db, m->text, &why);
	if (rc == 0 && version < n)
		rc = db_exec(db, bump, &why);
	if (rc == 0)
		rc = db_exec(db, "COMMIT", &why);
	free(bump);
	if (rc != 0) {
		*cause = xasprintf("migration %s: %s", m->name, why);
		free(why);
		migrate_rollback(db);
		return -1;
	}
	if (version < n)
		log_info("store: applied migration %s", m->name);
	return 0;
}

/*
 * Brings the schema up to date. A database newer than this binary is refused: its schema may mean things
 * this code does not know, and running the old code on it could damage it.
 */
static int
migrate(sqlite3 *db, char **cause)
{
	int highest, version;
	if (migrations_check(&highest, cause) != 0 || db_query_int(db, "PRAGMA user_version", &version, cause) != 0)
		return -1;
	if (version > highest) {
		*cause = xasprintf("schema version %d is newer than this program knows (%d)", version, highest);
		return -1;
	}
	for (const struct embedded_file *m = embedded_migrations; m->name != NULL; m++) {
		int n = migration_number(m->name);
		if (n > version && migrate_one(db, m, n, cause) != 0)
			return -1;
	}
	return 0;
}

/* Prepares every statement once: each write then only binds and steps. */
static int
stmts_prepare(struct store *st, char **cause)
{
	st->stmt = xcalloc(STMT_COUNT, sizeof(*st->stmt));
	for (int i = 0; i < STMT_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
		    SQLITE_OK) {
			*cause = xasprintf("preparing \"%s\": %s", stmt_sql[i], sqlite3_errmsg(st->db));
			return -1;
		}
	}
	return 0;
}

struct store *
store_open(const char *path, char **cause)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char *why = NULL;
	if (db_open(st, path, &why) != 0 || migrate(st->db, &why) != 0 || stmts_prepare(st, &why) != 0 ||
	    store_log_prepare(st, &why) != 0) {
		*cause = xasprintf("%s: %s", path, why);
		free(why);
		store_free(st);
		return NULL;
	}
	return st;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	sqlite3_busy_timeout(st->db, STORE_CLOSE_BUSY_MS);
	store_flush(st);
	store_free(st);
}

/*
 * Steps a statement whose parameters are bound, then resets it and drops the bindings, which point into the
 * caller's strings (SQLITE_STATIC). Returns 0, or -1 with the error logged.
 */
static int
stmt_run(struct store *st, enum stmt_id id, const char *what)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * An administrative write, committed on return (autocommit: no transaction is ever open between store_log.c's
 * batches). It may wait STORE_ADMIN_BUSY_MS for a lock. Parameters bound with the first bind error in
 * bind_rc. Returns 0, or -1 with the error logged.
 */
static int
admin_write(struct store *st, enum stmt_id id, int bind_rc, const char *what)
{
	if (bind_rc != SQLITE_OK) {
		log_error("store: %s: %s", what, sqlite3_errstr(bind_rc));
		sqlite3_clear_bindings(st->stmt[id]);
		return -1;
	}
	sqlite3_busy_timeout(st->db, STORE_ADMIN_BUSY_MS);
	int rc = stmt_run(st, id, what);
	sqlite3_busy_timeout(st->db, 0);
	return rc;
}

/* Binders that keep the first error in *rc, so that a write binds everything and checks once. */
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

int
store_workflow_put(struct store *st, const struct store_workflow *w)
{
	sqlite3_stmt *s = st->stmt[STMT_WF_PUT];
	int rc = SQLITE_OK;
	bind_text(s, 1, w->name, &rc);
	bind_text(s, 2, w->description, &rc);
	bind_text(s, 3, w->definition, &rc);
	bind_text(s, 4, w->owner, &rc);
	bind_int64(s, 5, w->active, &rc);
	bind_double(s, 6, w->updated_at, &rc);
	return admin_write(st, STMT_WF_PUT, rc, "workflow put");
}

static char *
column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static void
row_workflow(sqlite3_stmt *s, struct store_workflow *w)
{
	w->name = column_dup(s, 0);
	w->description = column_dup(s, 1);
	w->definition = column_dup(s, 2);
	w->owner = column_dup(s, 3);
	w->active = sqlite3_column_int(s, 4);
	w->created_at = sqlite3_column_double(s, 5);
	w->updated_at = sqlite3_column_double(s, 6);
}

int
store_workflow_get(struct store *st, const char *name, struct store_workflow *out)
{
	sqlite3_stmt *s = st->stmt[STMT_WF_GET];
	memset(out, 0, sizeof(*out));
	int rc = SQLITE_OK;
	bind_text(s, 1, name, &rc);
	int step = rc == SQLITE_OK ? sqlite3_step(s) : rc;
	if (step == SQLITE_ROW)
		row_workflow(s, out);
	else if (step != SQLITE_DONE)
		log_error("store: workflow get: %s", sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
}

int
store_workflow_list(struct store *st, void (*fn)(const struct store_workflow *w, void *arg), void *arg)
{
	sqlite3_stmt *s = st->stmt[STMT_WF_LIST];
	int step, n = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_workflow w;
		row_workflow(s, &w);
		fn(&w, arg);
		store_workflow_free(&w);
		n++;
	}
	if (step != SQLITE_DONE)
		log_error("store: workflow list: %s", sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	return step == SQLITE_DONE ? n : -1;
}

int
store_workflow_rm(struct store *st, const char *name)
{
	int rc = SQLITE_OK;
	bind_text(st->stmt[STMT_WF_RM], 1, name, &rc);
	if (admin_write(st, STMT_WF_RM, rc, "workflow rm") != 0)
		return -1;
	return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

int
store_webhook_put(struct store *st, const struct store_webhook *h)
{
	sqlite3_stmt *s = st->stmt[STMT_HOOK_PUT];
	int rc = SQLITE_OK;
	bind_text(s, 1, h->token, &rc);
	bind_text(s, 2, h->workflow, &rc);
	bind_text(s, 3, h->signature, &rc);
	bind_text(s, 4, h->secret, &rc);
	bind_double(s, 5, h->created_at, &rc);
	return admin_write(st, STMT_HOOK_PUT, rc, "webhook put");
}

int
store_webhook_get(struct store *st, const char *token, const char *workflow, struct store_webhook *out)
{
	enum stmt_id id = token != NULL ? STMT_HOOK_BY_TOKEN : STMT_HOOK_BY_WORKFLOW;
	sqlite3_stmt *s = st->stmt[id];
	memset(out, 0, sizeof(*out));
	int rc = SQLITE_OK;
	bind_text(s, 1, token != NULL ? token : workflow, &rc);
	int step = rc == SQLITE_OK ? sqlite3_step(s) : rc;
	if (step == SQLITE_ROW) {
		out->token = column_dup(s, 0);
		out->workflow = column_dup(s, 1);
		out->signature = column_dup(s, 2);
		out->secret = column_dup(s, 3);
		out->created_at = sqlite3_column_double(s, 4);
	} else if (step != SQLITE_DONE)
		log_error("store: webhook get: %s", sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
}

int
store_webhook_rm(struct store *st, const char *workflow)
{
	int rc = SQLITE_OK;
	bind_text(st->stmt[STMT_HOOK_RM], 1, workflow, &rc);
	if (admin_write(st, STMT_HOOK_RM, rc, "webhook rm") != 0)
		return -1;
	return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

void
store_webhook_free(struct store_webhook *h)
{
	free(h->token);
	free(h->workflow);
	free(h->signature);
	if (h->secret != NULL)
		memset(h->secret, 0, strlen(h->secret));
	free(h->secret);
	memset(h, 0, sizeof(*h));
}

void
store_workflow_free(struct store_workflow *w)
{
	free(w->name);
	free(w->description);
	free(w->definition);
	free(w->owner);
	memset(w, 0, sizeof(*w));
}

/* --- control-socket tokens and job history --- */

/* Copies a text column into dst (size n), "" for NULL. */
static void
col_text(sqlite3_stmt *s, int i, char *dst, size_t n)
{
	const unsigned char *v = sqlite3_column_text(s, i);
	snprintf(dst, n, "%s", v != NULL ? (const char *)v : "");
}

static double
col_time(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_double(s, i);
}

static void
token_row(sqlite3_stmt *s, struct store_token *t)
{
	memset(t, 0, sizeof(*t));
	col_text(s, 0, t->id, sizeof(t->id));
	col_text(s, 1, t->name, sizeof(t->name));
	col_text(s, 2, t->owner, sizeof(t->owner));
	col_text(s, 3, t->scopes, sizeof(t->scopes));
	if (sqlite3_column_bytes(s, 4) == (int)sizeof(t->hash))
		memcpy(t->hash, sqlite3_column_blob(s, 4), sizeof(t->hash));
	t->created_at = col_time(s, 5);
	t->last_used_at = col_time(s, 6);
	t->revoked_at = col_time(s, 7);
	t->shared = sqlite3_column_int(s, 8);
}

int
store_token_add(struct store *st, const struct store_token *t)
{
	sqlite3_stmt *s = st->stmt[STMT_TOKEN_ADD];
	int rc = SQLITE_OK;
	bind_text(s, 1, t->id, &rc);
	bind_text(s, 2, t->name, &rc);
	bind_text(s, 3, t->owner, &rc);
	bind_text(s, 4, t->scopes, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 5, t->hash, (int)sizeof(t->hash), SQLITE_STATIC);
	bind_double(s, 6, t->created_at, &rc);
	if (rc != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return -1;
	}
	/* A token the client was shown must survive a crash: committed now (autocommit), not with the turn. */
	sqlite3_busy_timeout(st->db, STORE_ADMIN_BUSY_MS);
	int step = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_busy_timeout(st->db, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (step != SQLITE_DONE) {
		if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -2;
		log_error("store: token add: %s", sqlite3_errstr(ext));
		return -1;
	}
	return 0;
}

/* Runs a token SELECT bound to key. Returns 1 with *t, 0 when absent, -1 on error. */
static int
token_select(struct store *st, enum stmt_id id, const char *key, struct store_token *t)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc = SQLITE_OK;
	bind_text(s, 1, key, &rc);
	int step = rc == SQLITE_OK ? sqlite3_step(s) : SQLITE_ERROR;
	if (step == SQLITE_ROW)
		token_row(s, t);
	else if (step != SQLITE_DONE)
		log_error("store: token lookup: %s", sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
}

int
store_token_get(struct store *st, const char *id, struct store_token *t)
{
	return token_select(st, STMT_TOKEN_GET, id, t);
}

int
store_token_by_name(struct store *st, const char *name, struct store_token *t)
{
	return token_select(st, STMT_TOKEN_BY_NAME, name, t);
}

int
store_token_list(struct store *st, struct store_token **out)
{
	sqlite3_stmt *s = st->stmt[STMT_TOKEN_LIST];
	size_t n = 0, cap = 0;
	struct store_token *v = NULL;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		token_row(s, &v[n++]);
	}
	sqlite3_reset(s);
	if (step != SQLITE_DONE) {
		log_error("store: token list: %s", sqlite3_errmsg(st->db));
		free(v);
		return -1;
	}
	*out = v;
	return (int)n;
}

int
store_token_revoke(struct store *st, const char *id, double at)
{
	sqlite3_stmt *s = st->stmt[STMT_TOKEN_REVOKE];
	int rc = SQLITE_OK;
	bind_text(s, 1, id, &rc);
	bind_double(s, 2, at, &rc);
	if (admin_write(st, STMT_TOKEN_REVOKE, rc, "token revoke") != 0)
		return -1;
	return sqlite3_changes(st->db);
}

int
store_token_set_hash(struct store *st, const char *id, const unsigned char hash[32])
{
	sqlite3_stmt *s = st->stmt[STMT_TOKEN_SET_HASH];
	int rc = SQLITE_OK;
	bind_text(s, 1, id, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
	return admin_write(st, STMT_TOKEN_SET_HASH, rc, "token hash") != 0 ? -1 : 0;
}

static json_t *
col_json(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(s, i));
	case SQLITE_TEXT: {
		json_t *v = json_stringn((const char *)sqlite3_column_text(s, i), (size_t)sqlite3_column_bytes(s, i));
		return v != NULL ? v : json_string("(not UTF-8)");
	}
	default: return json_null();
	}
}

/* One row as an object with the given column names. */
static json_t *
row_object(sqlite3_stmt *s, const char *const *names, int n)
{
	json_t *o = json_object();
	for (int i = 0; i < n; i++)
		json_object_set_new(o, names[i], col_json(s, i));
	return o;
}

/* The job's workflow step rows, first ones first, while *bytes stays under max_bytes (else *truncated). */
static json_t *
log_steps(struct store *st, const char *job_id, const char *owner, int limit, size_t max_bytes, size_t *bytes,
          int *truncated)
{
	static const char *const cols[] = {"step",       "type",        "step_attempt", "run_attempt", "state",
	                                   "started_at", "finished_at", "duration_ms",  "output",      "error"};
	json_t *steps = json_array();
	sqlite3_stmt *s = st->stmt[STMT_LOG_STEPS];
	int rc = SQLITE_OK;
	bind_text(s, 1, job_id, &rc);
	bind_int64(s, 2, limit, &rc);
	bind_text(s, 3, owner, &rc);
	while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
		*bytes += 128 + (size_t)sqlite3_column_bytes(s, 8) + (size_t)sqlite3_column_bytes(s, 9);
		if (*bytes > max_bytes) {
			*truncated = 1;
			break;
		}
		json_array_append_new(steps, row_object(s, cols, 10));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return steps;
}

json_t *
store_job_log(struct store *st, const char *job_id, const char *owner, int limit, size_t max_bytes)
{
	store_flush(st);
	static const char *const acols[] = {"attempt",     "state",       "node",  "worker_pid", "started_at",
	                                    "finished_at", "duration_ms", "error", "fence",      "created_at"};
	static const char *const ecols[] = {"attempt", "at", "kind", "level", "progress", "stage", "message"};
	json_t *attempts = json_array(), *lines = json_array();
	sqlite3_stmt *s = st->stmt[STMT_LOG_ATTEMPTS];
	int rc = SQLITE_OK, step;
	size_t bytes = 0;
	bind_text(s, 1, job_id, &rc);
	bind_text(s, 3, owner, &rc);
	while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(attempts, row_object(s, acols, 10));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	s = st->stmt[STMT_LOG_EVENTS];
	bind_text(s, 1, job_id, &rc);
	bind_int64(s, 2, limit, &rc);
	bind_text(s, 3, owner, &rc);
	int truncated = 0;
	/* Newest first from SQLite, so a size cap keeps the latest lines; reversed below to read in order. */
	while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		bytes += 64 + (size_t)sqlite3_column_bytes(s, 5) + (size_t)sqlite3_column_bytes(s, 6);
		if (bytes > max_bytes) {
			truncated = 1;
			break;
		}
		json_array_insert_new(lines, 0, row_object(s, ecols, 7));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	json_t *steps = log_steps(st, job_id, owner, limit, max_bytes, &bytes, &truncated);
	json_t *out = json_pack("{s:o, s:o, s:o}", "attempts", attempts, "lines", lines, "steps", steps);
	if (truncated)
		json_object_set_new(out, "truncated", json_true());
	return out;
}

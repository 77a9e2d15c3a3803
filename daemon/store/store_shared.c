/*
 * store_shared: the tokens table as this node's cache of the deployment's shared set (daemon/shared.c keeps
 * it in step with Redis). Rare writes (a sync after a change), so the statements are prepared per call and
 * the transaction waits for a lock like the other administrative writes.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

/* As store.c's administrative writes: a lock another writer holds is waited for this long. */
#define SYNC_BUSY_MS 100

static const char *const SYNC_UNSHARE = "UPDATE tokens SET shared = 0 WHERE shared = 1";
static const char *const SYNC_NAME = "DELETE FROM tokens WHERE name = ?1 AND id <> ?2";
static const char *const SYNC_PUT =
        "INSERT INTO tokens (id, name, owner, scopes, hash, created_at, revoked_at, shared) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, 1) ON CONFLICT(id) DO UPDATE SET name = ?2, owner = ?3, scopes = ?4, hash = ?5, created_at = "
        "?6, revoked_at = ?7, shared = 1";

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Binds and runs one row's two statements. Returns SQLITE_OK or the error. */
static int
sync_row(sqlite3_stmt *name, sqlite3_stmt *put, const struct store_token *t)
{
	int rc = sqlite3_bind_text(name, 1, t->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(name, 2, t->id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && sqlite3_step(name) != SQLITE_DONE)
		rc = SQLITE_ERROR;
	sqlite3_reset(name);
	const char *text[] = {t->id, t->name, t->owner, t->scopes};
	for (int i = 0; i < 4 && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(put, i + 1, text[i], -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(put, 5, t->hash, (int)sizeof(t->hash), SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_double(put, 6, t->created_at);
	if (rc == SQLITE_OK)
		rc = t->revoked_at != 0 ? sqlite3_bind_double(put, 7, t->revoked_at) : sqlite3_bind_null(put, 7);
	if (rc == SQLITE_OK && sqlite3_step(put) != SQLITE_DONE)
		rc = SQLITE_ERROR;
	sqlite3_reset(put);
	return rc;
}

int
store_token_sync(struct store *st, const struct store_token *v, int n, int all)
{
	sqlite3_stmt *name = NULL, *put = NULL;
	sqlite3_busy_timeout(st->db, SYNC_BUSY_MS);
	int rc = exec(st->db, "BEGIN IMMEDIATE");
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, SYNC_NAME, -1, &name, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, SYNC_PUT, -1, &put, NULL);
	if (rc == SQLITE_OK && all)
		rc = exec(st->db, SYNC_UNSHARE);
	for (int i = 0; i < n && rc == SQLITE_OK; i++)
		rc = sync_row(name, put, &v[i]);
	if (rc == SQLITE_OK)
		rc = exec(st->db, "COMMIT");
	if (rc != SQLITE_OK) {
		log_error("store: token cache sync: %s", sqlite3_errmsg(st->db));
		if (!sqlite3_get_autocommit(st->db))
			exec(st->db, "ROLLBACK");
	}
	sqlite3_finalize(name);
	sqlite3_finalize(put);
	sqlite3_busy_timeout(st->db, 0);
	return rc == SQLITE_OK ? 0 : -1;
}

int
store_token_count(struct store *st, int shared)
{
	sqlite3_stmt *s = NULL;
	int n = -1;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM tokens WHERE shared = ?1", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_bind_int(s, 1, shared ? 1 : 0) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	else
		log_error("store: token count: %s", sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return n;
}

static const char *const WF_MARK = "UPDATE workflows SET shared = 2 WHERE shared = 1";
static const char *const WF_SWEEP = "DELETE FROM workflows WHERE shared = 2";
static const char *const WF_PUT =
        "INSERT INTO workflows (name, description, definition, owner, active, created_at, updated_at, shared) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1) ON CONFLICT(name) DO UPDATE SET description = ?2, definition = ?3, "
        "owner = ?4, active = ?5, created_at = ?6, updated_at = ?7, shared = 1";

static int
wf_row(sqlite3_stmt *put, const struct store_workflow *w)
{
	const char *text[] = {w->name, w->description, w->definition, w->owner};
	int rc = SQLITE_OK;
	for (int i = 0; i < 4 && rc == SQLITE_OK; i++)
		rc = text[i] != NULL ? sqlite3_bind_text(put, i + 1, text[i], -1, SQLITE_STATIC)
		                     : sqlite3_bind_null(put, i + 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(put, 5, w->active ? 1 : 0);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_double(put, 6, w->created_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_double(put, 7, w->updated_at);
	if (rc == SQLITE_OK && sqlite3_step(put) != SQLITE_DONE)
		rc = SQLITE_ERROR;
	sqlite3_reset(put);
	return rc;
}

int
store_workflow_sync(struct store *st, const struct store_workflow *v, int n, int all)
{
	sqlite3_stmt *put = NULL;
	sqlite3_busy_timeout(st->db, SYNC_BUSY_MS);
	int rc = exec(st->db, "BEGIN IMMEDIATE");
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, WF_PUT, -1, &put, NULL);
	if (rc == SQLITE_OK && all)
		rc = exec(st->db, WF_MARK);
	for (int i = 0; i < n && rc == SQLITE_OK; i++)
		rc = wf_row(put, &v[i]);
	if (rc == SQLITE_OK && all)
		rc = exec(st->db, WF_SWEEP);
	if (rc == SQLITE_OK)
		rc = exec(st->db, "COMMIT");
	if (rc != SQLITE_OK) {
		log_error("store: workflow cache sync: %s", sqlite3_errmsg(st->db));
		if (!sqlite3_get_autocommit(st->db))
			exec(st->db, "ROLLBACK");
	}
	sqlite3_finalize(put);
	sqlite3_busy_timeout(st->db, 0);
	return rc == SQLITE_OK ? 0 : -1;
}

int
store_workflow_count(struct store *st, int shared)
{
	sqlite3_stmt *s = NULL;
	int n = -1;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM workflows WHERE shared = ?1", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_bind_int(s, 1, shared ? 1 : 0) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	else
		log_error("store: workflow count: %s", sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return n;
}

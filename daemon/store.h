/*
 * store: the SQLite execution log. The only module that includes sqlite3.h.
 *
 * One row per attempt (table `attempts`) and its log lines and progress events (table `attempt_events`);
 * schema in schema/migrations/, applied at open through PRAGMA user_version. Writes are group-committed:
 * every store_* write joins the open transaction (begun on the first write), and store_flush, called once per
 * event-loop turn from hopperd's ev_prepare hook, commits it. WAL mode, synchronous=NORMAL: a crash of the
 * daemon loses no committed row; power loss may lose the last turn's.
 */
#ifndef HOPPER_STORE_H
#define HOPPER_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_attempt {
	const char *job_id;
	const char *type;
	const char *queue;
	const char *node;
	int attempt; /* 1-based; 0 for a message that never became a job (malformed) */
	int worker_pid;
	double created_at;
	double started_at;
};

/* Opens or creates the database and brings its schema up to date. NULL on error with *cause set (caller frees). */
struct store *store_open(const char *path, char **cause);
/* Commits what is pending and closes. NULL is allowed. */
void store_close(struct store *st);

/* Records an attempt's start (state "running"). Returns its row id (>0), or -1 on error (logged). */
int64_t store_attempt_start(struct store *st, const struct store_attempt *a);
/* Records an attempt's end. error and result_json may be NULL. Returns 0 or -1 (logged). */
int store_attempt_finish(struct store *st, int64_t row, const char *state, double finished_at, const char *error,
                         const char *result_json);
/* A log line (kind "log") or a progress event (kind "progress") of an attempt. Strings may be NULL. */
int store_event(struct store *st, int64_t row, double at, const char *kind, const char *level, int progress,
                const char *stage, const char *message);
/* Commits the open transaction, if any. Returns 0 or -1 (logged; the writes are retried next turn). */
int store_flush(struct store *st);
/* Deletes attempts (and their events) that finished before `before`. Returns rows deleted or -1. */
int store_prune(struct store *st, double before);
/* 1 if writes are waiting for store_flush. */
int store_pending(const struct store *st);

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
int store_step(struct store *st, const struct store_step *r);

/* A stored workflow. From store_workflow_get/list the strings are owned (store_workflow_free). */
struct store_workflow {
	char *name, *description, *definition, *owner;
	int active;
	double created_at, updated_at;
};
/* Inserts or replaces by name (updated_at is the time of this write). Returns 0 or -1 (logged). */
int store_workflow_put(struct store *st, const struct store_workflow *w);
/* 1 with *out filled (caller calls store_workflow_free), 0 if there is none, -1 on error (logged). */
int store_workflow_get(struct store *st, const char *name, struct store_workflow *out);
/* Calls fn for each, by name; w is valid during the call. Returns the count or -1. */
int store_workflow_list(struct store *st, void (*fn)(const struct store_workflow *w, void *arg), void *arg);
/* 1 if removed, 0 if there was none, -1 on error. */
int store_workflow_rm(struct store *st, const char *name);
void store_workflow_free(struct store_workflow *w);
/* Writes that failed since the store was opened (the stats op's local.store_errors). */
uint64_t store_errors(const struct store *st);
/* --- webhooks of stored workflows (006_webhooks.sql) --- */
struct store_webhook {
	char *token, *workflow, *signature, *secret; /* secret NULL for signature "none" */
	double created_at;
};
/* Creates or replaces the webhook of h->workflow (a new token: rotation). Returns 0 or -1 (logged). */
int store_webhook_put(struct store *st, const struct store_webhook *h);
/* By token, or (token NULL) by workflow: 1 with *out filled (caller calls store_webhook_free), 0, or -1. */
int store_webhook_get(struct store *st, const char *token, const char *workflow, struct store_webhook *out);
/* 1 if removed, 0 if there was none, -1 on error. */
int store_webhook_rm(struct store *st, const char *workflow);
/* Frees the strings, wiping the secret. */
void store_webhook_free(struct store_webhook *h);
/* --- control-socket tokens (003_tokens.sql); times 0 mean NULL --- */
struct store_token {
	char id[13];
	char name[65];
	char owner[129];
	char scopes[64]; /* "submit,read" */
	unsigned char hash[32];
	double created_at, last_used_at, revoked_at;
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
/* Sets last_used_at with the turn's group commit. Returns 0 or -1. */
int store_token_touch(struct store *st, const char *id, double at);
/*
 * A job's attempts (oldest first) and its last `limit` log lines and progress events (oldest first, at most
 * about max_bytes of text; "truncated": true when cut), and its first `limit` workflow step rows in the
 * order they ran (workflow.run; [] for other jobs): {"attempts": [...], "lines": [...], "steps": [...]}.
 * New reference.
 */
json_t *store_job_log(struct store *st, const char *job_id, int limit, size_t max_bytes);

#endif

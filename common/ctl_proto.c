#include "ctl_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celery_msg.h"
#include "job.h"
#include "jsonx.h"
#include "xmalloc.h"

/* hopperctl's exit codes: 1 and 15 are its own (see CTL_EXIT_*), 2..14 follow this table's order. */
const struct ctl_error_info ctl_errors[CTL_E_COUNT] = {
        [CTL_OK] = {"ok", "success", 0},
        [CTL_E_BAD_REQUEST] = {"bad_request",
                               "the request is malformed: not JSON, a field missing or of the wrong type", 2},
        [CTL_E_UNKNOWN_OP] = {"unknown_op", "no such operation", 3},
        [CTL_E_TOO_LARGE] = {"too_large", "the frame is over the size limit; the connection is closed", 4},
        [CTL_E_VERSION] = {"version", "no common protocol version, or hello missing or repeated", 5},
        [CTL_E_UNAUTHENTICATED] = {"unauthenticated", "authenticate (auth) before any other operation", 6},
        [CTL_E_AUTH_FAILED] = {"auth_failed", "the credential is unknown, revoked or wrong", 7},
        [CTL_E_LOCKED_OUT] = {"locked_out", "too many failed authentications from this peer; try later", 8},
        [CTL_E_FORBIDDEN] = {"forbidden", "the credential lacks the scope this operation needs", 9},
        [CTL_E_NOT_FOUND] = {"not_found", "no such job, queue or token (or not visible to this credential)", 10},
        [CTL_E_CONFLICT] = {"conflict", "the object is not in a state that allows this (e.g. cancel a finished job)",
                            11},
        [CTL_E_UNAVAILABLE] = {"unavailable", "Redis is unreachable; the daemon is up, try again", 12},
        [CTL_E_LIMIT] = {"limit", "a server limit was hit: too many connections, slow consumer, batch too big", 13},
        [CTL_E_INTERNAL] = {"internal", "a bug or an unexpected failure in the daemon (see its log)", 14},
};

const char *
ctl_err_name(enum ctl_err e)
{
	return (e >= 0 && e < CTL_E_COUNT) ? ctl_errors[e].name : "internal";
}

int
ctl_err_parse(const char *s)
{
	for (int i = 1; i < CTL_E_COUNT; i++)
		if (strcmp(ctl_errors[i].name, s) == 0)
			return i;
	return -1;
}

/* --- scopes --- */
static const char *const scope_names[] = {"submit", "read", "cancel", "admin"};
#define NSCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

static int
scope_bit(const char *s, size_t n)
{
	for (size_t i = 0; i < NSCOPES; i++)
		if (strlen(scope_names[i]) == n && strncmp(scope_names[i], s, n) == 0)
			return 1 << i;
	return 0;
}

int
ctl_scopes_parse(const char *csv, unsigned *out, char *err, size_t errlen)
{
	unsigned bits = 0;
	const char *p = csv;
	for (;;) {
		size_t n = strcspn(p, ",");
		int b = scope_bit(p, n);
		if (b == 0) {
			snprintf(err, errlen, "unknown scope '%.*s' (submit, read, cancel, admin)",
			         (int)(n > 32 ? 32 : n), p);
			return -1;
		}
		bits |= (unsigned)b;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	*out = bits;
	return 0;
}

int
ctl_scopes_from_json(json_t *arr, unsigned *out, char *err, size_t errlen)
{
	unsigned bits = 0;
	size_t i;
	json_t *v;
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		snprintf(err, errlen, "scopes must be a non-empty array of scope names");
		return -1;
	}
	json_array_foreach(arr, i, v)
	{
		int b = json_is_string(v) ? scope_bit(json_string_value(v), json_string_length(v)) : 0;
		if (b == 0) {
			snprintf(err, errlen, "scopes[%zu] is not one of submit, read, cancel, admin", i);
			return -1;
		}
		bits |= (unsigned)b;
	}
	*out = bits;
	return 0;
}

char *
ctl_scopes_format(unsigned bits, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NSCOPES; i++)
		if (bits & (1u << i)) {
			int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", scope_names[i]);
			if (n < 0 || (size_t)n >= len - off)
				break;
			off += (size_t)n;
		}
	return buf;
}

json_t *
ctl_scopes_json(unsigned bits)
{
	json_t *a = json_array();
	for (size_t i = 0; i < NSCOPES; i++)
		if (bits & (1u << i))
			json_array_append_new(a, json_string(scope_names[i]));
	return a;
}

int
ctl_scope_allows(unsigned have, unsigned need)
{
	return need == 0 || (have & CTL_SCOPE_ADMIN) || (have & need) == need;
}

int
ctl_owner_allows(unsigned have, const char *owner, const char *job_owner)
{
	if (have & CTL_SCOPE_ADMIN)
		return 1;
	return owner != NULL && job_owner != NULL && strcmp(owner, job_owner) == 0;
}

/* --- the catalogue --- */

/* 1 if exactly one of a and b is present (and not null). */
static int
one_of(json_t *req, const char *a, const char *b, char *err, size_t errlen)
{
	json_t *va = json_object_get(req, a), *vb = json_object_get(req, b);
	int na = va != NULL && !json_is_null(va), nb = vb != NULL && !json_is_null(vb);
	if (na + nb != 1) {
		snprintf(err, errlen, "give exactly one of '%s' and '%s'", a, b);
		return -1;
	}
	return 0;
}

static int
is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
check_token_id(json_t *req, const char *key, char *err, size_t errlen)
{
	json_t *v = json_object_get(req, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_string_length(v) != 12 || !is_hex(json_string_value(v), 12)) {
		snprintf(err, errlen, "'%s' must be 12 lowercase hex digits", key);
		return -1;
	}
	return 0;
}

static int
check_hello(json_t *req, char *err, size_t errlen)
{
	json_t *tid = json_object_get(req, "token_id"), *pk = json_object_get(req, "pk");
	if ((tid == NULL) != (pk == NULL)) {
		snprintf(err, errlen, "'token_id' and 'pk' go together (TCP handshake)");
		return -1;
	}
	return check_token_id(req, "token_id", err, errlen);
}

static int
check_auth(json_t *req, char *err, size_t errlen)
{
	json_t *tid = json_object_get(req, "token_id");
	if (tid != NULL && !json_is_null(tid)) { /* TCP: the handshake proved the secret */
		if (json_object_get(req, "token") != NULL || json_object_get(req, "peercred") != NULL) {
			snprintf(err, errlen, "give exactly one of 'token', 'peercred' and 'token_id'");
			return -1;
		}
		return check_token_id(req, "token_id", err, errlen);
	}
	if (one_of(req, "token", "peercred", err, errlen) < 0)
		return -1;
	json_t *pc = json_object_get(req, "peercred");
	if (pc != NULL && !json_is_true(pc)) {
		snprintf(err, errlen, "'peercred' can only be true");
		return -1;
	}
	return 0;
}

static int
check_submit(json_t *req, char *err, size_t errlen)
{
	return one_of(req, "job", "jobs", err, errlen);
}

static int
check_token_create(json_t *req, char *err, size_t errlen)
{
	unsigned bits;
	return ctl_scopes_from_json(json_object_get(req, "scopes"), &bits, err, errlen);
}

static int
check_token_revoke(json_t *req, char *err, size_t errlen)
{
	if (one_of(req, "name", "token_id", err, errlen) < 0)
		return -1;
	return check_token_id(req, "token_id", err, errlen);
}

/* celery.send: a countdown and an eta say the same thing twice; the task name is printable text. */
static int
check_celery_send(json_t *req, char *err, size_t errlen)
{
	json_t *cd = json_object_get(req, "countdown_s"), *eta = json_object_get(req, "eta");
	if (cd != NULL && !json_is_null(cd) && eta != NULL && !json_is_null(eta)) {
		snprintf(err, errlen, "give at most one of 'countdown_s' and 'eta'");
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)json_string_value(json_object_get(req, "task")); *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "field 'task' may not hold control characters");
			return -1;
		}
	return 0;
}

#define END                                                                                                            \
	{                                                                                                              \
		NULL, 0, 0, 0, 0, NULL                                                                                 \
	}
#define JOB_ARG                                                                                                        \
	{                                                                                                              \
		"job", CTL_ARG_NAME, 1, 0, JOB_ID_MAX, "the job's id"                                                  \
	}

static const struct ctl_arg args_none[] = {END};
static const struct ctl_arg args_hello[] = {
        /* 0 passes the type check so that the daemon can answer "version" rather than bad_request. */
        {"version", CTL_ARG_INT, 1, 0, 1000, "the highest protocol version the client speaks"},
        {"client", CTL_ARG_STRING, 0, 0, 128, "client name and version, for the log"},
        {"noise", CTL_ARG_STRING, 0, 0, 256, "TCP: Noise XK message 1, base64url (absent: ask for the daemon's key)"},
        /* Protocol 1's TCP handshake: still parsed so that an old client is told "version", not bad_request. */
        {"token_id", CTL_ARG_STRING, 0, 0, 12, "protocol 1 (refused on TCP): the token's public id"},
        {"pk", CTL_ARG_STRING, 0, 0, 64, "protocol 1 (refused on TCP): the client's ephemeral key"},
        END};
static const struct ctl_arg args_auth[] = {
        {"token", CTL_ARG_STRING, 0, 0, 128, "the full token hop_<id>_<secret>"},
        {"peercred", CTL_ARG_BOOL, 0, 0, 0, "unix socket only: authenticate as the connecting uid (root/daemon)"},
        {"token_id", CTL_ARG_STRING, 0, 0, 12,
         "TCP only (in handshake message 3): the token whose key the handshake proved"},
        END};
static const struct ctl_arg args_submit[] = {
        {"job", CTL_ARG_OBJECT, 0, 0, 0, "one job (see job.schema.json)"},
        {"jobs", CTL_ARG_ARRAY, 0, 1, CTL_BATCH_MAX, "a batch of jobs, all or none accepted"},
        END};
/* A job is found by id in the known queues; queue is needed only for an id that several queues hold. */
#define JOB_QUEUE_ARG                                                                                                  \
	{                                                                                                              \
		"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "the job's queue (only for an id in several)"             \
	}
static const struct ctl_arg args_job[] = {JOB_ARG, JOB_QUEUE_ARG, END};
static const struct ctl_arg args_list[] = {
        {"state", CTL_ARG_STATE, 0, 0, 0, "only jobs in this state"},
        {"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "only jobs of this queue"},
        {"type", CTL_ARG_NAME, 0, 0, JOB_TYPE_MAX, "only jobs of this type"},
        {"owner", CTL_ARG_STRING, 0, 0, JOB_OWNER_MAX, "only jobs of this owner (admin)"},
        {"limit", CTL_ARG_INT, 0, 1, CTL_LIST_MAX, "page size (default 100)"},
        {"cursor", CTL_ARG_STRING, 0, 0, CTL_CURSOR_MAX, "from the previous page's reply"},
        END};
static const struct ctl_arg args_logs[] = {
        JOB_ARG, JOB_QUEUE_ARG, {"limit", CTL_ARG_INT, 0, 1, CTL_LOGS_MAX, "last N log lines (default 1000)"}, END};
static const struct ctl_arg args_queue[] = {{"queue", CTL_ARG_NAME, 1, 0, QUEUE_NAME_MAX, "the queue"}, END};
static const struct ctl_arg args_token_create[] = {
        {"name", CTL_ARG_NAME, 1, 0, CTL_TOKEN_NAME_MAX, "unique token name"},
        {"scopes", CTL_ARG_STRINGS, 1, 0, 4, "submit, read, cancel, admin"},
        {"owner", CTL_ARG_STRING, 0, 0, JOB_OWNER_MAX, "owner recorded in its jobs (default: the name)"},
        END};
static const struct ctl_arg args_token_revoke[] = {{"name", CTL_ARG_NAME, 0, 0, CTL_TOKEN_NAME_MAX, "the token's name"},
                                                   {"token_id", CTL_ARG_STRING, 0, 0, 12, "or its public id"},
                                                   END};
static const struct ctl_arg args_celery_send[] = {
        {"task", CTL_ARG_STRING, 1, 0, CELERY_TASK_NAME_MAX, "the Celery task name, e.g. proj.tasks.add"},
        {"args", CTL_ARG_LIST, 0, 0, CTL_CELERY_ARGS_MAX, "positional arguments, a JSON array (default [])"},
        {"kwargs", CTL_ARG_OBJECT, 0, 0, 0, "keyword arguments, a JSON object (default {})"},
        {"queue", CTL_ARG_NAME, 0, 0, CELERY_QUEUE_MAX, "the Celery queue (default celery)"},
        {"priority", CTL_ARG_INT, 0, 0, 9, "0-9, 0 first (kombu's Redis transport; default 0)"},
        {"countdown_s", CTL_ARG_INT, 0, 0, 7 * 86400, "run no earlier than this many seconds from now"},
        {"eta", CTL_ARG_INT, 0, 0, 253402300799LL, "or no earlier than this Unix time (seconds)"},
        {"expires_s", CTL_ARG_INT, 0, 1, 7 * 86400, "not to be run after this many seconds from now"},
        {"task_id", CTL_ARG_NAME, 0, 0, JOB_ID_MAX, "the task id (default: a new UUIDv4)"},
        END};

static const struct ctl_arg args_workflow_put[] = {
        {"definition", CTL_ARG_OBJECT, 1, 0, 0, "the workflow (schema/workflow.schema.json)"},
        {"name", CTL_ARG_NAME, 0, 0, CTL_WORKFLOW_NAME_MAX, "its name (default: the definition's \"name\")"},
        {"description", CTL_ARG_STRING, 0, 0, CTL_WORKFLOW_DESC_MAX, "one line for workflow list"},
        {"active", CTL_ARG_BOOL, 0, 0, 0, "false: stored but not runnable (default true)"},
        {"owner", CTL_ARG_STRING, 0, 0, JOB_OWNER_MAX, "its owner (admin; default: the credential's)"},
        END};
static const struct ctl_arg args_workflow_name[] = {
        {"name", CTL_ARG_NAME, 1, 0, CTL_WORKFLOW_NAME_MAX, "the stored workflow's name"}, END};
static const struct ctl_arg args_workflow_run[] = {
        {"name", CTL_ARG_NAME, 1, 0, CTL_WORKFLOW_NAME_MAX, "the stored workflow's name"},
        {"input", CTL_ARG_OBJECT, 0, 0, 0, "the run's input, {{input.x}} (default {})"},
        {"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "queue (default: default)"},
        {"idempotency_key", CTL_ARG_STRING, 0, 0, JOB_IDEM_KEY_MAX, "one run per key"},
        {"job_id", CTL_ARG_NAME, 0, 0, JOB_ID_MAX, "the run's job id (default: a new UUIDv4)"},
        END};

static const struct ctl_arg args_workflow_webhook[] = {
        {"name", CTL_ARG_NAME, 1, 0, CTL_WORKFLOW_NAME_MAX, "the stored workflow's name"},
        {"action", CTL_ARG_STRING, 0, 0, 8, "create, rotate (a new URL token), revoke or show (default)"},
        {"signature", CTL_ARG_STRING, 0, 0, 8, "none (default), github (X-Hub-Signature-256) or stripe"},
        {"secret", CTL_ARG_STRING, 0, 0, CTL_WEBHOOK_SECRET_MAX, "the shared HMAC-SHA256 key (github, stripe)"},
        END};
static const struct ctl_arg args_webhook_trigger[] = {
        {"token", CTL_ARG_STRING, 1, 0, CTL_WEBHOOK_TOKEN_LEN, "the webhook's path token"},
        {"trigger", CTL_ARG_OBJECT, 1, 0, 0, "the run's input: {method, headers, url, timestamp, payload}"},
        {"body", CTL_ARG_STRING, 0, 0, CTL_WEBHOOK_BODY_MAX, "the raw body, base64, for the signature check"},
        {"hub_signature_256", CTL_ARG_STRING, 0, 0, 128, "the X-Hub-Signature-256 header"},
        {"stripe_signature", CTL_ARG_STRING, 0, 0, 1024, "the Stripe-Signature header"},
        {"idempotency_key", CTL_ARG_STRING, 0, 0, JOB_IDEM_KEY_MAX, "the Idempotency-Key header: one run per key"},
        END};

static const struct ctl_arg args_dead_retry[] = {
        {"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "only this queue's dead jobs (default: every queue)"},
        {"type", CTL_ARG_NAME, 0, 0, JOB_TYPE_MAX, "only jobs of this type"},
        {"error", CTL_ARG_STRING, 0, 0, CTL_DEAD_ERROR_MAX, "only jobs whose error contains this text"},
        {"older_than_s", CTL_ARG_INT, 0, 0, 10LL * 365 * 86400, "only jobs dead for at least this many seconds"},
        {"limit", CTL_ARG_INT, 0, 1, CTL_DEAD_CHUNK_MAX, "dead entries examined by this call (default 500)"},
        {"cursor", CTL_ARG_STRING, 0, 0, CTL_DEAD_CURSOR_MAX, "from the previous call's reply (same filters)"},
        END};

/* Schedules (daemon/ctl/ctl_sched.c, schema/schedule.schema.json). Names: 1-48 of letters, digits and . _ - */
#define SCHED_ARG_NAME                                                                                                 \
	{                                                                                                              \
		"name", CTL_ARG_NAME, 1, 0, 48, "the schedule's name (unique in its queue)"                            \
	}
#define SCHED_ARG_QUEUE                                                                                                \
	{                                                                                                              \
		"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "its queue (default: default)"                            \
	}
static const struct ctl_arg args_schedule_put[] = {
        SCHED_ARG_NAME,
        {"cron", CTL_ARG_STRING, 1, 0, 256, "5 cron fields, @hourly/@daily/..., or @every 30s"},
        {"tz", CTL_ARG_STRING, 0, 0, 64, "IANA time zone of the cron fields (default UTC)"},
        {"job", CTL_ARG_OBJECT, 0, 0, 0, "the job each fire submits (no id: each fire's id is derived)"},
        {"workflow", CTL_ARG_NAME, 0, 0, CTL_WORKFLOW_NAME_MAX, "or a stored workflow to run (resolved now)"},
        {"input", CTL_ARG_OBJECT, 0, 0, 0, "the workflow run's input"},
        SCHED_ARG_QUEUE,
        {"misfire", CTL_ARG_STRING, 0, 0, 8, "fires missed while no daemon ran: skip, once (default) or all"},
        {"misfire_max", CTL_ARG_INT, 0, 1, 100, "misfire all: most missed fires run (default 10)"},
        {"misfire_grace_s", CTL_ARG_INT, 0, 0, 86400, "a fire this late still runs as on time (default 60)"},
        {"start", CTL_ARG_INT, 0, 0, 253402300799LL, "no fire before this Unix time (seconds)"},
        {"end", CTL_ARG_INT, 0, 0, 253402300799LL, "no fire after this Unix time (seconds)"},
        {"jitter_s", CTL_ARG_INT, 0, 0, 86400, "delay each fire by up to this many seconds (the same on every daemon)"},
        {"paused", CTL_ARG_BOOL, 0, 0, 0, "store it paused"},
        {"owner", CTL_ARG_STRING, 0, 0, JOB_OWNER_MAX, "its owner (admin; default: the credential's)"},
        END};
static const struct ctl_arg args_schedule_name[] = {SCHED_ARG_NAME, SCHED_ARG_QUEUE, END};
static const struct ctl_arg args_schedule_show[] = {
        SCHED_ARG_NAME,
        SCHED_ARG_QUEUE,
        {"count", CTL_ARG_INT, 0, 1, 100, "upcoming fire times shown (default 5)"},
        END};
static const struct ctl_arg args_schedule_list[] = {
        {"queue", CTL_ARG_NAME, 0, 0, QUEUE_NAME_MAX, "only this queue's (default: every queue)"}, END};

/* Events (daemon/ctl/ctl_event.c): a key of job-name characters, a JSON object of data. */
#define EVENT_ARG_KEY                                                                                                  \
	{                                                                                                              \
		"key", CTL_ARG_NAME, 1, 0, CTL_EVENT_KEY_MAX, "the event key runs wait for (wait_event's key)"         \
	}
#define EVENT_ARG_OWNER                                                                                                \
	{                                                                                                              \
		"owner", CTL_ARG_STRING, 0, 0, 64, "admin: the owner whose runs the key is for (default: none)"        \
	}
static const struct ctl_arg args_event_send[] = {
        EVENT_ARG_KEY,
        {"data", CTL_ARG_OBJECT, 0, 0, 0, "the event's data, a JSON object (the wait_event step's output)"},
        EVENT_ARG_OWNER,
        END};
static const struct ctl_arg args_workflow_restart[] = {
        JOB_ARG,
        JOB_QUEUE_ARG,
        {"from", CTL_ARG_NAME, 1, 0, CTL_STEP_ID_MAX, "the step to re-run (with every step depending on it)"},
        END};
static const struct ctl_arg args_event_list[] = {
        EVENT_ARG_KEY,
        {"since_s", CTL_ARG_INT, 0, 0, 31536000, "only events sent in the last S seconds (default: all kept)"},
        {"count", CTL_ARG_INT, 0, 1, 1000, "events shown, oldest first (default 100)"},
        EVENT_ARG_OWNER,
        END};

static int
check_schedule_put(json_t *req, char *err, size_t errlen)
{
	int job = json_object_get(req, "job") != NULL, wf = json_object_get(req, "workflow") != NULL;
	if (job == wf) {
		snprintf(err, errlen, "a schedule needs exactly one of 'job' and 'workflow'");
		return -1;
	}
	if (json_object_get(req, "input") != NULL && !wf) {
		snprintf(err, errlen, "'input' goes with 'workflow'");
		return -1;
	}
	return 0;
}

static int
in_set(const char *v, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strcmp(v, *set) == 0)
			return 1;
	return 0;
}

static int
check_workflow_webhook(json_t *req, char *err, size_t errlen)
{
	static const char *const actions[] = {"create", "rotate", "revoke", "show", NULL};
	static const char *const sigs[] = {"none", "github", "stripe", NULL};
	const char *a = json_string_value(json_object_get(req, "action"));
	const char *sig = json_string_value(json_object_get(req, "signature"));
	json_t *secret = json_object_get(req, "secret");
	if (a != NULL && !in_set(a, actions)) {
		snprintf(err, errlen, "field 'action' must be create, rotate, revoke or show");
		return -1;
	}
	if (sig != NULL && !in_set(sig, sigs)) {
		snprintf(err, errlen, "field 'signature' must be none, github or stripe");
		return -1;
	}
	if ((sig != NULL || secret != NULL) && (a == NULL || (strcmp(a, "create") != 0 && strcmp(a, "rotate") != 0))) {
		snprintf(err, errlen, "'signature' and 'secret' go with action create or rotate");
		return -1;
	}
	if (sig != NULL && strcmp(sig, "none") != 0 && secret == NULL) {
		snprintf(err, errlen, "signature %s needs a 'secret'", sig);
		return -1;
	}
	if (secret != NULL && sig != NULL && strcmp(sig, "none") == 0) {
		snprintf(err, errlen, "signature none takes no 'secret'");
		return -1;
	}
	return 0;
}

#define P  CTL_F_PREAUTH
#define NR CTL_F_NOREDIS
#define W  CTL_F_WRITES
const struct ctl_op ctl_ops[CTL_OP_COUNT] = {
        [CTL_OP_HELLO] = {"hello", CTL_OP_HELLO, 0, P | NR, args_hello, "", "version exchange (first frame)",
                          check_hello},
        [CTL_OP_AUTH] = {"auth", CTL_OP_AUTH, 0, P | NR, args_auth, "", "authenticate with a token or peer credentials",
                         check_auth},
        [CTL_OP_PING] = {"ping", CTL_OP_PING, 0, NR, args_none, "", "check the daemon answers", NULL},
        [CTL_OP_SUBMIT] = {"submit", CTL_OP_SUBMIT, CTL_SCOPE_SUBMIT, W, args_submit,
                           "TYPE [ARGS_JSON] [--queue Q] | --file JOBS.json", "submit one job or a batch",
                           check_submit},
        [CTL_OP_STATUS] = {"status", CTL_OP_STATUS, CTL_SCOPE_READ, CTL_F_JOB, args_job, "JOB_ID",
                           "a job's state, progress and result", NULL},
        [CTL_OP_WATCH] = {"watch", CTL_OP_WATCH, CTL_SCOPE_READ, CTL_F_JOB | CTL_F_STREAM, args_job, "JOB_ID",
                          "stream a job's events until it ends", NULL},
        [CTL_OP_CANCEL] = {"cancel", CTL_OP_CANCEL, CTL_SCOPE_CANCEL, CTL_F_JOB | W, args_job, "JOB_ID",
                           "cancel a queued, scheduled or running job", NULL},
        [CTL_OP_RETRY] = {"retry", CTL_OP_RETRY, CTL_SCOPE_SUBMIT, CTL_F_JOB | W, args_job, "JOB_ID",
                          "send a failed or dead job back to its queue", NULL},
        [CTL_OP_LIST] = {"list", CTL_OP_LIST, CTL_SCOPE_READ, 0, args_list,
                         "[--state S] [--queue Q] [--type T] [--owner O] [--limit N] [--cursor C]",
                         "list jobs, newest first, paged", NULL},
        [CTL_OP_LOGS] = {"logs", CTL_OP_LOGS, CTL_SCOPE_READ, CTL_F_JOB | NR, args_logs, "JOB_ID [--limit N]",
                         "a job's attempts and log lines (every live daemon's execution log)", NULL},
        [CTL_OP_QUEUES] = {"queues", CTL_OP_QUEUES, CTL_SCOPE_READ, 0, args_none, "",
                           "queue lengths, scheduled, in flight, paused", NULL},
        [CTL_OP_STATS] = {"stats", CTL_OP_STATS, CTL_SCOPE_READ, 0, args_none, "",
                          "counters, throughput, worker pool, every daemon's heartbeat", NULL},
        [CTL_OP_PAUSE] = {"pause", CTL_OP_PAUSE, CTL_SCOPE_ADMIN, W, args_queue, "QUEUE",
                          "stop every daemon fetching from a queue", NULL},
        [CTL_OP_RESUME] = {"resume", CTL_OP_RESUME, CTL_SCOPE_ADMIN, W, args_queue, "QUEUE", "undo pause", NULL},
        [CTL_OP_TOKEN_CREATE] = {"token.create", CTL_OP_TOKEN_CREATE, CTL_SCOPE_ADMIN, W | NR, args_token_create,
                                 "NAME --scopes LIST [--owner O]", "make a token; its secret is shown once",
                                 check_token_create},
        [CTL_OP_TOKEN_LIST] = {"token.list", CTL_OP_TOKEN_LIST, CTL_SCOPE_ADMIN, NR, args_none, "",
                               "list tokens (never their secrets)", NULL},
        [CTL_OP_TOKEN_REVOKE] = {"token.revoke", CTL_OP_TOKEN_REVOKE, CTL_SCOPE_ADMIN, W | NR, args_token_revoke,
                                 "NAME | --id TOKEN_ID", "revoke a token and close its connections",
                                 check_token_revoke},
        /* Stored workflows: submit manages (and runs) the credential's owner's, read sees them, admin all. */
        [CTL_OP_WORKFLOW_PUT] = {"workflow.put", CTL_OP_WORKFLOW_PUT, CTL_SCOPE_SUBMIT, W | NR, args_workflow_put,
                                 "FILE [--name N] [--description D] [--inactive] [--owner O]",
                                 "store a workflow definition (replaces one of the same name)", NULL},
        [CTL_OP_WORKFLOW_LIST] = {"workflow.list", CTL_OP_WORKFLOW_LIST, CTL_SCOPE_READ, NR, args_none, "",
                                  "list stored workflows", NULL},
        [CTL_OP_WORKFLOW_SHOW] = {"workflow.show", CTL_OP_WORKFLOW_SHOW, CTL_SCOPE_READ, NR, args_workflow_name, "NAME",
                                  "a stored workflow with its definition", NULL},
        [CTL_OP_WORKFLOW_RM] = {"workflow.rm", CTL_OP_WORKFLOW_RM, CTL_SCOPE_SUBMIT, W | NR, args_workflow_name, "NAME",
                                "delete a stored workflow", NULL},
        [CTL_OP_WORKFLOW_RUN] = {"workflow.run", CTL_OP_WORKFLOW_RUN, CTL_SCOPE_SUBMIT, W, args_workflow_run,
                                 "NAME [--input JSON] [--queue Q] [--idempotency-key K] [--id ID] [--wait]",
                                 "run a stored workflow: submits a workflow.run job carrying its definition", NULL},
        [CTL_OP_CELERY_SEND] = {"celery.send", CTL_OP_CELERY_SEND, CTL_SCOPE_SUBMIT, W, args_celery_send,
                                "TASK [--args JSON] [--kwargs JSON] [--queue Q] [--priority N] [--countdown S] ...",
                                "publish a task in Celery's format to a Celery queue", check_celery_send},
        [CTL_OP_WORKFLOW_WEBHOOK] = {"workflow.webhook", CTL_OP_WORKFLOW_WEBHOOK, CTL_SCOPE_SUBMIT, W | NR,
                                     args_workflow_webhook,
                                     "NAME [--create|--rotate|--revoke] [--signature github|stripe --secret S]",
                                     "a stored workflow's webhook: its URL token, signature check",
                                     check_workflow_webhook},
        [CTL_OP_WEBHOOK_TRIGGER] = {"webhook.trigger", CTL_OP_WEBHOOK_TRIGGER, CTL_SCOPE_SUBMIT, W,
                                    args_webhook_trigger, "TOKEN --trigger JSON",
                                    "run the workflow a webhook token names (hopper-web's POST /webhook/TOKEN)", NULL},
        [CTL_OP_DEAD_RETRY] = {"dead_retry", CTL_OP_DEAD_RETRY, CTL_SCOPE_ADMIN, W, args_dead_retry,
                               "[--queue Q] [--type T] [--error TEXT] [--older-than S] [--limit N] [--cursor C]",
                               "retry dead jobs in bounded chunks (one call = one chunk; loop on the cursor)", NULL},
        /* Schedules: submit manages the credential's owner's, read sees them, admin all (as stored workflows). */
        [CTL_OP_SCHEDULE_PUT] = {"schedule.put", CTL_OP_SCHEDULE_PUT, CTL_SCOPE_SUBMIT, W, args_schedule_put,
                                 "NAME --cron SPEC (--job JSON | --workflow W [--input JSON]) [--tz ZONE] [--queue Q] "
                                 "[--misfire M] ...",
                                 "store a schedule (replaces one of the same name in its queue)", check_schedule_put},
        [CTL_OP_SCHEDULE_LIST] = {"schedule.list", CTL_OP_SCHEDULE_LIST, CTL_SCOPE_READ, 0, args_schedule_list,
                                  "[--queue Q]", "list schedules with their next fire time", NULL},
        [CTL_OP_SCHEDULE_SHOW] = {"schedule.show", CTL_OP_SCHEDULE_SHOW, CTL_SCOPE_READ, 0, args_schedule_show,
                                  "NAME [--queue Q] [--count N]", "a schedule, its history and its next fire times",
                                  NULL},
        [CTL_OP_SCHEDULE_RM] = {"schedule.rm", CTL_OP_SCHEDULE_RM, CTL_SCOPE_SUBMIT, W, args_schedule_name,
                                "NAME [--queue Q]", "delete a schedule (jobs it made stay)", NULL},
        [CTL_OP_SCHEDULE_PAUSE] = {"schedule.pause", CTL_OP_SCHEDULE_PAUSE, CTL_SCOPE_SUBMIT, W, args_schedule_name,
                                   "NAME [--queue Q]", "stop a schedule firing", NULL},
        [CTL_OP_SCHEDULE_RESUME] = {"schedule.resume", CTL_OP_SCHEDULE_RESUME, CTL_SCOPE_SUBMIT, W, args_schedule_name,
                                    "NAME [--queue Q]",
                                    "resume a schedule from now (fire times in the pause are not run)", NULL},
        /* Events: the owner's keys (admin names one with --owner); a run's wait_event sees its owner's only. */
        [CTL_OP_EVENT_SEND] = {"event.send", CTL_OP_EVENT_SEND, CTL_SCOPE_SUBMIT, W, args_event_send,
                               "KEY [--data JSON] [--owner O]",
                               "send an event: wakes the runs waiting for KEY, kept for later waits' lookback", NULL},
        [CTL_OP_EVENT_LIST] = {"event.list", CTL_OP_EVENT_LIST, CTL_SCOPE_READ, 0, args_event_list,
                               "KEY [--since-s S] [--count N] [--owner O]",
                               "the events kept for KEY and how many runs wait for it", NULL},
        [CTL_OP_WORKFLOW_RESTART] = {"workflow.restart", CTL_OP_WORKFLOW_RESTART, CTL_SCOPE_SUBMIT, CTL_F_JOB | W,
                                     args_workflow_restart, "RUN_ID --from STEP",
                                     "re-run an ended workflow run from a step: keeps the outputs of the steps "
                                     "that do not depend on it",
                                     NULL},
};
#undef P
#undef NR
#undef W

const struct ctl_op *
ctl_op_find(const char *name)
{
	for (int i = 0; i < CTL_OP_COUNT; i++)
		if (strcmp(ctl_ops[i].name, name) == 0)
			return &ctl_ops[i];
	return NULL;
}

/* --- frames --- */
enum ctl_frame_status
ctl_frame_decode(const unsigned char *buf, size_t len, size_t max, const unsigned char **payload, size_t *plen,
                 size_t *consumed)
{
	if (len < CTL_FRAME_HEADER_LEN)
		return CTL_FRAME_NEED_MORE;
	uint32_t n = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) | ((uint32_t)buf[2] << 8) | buf[3];
	if (n == 0)
		return CTL_FRAME_EMPTY;
	if (n > max)
		return CTL_FRAME_TOO_LARGE;
	if (len - CTL_FRAME_HEADER_LEN < n)
		return CTL_FRAME_NEED_MORE;
	*payload = buf + CTL_FRAME_HEADER_LEN;
	*plen = n;
	*consumed = CTL_FRAME_HEADER_LEN + (size_t)n;
	return CTL_FRAME_OK;
}

int
ctl_frame_header(unsigned char hdr[CTL_FRAME_HEADER_LEN], size_t len, size_t max)
{
	if (len == 0 || len > max || len > UINT32_MAX)
		return -1;
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	return 0;
}

unsigned char *
ctl_frame_encode(const json_t *msg, size_t max, size_t *len)
{
	char *text = jsonx_dump(msg);
	size_t n = strlen(text);
	unsigned char *out = NULL;
	unsigned char hdr[CTL_FRAME_HEADER_LEN];
	if (ctl_frame_header(hdr, n, max) == 0) {
		out = xmalloc(CTL_FRAME_HEADER_LEN + n);
		memcpy(out, hdr, CTL_FRAME_HEADER_LEN);
		memcpy(out + CTL_FRAME_HEADER_LEN, text, n);
		*len = CTL_FRAME_HEADER_LEN + n;
	}
	free(text);
	return out;
}

/* --- requests --- */

/* Validates the id; sets req->id when usable. Returns 0 or -1 with err. */
static int
parse_id(struct ctl_request *req, char *err, size_t errlen)
{
	json_t *id = json_object_get(req->root, "id");
	if (id == NULL || json_is_null(id))
		return 0;
	if (json_is_integer(id) && json_integer_value(id) >= 0 && json_integer_value(id) <= CTL_ID_INT_MAX) {
		req->id = id;
		return 0;
	}
	if (json_is_string(id) && json_string_length(id) >= 1 && json_string_length(id) <= CTL_ID_STR_MAX &&
	    strlen(json_string_value(id)) == json_string_length(id)) {
		req->id = id;
		return 0;
	}
	snprintf(err, errlen, "'id' must be an integer 0..2^53-1 or a string of 1..%d bytes", CTL_ID_STR_MAX);
	return -1;
}

/* Checks one field against its spec. Returns 0 (absent or fine) or -1 with err. */
static int
check_arg(json_t *req, const struct ctl_arg *a, char *err, size_t errlen)
{
	json_t *v = json_object_get(req, a->name);
	const char *s;
	long long n;
	int b;
	if (v == NULL || json_is_null(v)) {
		if (a->required) {
			snprintf(err, errlen, "field '%s' is required", a->name);
			return -1;
		}
		return 0;
	}
	switch (a->type) {
	case CTL_ARG_STRING: return jsonx_string(req, a->name, (size_t)a->max, &s, err, errlen) < 0 ? -1 : 0;
	case CTL_ARG_NAME:
		if (jsonx_string(req, a->name, (size_t)a->max, &s, err, errlen) < 0)
			return -1;
		if (!job_name_valid(s, (size_t)a->max)) {
			snprintf(err, errlen, "field '%s' may hold only letters, digits and . _ : -", a->name);
			return -1;
		}
		return 0;
	case CTL_ARG_INT: return jsonx_int(req, a->name, a->min, a->max, &n, err, errlen) < 0 ? -1 : 0;
	case CTL_ARG_BOOL: return jsonx_bool(req, a->name, &b, err, errlen) < 0 ? -1 : 0;
	case CTL_ARG_OBJECT:
		if (json_is_object(v))
			return 0;
		snprintf(err, errlen, "field '%s' must be an object", a->name);
		return -1;
	case CTL_ARG_ARRAY:
	case CTL_ARG_STRINGS: {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > (size_t)a->max) {
			snprintf(err, errlen, "field '%s' must be an array of 1 to %lld elements", a->name, a->max);
			return -1;
		}
		json_array_foreach(v, i, e)
		{
			int good = a->type == CTL_ARG_ARRAY ? json_is_object(e)
			                                    : json_is_string(e) && json_string_length(e) >= 1 &&
			                                              json_string_length(e) <= 64;
			if (!good) {
				snprintf(err, errlen, "%s[%zu] must be %s", a->name, i,
				         a->type == CTL_ARG_ARRAY ? "an object" : "a string of 1..64 bytes");
				return -1;
			}
		}
		return 0;
	}
	case CTL_ARG_LIST:
		if (json_is_array(v) && json_array_size(v) <= (size_t)a->max)
			return 0;
		snprintf(err, errlen, "field '%s' must be an array of at most %lld elements", a->name, a->max);
		return -1;
	case CTL_ARG_STATE:
		if (json_is_string(v) && job_state_parse(json_string_value(v)) >= 0)
			return 0;
		snprintf(err, errlen, "field '%s' must be a job state name", a->name);
		return -1;
	}
	return -1;
}

static int
arg_known(const struct ctl_op *op, const char *key)
{
	if (strcmp(key, "id") == 0 || strcmp(key, "op") == 0)
		return 1;
	for (const struct ctl_arg *a = op->args; a->name != NULL; a++)
		if (strcmp(a->name, key) == 0)
			return 1;
	return 0;
}

enum ctl_err
ctl_request_parse(const unsigned char *buf, size_t len, struct ctl_request *req, char *err, size_t errlen)
{
	json_error_t jerr;
	memset(req, 0, sizeof(*req));
	err[0] = '\0';
	req->root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req->root == NULL) {
		snprintf(err, errlen, "not JSON: %s (at byte %d)", jerr.text, jerr.position);
		return CTL_E_BAD_REQUEST;
	}
	if (!json_is_object(req->root)) {
		snprintf(err, errlen, "a request is a JSON object");
		return CTL_E_BAD_REQUEST;
	}
	if (parse_id(req, err, errlen) < 0)
		return CTL_E_BAD_REQUEST;
	const char *name = NULL;
	int r = jsonx_string(req->root, "op", 64, &name, err, errlen);
	if (r < 0)
		return CTL_E_BAD_REQUEST;
	if (r == 0) {
		snprintf(err, errlen, "field 'op' is required");
		return CTL_E_BAD_REQUEST;
	}
	req->op = ctl_op_find(name);
	if (req->op == NULL) {
		snprintf(err, errlen, "unknown op '%.64s'", name);
		return CTL_E_UNKNOWN_OP;
	}
	const char *key;
	json_t *v;
	json_object_foreach(req->root, key, v)
	{
		if (!arg_known(req->op, key)) {
			snprintf(err, errlen, "op '%s' takes no field '%.64s'", req->op->name, key);
			return CTL_E_BAD_REQUEST;
		}
	}
	for (const struct ctl_arg *a = req->op->args; a->name != NULL; a++)
		if (check_arg(req->root, a, err, errlen) < 0)
			return CTL_E_BAD_REQUEST;
	if (req->op->check != NULL && req->op->check(req->root, err, errlen) < 0)
		return CTL_E_BAD_REQUEST;
	return CTL_OK;
}

void
ctl_request_free(struct ctl_request *req)
{
	json_decref(req->root);
	memset(req, 0, sizeof(*req));
}

json_t *
ctl_reply_parse(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *r = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (r == NULL) {
		snprintf(err, errlen, "not JSON: %s", jerr.text);
		return NULL;
	}
	json_t *ok = json_object_get(r, "ok"), *ev = json_object_get(r, "event");
	const char *why = NULL;
	if (!json_is_object(r) || json_object_get(r, "id") == NULL)
		why = "a reply is an object with an 'id'";
	else if ((ok == NULL) == (ev == NULL))
		why = "a reply has exactly one of 'ok' and 'event'";
	else if (ok != NULL && !json_is_boolean(ok))
		why = "'ok' must be true or false";
	else if (json_is_false(ok) && (!json_is_object(json_object_get(r, "error")) ||
	                               !json_is_string(json_object_get(json_object_get(r, "error"), "code"))))
		why = "an error reply needs error.code";
	else if (ev != NULL && !json_is_object(ev))
		why = "'event' must be an object";
	if (why != NULL) {
		snprintf(err, errlen, "%s", why);
		json_decref(r);
		return NULL;
	}
	return r;
}

/* --- replies --- */
static json_t *
reply_base(json_t *id)
{
	json_t *r = json_object();
	json_object_set(r, "id", id != NULL ? id : json_null());
	return r;
}

json_t *
ctl_reply_ok(json_t *id, json_t *result)
{
	json_t *r = reply_base(id);
	json_object_set_new(r, "ok", json_true());
	json_object_set_new(r, "result", result != NULL ? result : json_object());
	return r;
}

json_t *
ctl_reply_done(json_t *id, json_t *result)
{
	json_t *r = ctl_reply_ok(id, result);
	json_object_set_new(r, "done", json_true());
	return r;
}

json_t *
ctl_reply_event(json_t *id, json_t *event)
{
	json_t *r = reply_base(id);
	json_object_set_new(r, "event", event);
	return r;
}

json_t *
ctl_reply_error(json_t *id, enum ctl_err code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *r = reply_base(id);
	json_object_set_new(r, "ok", json_false());
	/* A message quoting client text cut at a byte limit may end in half a UTF-8 sequence. */
	json_t *m = json_string(msg);
	json_t *e = json_object();
	json_object_set_new(e, "code", json_string(ctl_err_name(code)));
	json_object_set_new(e, "message", m != NULL ? m : json_string("(message not valid UTF-8)"));
	json_object_set_new(r, "error", e);
	return r;
}

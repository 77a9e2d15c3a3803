/*
 * routes: hopper-web's HTTP API is the control protocol's ops catalogue (common/ctl_proto.c) under /v1/. One
 * table maps method + path to an op; a request's path segments, query string and JSON body become the op's
 * fields and are validated by the protocol's own parser before anything is sent, so the HTTP API and the
 * control socket accept exactly the same requests and answer with the same error codes. tests/unit/
 * test_web_routes.c checks that every op of the catalogue has a route or a reason not to, and that every
 * route's path fields are fields of its op; tests/web/openapi_check.py checks schema/http-api.openapi.json
 * against this table (hopper-web --routes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "web.h"

/* clang-format off */
const struct web_route web_routes[] = {
	{"GET",    "/v1/ping",                   CTL_OP_PING,          BODY_NONE,   NULL, NULL, 0, "check the daemon answers"},
	{"GET",    "/v1/whoami",                 -1,                   BODY_NONE,   NULL, NULL, ROUTE_LOCAL, "the credential: method, name, owner, scopes"},
	{"POST",   "/v1/jobs",                   CTL_OP_SUBMIT,        BODY_JOBS,   NULL, NULL, 0, "submit one job or a batch (all or none)"},
	{"GET",    "/v1/jobs",                   CTL_OP_LIST,          BODY_NONE,   NULL, NULL, 0, "list jobs, newest first, paged (?state&queue&type&owner&limit&cursor)"},
	{"GET",    "/v1/jobs/{job}",             CTL_OP_STATUS,        BODY_NONE,   NULL, NULL, 0, "a job's state, progress and result"},
	{"GET",    "/v1/jobs/{job}/events",      CTL_OP_WATCH,         BODY_NONE,   NULL, NULL, ROUTE_SSE, "the job's events as Server-Sent Events, until it ends"},
	{"POST",   "/v1/jobs/{job}/cancel",      CTL_OP_CANCEL,        BODY_NONE,   NULL, NULL, 0, "cancel a queued, scheduled or running job"},
	{"POST",   "/v1/jobs/{job}/retry",       CTL_OP_RETRY,         BODY_NONE,   NULL, NULL, 0, "send a failed or dead job back to its queue"},
	{"POST",   "/v1/jobs/{job}/restart",     CTL_OP_WORKFLOW_RESTART, BODY_FIELDS, NULL, NULL, 0, "re-run an ended workflow run from a step ({from}); keeps what does not depend on it"},
	{"GET",    "/v1/jobs/{job}/logs",        CTL_OP_LOGS,          BODY_NONE,   NULL, NULL, 0, "attempts, log lines and workflow step table (?limit)"},
	{"GET",    "/v1/dead",                   CTL_OP_LIST,          BODY_NONE,   "state=dead", NULL, 0, "dead jobs, newest first, paged"},
	{"GET",    "/v1/queues",                 CTL_OP_QUEUES,        BODY_NONE,   NULL, NULL, 0, "queue lengths, scheduled, in flight, paused, dead"},
	{"POST",   "/v1/queues/{queue}/pause",   CTL_OP_PAUSE,         BODY_NONE,   NULL, NULL, 0, "stop every daemon fetching from a queue"},
	{"POST",   "/v1/queues/{queue}/resume",  CTL_OP_RESUME,        BODY_NONE,   NULL, NULL, 0, "undo pause"},
	{"GET",    "/v1/stats",                  CTL_OP_STATS,         BODY_NONE,   NULL, NULL, 0, "counters, throughput, worker pool, heartbeats"},
	{"GET",    "/v1/tokens",                 CTL_OP_TOKEN_LIST,    BODY_NONE,   NULL, NULL, 0, "list tokens (admin)"},
	{"POST",   "/v1/tokens",                 CTL_OP_TOKEN_CREATE,  BODY_FIELDS, NULL, NULL, 0, "make a token; its secret is shown once (admin)"},
	{"DELETE", "/v1/tokens/{name}",          CTL_OP_TOKEN_REVOKE,  BODY_NONE,   NULL, NULL, 0, "revoke a token and close its connections (admin)"},
	{"GET",    "/v1/workflows",              CTL_OP_WORKFLOW_LIST, BODY_NONE,   NULL, NULL, 0, "list stored workflows"},
	{"PUT",    "/v1/workflows/{name}",       CTL_OP_WORKFLOW_PUT,  BODY_FIELDS, NULL, NULL, 0, "store a workflow definition"},
	{"GET",    "/v1/workflows/{name}",       CTL_OP_WORKFLOW_SHOW, BODY_NONE,   NULL, NULL, 0, "a stored workflow with its definition"},
	{"DELETE", "/v1/workflows/{name}",       CTL_OP_WORKFLOW_RM,   BODY_NONE,   NULL, NULL, 0, "delete a stored workflow"},
	{"POST",   "/v1/workflows/{name}/run",   CTL_OP_WORKFLOW_RUN,  BODY_FIELDS, NULL, "Idempotency-Key=idempotency_key", 0, "run a stored workflow"},
	{"GET",    "/v1/workflows/{name}/webhook", CTL_OP_WORKFLOW_WEBHOOK, BODY_NONE, NULL, NULL, 0, "the workflow's webhook (path, signature style)"},
	{"POST",   "/v1/workflows/{name}/webhook", CTL_OP_WORKFLOW_WEBHOOK, BODY_FIELDS, NULL, NULL, 0, "create, rotate or revoke the workflow's webhook"},
	{"POST",   "/v1/dead/retry",             CTL_OP_DEAD_RETRY,    BODY_FIELDS, NULL, NULL, 0, "retry dead jobs in bounded chunks (?queue&type&error&older_than_s; loop on the cursor)"},
	{"POST",   "/v1/celery/send",            CTL_OP_CELERY_SEND,   BODY_FIELDS, NULL, NULL, 0, "publish a task in Celery's format"},
	{"GET",    "/v1/schedules",              CTL_OP_SCHEDULE_LIST, BODY_NONE,   NULL, NULL, 0, "list schedules with their next fire time (?queue)"},
	{"PUT",    "/v1/schedules/{queue}/{name}", CTL_OP_SCHEDULE_PUT, BODY_FIELDS, NULL, NULL, 0, "store a schedule (replaces one of the same name)"},
	{"GET",    "/v1/schedules/{queue}/{name}", CTL_OP_SCHEDULE_SHOW, BODY_NONE, NULL, NULL, 0, "a schedule, its history and next fire times (?count)"},
	{"DELETE", "/v1/schedules/{queue}/{name}", CTL_OP_SCHEDULE_RM, BODY_NONE,   NULL, NULL, 0, "delete a schedule"},
	{"POST",   "/v1/schedules/{queue}/{name}/pause", CTL_OP_SCHEDULE_PAUSE, BODY_NONE, NULL, NULL, 0, "stop a schedule firing"},
	{"POST",   "/v1/schedules/{queue}/{name}/resume", CTL_OP_SCHEDULE_RESUME, BODY_NONE, NULL, NULL, 0, "resume a schedule from now"},
	{"POST",   "/v1/events/{key}",           CTL_OP_EVENT_SEND,    BODY_FIELDS, NULL, NULL, 0, "send an event: wakes the runs waiting for it ({data, owner})"},
	{"GET",    "/v1/events/{key}",           CTL_OP_EVENT_LIST,    BODY_NONE,   NULL, NULL, 0, "the events kept for a key and its waiting runs (?since_s, count)"},
};
/* clang-format on */
const size_t web_nroutes = sizeof(web_routes) / sizeof(web_routes[0]);

const struct web_unrouted web_unrouted[] = {
        {CTL_OP_HELLO, "connection set-up: hopper-web's own, per pooled connection"},
        {CTL_OP_AUTH, "the Authorization header (or the session cookie) of every request"},
        {CTL_OP_WEBHOOK_TRIGGER, "POST /webhook/TOKEN (webhook.c), over hopper-web's own connection"},
        {-1, NULL},
};

/* Matches one path against a pattern, collecting {x} segments into params. 1 on a match. */
static int
path_match(const char *pat, const char *path, json_t *params)
{
	while (*pat != '\0' && *path != '\0') {
		if (*pat == '{') {
			const char *close = strchr(pat, '}');
			const char *end = strchr(path, '/');
			size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
			if (close == NULL || n == 0)
				return 0;
			char name[64], value[256];
			size_t nl = (size_t)(close - pat - 1);
			if (nl >= sizeof(name) || n >= sizeof(value))
				return 0;
			memcpy(name, pat + 1, nl);
			name[nl] = '\0';
			memcpy(value, path, n);
			value[n] = '\0';
			json_object_set_new(params, name, json_string(value));
			pat = close + 1;
			path += n;
			continue;
		}
		if (*pat++ != *path++)
			return 0;
	}
	return *pat == '\0' && *path == '\0';
}

const struct web_route *
routes_match(const char *method, const char *path, json_t **params, int *path_known)
{
	*params = NULL;
	*path_known = 0;
	for (size_t i = 0; i < web_nroutes; i++) {
		json_t *p = json_object();
		if (path_match(web_routes[i].path, path, p)) {
			*path_known = 1;
			if (strcmp(web_routes[i].method, method) == 0 ||
			    (strcmp(method, "HEAD") == 0 && strcmp(web_routes[i].method, "GET") == 0)) {
				*params = p;
				return &web_routes[i];
			}
		}
		json_decref(p);
	}
	return NULL;
}

static const struct ctl_arg *
op_arg(int op, const char *name)
{
	for (const struct ctl_arg *a = ctl_ops[op].args; a->name != NULL; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* A query-string value as the op's field type wants it: integers and booleans are typed, the rest strings. */
static json_t *
typed_value(const struct ctl_arg *a, const char *v, char *err, size_t errlen)
{
	if (a->type == CTL_ARG_INT) {
		char *end;
		long long n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0') {
			snprintf(err, errlen, "%s: not an integer: %s", a->name, v);
			return NULL;
		}
		return json_integer(n);
	}
	if (a->type == CTL_ARG_BOOL) {
		if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
			return json_true();
		if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
			return json_false();
		snprintf(err, errlen, "%s: not a boolean: %s", a->name, v);
		return NULL;
	}
	if (a->type == CTL_ARG_OBJECT || a->type == CTL_ARG_ARRAY || a->type == CTL_ARG_STRINGS ||
	    a->type == CTL_ARG_LIST) {
		snprintf(err, errlen, "%s: give it in a JSON body, not in the query", a->name);
		return NULL;
	}
	return json_string(v);
}

/* Sets one field from a string, refusing a name the op does not have (like the protocol's unknown field). */
static int
set_string_field(json_t *f, int op, const char *key, const char *value, const char *where, char *err, size_t errlen)
{
	const struct ctl_arg *a = op_arg(op, key);
	if (a == NULL) {
		snprintf(err, errlen, "unknown %s parameter \"%s\" for %s", where, key, ctl_ops[op].name);
		return -1;
	}
	json_t *v = typed_value(a, value, err, errlen);
	if (v == NULL)
		return -1;
	json_object_set_new(f, key, v);
	return 0;
}

static int
body_fields(const struct web_route *r, json_t *f, json_t *body, char *err, size_t errlen)
{
	if (body == NULL) {
		if (r->body == BODY_FIELDS && r->op == CTL_OP_TOKEN_CREATE) {
			snprintf(err, errlen, "a JSON body is required");
			return -1;
		}
		return 0;
	}
	if (r->body == BODY_NONE) {
		snprintf(err, errlen, "%s %s takes no body", r->method, r->path);
		return -1;
	}
	if (r->body == BODY_JOBS && json_is_array(body)) {
		json_object_set(f, "jobs", body);
		return 0;
	}
	if (!json_is_object(body)) {
		snprintf(err, errlen, "the body must be a JSON object");
		return -1;
	}
	if (r->body == BODY_JOBS && json_object_get(body, "job") == NULL && json_object_get(body, "jobs") == NULL) {
		json_object_set(f, "job", body);
		return 0;
	}
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v)
	{
		if (json_object_get(f, k) != NULL) {
			snprintf(err, errlen, "\"%s\" is given by the path; leave it out of the body", k);
			return -1;
		}
		json_object_set(f, k, v);
	}
	return 0;
}

json_t *
routes_fields(const struct web_route *r, json_t *params, json_t *query, json_t *body, const char *hdr, char *err,
              size_t errlen)
{
	json_t *f = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(params, k, v) if (set_string_field(f, r->op, k, json_string_value(v), "path", err,
	                                                       errlen) != 0) goto fail;
	json_object_foreach(query, k, v) if (set_string_field(f, r->op, k, json_string_value(v), "query", err,
	                                                      errlen) != 0) goto fail;
	if (r->fixed != NULL) {
		char key[64];
		const char *eq = strchr(r->fixed, '=');
		snprintf(key, sizeof(key), "%.*s", (int)(eq - r->fixed), r->fixed);
		if (json_object_get(f, key) != NULL) {
			snprintf(err, errlen, "%s is fixed by this path", key);
			goto fail;
		}
		json_object_set_new(f, key, json_string(eq + 1));
	}
	if (body_fields(r, f, body, err, errlen) != 0)
		goto fail;
	if (r->header_field != NULL && hdr != NULL && *hdr != '\0') {
		const char *field = strchr(r->header_field, '=') + 1;
		if (json_object_get(f, field) == NULL)
			json_object_set_new(f, field, json_string(hdr));
	}
	/* Validate exactly as the daemon will: the request object with its op, through the protocol's parser. */
	json_t *req = json_deep_copy(f);
	json_object_set_new(req, "op", json_string(ctl_ops[r->op].name));
	char *text = jsonx_dump(req);
	json_decref(req);
	struct ctl_request cr;
	enum ctl_err e = ctl_request_parse((const unsigned char *)text, strlen(text), &cr, err, errlen);
	ctl_request_free(&cr);
	free(text);
	if (e != CTL_OK)
		goto fail;
	return f;
fail:
	json_decref(f);
	return NULL;
}

int
routes_http_status(enum hopper_err code)
{
	static const int status[] = {
	        [HOPPER_OK] = 200,
	        [HOPPER_E_BAD_REQUEST] = 400,
	        [HOPPER_E_UNKNOWN_OP] = 404,
	        [HOPPER_E_TOO_LARGE] = 413,
	        [HOPPER_E_VERSION] = 502,
	        [HOPPER_E_UNAUTHENTICATED] = 401,
	        [HOPPER_E_AUTH_FAILED] = 401,
	        [HOPPER_E_LOCKED_OUT] = 429,
	        [HOPPER_E_FORBIDDEN] = 403,
	        [HOPPER_E_NOT_FOUND] = 404,
	        [HOPPER_E_CONFLICT] = 409,
	        [HOPPER_E_UNAVAILABLE] = 503,
	        [HOPPER_E_LIMIT] = 429,
	        [HOPPER_E_INTERNAL] = 500,
	};
	if ((int)code >= 0 && (size_t)code < sizeof(status) / sizeof(status[0]) && status[code] != 0)
		return status[code];
	switch (code) {
	case HOPPER_E_TRANSPORT: return 502;
	case HOPPER_E_TIMEOUT: return 504;
	default: return 500;
	}
}

json_t *
routes_json(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < web_nroutes; i++) {
		const struct web_route *r = &web_routes[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s}", "method", r->method, "path", r->path, "op",
		                      r->op >= 0 ? ctl_ops[r->op].name : "", "sse", (r->flags & ROUTE_SSE) != 0,
		                      "summary", r->summary);
		if (r->op >= 0) {
			json_t *args = json_array();
			for (const struct ctl_arg *g = ctl_ops[r->op].args; g->name != NULL; g++)
				json_array_append_new(args, json_string(g->name));
			json_object_set_new(o, "fields", args);
			json_object_set_new(o, "scope", ctl_scopes_json(ctl_ops[r->op].scope));
		}
		static const char *const bodies[] = {
		        [BODY_NONE] = "none", [BODY_FIELDS] = "fields", [BODY_JOBS] = "jobs"};
		json_object_set_new(o, "body", json_string(bodies[r->body]));
		if (r->fixed != NULL)
			json_object_set_new(o, "fixed", json_string(r->fixed));
		if (r->header_field != NULL)
			json_object_set_new(o, "header", json_string(r->header_field));
		json_array_append_new(a, o);
	}
	return a;
}

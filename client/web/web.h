/*
 * web.h: hopper-web's internal header. hopper-web is a client of hopperd that serves HTTP: it speaks to the
 * daemon only through the control socket (libhopper), so the HTTP parser (libmicrohttpd) never runs inside the
 * process that holds Redis and SQLite, and it can be restarted on its own. Its modules:
 *   main.c     options and config file, start-up, signals;
 *   routes.c   THE route table: method + path -> control op of the catalogue (common/ctl_proto.c), and how a
 *              request's path, query and body become the op's fields; error code -> HTTP status (pure);
 *   pool.c     control connections, one per distinct bearer token at a time, pooled with a bound;
 *   http.c     the libmicrohttpd handler: bodies, authentication (bearer or cookie + CSRF), dispatch;
 *   sse.c      GET /v1/jobs/ID/events: the watch hub multiplexing Server-Sent Event streams on few connections;
 *   evid.c     their event ids and the Last-Event-ID resume decision (pure);
 *   webhook.c  POST /webhook/TOKEN: body parsing, header masking, rate limit, webhook.trigger;
 *   metrics.c  GET /metrics: the Prometheus text exposition from stats, queues and heartbeats (pure formatter);
 *   session.c  dashboard logins: session cookies and their CSRF tokens;
 *   assets.c   the dashboard's files, embedded at build time (gen/web_assets.c), served with a strict CSP.
 * jansson references follow the rule stated in common/jsonx.h.
 */
#ifndef HOPPER_WEB_H
#define HOPPER_WEB_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_proto.h"
#include "hopper.h"

#define WEB_VERSION HOPPER_VERSION
/* The longest bearer token accepted (a hopper token is 60 characters; the auth op allows 128). */
#define WEB_TOKEN_MAX 128

struct web_config {
	const char *listen;      /* HOST:PORT, default 127.0.0.1:8080 */
	const char *socket;      /* hopperd's control socket */
	const char *token_file;  /* hopper-web's own token (metrics, webhooks) */
	char *token;             /* read from token_file (or HOPPER_WEB_TOKEN); owned */
	int pool_max;            /* control connections for requests, all tokens together */
	int watch_conns_max;     /* control connections of the SSE hub (16 streams each) */
	int sse_max;             /* open event streams */
	int conn_max;            /* HTTP connections */
	int conn_timeout_s;      /* an idle or slow HTTP connection is closed after this */
	size_t body_max;         /* request body of /v1 */
	size_t webhook_body_max; /* request body of /webhook */
	int webhook_rate;        /* requests per minute per webhook */
	int webhook_burst;       /* ... of which at once */
	int stripe_tolerance_s;  /* Stripe-Signature replay window */
	int auth_fail_budget;    /* failed daemon auths per 60 s before new tokens are refused (see pool.c) */
	int session_ttl_s;       /* dashboard login lifetime */
	int cookie_secure;       /* add Secure to the session cookie (behind TLS) */
	int timeout_ms;          /* each control request's bound */

	/* When metrics_token_file is set, /metrics wants "Authorization: Bearer <metrics_token>" (read from
	 * it at start; owned). NULL: /metrics is open. */
	const char *metrics_token_file;
	char *metrics_token;
};

/* routes.c */
enum web_body {
	BODY_NONE,   /* no body (GET, DELETE, action POSTs) */
	BODY_FIELDS, /* a JSON object: its members are the op's fields */
	BODY_JOBS    /* submit: a job object, an array of jobs, or {"job"} / {"jobs"} */
};
#define ROUTE_SSE   (1u << 0) /* served as Server-Sent Events (watch) */
#define ROUTE_LOCAL (1u << 1) /* answered by hopper-web itself (op_id is -1) */

struct web_route {
	const char *method;
	const char *path; /* "/v1/jobs/{job}": {x} is one path segment, the op's field x */
	int op;           /* enum ctl_op_id, or -1 for ROUTE_LOCAL */
	enum web_body body;
	const char *fixed;        /* "field=value" always sent (GET /v1/dead: state=dead), or NULL */
	const char *header_field; /* "Idempotency-Key=idempotency_key": a request header copied to a field */
	unsigned flags;
	const char *summary;
};
extern const struct web_route web_routes[];
extern const size_t web_nroutes;
/* Ops of the catalogue deliberately without a route, each with why. {NULL} ends it. */
struct web_unrouted {
	int op;
	const char *why;
};
extern const struct web_unrouted web_unrouted[];

/* The route for method + path, with the path's {x} values in *params (new object); NULL if none matches
 * the path (*path_known = 0) or only the method differs (*path_known = 1: 405). */
const struct web_route *routes_match(const char *method, const char *path, json_t **params, int *path_known);
/*
 * Builds the op's fields from the route, the path params, the query (an object of strings) and the body
 * (NULL or the parsed JSON), then validates them with the protocol's own parser (ctl_request_parse), so
 * hopper-web refuses exactly what the daemon would. Returns the fields (new reference) or NULL with err.
 */
json_t *routes_fields(const struct web_route *r, json_t *params, json_t *query, json_t *body, const char *hdr,
                      char *err, size_t errlen);
/* The HTTP status for an error code (hopper's closed set plus libhopper's own). */
int routes_http_status(enum hopper_err code);
/* The route table as JSON, for hopper-web --routes and the tests. New reference. */
json_t *routes_json(void);

/* pool.c */
struct pool_conn;
void pool_init(const struct web_config *cfg);
void pool_shutdown(void);
/* A connection authenticated with token, for one request; NULL with *code and msg when the token is refused
 * or the daemon unreachable. Blocks at most the connection timeout waiting for a free slot. */
struct pool_conn *pool_acquire(const char *token, enum hopper_err *code, char *msg, size_t msglen);
struct hopper *pool_handle(struct pool_conn *pc);
/* Gives the connection back; a broken one (transport, timeout) is closed. */
void pool_release(struct pool_conn *pc);
/*
 * One call with one retry on a fresh connection when a pooled connection turns out closed (the daemon's
 * idle timeout) and the op does not write. Returns HOPPER_OK with *result, or the code with msg.
 */
int pool_call(const char *token, const char *op, json_t *fields, json_t **result, enum hopper_err *code, char *msg,
              size_t msglen, json_t **identity);
/* pool and hub figures for /metrics. */
void pool_figures(int *open, int *busy, long long *auth_failures, long long *budget_refusals);

/* evid.c: SSE event ids "<at_ms>-<hash>" and the resume decision (pure; see the file's comment) */
#define EVID_TEXT_MAX 32
struct evid {
	long long at_ms; /* the event's "at", in milliseconds */
	uint32_t hash;   /* FNV-1a of its canonical JSON */
};
void evid_of(const json_t *ev, struct evid *out);
void evid_format(const struct evid *id, char out[EVID_TEXT_MAX]);
/* 0 with *out when s is "<digits>-<8 lowercase hex digits>", else -1. */
int evid_parse(const char *s, struct evid *out);
enum evid_step {
	EVID_SKIP,  /* before the wanted event: the client has it */
	EVID_HOLD,  /* at the wanted time, another event: before or after it, not known yet */
	EVID_FOUND, /* the wanted event: what follows is new */
	EVID_LOST   /* past the wanted time (or no usable id): it was trimmed, events may be missing */
};
/* While resuming after want (want_ok: it parsed), what to do with the next event of the watch, got. */
enum evid_step evid_resume_step(const struct evid *want, int want_ok, const struct evid *got);

/* sse.c */
void sse_init(const struct web_config *cfg);
void sse_shutdown(void);
struct MHD_Response;
/* A response streaming job's events for token, resuming after the event last_id names (NULL: from the
 * start); view is the job's status when the stream opened (borrowed: the "lost" event carries it). NULL if
 * the stream cap is reached. */
struct MHD_Response *sse_response(const char *token, const char *job, const char *last_id, const json_t *view);
void sse_figures(int *streams, int *conns);

/* webhook.c */
struct web_request;
/* Pure: the payload of a webhook body by its content type (JSON object/array/scalar, form as an object, else
 * {"raw": text} or {"raw_base64"}). New reference; never NULL. */
json_t *webhook_payload(const char *ctype, const unsigned char *body, size_t len);
/* Pure: 1 if a header's value must be masked before it is stored (Authorization, signatures, keys...). */
int webhook_header_secret(const char *name);
/* Pure: "abc***yz" style masking (AutomateOS's), into a new string the caller frees. */
char *webhook_mask(const char *value);
/* Per-webhook token bucket: 1 if this request may pass now. */
int webhook_rate_take(const char *token, double now);
void webhook_init(const struct web_config *cfg);
/*
 * Handles POST /webhook/TOKEN: rate limit, the trigger payload {method, headers (secrets masked), url,
 * timestamp, payload}, then webhook.trigger over hopper-web's own connection (the daemon checks the token,
 * the workflow's state and the signature). headers is every request header (borrowed). Returns the HTTP
 * status and sets *out (new reference) and, on 429, *retry_after (seconds).
 */
int webhook_handle(const struct web_config *cfg, const char *token, json_t *headers, const char *url,
                   const unsigned char *body, size_t len, json_t **out, int *retry_after);

/* metrics.c */
/* Pure: the text exposition from the stats and queues results (either may be NULL: that part is absent)
 * and hopper-web's own figures. Returns a new string the caller frees. */
char *metrics_format(const json_t *stats, const json_t *queues, double now, const json_t *web);

/* session.c */
void session_init(const struct web_config *cfg);
/* A new session for token; writes its id and csrf (NUL-terminated, 43 chars each). 0 or -1 (table full). */
int session_create(const char *token, char sid[64], char csrf[64]);
/* Copies the session's token and csrf into the buffers; 0, or -1 if unknown or expired. */
int session_lookup(const char *sid, char token[WEB_TOKEN_MAX + 1], char csrf[64]);
void session_destroy(const char *sid);
/* Constant-time string equality. */
int session_equal(const char *a, const char *b);

/* assets.c */
/* The embedded file for a path ("/", "/app.js", ...) with its content type; NULL if none. */
const char *assets_find(const char *path, size_t *len, const char **ctype);

/* http.c */
int http_start(const struct web_config *cfg);
void http_stop(void);

#endif

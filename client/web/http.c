/*
 * http: the libmicrohttpd side. One thread per HTTP connection (MHD_USE_THREAD_PER_CONNECTION, with poll so
 * more than FD_SETSIZE connections work): a request thread may block on its control connection, and an event
 * stream's thread blocks on its stream. Every body has a ceiling (413 as soon as Content-Length says so, or
 * when the bytes pass it); a connection idle for conn_timeout_s is closed (slow clients), and conn_max bounds
 * them all.
 *
 * Authentication of /v1: "Authorization: Bearer <hopper token>", or the dashboard's session cookie, in which
 * case every request but GET/HEAD must carry the session's CSRF token in X-CSRF-Token and an Origin, if sent,
 * must be this host. Every response carries a strict Content-Security-Policy and no-store.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"
#include "log.h"
#include "web.h"
#include "xmalloc.h"

#define CSP                                                                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "          \
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
#define SESSION_COOKIE "hopper_session"

struct req {
	unsigned char *body;
	size_t len, max;
	int overflow;
	int answered;
};

static struct MHD_Daemon *D;
static const struct web_config *C;

/* --- responses --- */

static void
common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result
send_buf(struct MHD_Connection *conn, int status, const char *ctype, char *buf, size_t len, const char *h1,
         const char *v1)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	common_headers(r);
	MHD_add_response_header(r, "Content-Type", ctype);
	if (h1 != NULL)
		MHD_add_response_header(r, h1, v1);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes ownership of body. */
static enum MHD_Result
send_json(struct MHD_Connection *conn, int status, json_t *body, const char *h1, const char *v1)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	size_t n = strlen(text);
	text = xrealloc(text, n + 2);
	text[n] = '\n';
	text[n + 1] = '\0';
	return send_buf(conn, status, "application/json", text, n + 1, h1, v1);
}

static enum MHD_Result
send_error(struct MHD_Connection *conn, enum hopper_err code, const char *msg)
{
	int status = routes_http_status(code);
	json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", hopper_err_name(code), "message", msg);
	if (status == 401)
		return send_json(conn, status, e, "WWW-Authenticate", "Bearer realm=\"hopper\"");
	if (status == 429)
		return send_json(conn, status, e, "Retry-After", "60");
	return send_json(conn, status, e, NULL, NULL);
}

/* --- request helpers --- */

static enum MHD_Result
collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	json_object_set_new(cls, key, json_string(value != NULL ? value : ""));
	return MHD_YES;
}

static json_t *
query_of(struct MHD_Connection *conn)
{
	json_t *q = json_object();
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect, q);
	return q;
}

static const char *
header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static const char *
cookie(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, name);
}

/* The Origin header, if any, names this Host (cookie requests only: a browser sends it on cross-site ones). */
static int
origin_ok(struct MHD_Connection *conn)
{
	const char *o = header(conn, "Origin"), *host = header(conn, "Host");
	if (o == NULL)
		return 1;
	const char *p = strstr(o, "://");
	return host != NULL && p != NULL && strcmp(p + 3, host) == 0;
}

/*
 * The request's token: the bearer token, or the session's (checking CSRF for a state change). Returns 0 with
 * token filled, or answers the error itself and returns -1.
 */
static int
request_token(struct MHD_Connection *conn, const char *method, char token[WEB_TOKEN_MAX + 1], enum MHD_Result *ret)
{
	const char *auth = header(conn, "Authorization");
	if (auth != NULL) {
		if (strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) > WEB_TOKEN_MAX) {
			*ret = send_error(conn, HOPPER_E_UNAUTHENTICATED,
			                  "Authorization must be: Bearer <hopper token>");
			return -1;
		}
		snprintf(token, WEB_TOKEN_MAX + 1, "%s", auth + 7);
		return 0;
	}
	const char *sid = cookie(conn, SESSION_COOKIE);
	char csrf[64];
	if (sid == NULL || session_lookup(sid, token, csrf) != 0) {
		*ret = send_error(conn, HOPPER_E_UNAUTHENTICATED,
		                  sid == NULL ? "no credential: send Authorization: Bearer <hopper token>"
		                              : "the session has expired: log in again");
		return -1;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		const char *got = header(conn, "X-CSRF-Token");
		if (got == NULL || !session_equal(got, csrf) || !origin_ok(conn)) {
			*ret = send_error(conn, HOPPER_E_FORBIDDEN, "CSRF token missing or wrong (X-CSRF-Token)");
			return -1;
		}
	}
	return 0;
}

static json_t *
parse_body(struct req *rq, char *err, size_t errlen)
{
	if (rq->len == 0)
		return NULL;
	json_error_t je;
	json_t *v = json_loadb((const char *)rq->body, rq->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (v == NULL)
		snprintf(err, errlen, "the body is not JSON: %s (line %d)", je.text, je.line);
	return v;
}

/* --- /v1 --- */

static enum MHD_Result
api_events(struct MHD_Connection *conn, const char *token, json_t *fields, json_t *query)
{
	json_t *res = NULL;
	enum hopper_err code;
	char msg[512];
	/* Check first that the job exists and is visible: the stream then opens with 200, errors are plain. */
	if (pool_call(token, "status", fields, &res, &code, msg, sizeof(msg), NULL) != HOPPER_OK)
		return send_error(conn, code, msg);
	const char *lei = header(conn, "Last-Event-ID");
	if (lei == NULL)
		lei = json_string_value(json_object_get(query, "last_event_id"));
	struct MHD_Response *r = sse_response(token, json_string_value(json_object_get(fields, "job")), lei, res);
	json_decref(res);
	if (r == NULL)
		return send_error(conn, HOPPER_E_LIMIT, "too many open event streams");
	common_headers(r);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
api(struct MHD_Connection *conn, const char *url, const char *method, struct req *rq)
{
	json_t *params;
	int path_known;
	const struct web_route *route = routes_match(method, url, &params, &path_known);
	if (route == NULL && path_known)
		return send_json(conn, 405,
		                 json_pack("{s:{s:s, s:s}}", "error", "code", "bad_request", "message",
		                           "method not allowed on this path"),
		                 NULL, NULL);
	if (route == NULL)
		return send_error(conn, HOPPER_E_NOT_FOUND, "no such API path");
	char token[WEB_TOKEN_MAX + 1];
	enum MHD_Result ret;
	if (request_token(conn, method, token, &ret) != 0) {
		json_decref(params);
		return ret;
	}
	char err[512];
	enum hopper_err code;
	json_t *res = NULL;
	if (route->flags & ROUTE_LOCAL) { /* whoami */
		json_t *id = NULL;
		json_decref(params);
		if (pool_call(token, NULL, NULL, &res, &code, err, sizeof(err), &id) != HOPPER_OK)
			return send_error(conn, code, err);
		return send_json(conn, 200, id, NULL, NULL);
	}
	json_t *body = parse_body(rq, err, sizeof(err));
	if (body == NULL && rq->len > 0) {
		json_decref(params);
		return send_error(conn, HOPPER_E_BAD_REQUEST, err);
	}
	json_t *query = query_of(conn);
	if (route->flags & ROUTE_SSE)
		json_object_del(query, "last_event_id");
	const char *hdr = NULL;
	if (route->header_field != NULL) {
		char hname[64];
		snprintf(hname, sizeof(hname), "%.*s", (int)(strchr(route->header_field, '=') - route->header_field),
		         route->header_field);
		hdr = header(conn, hname);
	}
	json_t *fields = routes_fields(route, params, query, body, hdr, err, sizeof(err));
	json_decref(params);
	json_decref(body);
	if (fields == NULL) {
		json_decref(query);
		return send_error(conn, HOPPER_E_BAD_REQUEST, err);
	}
	if (route->flags & ROUTE_SSE) {
		json_decref(query); /* last_event_id was taken out of it: read it again */
		query = query_of(conn);
		ret = api_events(conn, token, fields, query);
		json_decref(query);
		json_decref(fields);
		return ret;
	}
	json_decref(query);
	int r = pool_call(token, ctl_ops[route->op].name, fields, &res, &code, err, sizeof(err), NULL);
	json_decref(fields);
	if (r != HOPPER_OK)
		return send_error(conn, code, err);
	return send_json(conn, 200, res, NULL, NULL);
}

/* --- dashboard login --- */

static enum MHD_Result
login(struct MHD_Connection *conn, struct req *rq)
{
	char err[512];
	json_t *body = parse_body(rq, err, sizeof(err));
	const char *tok = json_string_value(json_object_get(body, "token"));
	if (tok == NULL || strlen(tok) > WEB_TOKEN_MAX) {
		json_decref(body);
		return send_error(conn, HOPPER_E_BAD_REQUEST, "log in with {\"token\": \"hop_...\"}");
	}
	if (!origin_ok(conn)) {
		json_decref(body);
		return send_error(conn, HOPPER_E_FORBIDDEN, "cross-site login refused");
	}
	json_t *res = NULL, *id = NULL;
	enum hopper_err code;
	if (pool_call(tok, NULL, NULL, &res, &code, err, sizeof(err), &id) != HOPPER_OK) {
		json_decref(body);
		return send_error(conn, code, err);
	}
	char sid[64], csrf[64];
	int made = session_create(tok, sid, csrf);
	json_decref(body);
	if (made != 0) {
		json_decref(id);
		return send_error(conn, HOPPER_E_LIMIT, "too many open sessions");
	}
	char *set = xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s", SESSION_COOKIE, sid,
	                      C->session_ttl_s, C->cookie_secure ? "; Secure" : "");
	json_t *out = json_pack("{s:s, s:o}", "csrf", csrf, "identity", id);
	enum MHD_Result ret = send_json(conn, 200, out, "Set-Cookie", set);
	free(set);
	return ret;
}

static enum MHD_Result
session_info(struct MHD_Connection *conn, const char *method)
{
	const char *sid = cookie(conn, SESSION_COOKIE);
	char token[WEB_TOKEN_MAX + 1], csrf[64];
	if (sid == NULL || session_lookup(sid, token, csrf) != 0)
		return send_error(conn, HOPPER_E_UNAUTHENTICATED, "not logged in");
	if (strcmp(method, "POST") == 0) { /* logout */
		const char *got = header(conn, "X-CSRF-Token");
		if (got == NULL || !session_equal(got, csrf))
			return send_error(conn, HOPPER_E_FORBIDDEN, "CSRF token missing or wrong (X-CSRF-Token)");
		session_destroy(sid);
		char *set = xasprintf("%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", SESSION_COOKIE);
		enum MHD_Result ret = send_json(conn, 200, json_pack("{s:b}", "logged_out", 1), "Set-Cookie", set);
		free(set);
		return ret;
	}
	json_t *res = NULL, *id = NULL;
	enum hopper_err code;
	char err[512];
	if (pool_call(token, NULL, NULL, &res, &code, err, sizeof(err), &id) != HOPPER_OK)
		return send_error(conn, code, err);
	return send_json(conn, 200, json_pack("{s:s, s:o}", "csrf", csrf, "identity", id), NULL, NULL);
}

/* --- /metrics --- */

/* With metrics-token-file set: 1 when the request carries Authorization: Bearer <that token> (compared in
 * constant time, session_equal); without it /metrics is open (meant for localhost). */
static int
metrics_allowed(struct MHD_Connection *conn)
{
	if (C->metrics_token == NULL)
		return 1;
	const char *auth = header(conn, "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) > WEB_TOKEN_MAX)
		return 0;
	return session_equal(auth + 7, C->metrics_token);
}

static enum MHD_Result
metrics(struct MHD_Connection *conn)
{
	if (!metrics_allowed(conn)) {
		json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", "unauthenticated", "message",
		                      "/metrics needs Authorization: Bearer <the token of metrics-token-file>");
		return send_json(conn, 401, e, "WWW-Authenticate", "Bearer realm=\"hopper-web metrics\"");
	}
	json_t *stats = NULL, *queues = NULL;
	enum hopper_err code;
	char err[512];
	int ok_stats = pool_call(C->token, "stats", NULL, &stats, &code, err, sizeof(err), NULL) == HOPPER_OK;
	int ok_queues =
	        ok_stats && pool_call(C->token, "queues", NULL, &queues, &code, err, sizeof(err), NULL) == HOPPER_OK;
	int open, busy, streams, wconns;
	long long fails, refused;
	pool_figures(&open, &busy, &fails, &refused);
	sse_figures(&streams, &wconns);
	json_t *web = json_pack("{s:i, s:i, s:I, s:I, s:i, s:i, s:b}", "pool_open", open, "pool_busy", busy,
	                        "auth_failures", (json_int_t)fails, "auth_refused", (json_int_t)refused, "sse_streams",
	                        streams, "sse_conns", wconns, "daemon_up", ok_stats && ok_queues);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char *text =
	        metrics_format(ok_stats ? stats : NULL, ok_queues ? queues : NULL, ts.tv_sec + ts.tv_nsec / 1e9, web);
	json_decref(stats);
	json_decref(queues);
	json_decref(web);
	return send_buf(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL, NULL);
}

/* --- the handler --- */

/* POST /webhook/TOKEN: webhook.c does the work; this passes the request's parts and sends its answer. */
static enum MHD_Result
webhook_route(struct MHD_Connection *conn, const char *url, struct req *rq)
{
	json_t *headers = json_object();
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, headers);
	const char *host = header(conn, "Host");
	char *full = xasprintf("http://%s%s", host != NULL ? host : "localhost", url);
	int retry_after = 0;
	json_t *out = NULL;
	int status = webhook_handle(C, url + 9, headers, full, rq->body, rq->len, &out, &retry_after);
	free(full);
	json_decref(headers);
	char ra[16];
	snprintf(ra, sizeof(ra), "%d", retry_after);
	return send_json(conn, status, out, retry_after > 0 ? "Retry-After" : NULL, ra);
}

static size_t
body_max_for(const char *url)
{
	return strncmp(url, "/webhook/", 9) == 0 ? C->webhook_body_max : C->body_max;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
        const char *upload, size_t *upload_size, void **con_cls)
{
	struct req *rq = *con_cls;
	if (rq == NULL) {
		rq = xcalloc(1, sizeof(*rq));
		rq->max = body_max_for(url);
		*con_cls = rq;
		const char *cl = header(conn, "Content-Length");
		if (cl != NULL && strtoull(cl, NULL, 10) > rq->max) {
			rq->answered = 1;
			return send_error(conn, HOPPER_E_TOO_LARGE, "the body is over this endpoint's limit");
		}
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!rq->overflow && rq->len + *upload_size <= rq->max) {
			rq->body = xrealloc(rq->body, rq->len + *upload_size + 1);
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
		} else {
			rq->overflow = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->answered)
		return MHD_YES;
	rq->answered = 1;
	if (rq->overflow)
		return send_error(conn, HOPPER_E_TOO_LARGE, "the body is over this endpoint's limit");
	if (strncmp(url, "/v1/", 4) == 0)
		return api(conn, url, method, rq);
	if (strncmp(url, "/webhook/", 9) == 0) {
		if (strcmp(method, "POST") != 0)
			return send_error(conn, HOPPER_E_BAD_REQUEST, "webhooks take POST");
		return webhook_route(conn, url, rq);
	}
	if (strcmp(url, "/metrics") == 0 && strcmp(method, "GET") == 0)
		return metrics(conn);
	if (strcmp(url, "/login") == 0 && strcmp(method, "POST") == 0)
		return login(conn, rq);
	if (strcmp(url, "/session") == 0 || (strcmp(url, "/logout") == 0 && strcmp(method, "POST") == 0))
		return session_info(conn, method);
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
		size_t len;
		const char *ctype;
		const char *data = assets_find(url, &len, &ctype);
		if (data != NULL) {
			struct MHD_Response *r =
			        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
			common_headers(r);
			MHD_add_response_header(r, "Content-Type", ctype);
			enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
			MHD_destroy_response(r);
			return ret;
		}
	}
	return send_error(conn, HOPPER_E_NOT_FOUND, "not found");
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;
	if (rq != NULL) {
		free(rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

int
http_start(const struct web_config *cfg)
{
	C = cfg;
	char host[128];
	const char *colon = strrchr(cfg->listen, ':');
	if (colon == NULL) {
		log_error("listen: want HOST:PORT, got %s", cfg->listen);
		return -1;
	}
	int port = atoi(colon + 1);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->listen), cfg->listen);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned flags =
	        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	if (host[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		host[strlen(host) - 1] = '\0';
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			goto bad;
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
	}
	D = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &ss,
	                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->conn_max, MHD_OPTION_CONNECTION_TIMEOUT,
	                     (unsigned)cfg->conn_timeout_s, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
	                     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
	                     MHD_OPTION_END);
	if (D == NULL) {
		log_error("cannot listen on %s", cfg->listen);
		return -1;
	}
	return 0;
bad:
	log_error("listen: not an IP address: %s (use 127.0.0.1:PORT or [::1]:PORT)", cfg->listen);
	return -1;
}

void
http_stop(void)
{
	if (D != NULL)
		MHD_stop_daemon(D);
	D = NULL;
}

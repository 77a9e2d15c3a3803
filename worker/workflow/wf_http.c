/*
 * wf_http: the http step, on libcurl (the only file that includes curl.h).
 *
 * Parameters: url, method (GET; POST when there is a body), headers {name: value}, body (string) or json
 * (any value, sent as application/json), query {name: value}, timeout_s (30), expected_status (an integer or
 * a list; default any 2xx), max_bytes (<= workflow_max_response_bytes), idempotency_header (true),
 * basic_auth {user, password} (HTTP Basic; the password and the header value are masked like secrets).
 * Output: {status, ok, headers, body, json?, url}.
 *
 * Limits: only workflow_http_schemes (curl's PROTOCOLS_STR) and, when set, workflow_http_hosts, matched with
 * the port and pinned to the checked addresses (wf_net.c; on_opensocket checks the address connected). Redirects are
 * followed here, not by curl, so that each new location is checked against both lists before it is asked
 * for; at most WF_HTTP_REDIRECTS of them. The transfer is aborted from the progress callback when the job
 * is asked to stop or the step's deadline passes.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "jsonx.h"
#include "wf_net.h"
#include "workflow.h"
#include "xmalloc.h"

#define WF_HTTP_REDIRECTS       5
#define WF_HTTP_DEFAULT_TIMEOUT 30.0
/* Header lines kept per response: enough for any real server, bounded for a hostile one. */
#define WF_HTTP_HEADERS_MAX 100

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", NULL};

/* Checks a URL's scheme, host and port against the configuration; fills t (not resolved). 0, or -1 with err. */
static int
url_allowed(const struct wf_config *cfg, const char *url, struct wf_target *t, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;
	/* The scheme first: a file: URL has no host, and must be refused for its scheme. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		snprintf(err, errlen, "http: \"%.200s\" is not a valid URL", url);
	else if (!wf_list_has(cfg->http_schemes, scheme, 1))
		snprintf(err, errlen, "http: scheme %s is not allowed (workflow_http_schemes: %s)", scheme,
		         cfg->http_schemes);
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		snprintf(err, errlen, "http: \"%.200s\" has no host", url);
	else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		snprintf(err, errlen, "http: \"%.200s\" has no port and its scheme no default", url);
	else {
		long p = strtol(port, NULL, 10), def = strcasecmp(scheme, "https") == 0 ? 443 : 80;
		snprintf(t->host, sizeof(t->host), "%s", host);
		t->port = p;
		t->naddr = 0;
		if (!wf_net_host_allowed(cfg->http_hosts, host, p, def, &t->explicit_port))
			snprintf(err, errlen, "http: host %s port %ld is not allowed (workflow_http_hosts)", host, p);
		else
			rc = 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

int
wf_http_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                 size_t errlen)
{
	json_t *p = st->params;
	const char *url = json_string_value(json_object_get(p, "url"));
	const char *method = json_string_value(json_object_get(p, "method"));
	json_t *headers = json_object_get(p, "headers"), *exp = json_object_get(p, "expected_status");
	if (url == NULL) {
		snprintf(err, errlen, "http: \"url\" (a string) is required");
		return -1;
	}
	struct wf_target t;
	if (strstr(url, "{{") == NULL && url_allowed(cfg, url, &t, err, errlen) < 0)
		return -1;
	if (method != NULL) {
		size_t i = 0;
		while (methods[i] && strcasecmp(methods[i], method) != 0)
			i++;
		if (methods[i] == NULL) {
			snprintf(err, errlen, "http: unknown method \"%.20s\"", method);
			return -1;
		}
	}
	if (headers != NULL && !json_is_object(headers)) {
		snprintf(err, errlen, "http: \"headers\" must be an object of strings");
		return -1;
	}
	if (json_object_get(p, "body") != NULL && json_object_get(p, "json") != NULL) {
		snprintf(err, errlen, "http: give \"body\" or \"json\", not both");
		return -1;
	}
	json_t *ba = json_object_get(p, "basic_auth");
	if (ba != NULL && (!json_is_object(ba) || !json_is_string(json_object_get(ba, "user")) ||
	                   !json_is_string(json_object_get(ba, "password")))) {
		snprintf(err, errlen, "http: \"basic_auth\" must be {\"user\": string, \"password\": string}");
		return -1;
	}
	if (exp != NULL && !json_is_integer(exp) && !json_is_array(exp)) {
		snprintf(err, errlen, "http: \"expected_status\" must be a status code or a list of them");
		return -1;
	}
	return 0;
}

struct xfer {
	struct wf_step_call *call;
	char *body;
	size_t len, cap, max;
	int over;
	json_t *headers;
	double deadline;
	int stopped, timed_out;
	struct wf_target *target;   /* where this hop may connect */
	struct curl_slist *resolve; /* its CURLOPT_RESOLVE pin (or NULL for an IP literal) */
	int refused;                /* the connect went elsewhere than the checked addresses: refused */
};

/* Creates the socket curl connects, only to an address the target check admitted (the one resolved). */
static curl_socket_t
on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct xfer *x = arg;
	const struct wf_target *t = x->target;
	int ok = 0;
	for (size_t i = 0; i < t->naddr && !ok; i++)
		ok = wf_net_same_endpoint((const struct sockaddr *)&t->addr[i], &a->addr);
	if (ok && !t->explicit_port && wf_net_is_daemon_addr(x->call->cfg->deny_addrs, &a->addr))
		ok = 0;
	if (!ok) {
		x->refused = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t k = size * n;
	if (x->len + k > x->max) {
		x->over = 1;
		return 0;
	}
	if (x->len + k + 1 > x->cap) {
		x->cap = (x->len + k + 1) * 2 > x->max + 1 ? x->max + 1 : (x->len + k + 1) * 2;
		x->body = xrealloc(x->body, x->cap);
	}
	memcpy(x->body + x->len, data, k);
	x->len += k;
	x->body[x->len] = '\0';
	return k;
}

/* "Name: value" lines; names lowercased; a new status line (after a 100 Continue) starts over. */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t k = size * n;
	if (k >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		json_object_clear(x->headers);
		return k;
	}
	const char *colon = memchr(data, ':', k);
	if (colon == NULL || json_object_size(x->headers) >= WF_HTTP_HEADERS_MAX)
		return k;
	char name[128];
	size_t nn = (size_t)(colon - data) < sizeof(name) - 1 ? (size_t)(colon - data) : sizeof(name) - 1;
	for (size_t i = 0; i < nn; i++)
		name[i] = (char)((data[i] >= 'A' && data[i] <= 'Z') ? data[i] + 32 : data[i]);
	name[nn] = '\0';
	const char *v = colon + 1, *end = data + k;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	json_t *val = json_stringn(v, (size_t)(end - v));
	if (val != NULL)
		json_object_set_new(x->headers, name, val);
	return k;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;
	struct wf_host *h = x->call->host;
	if (h->should_stop()) {
		x->stopped = 1;
		return 1;
	}
	if (x->deadline > 0 && clock_monotonic_ms() > x->deadline) {
		x->timed_out = 1;
		return 1;
	}
	return 0;
}

/* Remembers header values that are secrets (and a bearer's token alone) so every stored copy masks them. */
static void
note_secret(struct wf_host *h, const char *value)
{
	json_array_append_new(h->secrets, json_string(value));
	const char *sp = strchr(value, ' ');
	if (sp != NULL && strlen(sp + 1) >= 4)
		json_array_append_new(h->secrets, json_string(sp + 1));
}

/* basic_auth {user, password}: the password, "user:password" and the header value it makes are secrets. */
static void
note_basic_auth(struct wf_step_call *call)
{
	json_t *ba = json_object_get(call->params, "basic_auth");
	const char *user = json_string_value(json_object_get(ba, "user")),
	           *pw = json_string_value(json_object_get(ba, "password"));
	if (user == NULL || pw == NULL)
		return;
	json_array_append_new(call->host->secrets, json_string(pw));
	char *pair = xasprintf("%s:%s", user, pw);
	size_t n = strlen(pair), k = 0;
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)pair[i] << 16 | (i + 1 < n ? (unsigned char)pair[i + 1] << 8 : 0) |
		             (i + 2 < n ? (unsigned char)pair[i + 2] : 0);
		b64[k++] = al[v >> 18 & 63];
		b64[k++] = al[v >> 12 & 63];
		b64[k++] = i + 1 < n ? al[v >> 6 & 63] : '=';
		b64[k++] = i + 2 < n ? al[v & 63] : '=';
	}
	b64[k] = '\0';
	json_array_append_new(call->host->secrets, json_string(b64));
	free(b64);
	free(pair);
}

static struct curl_slist *
build_headers(struct wf_step_call *call, const char *method, int has_json)
{
	struct curl_slist *list = NULL;
	json_t *headers = json_object_get(call->params, "headers");
	const char *k;
	json_t *v;
	int have_idem = 0, have_ct = 0;
	json_object_foreach(headers, k, v)
	{
		char *val = json_is_string(v) ? xstrdup(json_string_value(v)) : jsonx_dump(v);
		if (wf_mask_name(call->cfg, k))
			note_secret(call->host, val);
		have_idem |= strcasecmp(k, "idempotency-key") == 0;
		have_ct |= strcasecmp(k, "content-type") == 0;
		char *line = xasprintf("%s: %s", k, val);
		list = curl_slist_append(list, line);
		free(line);
		free(val);
	}
	if (has_json && !have_ct)
		list = curl_slist_append(list, "Content-Type: application/json");
	/* A step that changes something carries a key stable across attempts and resumes, so a server that
	 * honours Idempotency-Key can drop the repeat the at-least-once window allows (README "Resume"). */
	json_t *idem = json_object_get(call->params, "idempotency_header");
	if (!have_idem && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && !json_is_false(idem)) {
		char *line = xasprintf("Idempotency-Key: %s.%s", call->host->job_id, call->step->id);
		list = curl_slist_append(list, line);
		free(line);
	}
	list = curl_slist_append(list, "Expect:");
	return list;
}

/* The URL with the query parameters appended, url-encoded. Caller frees. */
static char *
build_url(CURL *c, const char *url, json_t *query)
{
	char *out = xstrdup(url);
	const char *k;
	json_t *v;
	int first = strchr(url, '?') == NULL;
	json_object_foreach(query, k, v)
	{
		char *val = json_is_string(v) ? xstrdup(json_string_value(v)) : jsonx_dump(v);
		char *ek = curl_easy_escape(c, k, 0), *ev = curl_easy_escape(c, val, 0);
		char *next = xasprintf("%s%c%s=%s", out, first ? '?' : '&', ek ? ek : "", ev ? ev : "");
		first = 0;
		curl_free(ek);
		curl_free(ev);
		free(val);
		free(out);
		out = next;
	}
	return out;
}

static int
status_expected(json_t *exp, long status)
{
	if (exp == NULL)
		return status >= 200 && status < 300;
	if (json_is_integer(exp))
		return json_integer_value(exp) == status;
	size_t i;
	json_t *v;
	json_array_foreach(exp, i, v) if (json_is_integer(v) && json_integer_value(v) == status) return 1;
	return 0;
}

/* One request (no redirect following). Returns the curl code; *status and *location are set. */
static CURLcode
perform(CURL *c, struct xfer *x, const char *url, const char *method, const char *body, struct curl_slist *hdrs,
        double timeout_s, long *status, char **location)
{
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, x->call->cfg->http_schemes);
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, x->call->cfg->http_schemes);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hopper-workflow/1");
	/* Only the checked addresses (target_resolve, on_opensocket); never a proxy from the environment. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_RESOLVE, x->resolve);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x);
	json_t *ba = json_object_get(x->call->params, "basic_auth");
	if (json_is_object(ba)) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, json_string_value(json_object_get(ba, "user")));
		curl_easy_setopt(c, CURLOPT_PASSWORD, json_string_value(json_object_get(ba, "password")));
	}
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	x->len = 0;
	x->over = 0;
	json_object_clear(x->headers);
	CURLcode rc = curl_easy_perform(c);
	*status = 0;
	*location = NULL;
	if (rc == CURLE_OK) {
		char *loc = NULL;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
		if (loc != NULL)
			*location = xstrdup(loc);
	}
	return rc;
}

/* The response as the step's output. New reference. */
static json_t *
response_json(struct xfer *x, long status, const char *url)
{
	json_t *out = json_pack("{s:i,s:b,s:O,s:s}", "status", (int)status, "ok", status >= 200 && status < 300,
	                        "headers", x->headers, "url", url);
	json_t *body = x->body ? json_stringn(x->body, x->len) : json_string("");
	json_object_set_new(out, "body", body ? body : json_null());
	if (x->len > 0) {
		json_t *j = json_loadb(x->body, x->len, JSON_DECODE_ANY, NULL);
		if (j != NULL)
			json_object_set_new(out, "json", j);
	}
	return out;
}

enum wf_status
wf_http_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	json_t *p = call->params;
	const char *url0 = json_string_value(json_object_get(p, "url"));
	const char *m = json_string_value(json_object_get(p, "method"));
	json_t *jbody = json_object_get(p, "json"), *sbody = json_object_get(p, "body");
	if (url0 == NULL) {
		snprintf(err, errlen, "http: \"url\" rendered to a non-string");
		return WF_FATAL;
	}
	char method[16];
	snprintf(method, sizeof(method), "%s", m ? m : (jbody || sbody) ? "POST" : "GET");
	for (char *c = method; *c; c++)
		*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	char *body = jbody                   ? jsonx_dump(jbody)
	             : json_is_string(sbody) ? xstrdup(json_string_value(sbody))
	             : sbody                 ? jsonx_dump(sbody)
	                                     : NULL;
	double timeout_s = WF_HTTP_DEFAULT_TIMEOUT;
	json_t *t = json_object_get(p, "timeout_s");
	if (json_is_number(t) && json_number_value(t) > 0)
		timeout_s = json_number_value(t);
	struct xfer x = {.call = call,
	                 .max = call->cfg->max_response,
	                 .headers = json_object(),
	                 .deadline = call->host->deadline};
	json_t *mb = json_object_get(p, "max_bytes");
	if (json_is_integer(mb) && json_integer_value(mb) > 0 && (size_t)json_integer_value(mb) < x.max)
		x.max = (size_t)json_integer_value(mb);
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = build_headers(call, method, jbody != NULL);
	char *url = build_url(c, url0, json_object_get(p, "query"));
	enum wf_status st = WF_FAIL;
	long status = 0;
	struct wf_target tgt;
	x.target = &tgt;
	note_basic_auth(call);
	for (int hop = 0;; hop++) {
		curl_slist_free_all(x.resolve);
		x.resolve = NULL;
		char *pin = NULL;
		if (url_allowed(call->cfg, url, &tgt, err, errlen) < 0 ||
		    wf_net_resolve(call->cfg, &tgt, &pin, err, errlen) < 0) {
			st = WF_FATAL;
			break;
		}
		if (pin != NULL) /* a name: curl connects only to the addresses just checked */
			x.resolve = curl_slist_append(NULL, pin);
		free(pin);
		char *location = NULL;
		CURLcode rc = perform(c, &x, url, method, body, hdrs, timeout_s, &status, &location);
		if (rc != CURLE_OK && x.refused) {
			snprintf(err, errlen, "http: %s %s: the connection went to an address not checked: refused",
			         method, url);
			st = WF_FATAL;
			break;
		}
		if (rc != CURLE_OK) {
			x.over |= rc == CURLE_FILESIZE_EXCEEDED; /* the Content-Length said so before any byte came */
			st = x.stopped ? WF_STOPPED : WF_FAIL;
			snprintf(err, errlen, "http: %s %s: %s", method, url,
			         x.over        ? "response larger than the size limit"
			         : x.timed_out ? "step timed out"
			         : x.stopped   ? "stopped"
			                       : curl_easy_strerror(rc));
			break;
		}
		if (location != NULL && status >= 300 && status < 400) {
			if (hop >= WF_HTTP_REDIRECTS) {
				snprintf(err, errlen, "http: more than %d redirects", WF_HTTP_REDIRECTS);
				free(location);
				break;
			}
			/* 303, and 301/302 after a POST, turn into a GET without a body, as browsers and curl do. */
			if (status == 303 || ((status == 301 || status == 302) && strcmp(method, "POST") == 0)) {
				snprintf(method, sizeof(method), "GET");
				free(body);
				body = NULL;
			}
			free(url);
			url = location;
			continue;
		}
		free(location);
		if (!status_expected(json_object_get(p, "expected_status"), status)) {
			snprintf(err, errlen, "http: %s %s answered %ld", method, url, status);
			st = WF_FAIL;
			break;
		}
		*output = response_json(&x, status, url);
		st = WF_OK;
		break;
	}
	curl_slist_free_all(hdrs);
	curl_slist_free_all(x.resolve);
	curl_easy_cleanup(c);
	json_decref(x.headers);
	free(x.body);
	free(body);
	free(url);
	return st;
}

/* hopper-web's pure parts: the route table against the ops catalogue, request fields built and validated
 * like the daemon's, error -> HTTP status, webhook body parsing and header masking, the metrics text. */
#include <stdlib.h>

#include "t.h"
#include "web.h"
#include "webhook_sig.h"

static int
routed(int op)
{
	for (size_t i = 0; i < web_nroutes; i++)
		if (web_routes[i].op == op)
			return 1;
	for (const struct web_unrouted *u = web_unrouted; u->why != NULL; u++)
		if (u->op == op)
			return 1;
	return 0;
}

static int
op_has(int op, const char *field)
{
	for (const struct ctl_arg *a = ctl_ops[op].args; a->name != NULL; a++)
		if (strcmp(a->name, field) == 0)
			return 1;
	return 0;
}

static void
test_catalogue(void)
{
	int all = 1;
	for (int op = 0; op < CTL_OP_COUNT; op++)
		if (!routed(op)) {
			printf("# op %s has no route and no reason\n", ctl_ops[op].name);
			all = 0;
		}
	T_CHECK("every op of the catalogue has a route or a stated reason", all);
	int fields_ok = 1, ops_ok = 1, unique = 1;
	for (size_t i = 0; i < web_nroutes; i++) {
		const struct web_route *r = &web_routes[i];
		if (r->flags & ROUTE_LOCAL)
			continue;
		ops_ok &= r->op >= 0 && r->op < CTL_OP_COUNT;
		for (const char *p = strchr(r->path, '{'); p != NULL; p = strchr(p + 1, '{')) {
			char name[64];
			snprintf(name, sizeof(name), "%.*s", (int)(strchr(p, '}') - p - 1), p + 1);
			if (!op_has(r->op, name)) {
				printf("# %s %s: {%s} is not a field of %s\n", r->method, r->path, name,
				       ctl_ops[r->op].name);
				fields_ok = 0;
			}
		}
		/* A required field must be reachable: from the path, or a body for routes that take one. */
		for (const struct ctl_arg *a = ctl_ops[r->op].args; a->name != NULL; a++) {
			char pat[80];
			snprintf(pat, sizeof(pat), "{%s}", a->name);
			if (a->required && strstr(r->path, pat) == NULL && r->body == BODY_NONE) {
				printf("# %s %s: required %s unreachable\n", r->method, r->path, a->name);
				fields_ok = 0;
			}
		}
		for (size_t j = 0; j < i; j++)
			unique &= !(strcmp(web_routes[j].method, r->method) == 0 &&
			            strcmp(web_routes[j].path, r->path) == 0);
	}
	T_CHECK("every route names an op of the catalogue", ops_ok);
	T_CHECK("every path field is a field of its op; every required field reachable", fields_ok);
	T_CHECK("method + path pairs are unique", unique);
}

static json_t *
fields_for(const char *method, const char *path, const char *query_json, const char *body_json, char *err)
{
	json_t *params;
	int known;
	const struct web_route *r = routes_match(method, path, &params, &known);
	if (r == NULL) {
		snprintf(err, 256, "no route");
		return NULL;
	}
	json_t *q = json_loads(query_json ? query_json : "{}", 0, NULL);
	json_t *b = body_json ? json_loads(body_json, JSON_DECODE_ANY, NULL) : NULL;
	json_t *f = routes_fields(r, params, q, b, NULL, err, 256);
	json_decref(params);
	json_decref(q);
	json_decref(b);
	return f;
}

static void
test_fields(void)
{
	char err[256];
	json_t *params;
	int known;
	T_CHECK("GET /v1/jobs/abc matches status",
	        routes_match("GET", "/v1/jobs/abc", &params, &known) == &web_routes[4]);
	T_STREQ("... with job=abc", json_string_value(json_object_get(params, "job")), "abc");
	json_decref(params);
	T_CHECK("PATCH /v1/jobs/abc: path known, no method (405)",
	        routes_match("PATCH", "/v1/jobs/abc", &params, &known) == NULL && known == 1);
	T_CHECK("GET /v1/nothing: unknown path",
	        routes_match("GET", "/v1/nothing", &params, &known) == NULL && known == 0);
	json_t *f = fields_for("GET", "/v1/jobs", "{\"limit\":\"5\",\"state\":\"dead\"}", NULL, err);
	T_CHECK("list: limit from the query is typed as an integer",
	        f != NULL && json_integer_value(json_object_get(f, "limit")) == 5);
	json_decref(f);
	f = fields_for("GET", "/v1/jobs", "{\"limit\":\"5000\"}", NULL, err);
	T_CHECK("list: limit over the catalogue's bound refused like the daemon does",
	        f == NULL && strstr(err, "limit") != NULL);
	f = fields_for("GET", "/v1/jobs", "{\"colour\":\"red\"}", NULL, err);
	T_CHECK("unknown query parameter refused", f == NULL && strstr(err, "colour") != NULL);
	f = fields_for("GET", "/v1/jobs", "{\"state\":\"sleepy\"}", NULL, err);
	T_CHECK("a state that is not one refused", f == NULL);
	f = fields_for("GET", "/v1/dead", NULL, NULL, err);
	T_STREQ("GET /v1/dead is list with state=dead", json_string_value(json_object_get(f, "state")), "dead");
	json_decref(f);
	f = fields_for("POST", "/v1/jobs", NULL, "{\"type\":\"noop\"}", err);
	T_CHECK("a bare job object becomes {job}", f != NULL && json_is_object(json_object_get(f, "job")));
	json_decref(f);
	f = fields_for("POST", "/v1/jobs", NULL, "[{\"type\":\"noop\"},{\"type\":\"noop\"}]", err);
	T_CHECK("an array becomes {jobs}", f != NULL && json_array_size(json_object_get(f, "jobs")) == 2);
	json_decref(f);
	f = fields_for("POST", "/v1/jobs", NULL, "[]", err);
	T_CHECK("an empty batch refused", f == NULL);
	f = fields_for("POST", "/v1/jobs/x/cancel", NULL, "{\"a\":1}", err);
	T_CHECK("a body where none is taken refused", f == NULL);
	f = fields_for("PUT", "/v1/workflows/w", NULL, "{\"definition\":{\"steps\":[]},\"name\":\"other\"}", err);
	T_CHECK("a body repeating a path field refused", f == NULL && strstr(err, "path") != NULL);
	f = fields_for("GET", "/v1/jobs/bad%20id", NULL, NULL, err);
	T_CHECK("a job id that is not a name refused by the protocol's parser", f == NULL);
	f = fields_for("POST", "/v1/tokens", NULL, NULL, err);
	T_CHECK("token create without a body refused", f == NULL);
}

static void
test_status(void)
{
	T_CHECK("not_found -> 404", routes_http_status(HOPPER_E_NOT_FOUND) == 404);
	T_CHECK("forbidden -> 403", routes_http_status(HOPPER_E_FORBIDDEN) == 403);
	T_CHECK("auth_failed -> 401", routes_http_status(HOPPER_E_AUTH_FAILED) == 401);
	T_CHECK("conflict -> 409", routes_http_status(HOPPER_E_CONFLICT) == 409);
	T_CHECK("unavailable -> 503", routes_http_status(HOPPER_E_UNAVAILABLE) == 503);
	T_CHECK("too_large -> 413", routes_http_status(HOPPER_E_TOO_LARGE) == 413);
	T_CHECK("transport -> 502", routes_http_status(HOPPER_E_TRANSPORT) == 502);
	int all = 1;
	for (int e = 1; e < CTL_E_COUNT; e++)
		all &= routes_http_status((enum hopper_err)e) >= 400;
	T_CHECK("every protocol error maps to a 4xx/5xx", all);
}

static void
test_webhook(void)
{
	T_CHECK("Authorization is a secret header", webhook_header_secret("authorization"));
	T_CHECK("x-hub-signature-256 is", webhook_header_secret("x-hub-signature-256"));
	T_CHECK("x-my-secret-thing is (by word)", webhook_header_secret("x-my-secret-thing"));
	T_CHECK("content-type is not", !webhook_header_secret("content-type"));
	char *m = webhook_mask("Bearer abcdefgh");
	T_STREQ("masked as abc***yz", m, "Bea***gh");
	free(m);
	m = webhook_mask("short");
	T_STREQ("a short value is all stars", m, "***");
	free(m);
	json_t *p = webhook_payload("application/json", (const unsigned char *)"{\"a\":1}", 7);
	T_CHECK("JSON body parsed", json_integer_value(json_object_get(p, "a")) == 1);
	json_decref(p);
	const char *form = "a=1&b=hello+world&c=%41%42&d";
	p = webhook_payload("application/x-www-form-urlencoded", (const unsigned char *)form, strlen(form));
	T_STREQ("form field decoded", json_string_value(json_object_get(p, "b")), "hello world");
	T_STREQ("percent-escapes decoded", json_string_value(json_object_get(p, "c")), "AB");
	T_STREQ("a key without a value is empty", json_string_value(json_object_get(p, "d")), "");
	json_decref(p);
	p = webhook_payload("text/plain", (const unsigned char *)"hi", 2);
	T_STREQ("text kept raw", json_string_value(json_object_get(p, "raw")), "hi");
	json_decref(p);
	p = webhook_payload("application/octet-stream", (const unsigned char *)"\xff\xfe", 2);
	T_STREQ("binary as base64", json_string_value(json_object_get(p, "raw_base64")), "//4=");
	json_decref(p);
	p = webhook_payload(NULL, (const unsigned char *)"", 0);
	T_CHECK("empty body: {}", json_is_object(p) && json_object_size(p) == 0);
	json_decref(p);
	struct web_config cfg = {.webhook_rate = 60, .webhook_burst = 2};
	webhook_init(&cfg);
	const char *tok = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	int a = webhook_rate_take(tok, 100.0), b = webhook_rate_take(tok, 100.0), c = webhook_rate_take(tok, 100.0);
	T_CHECK("burst of 2 passes, the third waits", a && b && !c);
	T_CHECK("one more after a second at 60/min", webhook_rate_take(tok, 101.01));
	T_CHECK("another webhook has its own bucket",
	        webhook_rate_take("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", 100.0));
}

static void
test_metrics(void)
{
	json_t *stats = json_loads(
	        "{\"counters\":{\"succeeded\":\"7\",\"dead\":\"1\"},\"running\":2,\"node\":\"n\\\"1\","
	        "\"pool\":{\"workers\":4,\"busy\":1,\"idle\":3},\"throughput\":{\"per_s_1m\":0.5},"
	        "\"nodes\":[{\"node\":\"n1\",\"running\":\"2\",\"updated_at\":\"99.5\",\"started_at\":\"50\"}],"
	        "\"local\":{\"jobs\":[{\"queue\":\"q\",\"type\":\"noop\",\"state\":\"succeeded\",\"count\":7}],"
	        "\"duration\":{\"le\":[0.1,1],\"counts\":[3,4],\"count\":8,\"sum\":4.5},\"worker_restarts\":1}}",
	        0, NULL);
	json_t *q = json_loads(
	        "{\"queues\":[{\"name\":\"q\",\"length\":3,\"scheduled\":0,\"inflight\":1,\"paused\":false}]}", 0,
	        NULL);
	json_t *web = json_pack("{s:i}", "sse_streams", 4);
	char *t = metrics_format(stats, q, 100.0, web);
	T_CHECK("up", strstr(t, "\nhopper_up 1\n") != NULL || strncmp(t, "# HELP hopper_up", 16) == 0);
	T_CHECK("jobs_total by queue, type, state",
	        strstr(t, "hopper_jobs_total{node=\"n\\\"1\",queue=\"q\",type=\"noop\",state=\"succeeded\"} 7\n") !=
	                NULL);
	T_CHECK("histogram buckets are cumulative",
	        strstr(t, "le=\"1\"} 7\n") != NULL && strstr(t, "le=\"+Inf\"} 8\n") != NULL);
	T_CHECK("queue depth", strstr(t, "hopper_queue_depth{queue=\"q\"} 3\n") != NULL);
	T_CHECK("heartbeat age", strstr(t, "hopper_node_heartbeat_age_seconds{node=\"n1\"} 0.5\n") != NULL);
	T_CHECK("workers busy", strstr(t, "state=\"busy\"} 1\n") != NULL);
	T_CHECK("streams", strstr(t, "hopper_web_event_streams 4\n") != NULL);
	T_CHECK("each TYPE once",
	        strstr(strstr(t, "# TYPE hopper_queue_depth") + 1, "# TYPE hopper_queue_depth") == NULL);
	free(t);
	t = metrics_format(NULL, NULL, 100.0, web);
	T_CHECK("daemon down: hopper_up 0", strstr(t, "hopper_up 0\n") != NULL);
	free(t);
	json_decref(stats);
	json_decref(q);
	json_decref(web);
}

static void
test_signatures(void)
{
	/* GitHub's documented example (docs "Validating webhook deliveries"). */
	const char *gh_body = "Hello, World!";
	char hex[65], err[256], hdr[128];
	webhook_sig_hex("It's a Secret to Everybody", NULL, (const unsigned char *)gh_body, strlen(gh_body), hex);
	T_STREQ("HMAC-SHA256 matches GitHub's documented vector", hex,
	        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
	snprintf(hdr, sizeof(hdr), "sha256=%s", hex);
	const unsigned char *b = (const unsigned char *)gh_body;
	size_t n = strlen(gh_body);
	T_CHECK("github: the right signature passes",
	        webhook_sig_verify("github", "It's a Secret to Everybody", b, n, hdr, 0, 300, err, sizeof(err)) == 0);
	T_CHECK("github: upper-case hex passes too",
	        webhook_sig_verify("github", "It's a Secret to Everybody", b, n,
	                           "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17", 0, 300,
	                           err, sizeof(err)) == 0);
	T_CHECK("github: another secret fails",
	        webhook_sig_verify("github", "nope", b, n, hdr, 0, 300, err, sizeof(err)) != 0);
	T_CHECK("github: a truncated signature fails",
	        webhook_sig_verify("github", "It's a Secret to Everybody", b, n, "sha256=757107ea", 0, 300, err,
	                           sizeof(err)) != 0);
	T_CHECK("github: no sha256= prefix fails",
	        webhook_sig_verify("github", "It's a Secret to Everybody", b, n, hex, 0, 300, err, sizeof(err)) != 0);
	T_CHECK("github: a missing header fails",
	        webhook_sig_verify("github", "s", b, n, NULL, 0, 300, err, sizeof(err)) != 0 &&
	                strstr(err, "no") != NULL);
	webhook_sig_hex("whsec", "1700000000.", b, n, hex);
	char st[256];
	snprintf(st, sizeof(st), "t=1700000000,v1=%s", hex);
	T_CHECK("stripe: valid within the tolerance",
	        webhook_sig_verify("stripe", "whsec", b, n, st, 1700000100, 300, err, sizeof(err)) == 0);
	T_CHECK("stripe: a replay outside it fails",
	        webhook_sig_verify("stripe", "whsec", b, n, st, 1700000400, 300, err, sizeof(err)) != 0 &&
	                strstr(err, "tolerance") != NULL);
	snprintf(st, sizeof(st), "t=1700000001,v1=%s", hex);
	T_CHECK("stripe: the timestamp is signed (changing it fails)",
	        webhook_sig_verify("stripe", "whsec", b, n, st, 1700000000, 300, err, sizeof(err)) != 0);
	snprintf(st, sizeof(st), "v1=%s", hex);
	T_CHECK("stripe: no timestamp fails",
	        webhook_sig_verify("stripe", "whsec", b, n, st, 0, 300, err, sizeof(err)) != 0);
	T_CHECK("none always passes", webhook_sig_verify("none", NULL, b, n, NULL, 0, 300, err, sizeof(err)) == 0);
	size_t len = 0;
	unsigned char *d = webhook_sig_b64decode("SGVsbG8=", &len);
	T_CHECK("base64 decodes", d != NULL && len == 5 && memcmp(d, "Hello", 5) == 0);
	free(d);
	T_CHECK("not base64: NULL", webhook_sig_b64decode("%%%", &len) == NULL);
}

/* evid.c: event ids and the resume decision. */
static void
test_evid(void)
{
	json_t *a = json_loads("{\"job\":\"j\",\"event\":\"progress\",\"state\":\"running\",\"attempt\":1,"
	                       "\"progress\":40,\"at\":1764690000.123}",
	                       0, NULL);
	json_t *a2 = json_loads("{\"at\":1764690000.123,\"progress\":40,\"attempt\":1,\"state\":\"running\","
	                        "\"event\":\"progress\",\"job\":\"j\"}",
	                        0, NULL);
	json_t *b = json_loads("{\"job\":\"j\",\"event\":\"progress\",\"state\":\"running\",\"attempt\":1,"
	                       "\"progress\":41,\"at\":1764690000.123}",
	                       0, NULL);
	struct evid ia, ia2, ib, p;
	evid_of(a, &ia);
	evid_of(a2, &ia2);
	evid_of(b, &ib);
	char text[EVID_TEXT_MAX];
	evid_format(&ia, text);
	T_CHECK("evid: the time part is the event's at in ms", ia.at_ms == 1764690000123LL);
	T_CHECK("evid: text is <ms>-<8 hex>", strlen(text) == 22 && strncmp(text, "1764690000123-", 14) == 0);
	T_CHECK("evid: the same event with its keys in another order has the same id", ia2.hash == ia.hash);
	T_CHECK("evid: another event of the same millisecond has another hash", ib.hash != ia.hash);
	T_CHECK("evid: parse(format(x)) == x", evid_parse(text, &p) == 0 && p.at_ms == ia.at_ms && p.hash == ia.hash);
	static const char *const bad[] = {"",
	                                  "3",
	                                  "-abcdef12",
	                                  "12-abcdef1",
	                                  "12-abcdef123",
	                                  "12-ABCDEF12",
	                                  "12_abcdef12",
	                                  "12-abcdefgh",
	                                  "1234567890123456-abcdef12",
	                                  " 12-abcdef12"};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += evid_parse(bad[i], &p) != 0;
	T_CHECK("evid: malformed ids are refused", refused == (int)(sizeof(bad) / sizeof(bad[0])));
	struct evid before = {ia.at_ms - 1, 7}, after = {ia.at_ms + 1, ia.hash};
	T_CHECK("resume: an earlier event is skipped", evid_resume_step(&ia, 1, &before) == EVID_SKIP);
	T_CHECK("resume: the wanted event is found", evid_resume_step(&ia, 1, &ia2) == EVID_FOUND);
	T_CHECK("resume: another of its millisecond is held", evid_resume_step(&ia, 1, &ib) == EVID_HOLD);
	T_CHECK("resume: a later one before it was found: lost", evid_resume_step(&ia, 1, &after) == EVID_LOST);
	T_CHECK("resume: with an id that did not parse: lost", evid_resume_step(&ia, 0, &before) == EVID_LOST);
	json_decref(a);
	json_decref(a2);
	json_decref(b);
}

int
main(void)
{
	test_signatures();
	test_catalogue();
	test_fields();
	test_status();
	test_webhook();
	test_metrics();
	test_evid();
	T_DONE();
}

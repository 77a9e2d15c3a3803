/* Unit tests for the workflow engine's pure part: definitions, validation errors, templates, expressions,
 * masking. Every case is a byte string parsed by the real code. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "wf_net.h"
#include "workflow.h"

static struct wf_config cfg = {.exec_enabled = 1,
                               .exec_programs = "/bin/echo,/bin/sh",
                               .http_schemes = "http,https",
                               .http_hosts = "",
                               .env_allow = "API_TOKEN,REGION",
                               .mask_names = "x-secret",
                               .max_response = 1 << 20,
                               .max_output = 1 << 16};

static struct wf_def *
parse(const char *text, json_t **errors)
{
	json_t *doc = json_loads(text, 0, NULL);
	struct wf_def *d = wf_def_parse(doc, &cfg, errors);
	json_decref(doc);
	return d;
}

/* 1 if the error list has an error for step `step` containing `needle`. */
static int
has_error(json_t *errors, const char *step, const char *needle)
{
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e)
	{
		const char *s = json_string_value(json_object_get(e, "step"));
		const char *m = json_string_value(json_object_get(e, "error"));
		if (((step == NULL && s == NULL) || (step && s && strcmp(s, step) == 0)) && m && strstr(m, needle))
			return 1;
	}
	return 0;
}

static void
test_order(void)
{
	json_t *errs = NULL;
	struct wf_def *d = parse("{\"name\":\"dag\",\"steps\":["
	                         "{\"id\":\"d\",\"type\":\"delay\",\"depends_on\":[\"b\",\"c\"]},"
	                         "{\"id\":\"b\",\"type\":\"delay\",\"depends_on\":[\"a\"]},"
	                         "{\"id\":\"c\",\"type\":\"delay\",\"depends_on\":[\"a\"]},"
	                         "{\"id\":\"a\",\"type\":\"delay\"}]}",
	                         &errs);
	T_CHECK("diamond parses", d != NULL && errs == NULL);
	if (d == NULL)
		return;
	char order[8] = "";
	for (size_t i = 0; i < d->nsteps; i++)
		order[i] = d->steps[d->order[i]].id[0];
	T_STREQ("topological order a b c d", order, "abcd");
	T_CHECK("a precedes d transitively", d->anc[0 * 4 + 3] == 1);
	T_CHECK("b does not precede c", d->anc[2 * 4 + 1] == 0);
	T_STREQ("name kept", d->name, "dag");
	wf_def_free(d);
}

static void
test_errors(void)
{
	json_t *errs = NULL;
	struct wf_def *d = parse("{\"steps\":["
	                         "{\"id\":\"a\",\"type\":\"teleport\"},"
	                         "{\"id\":\"b\",\"type\":\"delay\"},"
	                         "{\"id\":\"b\",\"type\":\"delay\"},"
	                         "{\"id\":\"x\",\"type\":\"delay\",\"depends_on\":[\"y\"]},"
	                         "{\"id\":\"y\",\"type\":\"delay\",\"depends_on\":[\"x\"]},"
	                         "{\"id\":\"z\",\"type\":\"delay\",\"depends_on\":[\"nope\"]},"
	                         "{\"id\":\"bad.id\",\"type\":\"delay\"},"
	                         "{\"id\":\"r\",\"type\":\"delay\",\"retries\":99,\"on_failure\":\"explode\"}]}",
	                         &errs);
	T_CHECK("invalid definition refused", d == NULL && errs != NULL);
	T_CHECK("unknown type names the step", has_error(errs, "a", "unknown step type \"teleport\""));
	T_CHECK("duplicate id", has_error(errs, "b", "duplicate step id"));
	T_CHECK("cycle names x", has_error(errs, "x", "cycle"));
	T_CHECK("cycle names y", has_error(errs, "y", "cycle"));
	T_CHECK("unknown dependency", has_error(errs, "z", "unknown step nope"));
	T_CHECK("bad id", has_error(errs, "#7", "\"id\""));
	T_CHECK("retries out of range", has_error(errs, "r", "retries"));
	T_CHECK("on_failure word", has_error(errs, "r", "on_failure"));
	char *text = wf_errors_text(errs);
	T_CHECK("error text counts them all", strstr(text, "invalid workflow (") == text);
	free(text);
	json_decref(errs);

	errs = NULL;
	d = parse("{\"steps\":["
	          "{\"id\":\"a\",\"type\":\"delay\"},"
	          "{\"id\":\"b\",\"type\":\"delay\",\"params\":{\"x\":\"{{steps.c.output.v}}\"}},"
	          "{\"id\":\"c\",\"type\":\"delay\",\"depends_on\":[\"a\"]},"
	          "{\"id\":\"f\",\"type\":\"filter\",\"params\":{\"condition\":\"input.x == \"}},"
	          "{\"id\":\"g\",\"type\":\"filter\",\"params\":{\"condition\":\"steps.c.output.v > 1\"}},"
	          "{\"id\":\"t\",\"type\":\"http\",\"params\":{\"url\":\"http://h/{{input.x\"}},"
	          "{\"id\":\"e\",\"type\":\"http\",\"params\":{\"url\":\"http://h/{{env.HOME}}\"}},"
	          "{\"id\":\"s\",\"type\":\"http\",\"params\":{\"url\":\"ftp://h/x\"}},"
	          "{\"id\":\"w\",\"type\":\"exec\",\"params\":{\"argv\":[\"/usr/bin/rm\",\"-rf\"]}}]}",
	          &errs);
	T_CHECK("reference errors refused", d == NULL);
	T_CHECK("reference to a later step", has_error(errs, "b", "does not precede"));
	T_CHECK("bad expression", has_error(errs, "f", "condition col"));
	T_CHECK("filter reference to a non-ancestor", has_error(errs, "g", "does not precede"));
	T_CHECK("unterminated template", has_error(errs, "t", "unterminated"));
	T_CHECK("env not allowed", has_error(errs, "e", "env.HOME is not allowed"));
	T_CHECK("scheme not allowed", has_error(errs, "s", "scheme ftp"));
	T_CHECK("exec program not allowed", has_error(errs, "w", "not in workflow_exec_programs"));
	json_decref(errs);

	errs = NULL;
	T_CHECK("not an object", parse("[1]", &errs) == NULL && has_error(errs, NULL, "JSON object"));
	json_decref(errs);
	errs = NULL;
	T_CHECK("no steps", parse("{\"steps\":[]}", &errs) == NULL && has_error(errs, NULL, "non-empty"));
	json_decref(errs);
}

static void
test_automateos(void)
{
	json_t *errs = NULL;
	struct wf_def *d = parse(
	        "{\"nodes\":[{\"id\":\"hook\",\"type\":\"webhook\",\"config\":{\"method\":\"POST\"}},"
	        "{\"id\":\"call\",\"type\":\"http_request\",\"config\":{\"url\":\"http://x/{{hook.payload.id}}\","
	        "\"method\":\"POST\",\"body\":{\"n\":\"{{name}}\"},\"timeout\":5}},"
	        "{\"id\":\"keep\",\"type\":\"filter\",\"config\":{\"condition\":\"{{call.status_code}} == 200\"}}],"
	        "\"connections\":[{\"from\":\"hook\",\"to\":\"call\"},{\"from\":\"call\",\"to\":\"keep\"}]}",
	        &errs);
	T_CHECK("AutomateOS shape accepted", d != NULL && errs == NULL);
	if (d == NULL) {
		json_decref(errs);
		return;
	}
	T_CHECK("automateos flag", d->automateos == 1);
	T_STREQ("http_request maps to http", d->steps[1].type->name, "http");
	T_CHECK("dict body becomes json", json_is_object(json_object_get(d->steps[1].params, "json")));
	T_CHECK("timeout becomes timeout_s", json_integer_value(json_object_get(d->steps[1].params, "timeout_s")) == 5);
	T_CHECK("connection makes a dependency", d->steps[2].ndeps == 1 && d->steps[2].deps[0] == 1);
	/* resolution through AutomateOS names */
	json_t *ctx =
	        json_loads("{\"input\":{\"id\":7,\"name\":\"ada\"},\"steps\":{\"hook\":{\"output\":{\"payload\":"
	                   "{\"id\":7}}},\"call\":{\"output\":{\"status\":200,\"ok\":true,\"json\":{\"k\":\"v\"}}}}}",
	                   0, NULL);
	char err[256];
	json_t *v = wf_template_render(d, ctx, "{{call.status_code}}", err, sizeof(err));
	T_CHECK("status_code alias", json_integer_value(v) == 200);
	json_decref(v);
	v = wf_template_render(d, ctx, "{{call.response.json.k}}", err, sizeof(err));
	T_STREQ("response.json alias", json_string_value(v), "v");
	json_decref(v);
	v = wf_template_render(d, ctx, "n={{name}}", err, sizeof(err));
	T_STREQ("flattened payload key", json_string_value(v), "n=ada");
	json_decref(v);
	json_decref(ctx);
	wf_def_free(d);

	/* no connections: array order */
	errs = NULL;
	d = parse("{\"nodes\":[{\"id\":1,\"type\":\"webhook\"},{\"id\":2,\"type\":\"filter\",\"config\":{\"condition\":"
	          "\"true\"}}]}",
	          &errs);
	T_CHECK("no connections: a chain in array order; integer ids",
	        d != NULL && d->steps[1].ndeps == 1 && strcmp(d->steps[0].id, "1") == 0);
	wf_def_free(d);
	json_decref(errs);
}

static void
test_templates(void)
{
	json_t *errs = NULL;
	struct wf_def *d = parse("{\"steps\":[{\"id\":\"a\",\"type\":\"delay\"},"
	                         "{\"id\":\"b\",\"type\":\"delay\",\"depends_on\":[\"a\"]}]}",
	                         &errs);
	json_t *ctx = json_loads("{\"input\":{\"x\":\"hi\",\"n\":3,\"list\":[10,20]},\"steps\":{\"a\":{\"output\":{"
	                         "\"json\":{\"field\":\"F\"}}}},\"env\":{\"REGION\":\"eu\"}}",
	                         0, NULL);
	char err[256] = "";
	json_t *v = wf_template_render(d, ctx, "{{input.n}}", err, sizeof(err));
	T_CHECK("whole-string template keeps the type", json_is_integer(v) && json_integer_value(v) == 3);
	json_decref(v);
	v = wf_template_render(d, ctx, "a {{ input.x }} {{input.n}} {{steps.a.output.json.field}} {{env.REGION}}", err,
	                       sizeof(err));
	T_STREQ("interpolation", json_string_value(v), "a hi 3 F eu");
	json_decref(v);
	v = wf_template_render(d, ctx, "{{input.list.1}}", err, sizeof(err));
	T_CHECK("array index", json_integer_value(v) == 20);
	json_decref(v);
	v = wf_template_render(d, ctx, "literal \\{{input.x}} and {{input.x}}", err, sizeof(err));
	T_STREQ("escaped braces", json_string_value(v), "literal {{input.x}} and hi");
	json_decref(v);
	v = wf_template_render(d, ctx, "{{input.missing}}", err, sizeof(err));
	T_CHECK("missing value is an error", v == NULL && strstr(err, "no value") != NULL);
	T_CHECK("check: ok", wf_template_check(d, 1, &cfg, "{{steps.a.output.x}} {{input.y}}", err, sizeof(err)) == 0);
	T_CHECK("check: self reference", wf_template_check(d, 0, &cfg, "{{steps.b.output}}", err, sizeof(err)) == 1);
	T_CHECK("check: bad root", wf_template_check(d, 1, &cfg, "{{what.ever}}", err, sizeof(err)) == 1);
	T_CHECK("check: bad characters", wf_template_check(d, 1, &cfg, "{{input.a b}}", err, sizeof(err)) == 1);
	T_CHECK("check: empty", wf_template_check(d, 1, &cfg, "{{}}", err, sizeof(err)) == 1);
	T_CHECK("check: steps needs output", wf_template_check(d, 1, &cfg, "{{steps.a.json}}", err, sizeof(err)) == 1);
	json_decref(ctx);
	wf_def_free(d);
	json_decref(errs);
}

static int
eval(const char *cond, const char *ctxtext)
{
	char err[256];
	struct wf_expr *e = wf_expr_parse(cond, err, sizeof(err));
	if (e == NULL)
		return -1;
	json_t *errs = NULL;
	struct wf_def *d = parse("{\"steps\":[{\"id\":\"a\",\"type\":\"delay\"}]}", &errs);
	json_t *ctx = json_loads(ctxtext, 0, NULL);
	int r = wf_expr_eval(e, d, ctx);
	json_decref(ctx);
	wf_def_free(d);
	wf_expr_free(e);
	return r;
}

static void
test_expressions(void)
{
	const char *ctx = "{\"input\":{\"n\":5,\"s\":\"abc\",\"tags\":[\"x\",\"y\"],\"t\":true,\"z\":0},"
	                  "\"steps\":{\"a\":{\"output\":{\"status\":200}}}}";
	T_CHECK("number compare", eval("input.n > 3", ctx) == 1);
	T_CHECK("number equality int/real", eval("input.n == 5.0", ctx) == 1);
	T_CHECK("string equality", eval("input.s == 'abc'", ctx) == 1);
	T_CHECK("string order", eval("input.s < \"abd\"", ctx) == 1);
	T_CHECK("and/or precedence", eval("input.n < 3 or input.n > 4 and input.t", ctx) == 1);
	T_CHECK("not", eval("not input.z", ctx) == 1);
	T_CHECK("! and &&", eval("!(input.n == 5) && true", ctx) == 0);
	T_CHECK("parentheses", eval("(input.n < 3 or input.n > 4) and input.s != 'x'", ctx) == 1);
	T_CHECK("contains in array", eval("input.tags contains 'y'", ctx) == 1);
	T_CHECK("contains in string", eval("input.s contains \"bc\"", ctx) == 1);
	T_CHECK("template reference", eval("{{steps.a.output.status}} == 200", ctx) == 1);
	T_CHECK("quoted template is rendered", eval("\"{{input.s}}\" == 'abc'", ctx) == 1);
	T_CHECK("missing reference is null", eval("input.nope == null", ctx) == 1);
	T_CHECK("mixed types order false", eval("input.s > 1", ctx) == 0);
	T_CHECK("negative number", eval("-2 < input.n", ctx) == 1);
	T_CHECK("keyword prefix is a path", eval("order == null", ctx) == 1);
	char err[256];
	const char *bad[] = {"",    "input.n ==", "(input.n",         "'open",     "input.n = 5",
	                     "1 2", "import os",  "__import__('os')", "{{input.n", NULL};
	for (int i = 0; bad[i]; i++) {
		struct wf_expr *e = wf_expr_parse(bad[i], err, sizeof(err));
		char name[96];
		snprintf(name, sizeof(name), "refused: %s", bad[i]);
		T_CHECK(name, e == NULL && err[0] != '\0');
		wf_expr_free(e);
	}
	char deep[300];
	memset(deep, '(', 200);
	strcpy(deep + 200, "1");
	T_CHECK("depth limit", wf_expr_parse(deep, err, sizeof(err)) == NULL && strstr(err, "deep") != NULL);
	char nots[600] = "";
	for (int i = 0; i < 100; i++)
		strcat(nots, "not ");
	strcat(nots, "true");
	T_CHECK("not chain depth limit", wf_expr_parse(nots, err, sizeof(err)) == NULL);
}

static void
test_mask(void)
{
	json_t *secrets = json_pack("[s]", "tok-12345");
	json_t *v = json_loads("{\"headers\":{\"Authorization\":\"Bearer tok-12345\",\"X-Secret\":\"s\",\"ok\":\"1\"},"
	                       "\"body\":\"echo tok-12345 twice tok-12345\",\"Cookie\":\"c=1\"}",
	                       0, NULL);
	json_t *m = wf_mask_json(&cfg, v, secrets);
	char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	T_CHECK("no secret left", strstr(text, "tok-12345") == NULL);
	T_CHECK("authorization masked",
	        strcmp(json_string_value(json_object_get(json_object_get(m, "headers"), "Authorization")), "***") == 0);
	T_CHECK("configured name masked",
	        strcmp(json_string_value(json_object_get(json_object_get(m, "headers"), "X-Secret")), "***") == 0);
	T_CHECK("cookie masked", strcmp(json_string_value(json_object_get(m, "Cookie")), "***") == 0);
	T_STREQ("echoed value scrubbed", json_string_value(json_object_get(m, "body")), "echo *** twice ***");
	T_STREQ("other values kept", json_string_value(json_object_get(json_object_get(m, "headers"), "ok")), "1");
	free(text);
	char *t = wf_mask_text("error near tok-12345", secrets);
	T_STREQ("text masked", t, "error near ***");
	free(t);
	json_decref(m);
	json_decref(v);
	json_decref(secrets);
	/* Every encoding a step applies (issue 11, item 6): URL (either hex case, form '+'), JSON, base64 of
	 * "user:secret" at each alignment. Expected strings from Python's urllib/json/base64. */
	secrets = json_pack("[s]", "p@ss w/rd&x=1\"\xc3\xa9");
	static const char *const leaks[] = {"q=p%40ss%20w%2Frd%26x%3D1%22%C3%A9&z",
	                                    "q=p%40ss%20w%2frd%26x%3d1%22%c3%a9",
	                                    "a=p%40ss+w%2Frd%26x%3D1%22%C3%A9",
	                                    "{\"pw\":\"p@ss w/rd&x=1\\\"\\u00e9\"}",
	                                    "{\"pw\":\"p@ss w/rd&x=1\\\"\xc3\xa9\"}",
	                                    "Basic dTpwQHNzIHcvcmQmeD0xIsOp",
	                                    "Basic dXM6cEBzcyB3L3JkJng9MSLDqQ==",
	                                    "Basic dXNlOnBAc3Mgdy9yZCZ4PTEiw6k=",
	                                    NULL};
	for (size_t i = 0; leaks[i] != NULL; i++) {
		t = wf_mask_text(leaks[i], secrets);
		char name[256];
		snprintf(name, sizeof(name), "encoded secret masked: %.100s -> %.40s", leaks[i], t);
		T_CHECK(name, strstr(t, "***") != NULL && strstr(t, "ss") == NULL && strstr(t, "cEBz") == NULL &&
		                      strstr(t, "QHNz") == NULL && strstr(t, "BAc3") == NULL);
		free(t);
	}
	t = wf_mask_text("an ordinary line, user u: 42", secrets);
	T_STREQ("ordinary text untouched", t, "an ordinary line, user u: 42");
	free(t);
	json_decref(secrets);
	T_CHECK("list membership",
	        wf_list_has("a, b,c", "b", 0) && !wf_list_has("ab", "a", 0) && wf_list_has("HTTP", "http", 1));
}

/* The exec env allowlist (issue 11, item 2): listed names and prefixes, never loader/shell hooks by prefix. */
static void
test_exec_env(void)
{
	struct wf_config c = cfg;
	c.exec_env_allow = "FOO, APP_*, LD_LIBRARY_PATH, *";
	T_CHECK("a listed name", wf_exec_env_name_ok(&c, "FOO"));
	T_CHECK("a prefix entry", wf_exec_env_name_ok(&c, "APP_MODE"));
	T_CHECK("a bare * admits any portable name", wf_exec_env_name_ok(&c, "FOO2"));
	T_CHECK("a dangerous name only by its exact name", wf_exec_env_name_ok(&c, "LD_LIBRARY_PATH"));
	static const char *const never[] = {
	        "LD_PRELOAD", "BASH_FUNC_echo%%", "PATH",       "IFS", "ENV", "BASH_ENV", "PYTHONPATH",
	        "PERL5OPT",   "NODE_OPTIONS",     "GCONV_PATH", "1X",  "A-B", "",         NULL};
	for (size_t i = 0; never[i] != NULL; i++) {
		char name[96];
		snprintf(name, sizeof(name), "refused even with a * entry: '%s'", never[i]);
		T_CHECK(name, !wf_exec_env_name_ok(&c, never[i]));
	}
	c.exec_env_allow = "FOO";
	T_CHECK("an unlisted name", !wf_exec_env_name_ok(&c, "FOO2"));
	c.exec_env_allow = "";
	T_CHECK("an empty list admits nothing", !wf_exec_env_name_ok(&c, "FOO"));
	c.exec_env_allow = "PATH";
	T_CHECK("PATH when listed exactly", wf_exec_env_name_ok(&c, "PATH"));
}

/* http destinations (issue 11, item 5): host AND port, scheme default ports, hopperd's own addresses. */
static void
test_net(void)
{
	int ex = 0;
	T_CHECK("empty list: any host", wf_net_host_allowed("", "evil.example", 6379, 80, &ex) && !ex);
	T_CHECK("a bare host: its default port", wf_net_host_allowed("localhost", "localhost", 80, 80, &ex) && !ex);
	T_CHECK("a bare host: not another port (Redis)", !wf_net_host_allowed("localhost", "localhost", 6379, 80, &ex));
	T_CHECK("a bare host over https: 443", wf_net_host_allowed("api.example", "API.example", 443, 443, &ex));
	T_CHECK("host:port: that port, explicitly",
	        wf_net_host_allowed("a, localhost:8080", "localhost", 8080, 80, &ex) && ex);
	T_CHECK("host:port: not the default", !wf_net_host_allowed("localhost:8080", "localhost", 80, 80, &ex));
	T_CHECK("host:*: any port, not explicit",
	        wf_net_host_allowed("localhost:*", "localhost", 6379, 80, &ex) && !ex);
	T_CHECK("IPv6 literal with port", wf_net_host_allowed("[::1]:8080", "[::1]", 8080, 80, &ex) && ex);
	T_CHECK("another host", !wf_net_host_allowed("localhost:*", "127.0.0.1", 80, 80, &ex));
	T_CHECK("a bad entry matches nothing", !wf_net_host_allowed("localhost:99999,:80", "localhost", 80, 80, &ex));
	struct sockaddr_in r = {.sin_family = AF_INET, .sin_port = htons(6379)};
	inet_pton(AF_INET, "127.0.0.1", &r.sin_addr);
	struct sockaddr_in o = r;
	o.sin_port = htons(6380);
	T_CHECK("the daemon's Redis address",
	        wf_net_is_daemon_addr("127.0.0.1:6379,[::1]:7711", (struct sockaddr *)&r));
	T_CHECK("... by a name resolving to it", wf_net_is_daemon_addr("localhost:6379", (struct sockaddr *)&r));
	T_CHECK("another port is not", !wf_net_is_daemon_addr("127.0.0.1:6379", (struct sockaddr *)&o));
	T_CHECK("a listener on every address: any address with its port",
	        wf_net_is_daemon_addr("0.0.0.0:6379", (struct sockaddr *)&r) &&
	                !wf_net_is_daemon_addr("[::]:6379", (struct sockaddr *)&o));
	struct wf_config c = cfg;
	c.deny_addrs = "127.0.0.1:6379";
	struct wf_target t = {.host = "localhost", .port = 6379};
	char err[256], *pin = NULL;
	T_CHECK("resolving to the daemon's Redis is refused", wf_net_resolve(&c, &t, &pin, err, sizeof(err)) < 0 &&
	                                                              strstr(err, "hopperd's own") != NULL &&
	                                                              pin == NULL);
	t = (struct wf_target){.host = "localhost", .port = 6379, .explicit_port = 1};
	T_CHECK("... unless listed with its port", wf_net_resolve(&c, &t, &pin, err, sizeof(err)) == 0 && t.naddr > 0);
	T_CHECK("a name is pinned to its addresses", pin != NULL && strncmp(pin, "localhost:6379:", 15) == 0);
	free(pin);
	pin = NULL;
	t = (struct wf_target){.host = "127.0.0.1", .port = 8080};
	T_CHECK("an IP literal resolves without a pin",
	        wf_net_resolve(&c, &t, &pin, err, sizeof(err)) == 0 && pin == NULL);
}

static void
test_iso_time(void)
{
	double t = 0;
	T_CHECK("ISO Z", wf_iso_time("2026-12-03T16:40:00Z", &t) == 0 && t == 1796316000.0);
	T_CHECK("ISO with millis", wf_iso_time("2026-12-03T16:40:00.250Z", &t) == 0 && t == 1796316000.25);
	T_CHECK("ISO with an offset", wf_iso_time("2026-12-03T17:40:00+01:00", &t) == 0 && t == 1796316000.0);
	T_CHECK("ISO with a negative offset", wf_iso_time("2026-12-03T11:10:00-05:30", &t) == 0 && t == 1796316000.0);
	const char *bad[] = {"tomorrow",
	                     "2026-12-03",
	                     "2026-12-03T16:40:00",
	                     "2026-13-03T16:40:00Z",
	                     "2026-12-03T16:40:00Zx",
	                     "2026-12-03T16:40:00.Z",
	                     "1969-12-31T23:59:59Z",
	                     ""};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += wf_iso_time(bad[i], &t) < 0;
	T_CHECK("malformed times refused", refused == (int)(sizeof(bad) / sizeof(bad[0])));
	json_t *errs = NULL;
	struct wf_def *d =
	        parse("{\"steps\":[{\"id\":\"u\",\"type\":\"sleep_until\",\"params\":{\"until\":\"soon\"}}]}", &errs);
	T_CHECK("sleep_until with a bad time is refused up front", d == NULL && has_error(errs, "u", "ISO-8601"));
	json_decref(errs);
	errs = NULL;
	d = parse("{\"steps\":[{\"id\":\"u\",\"type\":\"sleep_until\",\"params\":{\"until\":1796316000000}}]}", &errs);
	T_CHECK("sleep_until with epoch ms parses", d != NULL && errs == NULL);
	wf_def_free(d);
	json_decref(errs);
}

int
main(void)
{
	test_order();
	test_errors();
	test_automateos();
	test_templates();
	test_expressions();
	test_mask();
	test_exec_env();
	test_net();
	test_iso_time();
	T_DONE();
}

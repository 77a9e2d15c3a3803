/* Celery's wire format: envelopes captured from Celery 5.2.6/kombu 5.2.4, refusals, the task map and argument
 * mapping, the encoder (round trip, result splicing), result-backend values, ISO times and base64. */
#include <stdlib.h>

#include "celery_msg.h"
#include "celery_opts.h"
#include "t.h"

/* Captured with LRANGE from Debian's Celery: add.apply_async((4,5), priority=6, queue='audio', expires=60,
 * time_limit=30, soft_time_limit=20) (celery-wire.md). */
static const char captured[] =
        "{\"body\": "
        "\"W1s0LCA1XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjog"
        "bnVsbH1d\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \"headers\": {\"lang\": "
        "\"py\", \"task\": \"proj.add\", \"id\": \"e580be27-625f-461c-a9f6-420941b7a88a\", \"shadow\": null, \"eta\": "
        "null, \"expires\": \"2026-11-23T07:27:55.611519+00:00\", \"group\": null, \"group_index\": null, \"retries\": "
        "0, \"timelimit\": [30, 20], \"root_id\": \"e580be27-625f-461c-a9f6-420941b7a88a\", \"parent_id\": null, "
        "\"argsrepr\": \"(4, 5)\", \"kwargsrepr\": \"{}\", \"origin\": \"gen13442@vm\", \"ignore_result\": false}, "
        "\"properties\": {\"correlation_id\": \"e580be27-625f-461c-a9f6-420941b7a88a\", \"reply_to\": "
        "\"6b3f886d-283a-3868-88d6-0166e4b8217d\", \"delivery_mode\": 2, \"expiration\": \"60000\", \"delivery_info\": "
        "{\"exchange\": \"\", \"routing_key\": \"audio\"}, \"priority\": 6, \"body_encoding\": \"base64\", "
        "\"delivery_tag\": \"1e251878-f0ad-45e0-8c6d-0cca8446b48d\"}}";

/* A copy of s with the first `from` replaced by `to`. Caller frees. */
static char *
xstrdup_replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	size_t n = strlen(s) - strlen(from) + strlen(to) + 1, pre = (size_t)(at - s);
	char *out = malloc(n);
	memcpy(out, s, pre);
	snprintf(out + pre, n - pre, "%s%s", to, at + strlen(from));
	return out;
}

static int
verdict(const char *msg, char *err)
{
	struct celery_task t;
	int v = celery_parse(msg, strlen(msg), 65536, &t, err, 256);
	if (v == CELERY_OK)
		celery_task_free(&t);
	return v;
}

static void
test_parse(void)
{
	struct celery_task t;
	char err[256] = "";
	T_CHECK("captured envelope parses", celery_parse(captured, strlen(captured), 65536, &t, err, sizeof(err)) == 0);
	T_STREQ("id", t.id, "e580be27-625f-461c-a9f6-420941b7a88a");
	T_STREQ("task", t.task, "proj.add");
	T_CHECK("timelimit is [hard, soft]", t.time_limit == 30 && t.soft_time_limit == 20);
	T_NEAR("expires", t.expires, 1795418875.611519, 1e-5);
	T_CHECK("no eta", t.eta == 0);
	T_CHECK("priority", t.priority == 6);
	T_CHECK("args [4, 5]", json_array_size(t.args) == 2 && json_integer_value(json_array_get(t.args, 1)) == 5);
	T_CHECK("kwargs {}", json_is_object(t.kwargs) && json_object_size(t.kwargs) == 0);
	T_CHECK("embed holds a null chain", json_is_null(json_object_get(t.embed, "chain")));
	T_STREQ("root_id", t.root_id, t.id);
	celery_task_free(&t);

	char *pickle = xstrdup_replace(captured, "application/json", "application/x-python-serialize");
	T_CHECK("pickle refused, never decoded",
	        celery_parse(pickle, strlen(pickle), 65536, &t, err, sizeof(err)) == CELERY_REFUSED);
	T_STREQ("refusal keeps the id for the FAILURE result", t.id, "e580be27-625f-461c-a9f6-420941b7a88a");
	T_CHECK("refusal names the content type", strstr(err, "x-python-serialize") != NULL);
	free(pickle);
	char *badb64 = xstrdup_replace(captured, "\"W1s0", "\"!1s0");
	T_CHECK("bad base64 malformed", verdict(badb64, err) == CELERY_MALFORMED && strstr(err, "base64"));
	free(badb64);
	char *noid = xstrdup_replace(captured, "\"id\": \"e580", "\"xid\": \"e580");
	T_CHECK("no id: malformed", verdict(noid, err) == CELERY_MALFORMED);
	free(noid);
	char *zlib = xstrdup_replace(captured, "\"lang\": \"py\"", "\"compression\": \"zlib\"");
	T_CHECK("compressed body refused as malformed", verdict(zlib, err) == CELERY_MALFORMED);
	free(zlib);
	T_CHECK("not JSON", verdict("nope", err) == CELERY_MALFORMED);
	T_CHECK("v1 (no headers)",
	        verdict("{\"body\":\"e30=\",\"content-type\":\"application/json\"}", err) == CELERY_MALFORMED);
	T_CHECK("body not [args, kwargs, embed]",
	        verdict("{\"body\":\"e30=\",\"content-type\":\"application/json\",\"properties\":{\"body_encoding\":"
	                "\"base64\"},\"headers\":{\"id\":\"a\",\"task\":\"t\"}}",
	                err) == CELERY_MALFORMED);
	T_CHECK("plain (not base64) body accepted",
	        verdict("{\"body\":\"[[1],{},null]\",\"content-type\":\"application/json\",\"headers\":{\"id\":\"a\","
	                "\"task\":\"t\"}}",
	                err) == CELERY_OK);
	T_CHECK("over the size limit",
	        celery_parse(captured, strlen(captured), 100, &t, err, sizeof(err)) == CELERY_MALFORMED);
}

static void
test_map(void)
{
	struct celery_map map;
	char *cause = NULL;
	T_CHECK("map parses", celery_map_parse("app.analyze=sleep:ms,extra  app.noop=noop", &map, &cause) == 0);
	T_CHECK("two routes", map.n == 2);
	const struct celery_route *r = celery_map_find(&map, "app.analyze");
	T_CHECK("route found with its arg names",
	        r && strcmp(r->type, "sleep") == 0 && r->nargnames == 2 && strcmp(r->argnames[1], "extra") == 0);
	T_CHECK("unknown task", celery_map_find(&map, "app.other") == NULL);

	struct celery_task t = {.args = json_pack("[i, s, i, i]", 5, "x", 7, 8),
	                        .kwargs = json_pack("{s:b}", "flag", 1),
	                        .embed = json_object()};
	snprintf(t.id, sizeof(t.id), "tid-1");
	char err[256];
	json_t *args = celery_job_args(&t, r, err, sizeof(err));
	json_t *want = json_pack("{s:b, s:i, s:s, s:[i, i]}", "flag", 1, "ms", 5, "extra", "x", "args", 7, 8);
	T_CHECK("args: kwargs, named positionals, the rest in args", args && json_equal(args, want));
	json_decref(args);
	json_decref(want);
	json_object_set_new(t.kwargs, "ms", json_integer(1));
	T_CHECK("collision refused", celery_job_args(&t, r, err, sizeof(err)) == NULL && strstr(err, "ms"));
	json_object_del(t.kwargs, "ms");
	t.retries = 1;
	t.soft_time_limit = 20;
	t.time_limit = 30;
	t.eta = 2000;
	char *job = celery_job_json(&t, r, "audio", 3, 1000, err, sizeof(err));
	json_t *j = job ? json_loads(job, 0, NULL) : NULL;
	T_CHECK("job: id, type, queue", j && strcmp(json_string_value(json_object_get(j, "id")), "tid-1") == 0 &&
	                                        strcmp(json_string_value(json_object_get(j, "type")), "sleep") == 0 &&
	                                        strcmp(json_string_value(json_object_get(j, "queue")), "audio") == 0);
	T_CHECK("job: timeout is the soft limit", j && json_number_value(json_object_get(j, "timeout_s")) == 20);
	T_CHECK("job: attempts left after Celery retries",
	        j && json_integer_value(json_object_get(j, "max_attempts")) == 2);
	T_CHECK("job: run_at is the eta", j && json_number_value(json_object_get(j, "run_at")) == 2000);
	json_decref(j);
	free(job);
	celery_task_free(&t);
	celery_map_free(&map);
	T_CHECK("bad entry refused", celery_map_parse("noequals", &map, &cause) < 0 && strstr(cause, "noequals"));
	free(cause);
	cause = NULL;
	T_CHECK("bad type refused", celery_map_parse("a=bad/type", &map, &cause) < 0);
	free(cause);
}

static void
test_encode(void)
{
	json_t *args = json_pack("[i]", 10), *kwargs = json_pack("{s:s}", "k", "v");
	struct celery_send m = {.task = "proj.add",
	                        .queue = "audio",
	                        .priority = 7,
	                        .args = args,
	                        .kwargs = kwargs,
	                        .parent_id = "p-1",
	                        .root_id = "r-1",
	                        .insert_result = 1};
	struct celery_encoded e;
	char err[256];
	T_CHECK("encodes", celery_encode_task(&m, &e, err, sizeof(err)) == 0);
	T_CHECK("key: queue SEP bucket", strcmp(e.key, "audio\x06\x16"
	                                               "6") == 0);
	char *env = celery_encoded_join(&e, "{\"r\":1}");
	struct celery_task t;
	T_CHECK("round trip parses", celery_parse(env, strlen(env), 65536, &t, err, sizeof(err)) == CELERY_OK);
	json_t *want = json_pack("[{s:i}, i]", "r", 1, 10);
	T_CHECK("result spliced before the args", json_equal(t.args, want));
	T_CHECK("kwargs kept", json_equal(t.kwargs, kwargs));
	T_STREQ("id kept", t.id, e.id);
	T_STREQ("parent id", t.parent_id, "p-1");
	T_STREQ("root id", t.root_id, "r-1");
	T_CHECK("priority", t.priority == 7);
	json_decref(want);
	celery_task_free(&t);
	free(env);
	celery_encoded_free(&e);
	json_array_clear(args);
	T_CHECK("encodes with no args", celery_encode_task(&m, &e, err, sizeof(err)) == 0);
	env = celery_encoded_join(&e, "5");
	T_CHECK("splice into empty args", celery_parse(env, strlen(env), 65536, &t, err, sizeof(err)) == CELERY_OK &&
	                                          json_array_size(t.args) == 1 &&
	                                          json_integer_value(json_array_get(t.args, 0)) == 5);
	celery_task_free(&t);
	free(env);
	celery_encoded_free(&e);
	m.priority = 10;
	T_CHECK("priority over 9 refused", celery_encode_task(&m, &e, err, sizeof(err)) < 0);
	json_decref(args);
	json_decref(kwargs);
	T_CHECK("buckets", celery_bucket(0) == 0 && celery_bucket(2) == 0 && celery_bucket(3) == 3 &&
	                           celery_bucket(8) == 6 && celery_bucket(9) == 9);

	char *meta = celery_meta_encode("SUCCESS", "{\"a\":[1]}", NULL, "id-1", 1795418875.5);
	json_t *v = json_loads(meta, 0, NULL);
	T_CHECK("meta: fields", v && json_object_size(v) == 6 && json_is_array(json_object_get(v, "children")) &&
	                                json_is_null(json_object_get(v, "traceback")));
	T_STREQ("meta: date_done", json_string_value(json_object_get(v, "date_done")), "2026-11-23T07:27:55.500000");
	json_decref(v);
	free(meta);
	char *exc = celery_exc_encode("HopperJobError", "hopper", "boom \"quoted\"");
	T_STREQ("exception format", exc,
	        "{\"exc_type\":\"HopperJobError\",\"exc_message\":[\"boom "
	        "\\\"quoted\\\"\"],\"exc_module\":\"hopper\"}");
	free(exc);
}

static void
test_time_b64(void)
{
	double t;
	T_CHECK("epoch", celery_iso_parse("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
	T_CHECK("offset", celery_iso_parse("2026-11-23T09:27:55+02:00", &t) == 0 && t == 1795418875);
	T_CHECK("naive = UTC", celery_iso_parse("2026-11-23T07:27:55.25", &t) == 0 && t == 1795418875.25);
	T_CHECK("garbage refused", celery_iso_parse("yesterday", &t) < 0 &&
	                                   celery_iso_parse("2026-13-01T00:00:00", &t) < 0 &&
	                                   celery_iso_parse("2026-11-23T07:27:55x", &t) < 0);
	char buf[64];
	celery_iso_format(1795418875.611519, 1, buf, sizeof(buf));
	T_STREQ("format", buf, "2026-11-23T07:27:55.611519+00:00");
	const char *plain[] = {"", "f", "fo", "foo", "foob"}, *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="};
	for (int i = 0; i < 5; i++) {
		char *c = celery_b64_encode((const unsigned char *)plain[i], strlen(plain[i]));
		size_t n;
		unsigned char *d = celery_b64_decode(coded[i], strlen(coded[i]), &n);
		T_CHECK("base64 both ways",
		        strcmp(c, coded[i]) == 0 && d && n == strlen(plain[i]) && memcmp(d, plain[i], n) == 0);
		free(c);
		free(d);
	}
	size_t n;
	T_CHECK("base64 invalid", celery_b64_decode("Zm9", 3, &n) == NULL && celery_b64_decode("Z=9v", 4, &n) == NULL);
}

/* Celery v2: the id of an oversized or broken envelope, control messages, per-task options. */
static void
test_v2(void)
{
	struct celery_task t;
	char err[256];
	const char *big =
	        "{\"body\": \"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\", \"headers\": {\"id\": \"abc-1\", \"task\": \"t.x\"}, "
	        "\"content-type\": \"application/json\"}";
	T_CHECK("oversized: malformed", celery_parse(big, strlen(big), 40, &t, err, sizeof(err)) == CELERY_MALFORMED);
	T_STREQ("oversized: the id is still read", t.id, "abc-1");
	T_STREQ("oversized: the task is still read", t.task, "t.x");
	T_CHECK("oversized: the reason names the limit", strstr(err, "max_message_bytes") != NULL);
	const char *cut =
	        "{\"headers\": {\"id\": \"cut-2\", \"task\": \"t.y\", \"x\": [1, {\"a\": \"}\"}]}, \"body\": \"W1";
	T_CHECK("truncated: malformed",
	        celery_parse(cut, strlen(cut), 1 << 20, &t, err, sizeof(err)) == CELERY_MALFORMED);
	T_STREQ("truncated: the id is read past nested values and quoted braces", t.id, "cut-2");
	const char *noid = "{\"body\": \"x";
	celery_parse(noid, strlen(noid), 1 << 20, &t, err, sizeof(err));
	T_STREQ("no readable headers: no id", t.id, "");

	/* a control message as kombu publishes it (body: base64 of the command) */
	const char *cmd = "{\"method\": \"ping\", \"arguments\": {}, \"destination\": [\"w@x\"], \"ticket\": \"tk\", "
	                  "\"reply_to\": {\"exchange\": \"reply.celery.pidbox\", \"routing_key\": \"rk1\"}}";
	char *env = celery_envelope_encode(cmd, NULL, "celery.pidbox", "", 2);
	struct celery_control c;
	T_CHECK("control: parses", celery_control_parse(env, strlen(env), "w@x", 0, &c, err, sizeof(err)) == 0);
	T_STREQ("control: method", c.method, "ping");
	T_STREQ("control: reply routing key", c.reply_rk, "rk1");
	T_STREQ("control: ticket", c.ticket, "tk");
	T_CHECK("control: destination names us", c.for_us == 1);
	celery_control_free(&c);
	celery_control_parse(env, strlen(env), "other@x", 0, &c, err, sizeof(err));
	T_CHECK("control: destination names another worker", c.for_us == 0);
	celery_control_free(&c);
	free(env);
	T_CHECK("control: garbage refused", celery_control_parse("{}", 2, "w", 0, &c, err, sizeof(err)) == -1);

	struct celery_opts o;
	char *cause = NULL;
	T_CHECK("opts: parse",
	        celery_opts_parse("py.*=py t.a=q2",
	                          "t.f:exc=builtins.ValueError; t.f:exc[disk]=builtins.OSError; "
	                          "t.s:progress={\"current\": progress, \"status\": stage, \"s\": \"stage\"}",
	                          &o, &cause) == 0);
	T_STREQ("routes: glob", celery_route_queue(&o, "py.wrap"), "py");
	T_STREQ("routes: exact", celery_route_queue(&o, "t.a"), "q2");
	T_CHECK("routes: no match", celery_route_queue(&o, "t.b") == NULL);
	const struct celery_type_rule *r = celery_type_find(&o, "t.f");
	T_CHECK("types: two exc rules", r != NULL && json_array_size(r->excs) == 2);
	r = celery_type_find(&o, "t.s");
	T_STREQ("types: progress template compiled (names outside strings only)", r ? r->progress : "",
	        "{\"current\": \x01progress\x01, \"status\": \x01stage\x01, \"s\": \"stage\"}");
	celery_opts_free(&o);
	T_CHECK("opts: bad template", celery_opts_parse("", "t:progress={\"a\": bogus}", &o, &cause) == -1);
	free(cause);
	celery_opts_free(&o);
}

int
main(void)
{
	test_v2();
	test_parse();
	test_map();
	test_encode();
	test_time_b64();
	T_DONE();
}

/* Control protocol: frame codec, request validation against the catalogue, replies, scopes, error table. */
#include <stdlib.h>

#include "ctl_proto.h"
#include "t.h"

/* Parses a request given as text; returns the code and keeps the request for inspection. */
static enum ctl_err
parse(const char *text, struct ctl_request *req, char *err)
{
	return ctl_request_parse((const unsigned char *)text, strlen(text), req, err, 256);
}

static int
rejects(const char *text, enum ctl_err want)
{
	struct ctl_request req;
	char err[256];
	enum ctl_err got = parse(text, &req, err);
	ctl_request_free(&req);
	if (got != want)
		printf("# %s -> %s (%s), wanted %s\n", text, ctl_err_name(got), err, ctl_err_name(want));
	return got == want && (want == CTL_OK || err[0] != '\0');
}

static void
test_frames(void)
{
	unsigned char buf[64];
	const unsigned char *p = NULL;
	size_t plen = 0, used = 0;
	T_CHECK("header for 2 bytes", ctl_frame_header(buf, 2, 100) == 0 && buf[0] == 0 && buf[3] == 2);
	memcpy(buf + 4, "{}", 2);
	T_CHECK("frame decodes", ctl_frame_decode(buf, 6, 100, &p, &plen, &used) == CTL_FRAME_OK && plen == 2 &&
	                                 used == 6 && p == buf + 4);
	int prefixes_ok = 1;
	for (size_t i = 0; i < 6; i++)
		prefixes_ok &= ctl_frame_decode(buf, i, 100, &p, &plen, &used) == CTL_FRAME_NEED_MORE;
	T_CHECK("every prefix needs more", prefixes_ok);
	unsigned char big[4] = {0x00, 0x10, 0x00, 0x01};
	T_CHECK("length over max is refused from the header alone",
	        ctl_frame_decode(big, 4, 0x100000, &p, &plen, &used) == CTL_FRAME_TOO_LARGE);
	unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
	T_CHECK("4 GiB length is refused",
	        ctl_frame_decode(huge, 4, CTL_MAX_FRAME_LIMIT, &p, &plen, &used) == CTL_FRAME_TOO_LARGE);
	unsigned char zero[4] = {0, 0, 0, 0};
	T_CHECK("zero length is an error", ctl_frame_decode(zero, 4, 100, &p, &plen, &used) == CTL_FRAME_EMPTY);
	T_CHECK("exactly max is fine", ctl_frame_header(buf, 100, 100) == 0 &&
	                                       ctl_frame_decode(buf, 4, 100, &p, &plen, &used) == CTL_FRAME_NEED_MORE);
	T_CHECK("encoder refuses over max", ctl_frame_header(buf, 101, 100) < 0);
	T_CHECK("encoder refuses empty", ctl_frame_header(buf, 0, 100) < 0);

	json_t *m = json_pack("{s:i, s:s}", "id", 7, "op", "ping");
	size_t n = 0;
	unsigned char *f = ctl_frame_encode(m, 100, &n);
	T_CHECK("encode a message", f != NULL && n == 4 + strlen("{\"id\":7,\"op\":\"ping\"}") &&
	                                    memcmp(f + 4, "{\"id\":7,\"op\":\"ping\"}", n - 4) == 0);
	free(f);
	T_CHECK("encode refuses a message over max", ctl_frame_encode(m, 10, &n) == NULL);
	json_decref(m);
}

static void
test_requests(void)
{
	struct ctl_request req;
	char err[256];
	T_CHECK("hello parses", parse("{\"op\":\"hello\",\"version\":1}", &req, err) == CTL_OK &&
	                                req.op == &ctl_ops[CTL_OP_HELLO] && req.id == NULL);
	ctl_request_free(&req);
	T_CHECK("integer id kept",
	        parse("{\"id\":42,\"op\":\"ping\"}", &req, err) == CTL_OK && json_integer_value(req.id) == 42);
	ctl_request_free(&req);
	T_CHECK("id survives an unknown op", parse("{\"id\":\"a1\",\"op\":\"nope\"}", &req, err) == CTL_E_UNKNOWN_OP &&
	                                             req.id != NULL && strcmp(json_string_value(req.id), "a1") == 0);
	ctl_request_free(&req);

	T_CHECK("not JSON", rejects("{\"op\":", CTL_E_BAD_REQUEST));
	T_CHECK("not an object", rejects("[1,2]", CTL_E_BAD_REQUEST));
	T_CHECK("a bare string", rejects("\"ping\"", CTL_E_BAD_REQUEST));
	T_CHECK("op missing", rejects("{\"id\":1}", CTL_E_BAD_REQUEST));
	T_CHECK("op not a string", rejects("{\"op\":5}", CTL_E_BAD_REQUEST));
	T_CHECK("unknown op", rejects("{\"op\":\"shutdown\"}", CTL_E_UNKNOWN_OP));
	T_CHECK("negative id", rejects("{\"id\":-1,\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("float id", rejects("{\"id\":1.5,\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("id 2^53 refused", rejects("{\"id\":9007199254740992,\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("id 2^53-1 fine", rejects("{\"id\":9007199254740991,\"op\":\"ping\"}", CTL_OK));
	T_CHECK("empty string id", rejects("{\"id\":\"\",\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("object id", rejects("{\"id\":{},\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("duplicate keys", rejects("{\"op\":\"ping\",\"op\":\"ping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("unknown field", rejects("{\"op\":\"ping\",\"x\":1}", CTL_E_BAD_REQUEST));
	T_CHECK("hello without version", rejects("{\"op\":\"hello\"}", CTL_E_BAD_REQUEST));
	T_CHECK("hello version a string", rejects("{\"op\":\"hello\",\"version\":\"1\"}", CTL_E_BAD_REQUEST));
	T_CHECK("tcp hello",
	        rejects("{\"op\":\"hello\",\"version\":1,\"token_id\":\"0123456789ab\",\"pk\":\"x\"}", CTL_OK));
	T_CHECK("tcp hello, token_id without pk",
	        rejects("{\"op\":\"hello\",\"version\":1,\"token_id\":\"0123456789ab\"}", CTL_E_BAD_REQUEST));
	T_CHECK("tcp hello, token_id not hex",
	        rejects("{\"op\":\"hello\",\"version\":1,\"token_id\":\"0123456789AB\",\"pk\":\"x\"}",
	                CTL_E_BAD_REQUEST));
	T_CHECK("auth with token", rejects("{\"op\":\"auth\",\"token\":\"hop_x\"}", CTL_OK));
	T_CHECK("auth with peercred", rejects("{\"op\":\"auth\",\"peercred\":true}", CTL_OK));
	T_CHECK("auth with both", rejects("{\"op\":\"auth\",\"peercred\":true,\"token\":\"t\"}", CTL_E_BAD_REQUEST));
	T_CHECK("auth with neither", rejects("{\"op\":\"auth\"}", CTL_E_BAD_REQUEST));
	T_CHECK("auth peercred false", rejects("{\"op\":\"auth\",\"peercred\":false}", CTL_E_BAD_REQUEST));
	T_CHECK("submit one", rejects("{\"op\":\"submit\",\"job\":{\"type\":\"noop\"}}", CTL_OK));
	T_CHECK("submit batch", rejects("{\"op\":\"submit\",\"jobs\":[{\"type\":\"noop\"},{}]}", CTL_OK));
	T_CHECK("submit both", rejects("{\"op\":\"submit\",\"job\":{},\"jobs\":[{}]}", CTL_E_BAD_REQUEST));
	T_CHECK("submit empty batch", rejects("{\"op\":\"submit\",\"jobs\":[]}", CTL_E_BAD_REQUEST));
	T_CHECK("submit batch of non-objects", rejects("{\"op\":\"submit\",\"jobs\":[1]}", CTL_E_BAD_REQUEST));
	T_CHECK("submit job not an object", rejects("{\"op\":\"submit\",\"job\":\"x\"}", CTL_E_BAD_REQUEST));
	T_CHECK("status needs a job", rejects("{\"op\":\"status\"}", CTL_E_BAD_REQUEST));
	T_CHECK("status job id with a space", rejects("{\"op\":\"status\",\"job\":\"a b\"}", CTL_E_BAD_REQUEST));
	T_CHECK("status job id with a NUL", rejects("{\"op\":\"status\",\"job\":\"a\\u0000b\"}", CTL_E_BAD_REQUEST));
	T_CHECK("watch", rejects("{\"id\":1,\"op\":\"watch\",\"job\":\"j-1\"}", CTL_OK));
	T_CHECK("list filters", rejects("{\"op\":\"list\",\"state\":\"queued\",\"queue\":\"q\",\"limit\":10}", CTL_OK));
	T_CHECK("list bad state", rejects("{\"op\":\"list\",\"state\":\"sleeping\"}", CTL_E_BAD_REQUEST));
	T_CHECK("list limit 0", rejects("{\"op\":\"list\",\"limit\":0}", CTL_E_BAD_REQUEST));
	T_CHECK("list limit over max", rejects("{\"op\":\"list\",\"limit\":1001}", CTL_E_BAD_REQUEST));
	T_CHECK("pause needs a queue", rejects("{\"op\":\"pause\"}", CTL_E_BAD_REQUEST));
	T_CHECK("token.create",
	        rejects("{\"op\":\"token.create\",\"name\":\"ci\",\"scopes\":[\"submit\",\"read\"]}", CTL_OK));
	T_CHECK("token.create unknown scope",
	        rejects("{\"op\":\"token.create\",\"name\":\"ci\",\"scopes\":[\"root\"]}", CTL_E_BAD_REQUEST));
	T_CHECK("token.create no scopes", rejects("{\"op\":\"token.create\",\"name\":\"ci\"}", CTL_E_BAD_REQUEST));
	T_CHECK("token.revoke by id", rejects("{\"op\":\"token.revoke\",\"token_id\":\"00112233aabb\"}", CTL_OK));
	T_CHECK("token.revoke by both",
	        rejects("{\"op\":\"token.revoke\",\"token_id\":\"00112233aabb\",\"name\":\"x\"}", CTL_E_BAD_REQUEST));
	T_CHECK("null field counts as absent", rejects("{\"op\":\"list\",\"state\":null}", CTL_OK));
}

/* celery.send: Celery's positional args are any JSON array (empty too, any element type). */
static void
test_celery_send(void)
{
	T_CHECK("celery.send minimal", rejects("{\"op\":\"celery.send\",\"task\":\"p.add\"}", CTL_OK));
	T_CHECK("celery.send full",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p.add\",\"args\":[1,\"a\",null,[2],{}],\"kwargs\":{\"y\":1}"
	                ","
	                "\"queue\":\"audio_processing\",\"priority\":9,\"countdown_s\":5,\"expires_s\":60,"
	                "\"task_id\":\"t-1\",\"id\":3}",
	                CTL_OK));
	T_CHECK("celery.send empty args", rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"args\":[]}", CTL_OK));
	T_CHECK("celery.send needs a task", rejects("{\"op\":\"celery.send\",\"args\":[]}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send empty task", rejects("{\"op\":\"celery.send\",\"task\":\"\"}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send task with a newline",
	        rejects("{\"op\":\"celery.send\",\"task\":\"a\\nb\"}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send args an object",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"args\":{}}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send kwargs an array",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"kwargs\":[]}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send priority 10",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"priority\":10}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send priority -1",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"priority\":-1}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send countdown and eta",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"countdown_s\":1,\"eta\":2000000000}",
	                CTL_E_BAD_REQUEST));
	T_CHECK("celery.send expires 0",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"expires_s\":0}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send bad queue",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"queue\":\"a b\"}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send bad task id",
	        rejects("{\"op\":\"celery.send\",\"task\":\"p\",\"task_id\":\"a/b\"}", CTL_E_BAD_REQUEST));
	T_CHECK("celery.send needs submit",
	        ctl_ops[CTL_OP_CELERY_SEND].scope == CTL_SCOPE_SUBMIT &&
	                !ctl_scope_allows(CTL_SCOPE_READ, ctl_ops[CTL_OP_CELERY_SEND].scope));
}

static void
test_catalogue(void)
{
	int ok = 1;
	for (int i = 0; i < CTL_OP_COUNT; i++)
		ok &= ctl_ops[i].id == (enum ctl_op_id)i && ctl_ops[i].name != NULL && ctl_ops[i].help != NULL &&
		      ctl_op_find(ctl_ops[i].name) == &ctl_ops[i];
	T_CHECK("catalogue indexed by op id, every op findable", ok);
	T_CHECK("only hello and auth before auth", (ctl_ops[CTL_OP_HELLO].flags & CTL_F_PREAUTH) &&
	                                                   (ctl_ops[CTL_OP_AUTH].flags & CTL_F_PREAUTH) &&
	                                                   !(ctl_ops[CTL_OP_PING].flags & CTL_F_PREAUTH) &&
	                                                   !(ctl_ops[CTL_OP_SUBMIT].flags & CTL_F_PREAUTH));
	T_CHECK("watch streams", ctl_ops[CTL_OP_WATCH].flags & CTL_F_STREAM);
	T_CHECK("token ops need admin", ctl_ops[CTL_OP_TOKEN_CREATE].scope == CTL_SCOPE_ADMIN &&
	                                        ctl_ops[CTL_OP_TOKEN_REVOKE].scope == CTL_SCOPE_ADMIN);
	T_CHECK("workflow ops: submit manages and runs, read sees",
	        ctl_ops[CTL_OP_WORKFLOW_PUT].scope == CTL_SCOPE_SUBMIT &&
	                ctl_ops[CTL_OP_WORKFLOW_RM].scope == CTL_SCOPE_SUBMIT &&
	                ctl_ops[CTL_OP_WORKFLOW_RUN].scope == CTL_SCOPE_SUBMIT &&
	                ctl_ops[CTL_OP_WORKFLOW_LIST].scope == CTL_SCOPE_READ &&
	                ctl_ops[CTL_OP_WORKFLOW_SHOW].scope == CTL_SCOPE_READ);
	T_CHECK("stored-workflow ops but run answer without Redis",
	        (ctl_ops[CTL_OP_WORKFLOW_PUT].flags & CTL_F_NOREDIS) &&
	                (ctl_ops[CTL_OP_WORKFLOW_SHOW].flags & CTL_F_NOREDIS) &&
	                !(ctl_ops[CTL_OP_WORKFLOW_RUN].flags & CTL_F_NOREDIS));
	T_CHECK("workflow.put with a definition",
	        rejects("{\"op\":\"workflow.put\",\"definition\":{\"steps\":[]},\"active\":false}", CTL_OK));
	T_CHECK("workflow.put needs a definition",
	        rejects("{\"op\":\"workflow.put\",\"name\":\"a\"}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.put: the definition is an object",
	        rejects("{\"op\":\"workflow.put\",\"definition\":[1]}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.put: a name is a job name",
	        rejects("{\"op\":\"workflow.put\",\"definition\":{},\"name\":\"a b\"}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.run with input and a job id",
	        rejects("{\"op\":\"workflow.run\",\"name\":\"w\",\"input\":{\"x\":1},\"job_id\":\"j1\"}", CTL_OK));
	T_CHECK("workflow.run needs a name", rejects("{\"op\":\"workflow.run\",\"input\":{}}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.run: input is an object",
	        rejects("{\"op\":\"workflow.run\",\"name\":\"w\",\"input\":\"x\"}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.run: no unknown fields",
	        rejects("{\"op\":\"workflow.run\",\"name\":\"w\",\"args\":{}}", CTL_E_BAD_REQUEST));
	T_CHECK("workflow.rm needs a name", rejects("{\"op\":\"workflow.rm\"}", CTL_E_BAD_REQUEST));

	int codes_ok = 1;
	for (int i = 1; i < CTL_E_COUNT; i++)
		codes_ok &= ctl_err_parse(ctl_errors[i].name) == i && ctl_errors[i].exit_code == i + 1;
	T_CHECK("error codes round-trip, exit codes 2..14 in order", codes_ok);
	T_CHECK("unknown code", ctl_err_parse("teapot") == -1);
}

static void
test_scopes(void)
{
	unsigned bits = 0;
	char err[128], buf[64];
	T_CHECK("parse scopes", ctl_scopes_parse("read,submit", &bits, err, sizeof(err)) == 0 &&
	                                bits == (CTL_SCOPE_READ | CTL_SCOPE_SUBMIT));
	T_STREQ("format scopes", ctl_scopes_format(bits, buf, sizeof(buf)), "submit,read");
	T_CHECK("unknown scope", ctl_scopes_parse("read,root", &bits, err, sizeof(err)) < 0);
	T_CHECK("empty scope item", ctl_scopes_parse("read,", &bits, err, sizeof(err)) < 0);
	T_CHECK("read cannot submit", !ctl_scope_allows(CTL_SCOPE_READ, CTL_SCOPE_SUBMIT));
	T_CHECK("admin can submit", ctl_scope_allows(CTL_SCOPE_ADMIN, CTL_SCOPE_SUBMIT));
	T_CHECK("no scope needed", ctl_scope_allows(0, 0));
	T_CHECK("owner sees own job", ctl_owner_allows(CTL_SCOPE_READ, "a", "a"));
	T_CHECK("owner does not see another's", !ctl_owner_allows(CTL_SCOPE_READ, "a", "b"));
	T_CHECK("owner does not see ownerless jobs", !ctl_owner_allows(CTL_SCOPE_READ, "a", NULL));
	T_CHECK("admin sees all", ctl_owner_allows(CTL_SCOPE_ADMIN, "a", "b"));
}

static void
test_replies(void)
{
	json_t *id = json_integer(3);
	json_t *r = ctl_reply_error(id, CTL_E_NOT_FOUND, "no job %s", "x");
	char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	T_STREQ("error reply shape", s,
	        "{\"error\":{\"code\":\"not_found\",\"message\":\"no job x\"},\"id\":3,\"ok\":false}");
	free(s);
	json_decref(r);
	r = ctl_reply_done(NULL, json_pack("{s:s}", "state", "succeeded"));
	s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	T_STREQ("done reply shape", s, "{\"done\":true,\"id\":null,\"ok\":true,\"result\":{\"state\":\"succeeded\"}}");
	free(s);
	json_decref(r);
	r = ctl_reply_error(id, CTL_E_BAD_REQUEST, "%s", "\xc3");
	T_CHECK("half a UTF-8 sequence in a message still yields a reply",
	        r != NULL && json_is_string(json_object_get(json_object_get(r, "error"), "message")));
	json_decref(r);

	char err[128];
	const char *good = "{\"id\":1,\"event\":{\"state\":\"running\"}}";
	r = ctl_reply_parse((const unsigned char *)good, strlen(good), err, sizeof(err));
	T_CHECK("event parses", r != NULL);
	json_decref(r);
	const char *bad[] = {"{\"id\":1}",
	                     "{\"ok\":true}",
	                     "{\"id\":1,\"ok\":false}",
	                     "{\"id\":1,\"ok\":1}",
	                     "{\"id\":1,\"ok\":true,\"event\":{}}",
	                     "[]"};
	int all_refused = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = ctl_reply_parse((const unsigned char *)bad[i], strlen(bad[i]), err, sizeof(err));
		all_refused &= r == NULL;
		json_decref(r);
	}
	T_CHECK("malformed replies refused", all_refused);
	json_decref(id);
}

int
main(void)
{
	test_frames();
	test_requests();
	test_catalogue();
	test_celery_send();
	test_scopes();
	test_replies();
	T_DONE();
}

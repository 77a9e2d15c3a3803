/* libFuzzer harness for filter expressions: any text is either refused with a reason or parsed, and a parsed
 * expression evaluates (against a fixed context) without crashing, and its references can be listed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"

static int
count_ref(int is_template, const char *s, size_t len, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wf_config cfg = {.http_schemes = "http,https",
	                               .http_hosts = "",
	                               .env_allow = "A",
	                               .mask_names = "",
	                               .exec_programs = ""};
	static struct wf_def *def;
	static json_t *ctx;
	if (def == NULL) {
		json_t *doc = json_loads("{\"steps\":[{\"id\":\"a\",\"type\":\"delay\"}]}", 0, NULL), *errs = NULL;
		def = wf_def_parse(doc, &cfg, &errs);
		json_decref(doc);
		ctx = json_loads(
		        "{\"input\":{\"n\":5,\"s\":\"abc\",\"l\":[1,\"x\"]},\"steps\":{\"a\":{\"output\":{\"v\":1}}},"
		        "\"env\":{\"A\":\"b\"}}",
		        0, NULL);
	}
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	char err[256] = "";
	struct wf_expr *e = wf_expr_parse(text, err, sizeof(err));
	if (e == NULL && err[0] == '\0')
		__builtin_trap(); /* a refusal must say why */
	if (e != NULL) {
		int n = 0;
		wf_expr_refs(e, count_ref, &n);
		int r = wf_expr_eval(e, def, ctx);
		if (r != 0 && r != 1)
			__builtin_trap();
		wf_expr_free(e);
	}
	free(text);
	return 0;
}

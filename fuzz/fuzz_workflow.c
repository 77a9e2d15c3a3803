/* libFuzzer harness for workflow definitions and templates: any bytes are refused (with at least one error
 * naming a reason) or accepted as a DAG whose order lists every step once; every string parameter of an
 * accepted definition renders or fails with a reason. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"

static void
render_all(struct wf_def *def, json_t *ctx)
{
	for (size_t i = 0; i < def->nsteps; i++) {
		char err[256] = "";
		json_t *r = wf_template_render_all(def, ctx, def->steps[i].params, err, sizeof(err));
		if (r == NULL && err[0] == '\0')
			__builtin_trap();
		json_decref(r);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wf_config cfg = {.exec_enabled = 1,
	                               .exec_programs = "/bin/echo",
	                               .http_schemes = "http,https",
	                               .http_hosts = "",
	                               .env_allow = "A",
	                               .mask_names = "x",
	                               .max_response = 1024,
	                               .max_output = 1024};
	json_t *doc = json_loadb((const char *)data, size, 0, NULL);
	if (doc == NULL)
		return 0;
	json_t *errs = NULL;
	struct wf_def *def = wf_def_parse(doc, &cfg, &errs);
	if (def == NULL) {
		if (json_array_size(errs) == 0)
			__builtin_trap();
		free(wf_errors_text(errs));
	} else {
		unsigned char *seen = calloc(def->nsteps + 1, 1);
		for (size_t i = 0; i < def->nsteps; i++) {
			if (def->order[i] >= def->nsteps || seen[def->order[i]]++)
				__builtin_trap();
		}
		free(seen);
		json_t *ctx = json_pack("{s:{s:s},s:{},s:{s:s}}", "input", "x", "y", "steps", "env", "A", "b");
		render_all(def, ctx);
		json_t *m = wf_mask_json(&cfg, def->doc, NULL);
		json_decref(m);
		json_decref(ctx);
		wf_def_free(def);
	}
	json_decref(errs);
	json_decref(doc);
	return 0;
}

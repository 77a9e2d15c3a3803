/*
 * wf_mask: secrets out of everything a run stores or publishes. Two nets: values under secret-named keys
 * (Authorization, Cookie, Set-Cookie, Proxy-Authorization and the configured workflow_mask_names, in any
 * case) become "***", and every occurrence of a secret value the run rendered into such a header or
 * parameter is replaced wherever it appears (an echo in a response body, an error message).
 */
#include <stdlib.h>
#include <string.h>

#include "workflow.h"
#include "xmalloc.h"

#define MASK "***"
/* Secrets shorter than this are not scrubbed from free text: "1" would mangle every number. */
#define MASK_MIN_SECRET 4

static const char *const builtin_names = "authorization,cookie,set-cookie,proxy-authorization,x-api-key";

int
wf_mask_name(const struct wf_config *cfg, const char *name)
{
	return wf_list_has(builtin_names, name, 1) || wf_list_has(cfg->mask_names, name, 1);
}

char *
wf_mask_text(const char *s, json_t *secrets)
{
	char *out = xstrdup(s);
	size_t i;
	json_t *sec;
	json_array_foreach(secrets, i, sec)
	{
		const char *v = json_string_value(sec);
		size_t vn = v ? strlen(v) : 0;
		if (vn < MASK_MIN_SECRET)
			continue;
		char *hit;
		while ((hit = strstr(out, v)) != NULL) {
			size_t head = (size_t)(hit - out), tail = strlen(hit + vn);
			char *next = xmalloc(head + strlen(MASK) + tail + 1);
			memcpy(next, out, head);
			memcpy(next + head, MASK, strlen(MASK));
			memcpy(next + head + strlen(MASK), hit + vn, tail + 1);
			free(out);
			out = next;
		}
	}
	return out;
}

json_t *
wf_mask_json(const struct wf_config *cfg, json_t *v, json_t *secrets)
{
	if (json_is_string(v)) {
		if (json_array_size(secrets) == 0)
			return json_incref(v);
		char *m = wf_mask_text(json_string_value(v), secrets);
		json_t *r = json_string(m);
		free(m);
		return r ? r : json_string(MASK);
	}
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			json_object_set_new(o, k,
			                    wf_mask_name(cfg, k) ? json_string(MASK) : wf_mask_json(cfg, x, secrets));
		}
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) json_array_append_new(a, wf_mask_json(cfg, x, secrets));
		return a;
	}
	return json_incref(v);
}

/*
 * wf_template: references and {{...}} templates (pure functions over strings and the run context).
 *
 * A reference is a dotted path of segments [A-Za-z0-9_-]+ (a segment of digits indexes an array):
 *   input.P                 the run's input
 *   steps.ID.output.P       an earlier step's output
 *   env.NAME                a worker environment variable listed in workflow_env_allow
 *   ID.P                    AutomateOS style: step ID's output, with AutomateOS's names for http fields
 *                           (status_code, success, response.{status_code,text,json,headers,ok})
 *   KEY.P                   AutomateOS definitions only: a key of the webhook payload (input.KEY.P)
 * In a string, "{{ path }}" is replaced; "\{{" is a literal "{{" (in JSON text: "\\{{").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "workflow.h"
#include "xmalloc.h"

static int
seg_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Splits off the segment at *p (up to end); returns its length, or 0 if empty/invalid. Advances *p past it
 * and past one following dot. */
static size_t
next_seg(const char **p, const char *end, const char **seg)
{
	const char *s = *p;
	size_t n = 0;
	while (s + n < end && seg_char(s[n]))
		n++;
	if (s + n < end && s[n] != '.')
		return 0;
	*seg = s;
	*p = s + n < end ? s + n + 1 : end;
	return n;
}

static int
seg_is(const char *seg, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(seg, word, n) == 0;
}

/* Every segment is non-empty and well formed. */
static int
path_valid(const char *path, size_t len)
{
	if (len == 0 || len > WF_PATH_MAX)
		return 0;
	const char *p = path, *end = path + len, *seg;
	while (p < end)
		if (next_seg(&p, end, &seg) == 0)
			return 0;
	return path[len - 1] != '.';
}

int
wf_ref_check(const struct wf_def *def, long self, const struct wf_config *cfg, const char *path, size_t len, char *err,
             size_t errlen)
{
	if (!path_valid(path, len)) {
		snprintf(err, errlen, "bad reference \"%.*s\": segments of letters, digits, _ and - joined by dots",
		         (int)(len > 80 ? 80 : len), path);
		return -1;
	}
	const char *p = path, *end = path + len, *root, *seg;
	size_t rn = next_seg(&p, end, &root), n;
	if (seg_is(root, rn, "input"))
		return 0;
	if (seg_is(root, rn, "env")) {
		char name[WF_PATH_MAX + 1];
		n = next_seg(&p, end, &seg);
		if (n == 0 || p != end) {
			snprintf(err, errlen, "\"%.*s\": env takes exactly one name", (int)len, path);
			return -1;
		}
		memcpy(name, seg, n);
		name[n] = '\0';
		if (!wf_list_has(cfg->env_allow, name, 0)) {
			snprintf(err, errlen, "env.%s is not allowed (workflow_env_allow)", name);
			return -1;
		}
		return 0;
	}
	long idx;
	if (seg_is(root, rn, "steps")) {
		n = next_seg(&p, end, &seg);
		const char *field = NULL;
		size_t fn = p < end ? next_seg(&p, end, &field) : 0;
		if (n == 0 || !seg_is(field, fn, "output")) {
			snprintf(err, errlen, "\"%.*s\": write steps.ID.output[.path]", (int)len, path);
			return -1;
		}
		idx = wf_def_find(def, seg, n);
		root = seg;
		rn = n;
	} else {
		idx = wf_def_find(def, root, rn);
		if (idx < 0 && def->automateos)
			return 0; /* a payload key, flattened in as AutomateOS does */
	}
	if (idx < 0) {
		snprintf(err, errlen,
		         "\"%.*s\": no step \"%.*s\" (references start with input., steps.ID.output. or env.)",
		         (int)len, path, (int)rn, root);
		return -1;
	}
	if (self >= 0 && !def->anc[(size_t)self * def->nsteps + (size_t)idx]) {
		snprintf(err, errlen, "\"%.*s\" refers to step %.*s, which does not precede it (add it to depends_on)",
		         (int)len, path, (int)rn, root);
		return -1;
	}
	return 0;
}

/* Follows segments from v. Borrowed result or NULL. */
static json_t *
walk(json_t *v, const char *p, const char *end)
{
	char key[WF_PATH_MAX + 1];
	const char *seg;
	while (v != NULL && p < end) {
		size_t n = next_seg(&p, end, &seg);
		if (n == 0)
			return NULL;
		if (json_is_array(v)) {
			size_t idx = 0, k;
			for (k = 0; k < n && seg[k] >= '0' && seg[k] <= '9' && idx < 1000000000; k++)
				idx = idx * 10 + (size_t)(seg[k] - '0');
			v = k == n ? json_array_get(v, idx) : NULL;
		} else {
			memcpy(key, seg, n);
			key[n] = '\0';
			v = json_object_get(v, key);
		}
	}
	return v;
}

/* AutomateOS's names for an http node's output fields, mapped to the http step's. */
static const struct {
	const char *from, *to;
} http_aliases[] = {
        {"status_code", "status"}, {"success", "ok"},         {"response.status_code", "status"},
        {"response.text", "body"}, {"response.json", "json"}, {"response.headers", "headers"},
        {"response.ok", "ok"},
};

json_t *
wf_ref_resolve(const struct wf_def *def, json_t *ctx, const char *path, size_t len)
{
	if (!path_valid(path, len))
		return NULL;
	const char *p = path, *end = path + len, *root, *seg;
	size_t rn = next_seg(&p, end, &root);
	if (seg_is(root, rn, "input"))
		return walk(json_object_get(ctx, "input"), p, end);
	if (seg_is(root, rn, "env"))
		return walk(json_object_get(ctx, "env"), p, end);
	json_t *steps = json_object_get(ctx, "steps");
	char key[WF_PATH_MAX + 1];
	if (seg_is(root, rn, "steps")) {
		size_t n = next_seg(&p, end, &seg);
		memcpy(key, seg, n);
		key[n] = '\0';
		return walk(json_object_get(steps, key), p, end);
	}
	long idx = wf_def_find(def, root, rn);
	if (idx < 0)
		return def->automateos ? walk(json_object_get(ctx, "input"), path, end) : NULL;
	memcpy(key, root, rn);
	key[rn] = '\0';
	json_t *out = json_object_get(json_object_get(steps, key), "output");
	const struct wf_step *st = &def->steps[idx];
	if (st->type != NULL && strcmp(st->type->name, "http") == 0) {
		for (size_t i = 0; i < sizeof(http_aliases) / sizeof(http_aliases[0]); i++) {
			size_t an = strlen(http_aliases[i].from);
			if ((size_t)(end - p) >= an && memcmp(p, http_aliases[i].from, an) == 0 &&
			    (p + an == end || p[an] == '.')) {
				json_t *v = json_object_get(out, http_aliases[i].to);
				return walk(v, p + an == end ? end : p + an + 1, end);
			}
		}
	}
	return walk(out, p, end);
}

/* Finds the next "{{" that is not escaped, from s; *lit is set when "\{{" was met first. */
static const char *
find_open(const char *s, const char **lit)
{
	*lit = NULL;
	for (const char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] == '{' && p[2] == '{') {
			*lit = p;
			return NULL;
		}
		if (p[0] == '{' && p[1] == '{')
			return p;
	}
	return NULL;
}

/* The trimmed path inside {{ ... }} starting at open; *close gets the position after "}}". */
static int
inner_path(const char *open, const char **path, size_t *len, const char **close)
{
	const char *e = strstr(open + 2, "}}");
	if (e == NULL)
		return -1;
	const char *a = open + 2, *b = e;
	while (a < b && (*a == ' ' || *a == '\t'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	*path = a;
	*len = (size_t)(b - a);
	*close = e + 2;
	return 0;
}

int
wf_template_check(const struct wf_def *def, long self, const struct wf_config *cfg, const char *s, char *err,
                  size_t errlen)
{
	int nerr = 0;
	const char *p = s;
	while (*p) {
		const char *lit, *open = find_open(p, &lit), *path, *close;
		size_t len;
		if (lit != NULL) {
			p = lit + 3;
			continue;
		}
		if (open == NULL)
			break;
		if (inner_path(open, &path, &len, &close) < 0) {
			if (nerr++ == 0)
				snprintf(err, errlen, "unterminated \"{{\" in \"%.60s\"", s);
			break;
		}
		char why[256];
		if (wf_ref_check(def, self, cfg, path, len, why, sizeof(why)) < 0 && nerr++ == 0)
			snprintf(err, errlen, "template: %s", why);
		p = close;
	}
	return nerr;
}

struct sbuf {
	char *s;
	size_t len, cap;
	int over;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->over || b->len + n + 1 > WF_RENDER_MAX) {
		b->over = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

json_t *
wf_template_render(const struct wf_def *def, json_t *ctx, const char *s, char *err, size_t errlen)
{
	const char *lit, *open = find_open(s, &lit), *path, *close;
	size_t len;
	if (open == NULL && lit == NULL)
		return json_string(s);
	/* Exactly one reference and nothing else: the value keeps its JSON type. */
	if (open == s && inner_path(open, &path, &len, &close) == 0 && *close == '\0') {
		json_t *v = wf_ref_resolve(def, ctx, path, len);
		if (v == NULL) {
			snprintf(err, errlen, "{{%.*s}} has no value", (int)len, path);
			return NULL;
		}
		return json_incref(v);
	}
	struct sbuf b = {xstrdup(""), 0, 1, 0};
	const char *p = s;
	for (;;) {
		open = find_open(p, &lit);
		if (lit != NULL) {
			sb_add(&b, p, (size_t)(lit - p));
			sb_add(&b, "{{", 2);
			p = lit + 3;
			continue;
		}
		if (open == NULL || inner_path(open, &path, &len, &close) < 0) {
			sb_add(&b, p, strlen(p));
			break;
		}
		sb_add(&b, p, (size_t)(open - p));
		json_t *v = wf_ref_resolve(def, ctx, path, len);
		if (v == NULL) {
			snprintf(err, errlen, "{{%.*s}} has no value", (int)len, path);
			free(b.s);
			return NULL;
		}
		if (json_is_string(v))
			sb_add(&b, json_string_value(v), json_string_length(v));
		else {
			/* jsonx_dump: a rounded figure (126.1 BPM) renders as written, not as 126.09999999999999. */
			char *t = jsonx_dump(v);
			sb_add(&b, t, strlen(t));
			free(t);
		}
		p = close;
	}
	if (b.over) {
		snprintf(err, errlen, "a rendered template is over %d bytes", WF_RENDER_MAX);
		free(b.s);
		return NULL;
	}
	json_t *out = json_stringn(b.s, b.len);
	free(b.s);
	if (out == NULL)
		snprintf(err, errlen, "a rendered template is not valid UTF-8");
	return out;
}

json_t *
wf_template_render_all(const struct wf_def *def, json_t *ctx, json_t *v, char *err, size_t errlen)
{
	if (json_is_string(v))
		return wf_template_render(def, ctx, json_string_value(v), err, errlen);
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			json_t *r = wf_template_render_all(def, ctx, x, err, errlen);
			if (r == NULL) {
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, k, r);
		}
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			json_t *r = wf_template_render_all(def, ctx, x, err, errlen);
			if (r == NULL) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, r);
		}
		return a;
	}
	return json_incref(v);
}

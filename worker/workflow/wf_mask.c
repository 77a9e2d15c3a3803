/*
 * wf_mask: secrets out of everything a run stores or publishes. Two nets: values under secret-named keys
 * (Authorization, Cookie, Set-Cookie, Proxy-Authorization and the configured workflow_mask_names, in any
 * case) become "***", and every occurrence of a secret value the run rendered into such a header or
 * parameter is replaced wherever it appears (an echo in a response body, an error message) - in every
 * encoding a step itself applies to it: URL-encoded (query strings, form bodies: %XX in either case, '+'
 * for a space), JSON-escaped (a body built from a template), and base64 at each of the three alignments (the
 * secret inside "user:secret" of Basic auth, or any longer base64 text): see mask_variants.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"
#include "xmalloc.h"

#define MASK "***"
/* Secrets shorter than this are not scrubbed from free text: "1" would mangle every number. */
#define MASK_MIN_SECRET 4
/* An encoded form shorter than this is not scrubbed either (a 4-byte secret's base64 core is 4 characters). */
#define MASK_MIN_BASE64 4

static const char *const builtin_names = "authorization,cookie,set-cookie,proxy-authorization,x-api-key";

int
wf_mask_name(const struct wf_config *cfg, const char *name)
{
	return wf_list_has(builtin_names, name, 1) || wf_list_has(cfg->mask_names, name, 1);
}

/* Replaces every occurrence of v (vn bytes, at least MASK_MIN_SECRET) in *out by MASK. */
static void
mask_one(char **out, const char *v, size_t vn)
{
	char *hit;
	if (vn < MASK_MIN_SECRET)
		return;
	while ((hit = strstr(*out, v)) != NULL) {
		size_t head = (size_t)(hit - *out), tail = strlen(hit + vn);
		char *next = xmalloc(head + strlen(MASK) + tail + 1);
		memcpy(next, *out, head);
		memcpy(next + head, MASK, strlen(MASK));
		memcpy(next + head + strlen(MASK), hit + vn, tail + 1);
		free(*out);
		*out = next;
	}
}

/* v %-encoded as curl_easy_escape does (RFC 3986 unreserved kept); form: a space as '+'. Caller frees. */
static char *
url_encoded(const char *v, int lower, int form)
{
	static const char up[] = "0123456789ABCDEF", low[] = "0123456789abcdef";
	const char *hex = lower ? low : up;
	char *o = xmalloc(strlen(v) * 3 + 1), *p = o;
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		    *c == '.' || *c == '_' || *c == '~')
			*p++ = (char)*c;
		else if (form && *c == ' ')
			*p++ = '+';
		else {
			*p++ = '%';
			*p++ = hex[*c >> 4];
			*p++ = hex[*c & 15];
		}
	}
	*p = '\0';
	return o;
}

/* v as the inside of a JSON string, as jansson writes it with these flags. Caller frees. */
static char *
json_escaped(const char *v, size_t flags)
{
	json_t *str = json_string(v);
	char *d = str ? json_dumps(str, JSON_ENCODE_ANY | flags) : NULL;
	json_decref(str);
	if (d == NULL)
		return xstrdup("");
	size_t n = strlen(d);
	char *o = xstrdup(n >= 2 ? d + 1 : "");
	if (n >= 2)
		o[n - 2] = '\0';
	free(d);
	return o;
}

/* s with the hex digits of its \\uXXXX escapes in one case (writers differ: jansson, Python). Caller frees. */
static char *
unicode_case(char *s, int lower)
{
	for (char *p = s; p[0] && p[1]; p++)
		if (p[0] == '\\' && p[1] == 'u')
			for (int k = 2; k < 6 && p[k]; k++)
				p[k] = (char)(lower ? tolower((unsigned char)p[k]) : toupper((unsigned char)p[k]));
	return s;
}

/*
 * The base64 characters that depend on v alone when v starts `align` bytes into the encoded text (0-2):
 * whatever precedes or follows it ("user:" in Basic auth), these characters appear. Caller frees.
 */
static char *
base64_core(const char *v, int align, int urlsafe)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *al = urlsafe ? url : std;
	size_t n = strlen(v), bits = 8 * ((size_t)align + n);
	size_t first = (8 * (size_t)align + 5) / 6, end = bits / 6;
	char *o = xmalloc(end + 1);
	size_t k = 0;
	for (size_t i = first; i < end; i++) {
		unsigned val = 0;
		for (size_t b = 6 * i; b < 6 * i + 6; b++) {
			size_t byte = b / 8;
			unsigned c = byte < (size_t)align ? 0 : (unsigned char)v[byte - (size_t)align];
			val = (val << 1) | ((c >> (7 - b % 8)) & 1);
		}
		o[k++] = al[val];
	}
	o[k] = '\0';
	return o;
}

/* Adds e to needles if it differs from v and is long enough; takes e. */
static void
add_needle(json_t *needles, const char *v, char *e)
{
	if (strcmp(e, v) != 0 && strlen(e) >= MASK_MIN_BASE64)
		json_array_append_new(needles, json_string(e));
	free(e);
}

/* The JSON escapings of v: jansson's plain, \\u escapes in either case, an escaped slash. Caller frees each. */
static void
json_forms(const char *v, char *out[4])
{
	out[0] = json_escaped(v, 0);
	out[1] = unicode_case(json_escaped(v, JSON_ENSURE_ASCII), 1);
	out[2] = unicode_case(json_escaped(v, JSON_ENSURE_ASCII), 0);
	out[3] = json_escaped(v, JSON_ESCAPE_SLASH);
}

/*
 * Adds v and each encoding of it a step may have produced to needles (an array of strings): %-encoded (both
 * hex cases, form), JSON-escaped once and twice (a JSON body a server echoes inside its own JSON reply),
 * base64 cores at each alignment in both alphabets.
 */
static void
add_variants(json_t *needles, const char *v)
{
	if (strlen(v) < MASK_MIN_SECRET)
		return;
	json_array_append_new(needles, json_string(v));
	for (int lower = 0; lower < 2; lower++)
		for (int form = 0; form < 2; form++)
			add_needle(needles, v, url_encoded(v, lower, form));
	char *once[4], *twice[4];
	json_forms(v, once);
	for (int i = 0; i < 4; i++) {
		json_forms(once[i], twice);
		for (int k = 0; k < 4; k++)
			add_needle(needles, v, twice[k]);
		add_needle(needles, v, once[i]);
	}
	for (int align = 0; align < 3; align++)
		for (int urlsafe = 0; urlsafe < 2; urlsafe++)
			add_needle(needles, v, base64_core(v, align, urlsafe));
}

static int
longer_first(const void *a, const void *b)
{
	size_t x = strlen(json_string_value(*(json_t *const *)a)), y = strlen(json_string_value(*(json_t *const *)b));
	return x < y ? 1 : x > y ? -1 : 0;
}

char *
wf_mask_text(const char *s, json_t *secrets)
{
	char *out = xstrdup(s);
	json_t *needles = json_array(), *sec;
	size_t i, n;
	json_array_foreach(secrets, i, sec) if (json_string_value(sec) != NULL)
	        add_variants(needles, json_string_value(sec));
	/* Longest first: a whole "Basic ..." value goes before the base64 core of the password inside it. */
	n = json_array_size(needles);
	json_t **v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = json_array_get(needles, i);
	qsort(v, n, sizeof(*v), longer_first);
	for (i = 0; i < n; i++)
		mask_one(&out, json_string_value(v[i]), strlen(json_string_value(v[i])));
	free(v);
	json_decref(needles);
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

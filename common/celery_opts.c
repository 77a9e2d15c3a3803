#include "celery_opts.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

static const char *const tmpl_names[] = {"progress", "stage", "message"};

char *
celery_progress_compile(const char *tmpl, char *err, size_t errlen)
{
	size_t n = strlen(tmpl);
	if (n == 0 || n > CELERY_TMPL_MAX) {
		snprintf(err, errlen, "progress template must be 1-%d bytes", CELERY_TMPL_MAX);
		return NULL;
	}
	char *out = xmalloc(n * 2 + 16), *sample = xmalloc(n * 2 + 16);
	size_t o = 0, so = 0;
	for (size_t i = 0; i < n;) {
		if (tmpl[i] == '"') { /* copy a string as is */
			size_t j = i + 1;
			while (j < n && tmpl[j] != '"')
				j += tmpl[j] == '\\' ? 2 : 1;
			j = j < n ? j + 1 : n;
			memcpy(out + o, tmpl + i, j - i);
			memcpy(sample + so, tmpl + i, j - i);
			o += j - i, so += j - i, i = j;
			continue;
		}
		if (isalpha((unsigned char)tmpl[i])) {
			size_t j = i;
			while (j < n && isalpha((unsigned char)tmpl[j]))
				j++;
			size_t k = 0;
			for (; k < 3; k++)
				if (strlen(tmpl_names[k]) == j - i && memcmp(tmpl + i, tmpl_names[k], j - i) == 0)
					break;
			if (k < 3) {
				o += (size_t)sprintf(out + o, "\x01%s\x01", tmpl_names[k]);
				so += (size_t)sprintf(sample + so, k == 0 ? "0" : "\"\"");
			} else { /* true, false, null: JSON decides below */
				memcpy(out + o, tmpl + i, j - i);
				memcpy(sample + so, tmpl + i, j - i);
				o += j - i, so += j - i;
			}
			i = j;
			continue;
		}
		out[o++] = tmpl[i];
		sample[so++] = tmpl[i++];
	}
	out[o] = sample[so] = '\0';
	json_error_t jerr;
	json_t *v = json_loads(sample, JSON_DECODE_ANY, &jerr);
	free(sample);
	if (v == NULL) {
		snprintf(err, errlen, "progress template is not JSON over progress, stage and message: %s", jerr.text);
		free(out);
		return NULL;
	}
	json_decref(v);
	return out;
}

static int
routes_parse(const char *spec, struct celery_opts *o, char **cause)
{
	char *copy = xstrdup(spec), *save = NULL;
	int rc = 0;
	for (char *e = strtok_r(copy, " \t", &save); e != NULL; e = strtok_r(NULL, " \t", &save)) {
		char *eq = strrchr(e, '=');
		if (eq == NULL || eq == e || strlen(e) - strlen(eq) > CELERY_TASK_NAME_MAX ||
		    !job_name_valid(eq + 1, CELERY_QUEUE_MAX) || o->nroutes == CELERY_ROUTES_MAX) {
			*cause = xasprintf("celery_routes: '%s' is not PATTERN=QUEUE", e);
			rc = -1;
			break;
		}
		o->routes = xrealloc(o->routes, (o->nroutes + 1) * sizeof(*o->routes));
		struct celery_route_rule *r = &o->routes[o->nroutes++];
		snprintf(r->pattern, sizeof(r->pattern), "%.*s", (int)(eq - e), e);
		snprintf(r->queue, sizeof(r->queue), "%s", eq + 1);
	}
	free(copy);
	return rc;
}

static struct celery_type_rule *
type_get(struct celery_opts *o, const char *task)
{
	for (size_t i = 0; i < o->ntypes; i++)
		if (strcmp(o->types[i].task, task) == 0)
			return &o->types[i];
	o->types = xrealloc(o->types, (o->ntypes + 1) * sizeof(*o->types));
	struct celery_type_rule *t = &o->types[o->ntypes++];
	memset(t, 0, sizeof(*t));
	snprintf(t->task, sizeof(t->task), "%s", task);
	t->excs = json_array();
	return t;
}

/* exc=MODULE.TYPE or exc[PREFIX]=MODULE.TYPE */
static int
exc_add(struct celery_type_rule *t, const char *key, const char *value, char **cause)
{
	const char *dot = strrchr(value, '.');
	char prefix[256] = "";
	if (key[3] == '[') {
		const char *end = strrchr(key, ']');
		if (end == NULL || end[1] != '\0' || (size_t)(end - key - 4) >= sizeof(prefix)) {
			*cause = xasprintf("celery_types: %s: '%s' is not exc[PREFIX]", t->task, key);
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(end - key - 4), key + 4);
	} else if (key[3] != '\0') {
		*cause = xasprintf("celery_types: %s: unknown key '%s'", t->task, key);
		return -1;
	}
	if (dot == NULL || dot == value || dot[1] == '\0' || strlen(value) > 200 ||
	    json_array_size(t->excs) == CELERY_EXCS_MAX) {
		*cause = xasprintf("celery_types: %s: exception '%s' is not MODULE.TYPE (e.g. builtins.ValueError)",
		                   t->task, value);
		return -1;
	}
	json_array_append_new(t->excs, json_pack("[s, s, s#]", prefix, dot + 1, value, (int)(dot - value)));
	return 0;
}

static int
type_entry(struct celery_opts *o, char *e, char **cause)
{
	while (isspace((unsigned char)*e))
		e++;
	size_t n = strlen(e);
	while (n > 0 && isspace((unsigned char)e[n - 1]))
		e[--n] = '\0';
	if (n == 0)
		return 0;
	char *colon = strchr(e, ':'), *eq = colon ? strchr(colon, '=') : NULL;
	if (colon == NULL || eq == NULL || colon == e || (size_t)(colon - e) > CELERY_TASK_NAME_MAX) {
		*cause = xasprintf("celery_types: '%s' is not TASK:KEY=VALUE", e);
		return -1;
	}
	*colon = *eq = '\0';
	if (o->ntypes == CELERY_TYPES_MAX) {
		*cause = xasprintf("celery_types: more than %d tasks", CELERY_TYPES_MAX);
		return -1;
	}
	struct celery_type_rule *t = type_get(o, e);
	const char *key = colon + 1, *value = eq + 1;
	char err[256];
	if (strncmp(key, "exc", 3) == 0)
		return exc_add(t, key, value, cause);
	if (strcmp(key, "progress") == 0) {
		free(t->progress);
		if ((t->progress = celery_progress_compile(value, err, sizeof(err))) == NULL) {
			*cause = xasprintf("celery_types: %s: %s", t->task, err);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "soft_retry") == 0 && (strcmp(value, "0") == 0 || strcmp(value, "1") == 0)) {
		t->soft_retry = value[0] == '1';
		return 0;
	}
	*cause = xasprintf("celery_types: %s: unknown key or bad value '%s=%s'", t->task, key, value);
	return -1;
}

int
celery_opts_parse(const char *routes, const char *types, struct celery_opts *o, char **cause)
{
	memset(o, 0, sizeof(*o));
	if (routes_parse(routes, o, cause) < 0)
		return -1;
	char *copy = xstrdup(types), *save = NULL;
	int rc = 0;
	for (char *e = strtok_r(copy, ";", &save); e != NULL && rc == 0; e = strtok_r(NULL, ";", &save))
		rc = type_entry(o, e, cause);
	free(copy);
	return rc;
}

void
celery_opts_free(struct celery_opts *o)
{
	for (size_t i = 0; i < o->ntypes; i++) {
		json_decref(o->types[i].excs);
		free(o->types[i].progress);
	}
	free(o->types);
	free(o->routes);
	memset(o, 0, sizeof(*o));
}

const char *
celery_route_queue(const struct celery_opts *o, const char *task)
{
	for (size_t i = 0; i < o->nroutes; i++)
		if (fnmatch(o->routes[i].pattern, task, 0) == 0)
			return o->routes[i].queue;
	return NULL;
}

const struct celery_type_rule *
celery_type_find(const struct celery_opts *o, const char *task)
{
	for (size_t i = 0; i < o->ntypes; i++)
		if (strcmp(o->types[i].task, task) == 0)
			return &o->types[i];
	return NULL;
}

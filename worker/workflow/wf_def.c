/*
 * wf_def: a workflow definition, parsed and validated before anything runs (a pure function over a json_t).
 *
 * Two shapes are accepted. hopper's: {"id"?, "name"?, "steps": [{"id", "type", "params"?, "timeout_s"?,
 * "retries"?, "backoff_s"?, "backoff_max_s"?, "on_failure"?, "depends_on"?}]}. AutomateOS's: {"nodes": [{"id",
 * "type", "config"}], "connections": [{"from", "to"}]}, which is first rewritten into hopper's shape
 * (normalize_automateos) so that one validator serves both. Every problem is collected, each with the step that
 * causes it, so a submitter fixes the definition in one round.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"
#include "xmalloc.h"

/* Appends {"step", "error"} to errors unless the list is full. */
static void __attribute__((format(printf, 3, 4))) add_error(json_t *errors, const char *step, const char *fmt, ...)
{
	if (json_array_size(errors) >= WF_ERRORS_MAX)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(errors,
	                      json_pack("{s:o,s:s}", "step", step ? json_string(step) : json_null(), "error", buf));
}

/* A step id: letters, digits, _ and -; no dots, since dots separate the parts of a reference. */
static int
id_valid(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return 0;
	}
	return n >= 1 && n <= WF_ID_MAX;
}

/* --- AutomateOS: nodes + connections -> steps + depends_on --- */

/* http_request's config, renamed to the http step's parameters. New reference. */
static json_t *
automateos_http_params(json_t *config)
{
	static const struct {
		const char *from, *to;
	} renames[] = {{"url", "url"},
	               {"method", "method"},
	               {"headers", "headers"},
	               {"json_body", "json"},
	               {"timeout", "timeout_s"},
	               {"params", "query"},
	               {"expected_status", "expected_status"}};
	json_t *p = json_object();
	for (size_t i = 0; i < sizeof(renames) / sizeof(renames[0]); i++) {
		json_t *v = json_object_get(config, renames[i].from);
		if (v != NULL)
			json_object_set(p, renames[i].to, v);
	}
	/* AutomateOS sends a dict body as JSON and a string body as it is. */
	json_t *body = json_object_get(config, "body");
	if (json_is_object(body) || json_is_array(body))
		json_object_set(p, "json", body);
	else if (body != NULL)
		json_object_set(p, "body", body);
	return p;
}

/* The step for one node. New reference. */
static json_t *
automateos_step(json_t *node)
{
	json_t *config = json_object_get(node, "config");
	const char *type = json_string_value(json_object_get(node, "type"));
	json_t *st = json_object();
	json_t *id = json_object_get(node, "id");
	/* AutomateOS's frontend numbers some nodes: an integer id becomes its decimal text. */
	if (json_is_integer(id))
		json_object_set_new(st, "id", json_sprintf("%lld", (long long)json_integer_value(id)));
	else if (id != NULL)
		json_object_set(st, "id", id);
	if (type != NULL && strcmp(type, "http_request") == 0) {
		json_object_set_new(st, "type", json_string("http"));
		json_object_set_new(st, "params", automateos_http_params(config));
	} else {
		json_object_set(st, "type", type ? json_object_get(node, "type") : json_null());
		json_object_set_new(st, "params", json_is_object(config) ? json_deep_copy(config) : json_object());
	}
	return st;
}

/* Connections name nodes by id; with none, AutomateOS ran the nodes in array order, and so does hopper. */
static json_t *
normalize_automateos(json_t *doc, json_t *errors)
{
	json_t *nodes = json_object_get(doc, "nodes"), *conns = json_object_get(doc, "connections");
	json_t *out = json_object(), *steps = json_array();
	json_object_set_new(out, "steps", steps);
	json_t *name = json_object_get(doc, "name");
	if (json_is_string(name))
		json_object_set(out, "name", name);
	if (!json_is_array(nodes)) {
		add_error(errors, NULL, "\"nodes\" must be an array");
		return out;
	}
	size_t i;
	json_t *node;
	json_array_foreach(nodes, i, node)
	{
		json_t *st = json_is_object(node) ? automateos_step(node) : json_object();
		json_array_append_new(steps, st);
	}
	if (conns != NULL && !json_is_array(conns)) {
		add_error(errors, NULL, "\"connections\" must be an array");
		return out;
	}
	if (json_array_size(conns) == 0) {
		for (i = 1; i < json_array_size(steps); i++) {
			json_t *prev = json_object_get(json_array_get(steps, i - 1), "id");
			if (json_is_string(prev))
				json_object_set_new(json_array_get(steps, i), "depends_on", json_pack("[O]", prev));
		}
		return out;
	}
	json_t *c;
	json_array_foreach(conns, i, c)
	{
		json_t *from = json_object_get(c, "from"), *to = json_object_get(c, "to");
		if (!json_is_string(from) || !json_is_string(to)) {
			add_error(errors, NULL, "connection %zu needs string \"from\" and \"to\"", i);
			continue;
		}
		size_t k;
		json_t *st;
		int found = 0;
		json_array_foreach(steps, k, st)
		{
			if (json_equal(json_object_get(st, "id"), to)) {
				json_t *deps = json_object_get(st, "depends_on");
				if (deps == NULL)
					json_object_set_new(st, "depends_on", deps = json_array());
				json_array_append(deps, from);
				found = 1;
			}
		}
		if (!found)
			add_error(errors, NULL, "connection %zu: no node \"%s\"", i, json_string_value(to));
	}
	return out;
}

/* --- one step's fields --- */

static void
parse_step(struct wf_def *def, size_t i, json_t *js, const struct wf_config *cfg, json_t *errors)
{
	struct wf_step *st = &def->steps[i];
	char sid[32];
	snprintf(sid, sizeof(sid), "#%zu", i + 1);
	st->backoff_s = 1;
	st->backoff_max_s = 60;
	if (!json_is_object(js)) {
		add_error(errors, sid, "a step must be an object");
		return;
	}
	json_t *id = json_object_get(js, "id");
	if (!json_is_string(id) || !id_valid(json_string_value(id)))
		add_error(errors, sid, "\"id\" must be 1-%d letters, digits, _ or -", WF_ID_MAX);
	else
		st->id = json_string_value(id);
	const char *who = st->id ? st->id : sid;
	json_t *type = json_object_get(js, "type");
	if (!json_is_string(type))
		add_error(errors, who, "\"type\" must be a string");
	else if ((st->type = wf_step_type_find(json_string_value(type))) == NULL)
		add_error(errors, who, "unknown step type \"%s\"", json_string_value(type));
	st->params = json_object_get(js, "params");
	if (st->params == NULL)
		json_object_set_new(js, "params", st->params = json_object());
	if (!json_is_object(st->params))
		add_error(errors, who, "\"params\" must be an object");
	json_t *v;
	if ((v = json_object_get(js, "timeout_s")) != NULL &&
	    (!json_is_number(v) || (st->timeout_s = json_number_value(v)) < 0 || st->timeout_s > 7 * 86400))
		add_error(errors, who, "\"timeout_s\" must be a number of seconds from 0 to 604800");
	if ((v = json_object_get(js, "retries")) != NULL &&
	    (!json_is_integer(v) || (st->retries = (int)json_integer_value(v)) < 0 || st->retries > WF_RETRIES_MAX))
		add_error(errors, who, "\"retries\" must be an integer from 0 to %d", WF_RETRIES_MAX);
	if ((v = json_object_get(js, "backoff_s")) != NULL &&
	    (!json_is_number(v) || (st->backoff_s = json_number_value(v)) < 0 || st->backoff_s > 3600))
		add_error(errors, who, "\"backoff_s\" must be a number from 0 to 3600");
	if ((v = json_object_get(js, "backoff_max_s")) != NULL &&
	    (!json_is_number(v) || (st->backoff_max_s = json_number_value(v)) < 0 || st->backoff_max_s > 86400))
		add_error(errors, who, "\"backoff_max_s\" must be a number from 0 to 86400");
	if ((v = json_object_get(js, "on_failure")) != NULL) {
		const char *s = json_string_value(v);
		if (s != NULL && strcmp(s, "continue") == 0)
			st->on_failure = WF_CONTINUE;
		else if (s == NULL || strcmp(s, "stop") != 0)
			add_error(errors, who, "\"on_failure\" must be \"stop\" or \"continue\"");
	}
	(void)cfg;
}

/* Resolves depends_on names to indexes. */
static void
link_deps(struct wf_def *def, json_t *steps, json_t *errors)
{
	for (size_t i = 0; i < def->nsteps; i++) {
		struct wf_step *st = &def->steps[i];
		json_t *deps = json_object_get(json_array_get(steps, i), "depends_on");
		if (deps == NULL || st->id == NULL)
			continue;
		if (!json_is_array(deps)) {
			add_error(errors, st->id, "\"depends_on\" must be an array of step ids");
			continue;
		}
		st->deps = xcalloc(json_array_size(deps) + 1, sizeof(size_t));
		size_t k;
		json_t *d;
		json_array_foreach(deps, k, d)
		{
			long idx = json_is_string(d)
			                   ? wf_def_find(def, json_string_value(d), strlen(json_string_value(d)))
			                   : -1;
			if (idx < 0)
				add_error(errors, st->id, "depends on unknown step %s",
				          json_is_string(d) ? json_string_value(d) : "(not a string)");
			else if ((size_t)idx == i)
				add_error(errors, st->id, "depends on itself (a cycle)");
			else
				st->deps[st->ndeps++] = (size_t)idx;
		}
	}
}

/* Kahn's algorithm, lowest definition index first among the ready steps, so an order the definition already
 * satisfies is kept. Steps never reached are on (or behind) a cycle. */
static void
topo_sort(struct wf_def *def, json_t *errors)
{
	size_t n = def->nsteps, done = 0;
	unsigned char *placed = xcalloc(n + 1, 1);
	def->order = xcalloc(n + 1, sizeof(size_t));
	for (;;) {
		size_t pick = n;
		for (size_t i = 0; i < n && pick == n; i++) {
			if (placed[i])
				continue;
			size_t k = 0;
			while (k < def->steps[i].ndeps && placed[def->steps[i].deps[k]])
				k++;
			if (k == def->steps[i].ndeps)
				pick = i;
		}
		if (pick == n)
			break;
		placed[pick] = 1;
		def->order[done++] = pick;
	}
	for (size_t i = 0; i < n; i++)
		if (!placed[i] && def->steps[i].id != NULL)
			add_error(errors, def->steps[i].id, "is part of a dependency cycle (or depends on one)");
	/* Ancestors, in topological order: a step's are its dependencies and theirs. */
	def->anc = xcalloc(n * n + 1, 1);
	for (size_t o = 0; o < done; o++) {
		size_t i = def->order[o];
		for (size_t k = 0; k < def->steps[i].ndeps; k++) {
			size_t d = def->steps[i].deps[k];
			def->anc[i * n + d] = 1;
			for (size_t j = 0; j < n; j++)
				def->anc[i * n + j] |= def->anc[d * n + j];
		}
	}
	free(placed);
}

/* Checks every template in the string values of v. */
static void
check_templates(const struct wf_def *def, long self, const struct wf_config *cfg, json_t *v, json_t *errors)
{
	const char *who = def->steps[self].id;
	if (json_is_string(v)) {
		char err[256];
		if (wf_template_check(def, self, cfg, json_string_value(v), err, sizeof(err)) > 0)
			add_error(errors, who, "%s", err);
	} else if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) check_templates(def, self, cfg, x, errors);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) check_templates(def, self, cfg, x, errors);
	}
}

static void
check_steps(const struct wf_def *def, const struct wf_config *cfg, json_t *errors)
{
	for (size_t i = 0; i < def->nsteps; i++) {
		const struct wf_step *st = &def->steps[i];
		if (st->id == NULL || st->type == NULL || !json_is_object(st->params))
			continue;
		char err[512] = "";
		if (st->type->validate != NULL && st->type->validate(def, st, cfg, err, sizeof(err)) < 0)
			add_error(errors, st->id, "%s", err[0] ? err : "invalid parameters");
		if (!st->type->raw_params)
			check_templates(def, (long)i, cfg, st->params, errors);
	}
}

struct wf_def *
wf_def_parse(json_t *doc, const struct wf_config *cfg, json_t **errors)
{
	json_t *errs = json_array();
	struct wf_def *def = xcalloc(1, sizeof(*def));
	if (!json_is_object(doc)) {
		add_error(errs, NULL, "a workflow definition must be a JSON object");
		goto fail;
	}
	if (json_object_get(doc, "nodes") != NULL) {
		def->automateos = 1;
		def->doc = normalize_automateos(doc, errs);
	} else
		def->doc = json_deep_copy(doc); /* parse_step fills in defaults */
	json_t *steps = json_object_get(def->doc, "steps");
	def->name = json_string_value(json_object_get(def->doc, "name"));
	if (def->name == NULL)
		def->name = json_string_value(json_object_get(def->doc, "id"));
	if (!json_is_array(steps) || json_array_size(steps) == 0) {
		add_error(errs, NULL, "\"steps\" must be a non-empty array");
		goto fail;
	}
	if (json_array_size(steps) > WF_STEPS_MAX) {
		add_error(errs, NULL, "%zu steps: at most %d are allowed", json_array_size(steps), WF_STEPS_MAX);
		goto fail;
	}
	def->nsteps = json_array_size(steps);
	def->steps = xcalloc(def->nsteps, sizeof(*def->steps));
	for (size_t i = 0; i < def->nsteps; i++)
		parse_step(def, i, json_array_get(steps, i), cfg, errs);
	for (size_t i = 0; i < def->nsteps; i++)
		for (size_t k = 0; k < i; k++)
			if (def->steps[i].id && def->steps[k].id && strcmp(def->steps[i].id, def->steps[k].id) == 0) {
				add_error(errs, def->steps[i].id, "duplicate step id (also step #%zu)", k + 1);
				break;
			}
	link_deps(def, steps, errs);
	topo_sort(def, errs);
	check_steps(def, cfg, errs); /* also after structural errors: every problem is listed in one round */
	if (json_array_size(errs) == 0) {
		json_decref(errs);
		*errors = NULL;
		return def;
	}
fail:
	wf_def_free(def);
	*errors = errs;
	return NULL;
}

void
wf_def_free(struct wf_def *def)
{
	if (def == NULL)
		return;
	for (size_t i = 0; i < def->nsteps; i++)
		free(def->steps[i].deps);
	free(def->steps);
	free(def->order);
	free(def->anc);
	json_decref(def->doc);
	free(def);
}

long
wf_def_find(const struct wf_def *def, const char *id, size_t len)
{
	for (size_t i = 0; i < def->nsteps; i++)
		if (def->steps[i].id != NULL && strlen(def->steps[i].id) == len &&
		    memcmp(def->steps[i].id, id, len) == 0)
			return (long)i;
	return -1;
}

char *
wf_errors_text(json_t *errors)
{
	size_t n = json_array_size(errors), cap = 256 + n * 160, len = 0;
	char *out = xmalloc(cap);
	len += (size_t)snprintf(out, cap, "invalid workflow (%zu error%s): ", n, n == 1 ? "" : "s");
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e)
	{
		const char *step = json_string_value(json_object_get(e, "step"));
		const char *msg = json_string_value(json_object_get(e, "error"));
		char item[700];
		int m = snprintf(item, sizeof(item), "%s%s%s%s", i ? "; " : "", step ? "step " : "", step ? step : "",
		                 step ? ": " : "");
		snprintf(item + m, sizeof(item) - (size_t)m, "%s", msg ? msg : "?");
		size_t il = strlen(item);
		if (len + il + 1 > cap) {
			cap = (len + il + 1) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, item, il + 1);
		len += il;
	}
	return out;
}

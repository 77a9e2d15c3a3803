/* job_flow: the "unique" and "debounce" fields of a job message (see job_flow.h). */
#include "job_flow.h"

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "jsonx.h"

static const char *const until_names[] = {
        [JOB_UNTIL_FINISHED] = "finished", [JOB_UNTIL_STARTED] = "started", [JOB_UNTIL_TTL] = "ttl"};

const char *
job_flow_until_name(enum job_flow_until u)
{
	return (u >= JOB_UNTIL_FINISHED && u <= JOB_UNTIL_TTL) ? until_names[u] : "?";
}

/* Refuses members other than the allowed ones: a misspelt "ttl" must not silently mean "no TTL". */
static int
only_members(json_t *obj, const char *field, const char *const *allowed, char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v)
	{
		size_t i = 0;
		while (allowed[i] != NULL && strcmp(allowed[i], name) != 0)
			i++;
		if (allowed[i] == NULL) {
			snprintf(err, errlen, "field '%s' has an unknown member '%s'", field, name);
			return -1;
		}
	}
	return 0;
}

/* The required "key" member, a name (job_name_valid), written as PREFIX:KEY into out->lock. */
static int
flow_key(json_t *obj, const char *field, char prefix, struct job_flow *out, char *err, size_t errlen)
{
	const char *s = NULL;
	int r = jsonx_string(obj, "key", JOB_FLOW_KEY_MAX, &s, err, errlen);
	if (r == 0)
		snprintf(err, errlen, "field '%s' needs a 'key'", field);
	else if (r > 0 && !job_name_valid(s, JOB_FLOW_KEY_MAX))
		snprintf(err, errlen, "field '%s': 'key' may hold only letters, digits and . _ : - (at most %d)", field,
		         JOB_FLOW_KEY_MAX);
	else if (r > 0) {
		snprintf(out->lock, sizeof(out->lock), "%c:%s", prefix, s);
		return 0;
	}
	return -1;
}

/* Prefixes a getter's message ("field 'ttl_s' must be ...") with the object it is in. */
static int
nested(const char *field, char *err, size_t errlen)
{
	char inner[256];
	snprintf(inner, sizeof(inner), "%s", err);
	snprintf(err, errlen, "field '%s': %s", field, inner);
	return -1;
}

static int
parse_unique(json_t *u, struct job_flow *out, char *err, size_t errlen)
{
	static const char *const allowed[] = {"key", "until", "ttl_s", NULL};
	if (only_members(u, "unique", allowed, err, errlen) < 0 || flow_key(u, "unique", 'u', out, err, errlen) < 0)
		return -1;
	const char *until = NULL;
	int r = jsonx_string(u, "until", 16, &until, err, errlen);
	if (r < 0)
		return nested("unique", err, errlen);
	out->until = JOB_UNTIL_FINISHED;
	if (r > 0) {
		size_t i = 0;
		while (i < sizeof(until_names) / sizeof(until_names[0]) && strcmp(until_names[i], until) != 0)
			i++;
		if (i == sizeof(until_names) / sizeof(until_names[0])) {
			snprintf(err, errlen, "field 'unique': 'until' must be started, finished or ttl");
			return -1;
		}
		out->until = (enum job_flow_until)i;
	}
	r = jsonx_number(u, "ttl_s", 1, JOB_FLOW_TTL_MAX_S, &out->ttl_s, err, errlen);
	if (r < 0)
		return nested("unique", err, errlen);
	if (r == 0 && out->until == JOB_UNTIL_TTL) {
		snprintf(err, errlen, "field 'unique': until 'ttl' needs 'ttl_s'");
		return -1;
	}
	out->kind = JOB_FLOW_UNIQUE;
	return 0;
}

static int
parse_debounce(json_t *d, int has_run_at, struct job_flow *out, char *err, size_t errlen)
{
	static const char *const allowed[] = {"key", "delay_s", "max_wait_s", NULL};
	if (only_members(d, "debounce", allowed, err, errlen) < 0 || flow_key(d, "debounce", 'd', out, err, errlen) < 0)
		return -1;
	int r = jsonx_number(d, "delay_s", 0.001, JOB_FLOW_DELAY_MAX_S, &out->delay_s, err, errlen);
	if (r < 0)
		return nested("debounce", err, errlen);
	if (r == 0) {
		snprintf(err, errlen, "field 'debounce' needs 'delay_s'");
		return -1;
	}
	r = jsonx_number(d, "max_wait_s", out->delay_s, JOB_FLOW_WAIT_MAX_S, &out->max_wait_s, err, errlen);
	if (r < 0)
		return nested("debounce", err, errlen);
	if (r == 0) {
		out->max_wait_s = out->delay_s * JOB_FLOW_WAIT_DEFAULT;
		if (out->max_wait_s > JOB_FLOW_WAIT_MAX_S)
			out->max_wait_s = JOB_FLOW_WAIT_MAX_S;
	}
	if (has_run_at) {
		snprintf(err, errlen, "field 'debounce' decides when the job starts: it excludes 'run_at'");
		return -1;
	}
	out->kind = JOB_FLOW_DEBOUNCE;
	return 0;
}

int
job_flow_parse(json_t *root, int has_run_at, struct job_flow *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	json_t *u = json_object_get(root, "unique"), *d = json_object_get(root, "debounce");
	if (u != NULL && json_is_null(u))
		u = NULL;
	if (d != NULL && json_is_null(d))
		d = NULL;
	if (u != NULL && d != NULL) {
		snprintf(err, errlen, "a job takes 'unique' or 'debounce', not both");
		return -1;
	}
	json_t *v = u != NULL ? u : d;
	if (v == NULL)
		return 0;
	if (!json_is_object(v)) {
		snprintf(err, errlen, "field '%s' must be an object", u != NULL ? "unique" : "debounce");
		return -1;
	}
	int r = u != NULL ? parse_unique(u, out, err, errlen) : parse_debounce(d, has_run_at, out, err, errlen);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

void
job_flow_arg(const struct job_flow *f, char *buf, size_t len)
{
	switch (f->kind) {
	case JOB_FLOW_UNIQUE: snprintf(buf, len, "u\t%s\t%.3f", job_flow_until_name(f->until), f->ttl_s); break;
	case JOB_FLOW_DEBOUNCE: snprintf(buf, len, "d\t%.3f\t%.3f", f->delay_s, f->max_wait_s); break;
	default: snprintf(buf, len, "%s", ""); break;
	}
}

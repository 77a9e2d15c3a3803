/* status: prints a job view (the status op's result, schema/control/common.schema.json $defs/job) as a
 * readable block, or as one JSON line with --json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "xmalloc.h"

#define LABEL_WIDTH 10

/* A string field of the view (numbers formatted), or NULL. Borrowed from v or static storage. */
static const char *
view_get(json_t *v, const char *field)
{
	static char buf[64];
	json_t *f = json_object_get(v, field);
	if (json_is_string(f))
		return json_string_value(f);
	if (json_is_integer(f)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(f));
		return buf;
	}
	return NULL;
}

/* A time field as a number, or 0 when absent. */
static double
view_time(json_t *v, const char *field)
{
	json_t *f = json_object_get(v, field);
	return json_is_number(f) ? json_number_value(f) : 0;
}

/* Prints "label     value", indenting continuation lines and masking control characters, so text a job
 * handler wrote (messages, errors) cannot move the cursor or recolour the user's terminal. */
static void
print_field(const char *label, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	printf("%-*s ", LABEL_WIDTH, label);
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p == '\n')
			printf("\n%-*s ", LABEL_WIDTH, "");
		else
			putchar((*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : *p);
	}
	putchar('\n');
}

/* One time line: the local time, then "(d ago)" or "(how d)" when how is not NULL. */
static void
print_time(const char *label, double t, const char *how, double d)
{
	if (t <= 0)
		return;
	char when[64], dur[32];
	text_local_time(t, when, sizeof(when));
	if (how == NULL)
		printf("%-*s %s\n", LABEL_WIDTH, label, when);
	else if (strcmp(how, "ago") == 0)
		printf("%-*s %s (%s ago)\n", LABEL_WIDTH, label, when, text_duration(d, dur, sizeof(dur)));
	else
		printf("%-*s %s (%s %s)\n", LABEL_WIDTH, label, when, how, text_duration(d, dur, sizeof(dur)));
}

static void
print_times(json_t *h)
{
	double now = clock_now();
	double created = view_time(h, "created_at"), enqueued = view_time(h, "enqueued_at");
	double run_at = view_time(h, "run_at"), started = view_time(h, "started_at");
	double finished = view_time(h, "finished_at"), updated = view_time(h, "updated_at");
	print_time("created", created, "ago", now - created);
	print_time("enqueued", enqueued, "ago", now - enqueued);
	if (run_at > now)
		print_time("run at", run_at, "in", run_at - now);
	else
		print_time("run at", run_at, "ago", now - run_at);
	const char *state = view_get(h, "state");
	if (state != NULL && job_state_parse(state) == JOB_RUNNING)
		print_time("started", started, "running for", now - started);
	else if (started > 0 && enqueued > 0 && started >= enqueued)
		print_time("started", started, "queued for", started - enqueued);
	else
		print_time("started", started, NULL, 0);
	if (finished > 0 && started > 0 && finished >= started)
		print_time("finished", finished, "ran", finished - started);
	else
		print_time("finished", finished, NULL, 0);
	print_time("updated", updated, "ago", now - updated);
}

/* Copies a field's text into buf (view_get's static storage is reused by the next call). */
static const char *
view_copy(json_t *h, const char *field, char *buf, size_t len)
{
	const char *s = view_get(h, field);
	if (s == NULL)
		return NULL;
	snprintf(buf, len, "%s", s);
	return buf;
}

static void
print_readable(struct ctl *ctl, json_t *h)
{
	char attempt[32], max[32], progress[32], pid[32];
	const char *a = view_copy(h, "attempt", attempt, sizeof(attempt));
	const char *m = view_copy(h, "max_attempts", max, sizeof(max));
	const char *p = view_copy(h, "progress", progress, sizeof(progress));
	const char *wp = view_copy(h, "worker_pid", pid, sizeof(pid));
	const char *node = view_get(h, "node");
	print_field("id", view_get(h, "id"));
	print_field("type", view_get(h, "type"));
	print_field("queue", view_get(h, "queue"));
	const char *state = view_get(h, "state");
	if (state != NULL)
		printf("%-*s %s%s%s\n", LABEL_WIDTH, "state", ops_state_color(ctl, state), state, ops_color_reset(ctl));
	if (a != NULL) {
		char *s = m != NULL ? xasprintf("%s of %s", a, m) : xstrdup(a);
		print_field("attempt", s);
		free(s);
	}
	if (p != NULL) {
		char *s = xasprintf("%s%%", p);
		print_field("progress", s);
		free(s);
	}
	print_field("stage", view_get(h, "stage"));
	print_field("message", view_get(h, "message"));
	print_field("error", view_get(h, "error"));
	json_t *result = json_object_get(h, "result");
	if (result != NULL && !json_is_null(result)) {
		char *s = json_is_string(result) ? xstrdup(json_string_value(result)) : text_json_dump(result);
		print_field("result", s);
		free(s);
	}
	print_times(h);
	if (node != NULL) {
		char *n = wp != NULL ? xasprintf("%s (worker pid %s)", node, wp) : xstrdup(node);
		print_field("node", n);
		free(n);
	}
	print_field("owner", view_get(h, "owner"));
	print_field("idem key", view_get(h, "idempotency_key"));
}

void
status_print(struct ctl *ctl, json_t *job)
{
	if (ctl->json) {
		char *s = text_json_dump(job);
		printf("%s\n", s);
		free(s);
	} else
		print_readable(ctl, job);
}

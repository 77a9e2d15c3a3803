/* status: `hopperctl status ID`, one job's hash as a readable block or a JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "xmalloc.h"

#define LABEL_WIDTH 10

/* The value of field in an HGETALL reply (pairs of strings), or NULL. Borrowed from r. */
static const char *
hash_get(const struct conn_reply *r, const char *field)
{
	for (size_t i = 0; i + 1 < r->n; i += 2)
		if (strcmp(r->elem[i]->str, field) == 0)
			return r->elem[i + 1]->str;
	return NULL;
}

/* A time field as a number, or 0 when absent or not a time. */
static double
hash_time(const struct conn_reply *r, const char *field)
{
	const char *s = hash_get(r, field);
	double t = 0;
	if (s == NULL || text_double(s, 0, 1e11, &t) < 0)
		return 0;
	return t;
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
print_times(const struct conn_reply *h)
{
	double now = clock_now();
	double created = hash_time(h, "created_at"), enqueued = hash_time(h, "enqueued_at");
	double run_at = hash_time(h, "run_at"), started = hash_time(h, "started_at");
	double finished = hash_time(h, "finished_at"), updated = hash_time(h, "updated_at");
	print_time("created", created, "ago", now - created);
	print_time("enqueued", enqueued, "ago", now - enqueued);
	if (run_at > now)
		print_time("run at", run_at, "in", run_at - now);
	else
		print_time("run at", run_at, "ago", now - run_at);
	const char *state = hash_get(h, "state");
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

static void
print_readable(const struct conn_reply *h)
{
	const char *attempt = hash_get(h, "attempt"), *max = hash_get(h, "max_attempts");
	const char *progress = hash_get(h, "progress"), *node = hash_get(h, "node"), *pid = hash_get(h, "worker_pid");
	print_field("id", hash_get(h, "id"));
	print_field("type", hash_get(h, "type"));
	print_field("queue", hash_get(h, "queue"));
	print_field("state", hash_get(h, "state"));
	if (attempt != NULL) {
		char *a = max != NULL ? xasprintf("%s of %s", attempt, max) : xstrdup(attempt);
		print_field("attempt", a);
		free(a);
	}
	if (progress != NULL) {
		char *p = xasprintf("%s%%", progress);
		print_field("progress", p);
		free(p);
	}
	print_field("stage", hash_get(h, "stage"));
	print_field("message", hash_get(h, "message"));
	print_field("error", hash_get(h, "error"));
	print_field("result", hash_get(h, "result"));
	print_times(h);
	if (node != NULL) {
		char *n = pid != NULL ? xasprintf("%s (worker pid %s)", node, pid) : xstrdup(node);
		print_field("node", n);
		free(n);
	}
	const char *stalls = hash_get(h, "stalls");
	if (stalls != NULL && strcmp(stalls, "0") != 0)
		print_field("stalls", stalls);
	print_field("owner", hash_get(h, "owner"));
	print_field("idem key", hash_get(h, "idempotency_key"));
}

static void
print_json(const struct conn_reply *h)
{
	json_t *obj = json_object();
	for (size_t i = 0; i + 1 < h->n; i += 2)
		json_object_set_new(obj, h->elem[i]->str, text_json_string(h->elem[i + 1]->str, h->elem[i + 1]->len));
	char *s = text_json_dump(obj);
	printf("%s\n", s);
	free(s);
	json_decref(obj);
}

int
status_show(struct ctl *ctl, const char *id)
{
	struct conn *c = ctl_conn(ctl);
	if (c == NULL)
		return CTL_EXIT_REDIS;
	struct conn_cmd *cmd = conn_cmd_new("HGETALL");
	char *key = ctl_key(ctl, "job:%s", id);
	conn_arg(cmd, key);
	free(key);
	struct conn_reply *h = NULL;
	char *cause = NULL;
	int rv = conn_call(c, cmd, &h, &cause);
	conn_cmd_free(cmd);
	if (rv < 0) {
		ctl_warn("%s", cause);
		free(cause);
		return CTL_EXIT_REDIS;
	}
	int code = CTL_EXIT_OK;
	if (h->type != CONN_ARRAY || h->n == 0) {
		ctl_warn("unknown job %s", id);
		code = CTL_EXIT_UNKNOWN_JOB;
	} else if (ctl->json)
		print_json(h);
	else
		print_readable(h);
	conn_reply_free(h);
	return code;
}

int
status_cmd(struct ctl *ctl, struct cmd_args *args)
{
	return status_show(ctl, args->argv[0]);
}

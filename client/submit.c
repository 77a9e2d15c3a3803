/*
 * submit: `hopperctl submit TYPE ...`. Check, then proceed: the command line becomes a job message that
 * job_parse (the daemon's own validator) accepts before anything is written; the hash and the queue entry are
 * then written in one MULTI/EXEC, so no reader ever sees one without the other.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "xmalloc.h"

/* The daemon's defaults (hopperd.conf.example): a job that passes here passes there unless its config is
 * stricter. */
static const struct job_defaults submit_defaults = {
        .max_bytes = 1024 * 1024, .max_attempts = 3, .timeout_s = 300, .backoff_base_s = 1, .backoff_max_s = 300};

#define SUBMIT_WATCH_TRIES 5 /* another client creating the same id at the same moment is rare */

/* Reports an option that is not a number; frees the half-built job. Returns NULL for the caller to return. */
static json_t *
bad_number(json_t *job, const char *option, const char *value)
{
	ctl_warn("submit: bad %s '%s'", option, value);
	json_decref(job);
	return NULL;
}

/* Builds the job message from the command line. NULL with the error printed. Caller json_decrefs. */
static json_t *
submit_build(const struct cmd_args *a, const char *id, double now)
{
	json_t *job = json_object();
	json_object_set_new(job, "id", text_json_string(id, strlen(id))); /* job_parse rejects what this repairs */
	json_object_set_new(job, "type", text_json_string(a->argv[0], strlen(a->argv[0])));
	json_object_set_new(job, "queue", text_json_string(a->opt[OPT_QUEUE], strlen(a->opt[OPT_QUEUE])));
	if (a->opt[OPT_ARGS] != NULL) {
		json_error_t jerr;
		json_t *args = json_loads(a->opt[OPT_ARGS], JSON_REJECT_DUPLICATES, &jerr);
		if (args == NULL) {
			ctl_warn("--args is not JSON: %s", jerr.text);
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, "args", args);
	}
	long long n;
	double d;
	if (a->opt[OPT_MAX_ATTEMPTS] != NULL) {
		if (text_int(a->opt[OPT_MAX_ATTEMPTS], -1000000, 1000000, &n) < 0)
			return bad_number(job, "--max-attempts", a->opt[OPT_MAX_ATTEMPTS]);
		json_object_set_new(job, "max_attempts", json_integer(n));
	}
	if (a->opt[OPT_TIMEOUT] != NULL) {
		if (text_double(a->opt[OPT_TIMEOUT], -1e12, 1e12, &d) < 0)
			return bad_number(job, "--timeout", a->opt[OPT_TIMEOUT]);
		json_object_set_new(job, "timeout_s", json_real(d));
	}
	json_object_set_new(job, "created_at", json_real(round(now * 1000) / 1000));
	if (a->opt[OPT_DELAY] != NULL || a->opt[OPT_RUN_AT] != NULL) {
		int delay = a->opt[OPT_DELAY] != NULL;
		const char *s = delay ? a->opt[OPT_DELAY] : a->opt[OPT_RUN_AT];
		if (text_double(s, 0, 1e11, &d) < 0)
			return bad_number(job, delay ? "--delay" : "--run-at", s);
		d = delay ? now + d : d;
		json_object_set_new(job, "run_at", json_real(round(d * 1000) / 1000));
	}
	if (a->opt[OPT_OWNER] != NULL)
		json_object_set_new(job, "owner", text_json_string(a->opt[OPT_OWNER], strlen(a->opt[OPT_OWNER])));
	if (a->opt[OPT_IDEM_KEY] != NULL)
		json_object_set_new(job, "idempotency_key",
		                    text_json_string(a->opt[OPT_IDEM_KEY], strlen(a->opt[OPT_IDEM_KEY])));
	return job;
}

static void
hset_field(struct conn_cmd *cmd, const char *field, const char *value)
{
	conn_arg(cmd, field);
	conn_arg(cmd, value);
}

/* The HSET of the job hash and the LPUSH or ZADD that enqueues it. Caller frees both. */
static void
submit_cmds(struct ctl *ctl, const struct job_spec *spec, const char *payload, double now, int delayed,
            struct conn_cmd *cmds[2])
{
	char ts[32], run_at[32];
	char *key = ctl_key(ctl, "job:%s", spec->id);
	struct conn_cmd *h = conn_cmd_new("HSET");
	conn_arg(h, key);
	hset_field(h, "id", spec->id);
	hset_field(h, "type", spec->type);
	hset_field(h, "queue", spec->queue);
	hset_field(h, "state", job_state_name(JOB_QUEUED));
	hset_field(h, "attempt", "0");
	conn_arg(h, "max_attempts");
	conn_argf(h, "%d", spec->max_attempts);
	hset_field(h, "progress", "0");
	hset_field(h, "created_at", clock_format(spec->created_at, ts, sizeof(ts)));
	clock_format(now, ts, sizeof(ts));
	hset_field(h, "enqueued_at", ts);
	hset_field(h, "updated_at", ts);
	hset_field(h, "payload", payload);
	if (spec->owner != NULL)
		hset_field(h, "owner", spec->owner);
	if (spec->idempotency_key != NULL)
		hset_field(h, "idempotency_key", spec->idempotency_key);
	if (delayed)
		hset_field(h, "run_at", clock_format(spec->run_at, run_at, sizeof(run_at)));
	free(key);

	char *qkey = ctl_key(ctl, delayed ? "scheduled:%s" : "queue:%s", spec->queue);
	struct conn_cmd *q = conn_cmd_new(delayed ? "ZADD" : "LPUSH");
	conn_arg(q, qkey);
	if (delayed)
		conn_arg(q, run_at);
	conn_arg(q, payload);
	free(qkey);
	cmds[0] = h;
	cmds[1] = q;
}

/* Runs a one-key command; returns its integer reply (0 for other replies), or -1 with *cause (caller frees). */
static long long
simple_call(struct conn *c, const char *name, const char *key, char **cause)
{
	struct conn_cmd *cmd = conn_cmd_new(name);
	if (key != NULL)
		conn_arg(cmd, key);
	struct conn_reply *r = NULL;
	int rv = conn_call(c, cmd, &r, cause);
	long long n = rv < 0 ? -1 : r->type == CONN_INTEGER ? r->integer : 0;
	conn_reply_free(r);
	conn_cmd_free(cmd);
	return n;
}

/*
 * Writes the job unless a job with its id exists: overwriting that hash would turn a finished job back into a
 * queued one, which redis-keys.md promises never happens. WATCH makes the check and the write one step.
 */
static int
submit_write(struct ctl *ctl, struct conn *c, const struct job_spec *spec, const char *payload, double now, int delayed)
{
	char *key = ctl_key(ctl, "job:%s", spec->id), *cause = NULL;
	int code = CTL_EXIT_REDIS;
	for (int tries = 0; tries < SUBMIT_WATCH_TRIES && code == CTL_EXIT_REDIS && cause == NULL; tries++) {
		long long exists;
		if (simple_call(c, "WATCH", key, &cause) < 0 || (exists = simple_call(c, "EXISTS", key, &cause)) < 0)
			break;
		if (exists > 0) {
			simple_call(c, "UNWATCH", NULL, &cause);
			free(cause);
			cause = NULL;
			ctl_warn("job %s already exists", spec->id);
			code = CTL_EXIT_USAGE;
			break;
		}
		struct conn_cmd *cmds[2];
		submit_cmds(ctl, spec, payload, now, delayed, cmds);
		int rv = conn_transact(c, cmds, 2, NULL, &cause);
		conn_cmd_free(cmds[0]);
		conn_cmd_free(cmds[1]);
		if (rv == 0)
			code = CTL_EXIT_OK;
	}
	if (code == CTL_EXIT_REDIS)
		ctl_warn("%s", cause != NULL ? cause : "the job hash kept changing; not submitted");
	free(cause);
	free(key);
	return code;
}

/* The option combinations getopt cannot check, and --wait-timeout (checked before anything is written). */
static int
submit_check_args(struct cmd_args *a, double *wait_timeout)
{
	if (a->opt[OPT_DELAY] != NULL && a->opt[OPT_RUN_AT] != NULL) {
		ctl_warn("submit: --delay and --run-at exclude each other");
		return -1;
	}
	if (a->opt[OPT_WAIT_TIMEOUT] != NULL && a->opt[OPT_WAIT] == NULL) {
		ctl_warn("submit: --wait-timeout needs --wait");
		return -1;
	}
	const char *t = a->opt[OPT_WAIT_TIMEOUT];
	*wait_timeout = 0;
	if (t != NULL && text_double(t, 0.001, 1e9, wait_timeout) < 0) {
		ctl_warn("submit: bad --wait-timeout '%s'", t);
		return -1;
	}
	if (a->opt[OPT_ID] != NULL && strlen(a->opt[OPT_ID]) > JOB_ID_MAX) {
		ctl_warn("submit: --id is longer than %d bytes", JOB_ID_MAX);
		return -1;
	}
	if (a->opt[OPT_QUEUE] == NULL)
		a->opt[OPT_QUEUE] = "default";
	return 0;
}

/* Waits for the job (timeout_s <= 0: forever), then prints its final status. */
static int
submit_wait(struct ctl *ctl, const char *id, double timeout_s)
{
	char *const ids[1] = {(char *)id};
	int code = watch_jobs(ctl, ids, 1, WATCH_QUIET, timeout_s);
	if (code == CTL_EXIT_REDIS)
		return code;
	int scode = status_show(ctl, id);
	return scode != CTL_EXIT_OK ? scode : code;
}

/* Validates the message with job_parse. 0 with *spec filled (caller frees), or -1 with the error printed. */
static int
submit_validate(const char *payload, const char *queue, struct job_spec *spec)
{
	char err[256];
	if (job_parse(payload, strlen(payload), queue, &submit_defaults, spec, err, sizeof(err)) < 0) {
		ctl_warn("invalid job: %s", err);
		return -1;
	}
	return 0;
}

int
submit_cmd(struct ctl *ctl, struct cmd_args *args)
{
	char id[JOB_ID_MAX + 1];
	double wait_timeout;
	if (submit_check_args(args, &wait_timeout) < 0)
		return ctl_usage("submit");
	if (args->opt[OPT_ID] != NULL)
		snprintf(id, sizeof(id), "%s", args->opt[OPT_ID]);
	else if (job_new_id(id) < 0) {
		ctl_warn("no randomness for a job id");
		return CTL_EXIT_USAGE;
	}
	double now = clock_now();
	json_t *job = submit_build(args, id, now);
	if (job == NULL)
		return CTL_EXIT_USAGE;
	char *payload = text_json_dump(job);
	json_decref(job);
	struct job_spec spec;
	if (submit_validate(payload, args->opt[OPT_QUEUE], &spec) < 0) {
		free(payload);
		return CTL_EXIT_USAGE;
	}
	int code = CTL_EXIT_REDIS;
	struct conn *c = ctl_conn(ctl);
	if (c != NULL)
		code = submit_write(ctl, c, &spec, payload, now, spec.run_at > now);
	job_spec_free(&spec);
	free(payload);
	if (code != CTL_EXIT_OK)
		return code;
	if (ctl->json)
		printf("{\"id\":\"%s\"}\n", id); /* ids are letters, digits and ._:- only: no escaping needed */
	else
		printf("%s\n", id);
	if (args->opt[OPT_WAIT] == NULL)
		return CTL_EXIT_OK;
	fflush(stdout);
	return submit_wait(ctl, id, wait_timeout);
}

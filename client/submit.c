/*
 * submit: `hopperctl submit TYPE [ARGS_JSON] [--queue Q] ... [--wait]` or `submit --file JOBS.json`. The
 * command line becomes one job object (job.schema.json) or a batch; the daemon validates it with the same
 * parser it uses for queued messages and writes it atomically. --wait then follows the job with watch_job
 * and exits with its outcome.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "xmalloc.h"

/* Reports an option that is not a number; frees the half-built job. Returns NULL for the caller to return. */
static json_t *
bad_number(json_t *job, const char *option, const char *value)
{
	ctl_warn("submit: bad %s '%s'", option, value);
	json_decref(job);
	return NULL;
}

static void
set_string(json_t *job, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(job, key, text_json_string(v, strlen(v)));
}

/* Builds the job object from the command line. NULL with the error printed. Caller json_decrefs. */
static json_t *
submit_build(const struct cmd_args *a, double now)
{
	json_t *job = json_object();
	set_string(job, "id", a->opt[OPT_ID]);
	set_string(job, "type", a->argv[0]);
	set_string(job, "queue", a->opt[OPT_QUEUE]);
	const char *args = a->opt[OPT_ARGS] != NULL ? a->opt[OPT_ARGS] : a->argc > 1 ? a->argv[1] : NULL;
	if (args != NULL) {
		json_error_t jerr;
		json_t *v = json_loads(args, JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL) {
			ctl_warn("submit: the arguments are not JSON: %s", jerr.text);
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, "args", v);
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
	set_string(job, "owner", a->opt[OPT_OWNER]);
	set_string(job, "idempotency_key", a->opt[OPT_IDEM_KEY]);
	static const struct {
		enum ctl_opt opt;
		const char *field, *option;
	} flow[] = {{OPT_UNIQUE, "unique", "--unique"}, {OPT_DEBOUNCE, "debounce", "--debounce"}};
	for (size_t i = 0; i < sizeof(flow) / sizeof(flow[0]); i++) {
		if (a->opt[flow[i].opt] == NULL)
			continue;
		json_error_t jerr;
		json_t *v = json_loads(a->opt[flow[i].opt], JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL) {
			ctl_warn("submit: %s is not JSON: %s", flow[i].option, jerr.text);
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, flow[i].field, v); /* the daemon's parser validates it */
	}
	return job;
}

/* The option combinations getopt cannot check, and --wait-timeout (checked before anything is sent). */
static int
submit_check_args(struct cmd_args *a, double *wait_timeout)
{
	if (a->opt[OPT_FILE] != NULL ? a->argc != 0 : a->argc == 0) {
		ctl_warn("submit: give a TYPE, or --file JOBS.json");
		return -1;
	}
	if (a->opt[OPT_ARGS] != NULL && a->argc > 1) {
		ctl_warn("submit: give the arguments once (--args or ARGS_JSON)");
		return -1;
	}
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
	return 0;
}

/* Reads the batch file: a JSON array of job objects. NULL with the error printed. Caller decrefs. */
static json_t *
read_batch(const char *path)
{
	json_error_t jerr;
	json_t *jobs = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (jobs == NULL)
		ctl_warn("submit: %s: %s (line %d)", path, jerr.text, jerr.line);
	else if (!json_is_array(jobs)) {
		ctl_warn("submit: %s: not a JSON array of jobs", path);
		json_decref(jobs);
		jobs = NULL;
	}
	return jobs;
}

/* Follows the submitted jobs (up to 16 at once) as watch does: progress bars on a terminal, else (piped, or
 * --json) one JSON event per line, so a script sees the stages too; then prints each final status. The
 * exit code (the outcome). */
static int
submit_wait(struct ctl *ctl, json_t *ids, double timeout_s)
{
	size_t n = json_array_size(ids);
	char **v = xcalloc(n, sizeof(*v));
	json_t **finals = xcalloc(n, sizeof(*finals));
	int worst = CTL_EXIT_OK;
	for (size_t i = 0; i < n; i++)
		v[i] = (char *)json_string_value(json_array_get(ids, i));
	for (size_t off = 0; off < n; off += 16) {
		int k = n - off > 16 ? 16 : (int)(n - off);
		int code = watch_jobs(ctl, v + off, k, 0, timeout_s, finals + off);
		worst = code > worst ? code : worst;
		if (code > CTL_EXIT_JOB_FAILED)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		if (finals[i] != NULL)
			status_print(ctl, finals[i]);
		json_decref(finals[i]);
	}
	free(finals);
	free(v);
	return worst;
}

/* Sends the job or batch; prints the ids. The result in *res (caller decrefs), or an exit code. */
static int
submit_send(struct ctl *ctl, struct cmd_args *args, json_t **res)
{
	json_t *payload =
	        args->opt[OPT_FILE] != NULL ? read_batch(args->opt[OPT_FILE]) : submit_build(args, clock_now());
	if (payload == NULL)
		return CTL_EXIT_USAGE;
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h != NULL) {
		int r = json_is_array(payload) ? hopper_submit_batch(h, payload, res) : hopper_submit(h, payload, res);
		code = r == HOPPER_OK ? CTL_EXIT_OK : ctl_fail(ctl);
	}
	json_decref(payload);
	return code;
}

int
submit_cmd(struct ctl *ctl, struct cmd_args *args)
{
	double wait_timeout;
	if (submit_check_args(args, &wait_timeout) < 0)
		return ctl_usage("submit");
	json_t *res = NULL;
	int code = submit_send(ctl, args, &res);
	if (code != CTL_EXIT_OK)
		return code;
	json_t *ids = json_object_get(res, "ids");
	if (ids == NULL) {
		ids = json_array();
		json_array_append(ids, json_object_get(res, "id"));
	} else
		json_incref(ids);
	if (ctl->json) {
		char *s = text_json_dump(res);
		printf("%s\n", s);
		free(s);
	} else {
		size_t i;
		json_t *v;
		json_array_foreach(ids, i, v) printf("%s\n", json_string_value(v));
	}
	fflush(stdout);
	if (args->opt[OPT_WAIT] != NULL)
		code = submit_wait(ctl, ids, wait_timeout);
	json_decref(ids);
	json_decref(res);
	return code;
}

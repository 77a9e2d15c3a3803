/*
 * wf_run: the "workflow.run" job handler. args: {"definition": {...}} (or "workflow": NAME, which hopperd
 * resolves from its stored workflows before dispatch), "input": {...}. The JOB frame's "resume" holds the
 * step records earlier attempts made durable.
 *
 * Steps run one at a time in topological order (independent branches run one after another, in definition
 * order). After each step execution the worker sends a STEP record and waits for the daemon's REPLY, which
 * comes only once the record is in Redis: so a step whose record was acknowledged is never run again by a
 * later attempt (README "Resume" states the exact guarantee).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "frame.h"
#include "jsonx.h"
#include "worker.h"
#include "workflow.h"
#include "xmalloc.h"

enum step_state { S_PENDING, S_SUCCEEDED, S_FAILED, S_FILTERED, S_SKIPPED };
static const char *const state_names[] = {"pending", "succeeded", "failed", "filtered", "skipped"};

struct run {
	struct job_ctx *job;
	struct wf_config cfg;
	struct wf_def *def;
	json_t *ctx; /* {"input", "steps": {ID: {"output"}}, "env"} */
	struct wf_host host;
	enum step_state *state;
	size_t done;
	size_t cur; /* the step running, for progress */
	int resumed;
	/* per step: what its "parked" record says (wf_wait.c); attempt 0 when it never parked */
	struct parked {
		double started; /* the step attempt's first start, Unix seconds */
		int attempt;    /* the step attempt that parked */
		int parks;      /* how often it parked */
	} * parked;
};

/* --- what steps get from the worker (struct wf_host) --- */

static void
step_progress(void *arg, int pct, const char *message)
{
	struct run *r = arg;
	size_t n = r->def->nsteps;
	int overall = (int)((r->done * 100 + (size_t)(pct < 0 ? 0 : pct > 100 ? 100 : pct)) / n);
	char *m = message ? wf_mask_text(message, r->host.secrets) : NULL;
	worker_progress(r->job, overall, r->def->steps[r->cur].id, m);
	free(m);
}

static void
nested_progress(void *arg, int progress, const char *stage, const char *message)
{
	step_progress(arg, progress, message ? message : stage);
}

static int
have_handler(const char *name)
{
	return handler_find(name) != NULL;
}

static int
run_handler(void *arg, const char *name, json_t *args, json_t **result, char *err, size_t errlen)
{
	struct run *r = arg;
	const struct handler_entry *h = handler_find(name);
	if (h == NULL) {
		snprintf(err, errlen, "no handler %s", name);
		return -1;
	}
	struct job_ctx sub = *r->job;
	sub.type = name;
	sub.args = args;
	sub.resume = NULL;
	sub.error[0] = '\0';
	worker_set_progress_hook(nested_progress, r);
	int rc = h->run(&sub, result);
	worker_set_progress_hook(NULL, NULL);
	if (rc < 0)
		snprintf(err, errlen, "%s", sub.error[0] ? sub.error : "failed");
	return rc;
}

static json_t *
request(void *arg, int type, json_t *payload, char *err, size_t errlen)
{
	struct run *r = arg;
	return worker_request(r->job, type, payload, err, errlen);
}

/* --- records --- */

/* Whether an allowed environment variable's value is treated as a secret, by its name. */
static int
env_secret(const struct wf_config *cfg, const char *name)
{
	static const char *const words[] = {"TOKEN", "SECRET", "PASSW", "KEY", "AUTH", "COOKIE", NULL};
	if (wf_mask_name(cfg, name))
		return 1;
	char up[128];
	size_t i = 0;
	for (; name[i] && i < sizeof(up) - 1; i++)
		up[i] = (char)toupper((unsigned char)name[i]);
	up[i] = '\0';
	for (i = 0; words[i]; i++)
		if (strstr(up, words[i]) != NULL)
			return 1;
	return 0;
}

/* {NAME: value} of the allowed variables that are set; their secret-looking values join host.secrets. */
static json_t *
allowed_env(const struct wf_config *cfg, json_t *secrets)
{
	json_t *env = json_object();
	for (const char *p = cfg->env_allow; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ')
			k++;
		char name[128];
		if (k > 0 && k < sizeof(name)) {
			memcpy(name, p, k);
			name[k] = '\0';
			const char *v = getenv(name);
			json_t *js = v ? json_string(v) : NULL;
			if (js != NULL) {
				json_object_set_new(env, name, js);
				if (env_secret(cfg, name))
					json_array_append_new(secrets, json_string(v));
			}
		}
		p += k;
	}
	return env;
}

/* The ids of the steps step i depends on, directly or not: a restart from one of them re-runs step i
 * (workflow.restart decides from the records alone, daemon/lua/13_workflow.lua). New reference. */
static json_t *
ancestors(const struct wf_def *def, size_t i)
{
	json_t *a = json_array();
	for (size_t j = 0; j < def->nsteps; j++)
		if (def->anc[i * def->nsteps + j])
			json_array_append_new(a, json_string(def->steps[j].id));
	return a;
}

/*
 * Sends one step execution's record and waits until the daemon has it durably. resume: the record is a
 * final outcome later attempts take over instead of running the step again. Returns 0 or -1 with err.
 */
static int
send_record(struct run *r, size_t i, int attempt, const char *state, double started, double finished, json_t *output,
            const char *error, int resume, char *err, size_t errlen)
{
	const struct wf_step *st = &r->def->steps[i];
	json_t *rec = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:f,s:f,s:b}", "id", r->job->id, "step", st->id, "type",
	                        st->type->name, "attempt", attempt, "run_attempt", r->job->attempt, "state", state,
	                        "started_at", started, "finished_at", finished, "resume", resume);
	if (output != NULL)
		json_object_set_new(rec, "output", wf_mask_json(&r->cfg, output, r->host.secrets));
	json_object_set_new(rec, "after", ancestors(r->def, i));
	if (error != NULL && error[0] != '\0') {
		char *m = wf_mask_text(error, r->host.secrets);
		json_object_set_new(rec, "error", json_string(m));
		free(m);
	}
	/* An output too large for one frame is recorded without it (resume then runs the step again). */
	char *text = jsonx_dump(rec);
	size_t len = strlen(text);
	free(text);
	if (len > FRAME_MAX_PAYLOAD - 1024) {
		json_object_del(rec, "output");
		json_object_set_new(rec, "resume", json_false());
		json_object_set_new(rec, "output_dropped", json_true());
	}
	json_t *rep = worker_request(r->job, FRAME_STEP, rec, err, errlen);
	json_decref(rep);
	return rep != NULL ? 0 : -1;
}

/* Takes over what earlier attempts finished (the resume records). */
static void
take_resume(struct run *r)
{
	json_t *resume = r->job->resume, *steps = json_object_get(r->ctx, "steps");
	const char *id;
	json_t *rec;
	json_object_foreach(resume, id, rec)
	{
		long i = wf_def_find(r->def, id, strlen(id));
		const char *s = json_string_value(json_object_get(rec, "state"));
		if (i < 0 || s == NULL)
			continue;
		if (strcmp(s, "parked") == 0) { /* not done: it resumes where its wait began */
			json_t *out = json_object_get(rec, "output");
			json_t *at = json_object_get(rec, "attempt");
			r->parked[i].started = json_number_value(json_object_get(out, "started_at"));
			r->parked[i].parks = (int)json_integer_value(json_object_get(out, "parks"));
			r->parked[i].attempt =
			        json_is_integer(at) && json_integer_value(at) > 0 ? (int)json_integer_value(at) : 1;
			continue;
		}
		for (int k = S_SUCCEEDED; k <= S_SKIPPED; k++)
			if (strcmp(s, state_names[k]) == 0)
				r->state[i] = (enum step_state)k;
		if (r->state[i] == S_PENDING)
			continue;
		json_t *out = json_object_get(rec, "output");
		if (out != NULL)
			json_object_set_new(steps, id, json_pack("{s:O}", "output", out));
		r->done++;
		r->resumed++;
	}
}

/* --- running --- */

static enum wf_status
run_attempt(struct run *r, size_t i, json_t **output, char *err, size_t errlen)
{
	const struct wf_step *st = &r->def->steps[i];
	json_t *params = st->type->raw_params ? json_incref(st->params)
	                                      : wf_template_render_all(r->def, r->ctx, st->params, err, errlen);
	if (params == NULL)
		return WF_FATAL;
	/* The timeout counts from the step attempt's first start, also across parks. */
	double left_ms = (r->host.step_started + st->timeout_s - clock_now()) * 1000;
	r->host.deadline = st->timeout_s > 0 ? clock_monotonic_ms() + (left_ms > 0 ? left_ms : -1) : 0;
	struct wf_step_call call = {r->def, st, &r->cfg, &r->host, r->ctx, params};
	*output = NULL;
	enum wf_status s = st->type->run(&call, output, err, errlen);
	json_decref(params);
	if (s != WF_OK && s != WF_FILTERED) {
		json_decref(*output);
		*output = NULL;
	}
	return s;
}

/* Step i's attempt k parked (host.park): its "parked" record keeps the first start for the resume. */
static enum wf_status
park_step(struct run *r, size_t i, int k, double started, char *err, size_t errlen, int *record_failed)
{
	const struct wf_step *st = &r->def->steps[i];
	json_t *p = r->host.park;
	const char *reason = json_string_value(json_object_get(p, "reason"));
	json_t *out = json_pack("{s:f,s:i,s:O}", "started_at", started, "parks", r->parked[i].parks + 1, "until",
	                        json_object_get(p, "until"));
	char rerr[256];
	int rc = send_record(r, i, k, "parked", started, clock_now(), out, reason, 1, rerr, sizeof(rerr));
	json_decref(out);
	if (rc < 0) {
		snprintf(err, errlen, "step %s: its record could not be made durable: %s", st->id, rerr);
		*record_failed = 1;
		return WF_STOPPED;
	}
	worker_log(r->job, "info", "step %s (%s) attempt %d: parked: waiting for %s", st->id, st->type->name, k,
	           reason ? reason : "?");
	snprintf(err, errlen, "parked: waiting for %s", reason ? reason : "?");
	return WF_PARKED;
}

static const char *
status_state(enum wf_status s)
{
	return s == WF_OK ? "succeeded" : s == WF_FILTERED ? "filtered" : s == WF_STOPPED ? "stopped" : "failed";
}

/* Runs step i with its retries. Returns its final status; on WF_OK/WF_FILTERED its output is in the context. A
 * record that cannot be made durable ends the run (status WF_STOPPED, retryable). */
static enum wf_status
run_step(struct run *r, size_t i, char *err, size_t errlen, int *record_failed)
{
	const struct wf_step *st = &r->def->steps[i];
	enum wf_status s = WF_FAIL;
	struct parked *pk = &r->parked[i];
	for (int k = pk->attempt > 0 ? pk->attempt : 1;; k++) {
		json_t *output = NULL;
		int resumed = pk->attempt == k && pk->started > 0;
		double started = resumed ? pk->started : clock_now();
		r->host.step_started = started;
		r->host.step_parks = resumed ? pk->parks : 0;
		err[0] = '\0';
		s = run_attempt(r, i, &output, err, errlen);
		if (s == WF_PARKED)
			return park_step(r, i, k, started, err, errlen, record_failed);
		int last = s == WF_OK || s == WF_FILTERED || s == WF_FATAL || s == WF_STOPPED || k > st->retries;
		int resume =
		        s == WF_OK || s == WF_FILTERED || (last && s != WF_STOPPED && st->on_failure == WF_CONTINUE);
		char rerr[256];
		if (send_record(r, i, k, status_state(s), started, clock_now(), output, err, resume, rerr,
		                sizeof(rerr)) < 0) {
			json_decref(output);
			snprintf(err, errlen, "step %s: its record could not be made durable: %s", st->id, rerr);
			*record_failed = 1;
			return WF_STOPPED;
		}
		char *m = wf_mask_text(err, r->host.secrets);
		worker_log(r->job, s == WF_OK ? "info" : "warn", "step %s (%s) attempt %d: %s%s%s", st->id,
		           st->type->name, k, status_state(s), m[0] ? ": " : "", m);
		free(m);
		if (s == WF_OK || s == WF_FILTERED) {
			json_object_set_new(json_object_get(r->ctx, "steps"), st->id,
			                    json_pack("{s:o}", "output", output));
			return s;
		}
		if (last)
			return s;
		double delay = st->backoff_s * pow(2, k - 1);
		if (delay > st->backoff_max_s)
			delay = st->backoff_max_s;
		if (wf_sleep_ms(&r->host, delay * 1000) < 0) {
			snprintf(err, errlen, "stopped while waiting to retry step %s", st->id);
			return WF_STOPPED;
		}
	}
}

/* A step runs only when every step it depends on succeeded (or failed with on_failure=continue: no). */
static int
deps_ok(const struct run *r, size_t i)
{
	const struct wf_step *st = &r->def->steps[i];
	for (size_t k = 0; k < st->ndeps; k++)
		if (r->state[st->deps[k]] != S_SUCCEEDED)
			return 0;
	return 1;
}

static json_t *
make_result(struct run *r, const char *status)
{
	json_t *steps = json_object(), *last = NULL;
	for (size_t o = 0; o < r->def->nsteps; o++) {
		size_t i = r->def->order[o];
		json_object_set_new(steps, r->def->steps[i].id, json_string(state_names[r->state[i]]));
		if (r->state[i] == S_SUCCEEDED)
			last = json_object_get(json_object_get(json_object_get(r->ctx, "steps"), r->def->steps[i].id),
			                       "output");
	}
	json_t *res = json_pack("{s:s,s:o,s:i}", "status", status, "steps", steps, "resumed_steps", r->resumed);
	if (r->def->name != NULL)
		json_object_set_new(res, "workflow", json_string(r->def->name));
	json_object_set_new(res, "output", last ? wf_mask_json(&r->cfg, last, r->host.secrets) : json_null());
	return res;
}

/* Runs every step; 0 with *result, or -1 with the job's error set. */
static int
run_all(struct run *r, json_t **result)
{
	struct job_ctx *job = r->job;
	int filtered = 0, failed = 0;
	for (size_t o = 0; o < r->def->nsteps; o++) {
		size_t i = r->def->order[o];
		const struct wf_step *st = &r->def->steps[i];
		if (r->state[i] != S_PENDING)
			continue;
		r->cur = i;
		char err[1024] = "";
		if (!deps_ok(r, i)) {
			r->state[i] = S_SKIPPED;
			double now = clock_now();
			if (send_record(r, i, 0, "skipped", now, now, NULL, "a step it depends on did not succeed", 1,
			                err, sizeof(err)) < 0) {
				/* err (1 KiB) may fill the job's error; cut it rather than the step id */
				snprintf(job->error, sizeof(job->error),
				         "step %s: its record could not be made durable: %.900s", st->id, err);
				return -1;
			}
			r->done++;
			continue;
		}
		step_progress(r, 0, "running");
		int record_failed = 0;
		enum wf_status s = run_step(r, i, err, sizeof(err), &record_failed);
		if (s == WF_PARKED) { /* the attempt ends here; the run waits in the scheduled set (wf_wait.c) */
			job->park = r->host.park;
			r->host.park = NULL;
			snprintf(job->error, sizeof(job->error), "%s", err);
			return -1;
		}
		char *m = wf_mask_text(err, r->host.secrets);
		if (s == WF_OK)
			r->state[i] = S_SUCCEEDED;
		else if (s == WF_FILTERED) {
			r->state[i] = S_FILTERED;
			filtered = 1;
		} else if (s == WF_STOPPED || st->on_failure == WF_STOP) {
			if (record_failed)
				snprintf(job->error, sizeof(job->error), "%s", m);
			else
				snprintf(job->error, sizeof(job->error), "step %s (%s) %s: %s", st->id, st->type->name,
				         s == WF_STOPPED ? "stopped" : "failed", m);
			/* A step's own retries are the retry policy for its failures: the run ends failed. Only a run
			 * that was stopped (timeout, shutdown) or could not record a step is retried as a job, and
			 * then resumes after its completed steps. */
			job->retryable = s == WF_STOPPED;
			free(m);
			return -1;
		} else {
			r->state[i] = S_FAILED;
			failed = 1;
		}
		free(m);
		r->done++;
	}
	*result = make_result(r, failed ? "completed_with_errors" : filtered ? "filtered" : "succeeded");
	return 0;
}

/* The definition: inline, or resolved by hopperd from a stored workflow (args.workflow). */
static json_t *
definition_of(struct job_ctx *job)
{
	json_t *def = json_object_get(job->args, "definition");
	if (json_is_object(def))
		return def;
	const char *why = json_string_value(json_object_get(job->args, "resolve_error"));
	const char *name = json_string_value(json_object_get(job->args, "workflow"));
	if (why != NULL)
		snprintf(job->error, sizeof(job->error), "%s", why);
	else if (name != NULL)
		snprintf(job->error, sizeof(job->error), "stored workflow %s was not resolved by the daemon", name);
	else
		snprintf(job->error, sizeof(job->error),
		         "args need \"definition\" (an object) or \"workflow\" (a name)");
	return NULL;
}

/* Every audio.analyze step needs the handler in this worker; a worker built without it says so up front. */
static void
check_host(struct wf_def *def, json_t **errors)
{
	for (size_t i = 0; i < def->nsteps; i++) {
		if (strcmp(def->steps[i].type->name, "audio.analyze") != 0 || have_handler("audio.analyze"))
			continue;
		if (*errors == NULL)
			*errors = json_array();
		json_array_append_new(*errors, json_pack("{s:s,s:s}", "step", def->steps[i].id, "error",
		                                         "step type audio.analyze is not available in this worker"));
	}
}

int
workflow_run(struct job_ctx *job, json_t **result)
{
	static int curl_ready;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = 1;
	}
	struct run r = {.job = job};
	wf_config_from_env(&r.cfg);
	job->retryable = 0;
	json_t *doc = definition_of(job), *errors = NULL;
	if (doc == NULL)
		return -1;
	json_t *input = json_object_get(job->args, "input");
	r.def = wf_def_parse(doc, &r.cfg, &errors);
	if (r.def != NULL)
		check_host(r.def, &errors);
	if (errors != NULL) {
		char *text = wf_errors_text(errors);
		snprintf(job->error, sizeof(job->error), "%s", text);
		worker_log(job, "error", "%s", text);
		free(text);
		json_decref(errors);
		wf_def_free(r.def);
		return -1;
	}
	r.host = (struct wf_host){.ctx = &r,
	                          .should_stop = worker_should_stop,
	                          .step_progress = step_progress,
	                          .run_handler = run_handler,
	                          .have_handler = have_handler,
	                          .request = request,
	                          .job_id = job->id,
	                          .secrets = json_array()};
	r.ctx = json_pack("{s:o,s:{},s:o}", "input", input ? json_incref(input) : json_object(), "steps", "env",
	                  allowed_env(&r.cfg, r.host.secrets));
	r.state = xcalloc(r.def->nsteps, sizeof(*r.state));
	r.parked = xcalloc(r.def->nsteps, sizeof(*r.parked));
	job->secrets = r.host.secrets; /* its log lines and progress, and those of handlers run as steps */
	/* "resume": false in the definition: every attempt starts over (the steps are safe to repeat). */
	if (!json_is_false(json_object_get(r.def->doc, "resume"))) {
		take_resume(&r);
		r.host.can_park = 1; /* a park resumes from the records: never in a run that starts over */
	}
	if (r.resumed > 0)
		worker_log(job, "info", "resuming after %d step(s) an earlier attempt completed", r.resumed);
	int rc = run_all(&r, result);
	if (rc < 0) {
		char *m = wf_mask_text(job->error, r.host.secrets);
		snprintf(job->error, sizeof(job->error), "%s", m);
		free(m);
	}
	free(r.state);
	free(r.parked);
	json_decref(r.host.park);
	json_decref(r.ctx);
	job->secrets = NULL;
	json_decref(r.host.secrets);
	wf_def_free(r.def);
	return rc;
}

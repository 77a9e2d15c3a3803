/*
 * wf_steps: the step type table, one entry per type {name, validate, run}, and the small step types
 * (webhook, filter, audio.analyze, enqueue). http, exec and the waits (delay, sleep_until) live in their own
 * files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "frame.h"
#include "workflow.h"
#include "xmalloc.h"

/* Sleeps are cut into slices this long so that a cancel or timeout is seen within one. */
#define WF_SLICE_MS 50

int
wf_sleep_ms(struct wf_host *host, double ms)
{
	double end = clock_monotonic_ms() + ms;
	for (;;) {
		if (host->should_stop != NULL && host->should_stop())
			return -1;
		double left = end - clock_monotonic_ms();
		if (left <= 0)
			return 0;
		double chunk = left < WF_SLICE_MS ? left : WF_SLICE_MS;
		struct timespec ts = {(time_t)(chunk / 1000), (long)((long long)(chunk * 1e6) % 1000000000LL)};
		nanosleep(&ts, NULL);
	}
}

/* --- webhook: AutomateOS's trigger; its output is the run's input --- */
static enum wf_status
webhook_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	json_t *in = json_object_get(call->ctx, "input");
	*output = json_pack("{s:O}", "payload", in ? in : json_null());
	return WF_OK;
}

/* --- filter --- */
struct ref_check {
	const struct wf_def *def;
	long self;
	const struct wf_config *cfg;
	char *err;
	size_t errlen;
};

static int
filter_ref(int is_template, const char *s, size_t len, void *arg)
{
	struct ref_check *rc = arg;
	char why[256];
	if (is_template)
		return wf_template_check(rc->def, rc->self, rc->cfg, s, rc->err, rc->errlen) > 0 ? -1 : 0;
	if (wf_ref_check(rc->def, rc->self, rc->cfg, s, len, why, sizeof(why)) < 0) {
		snprintf(rc->err, rc->errlen, "condition: %s", why);
		return -1;
	}
	return 0;
}

static int
filter_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                size_t errlen)
{
	const char *cond = json_string_value(json_object_get(st->params, "condition"));
	if (cond == NULL) {
		snprintf(err, errlen, "filter: \"condition\" (a string) is required");
		return -1;
	}
	struct wf_expr *e = wf_expr_parse(cond, err, errlen);
	if (e == NULL)
		return -1;
	struct ref_check rc = {def, (long)(st - def->steps), cfg, err, errlen};
	int r = wf_expr_refs(e, filter_ref, &rc);
	wf_expr_free(e);
	return r != 0 ? -1 : 0;
}

static enum wf_status
filter_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	const char *cond = json_string_value(json_object_get(call->params, "condition"));
	struct wf_expr *e = wf_expr_parse(cond ? cond : "", err, errlen);
	if (e == NULL)
		return WF_FATAL;
	int pass = wf_expr_eval(e, call->def, call->ctx);
	wf_expr_free(e);
	*output = json_pack("{s:b}", "passed", pass);
	if (!pass) {
		snprintf(err, errlen, "condition is false");
		return WF_FILTERED;
	}
	return WF_OK;
}

/* --- audio.analyze: the registered job handler, run in this worker as a step --- */
static enum wf_status
audio_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	struct wf_host *h = call->host;
	if (h->have_handler == NULL || !h->have_handler("audio.analyze")) {
		snprintf(err, errlen, "this worker has no audio.analyze handler");
		return WF_FATAL;
	}
	if (h->run_handler(h->ctx, "audio.analyze", call->params, output, err, errlen) < 0)
		return h->should_stop() ? WF_STOPPED : WF_FAIL;
	return WF_OK;
}

/* --- enqueue: submit another hopper job through the daemon, optionally wait for its end --- */
static int
enqueue_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                 size_t errlen)
{
	json_t *p = st->params, *args = json_object_get(p, "args"), *wait = json_object_get(p, "wait");
	if (!json_is_string(json_object_get(p, "type"))) {
		snprintf(err, errlen, "enqueue: \"type\" (the job type) is required");
		return -1;
	}
	if (args != NULL && !json_is_object(args)) {
		snprintf(err, errlen, "enqueue: \"args\" must be an object");
		return -1;
	}
	if (wait != NULL && !json_is_boolean(wait)) {
		snprintf(err, errlen, "enqueue: \"wait\" must be true or false");
		return -1;
	}
	json_t *q = json_object_get(p, "queue");
	if (q != NULL && !json_is_string(q)) {
		snprintf(err, errlen, "enqueue: \"queue\" must be a string");
		return -1;
	}
	return 0;
}

/*
 * The child's id is derived from the run and the step, so an attempt that resumes after a crash between the
 * submission and the step's record finds the job it submitted instead of submitting a second one (the
 * daemon's enqueue op pushes only when no job of that id exists).
 */
static enum wf_status
enqueue_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	struct wf_host *h = call->host;
	json_t *p = call->params;
	char child[160];
	snprintf(child, sizeof(child), "%.90s.%s", h->job_id, call->step->id);
	json_t *job = json_pack("{s:s,s:O}", "id", child, "type", json_object_get(p, "type"));
	json_t *args = json_object_get(p, "args"), *v;
	json_object_set_new(job, "args", args ? json_incref(args) : json_object()); /* was a leak without args */
	/* Not "owner": a child belongs to its parent's owner (hopperd sets it). */
	/* The flow-control fields too (README "Unique jobs and debounce", "Rate limits and concurrency keys"):
	 * hopperd's parser checks them as for any job. */
	static const char *const passthrough[] = {"max_attempts", "timeout_s",  "backoff_s",  "unique",
	                                          "debounce",     "rate_limit", "concurrency"};
	for (size_t i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++)
		if ((v = json_object_get(p, passthrough[i])) != NULL)
			json_object_set(job, passthrough[i], v);
	const char *queue = json_string_value(json_object_get(p, "queue"));
	/* wait: the child names this run as its parent, and its end wakes the run when it parks (wf_wait.c) */
	json_t *req = json_pack("{s:s,s:s,s:o,s:b}", "id", h->job_id, "queue", queue ? queue : "default", "job", job,
	                        "wait", json_is_true(json_object_get(p, "wait")));
	json_t *rep = h->request(h->ctx, FRAME_ENQUEUE, req, err, errlen);
	if (rep == NULL)
		return WF_FAIL;
	/* A unique child whose key another job of the owner holds was not made: that job is the child. */
	const char *dup = json_string_value(json_object_get(rep, "duplicate_of"));
	if (dup != NULL)
		snprintf(child, sizeof(child), "%s", dup);
	json_decref(rep);
	if (!json_is_true(json_object_get(p, "wait"))) {
		*output = dup != NULL ? json_pack("{s:s,s:s}", "job_id", child, "duplicate_of", child)
		                      : json_pack("{s:s}", "job_id", child);
		return WF_OK;
	}
	return wf_wait_child(call, child, queue ? queue : "default", output, err, errlen);
}

const struct wf_step_type wf_step_types[] = {
        {"http", wf_http_validate, wf_http_run, 0},
        {"exec", wf_exec_validate, wf_exec_run, 0},
        {"delay", wf_delay_validate, wf_delay_run, 0},
        {"filter", filter_validate, filter_run, 1},
        {"audio.analyze", NULL, audio_run, 0},
        {"enqueue", enqueue_validate, enqueue_run, 0},
        {"webhook", NULL, webhook_run, 0},
        {"sleep_until", wf_sleep_until_validate, wf_sleep_until_run, 0},
        {NULL, NULL, NULL, 0},
};

const struct wf_step_type *
wf_step_type_find(const char *name)
{
	for (const struct wf_step_type *t = wf_step_types; t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

/*
 * wf_wait: the steps that wait (delay, sleep_until) and enqueue's wait for its child. A wait longer than
 * WF_PARK_MIN_MS parks the run (README "Durable waits"): the step reports WF_PARKED with host->park, the
 * attempt ends, and hopperd puts the run in its queue's scheduled set until the time, or until the child's
 * end wakes it. The next attempt resumes the step from its "parked" record, which keeps the step's first
 * start (host->step_started): a delay ends at start + ms whatever the number of parks, and a step's timeout
 * is measured from its first start too. A shorter wait, or a run that cannot park (its definition says
 * "resume": false, so a later attempt would start over), still sleeps in the worker.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "frame.h"
#include "job.h"
#include "workflow.h"

/* Below this a wait sleeps in the worker: a park and its resume cost a few round trips and a claim. */
#define WF_PARK_MIN_MS  2000.0
#define WF_DELAY_MAX_MS (7.0 * 86400 * 1000)
/* sleep_until: at most a year ahead (a run's records expire with result_ttl_s, which the operator sizes). */
#define WF_SLEEP_AHEAD_MAX_S (366.0 * 86400)
/* A parked enqueue wait asks after its child again after this long even if no wake came (a lost wake:
 * its daemon was killed between the child's finish and the wake), doubling per park up to the maximum. */
#define WF_WAKE_FALLBACK_S     30.0
#define WF_WAKE_FALLBACK_MAX_S 600.0
/* How often a wait that cannot park asks after its child. */
#define WF_POLL_MS 200

/* "2026-12-03T16:40:00.000Z" of Unix seconds t, into b. */
static void
iso_of(double t, char *b, size_t size)
{
	time_t sec = (time_t)floor(t);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(b, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((t - floor(t)) * 1000) % 1000);
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
wf_iso_time(const char *s, double *out)
{
	int y, mo, d, h, mi, se;
	if (strlen(s) < 20 || digits(s, 4, &y) < 0 || s[4] != '-' || digits(s + 5, 2, &mo) < 0 || s[7] != '-' ||
	    digits(s + 8, 2, &d) < 0 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) < 0 ||
	    s[13] != ':' || digits(s + 14, 2, &mi) < 0 || s[16] != ':' || digits(s + 17, 2, &se) < 0)
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	const char *p = s + 19;
	double frac = 0, scale = 0.1;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int oh, om;
		if (digits(p + 1, 2, &oh) < 0 || p[3] != ':' || digits(p + 4, 2, &om) < 0 || oh > 23 || om > 59)
			return -1;
		off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
		p += 6;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = (double)t - off + frac;
	return 0;
}

/* Sets the park: until (Unix s), reason; wake: what wakes it (a child job id, or "evt:KEY" for an event, with
 * queue NULL), or NULL. */
static enum wf_status
park(struct wf_host *h, double until, const char *reason, const char *wake, const char *queue)
{
	json_decref(h->park);
	h->park = json_pack("{s:f,s:s}", "until", until, "reason", reason);
	if (wake != NULL) {
		json_t *w = json_pack("{s:s}", "job", wake);
		if (queue != NULL)
			json_object_set_new(w, "queue", json_string(queue));
		json_object_set_new(h->park, "wake", w);
	}
	return WF_PARKED;
}

/* Seconds left before the step's own timeout_s (counted from its first start), or HUGE_VAL without one. */
static double
step_left_s(const struct wf_host *h)
{
	return h->deadline > 0 ? (h->deadline - clock_monotonic_ms()) / 1000 : HUGE_VAL;
}

/* Waits until Unix time end: parks when it is far enough ahead, else sleeps the rest here. The step's own
 * timeout cuts the wait short: the step then fails "timed out". */
static enum wf_status
wait_until(struct wf_host *h, double end, char *err, size_t errlen)
{
	double step_end = clock_now() + step_left_s(h);
	int cut = step_end < end;
	if (cut) {
		if (step_end <= clock_now()) {
			snprintf(err, errlen, "timed out (the step's timeout_s) before the wait's end");
			return WF_FAIL;
		}
		end = step_end;
	}
	double left_ms = (end - clock_now()) * 1000;
	if (left_ms > WF_PARK_MIN_MS && h->can_park) {
		char iso[96], why[128];
		iso_of(end, iso, sizeof(iso));
		snprintf(why, sizeof(why), "sleep until %s", iso);
		return park(h, end, why, NULL, NULL);
	}
	if (left_ms > 0 && wf_sleep_ms(h, left_ms) < 0) {
		snprintf(err, errlen, "stopped during the wait");
		return WF_STOPPED;
	}
	if (cut) {
		snprintf(err, errlen, "timed out (the step's timeout_s) before the wait's end");
		return WF_FAIL;
	}
	return WF_OK;
}

/* --- delay: {"ms": N} from the step's first start --- */

int
wf_delay_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                  size_t errlen)
{
	json_t *ms = json_object_get(st->params, "ms");
	if (ms != NULL && !(json_is_string(ms) && strstr(json_string_value(ms), "{{")) &&
	    (!json_is_number(ms) || json_number_value(ms) < 0 || json_number_value(ms) > WF_DELAY_MAX_MS)) {
		snprintf(err, errlen, "delay: \"ms\" must be a number of milliseconds from 0 to 604800000");
		return -1;
	}
	return 0;
}

enum wf_status
wf_delay_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	json_t *v = json_object_get(call->params, "ms");
	double ms = json_is_number(v) ? json_number_value(v) : 0;
	if (!json_is_number(v) && v != NULL) {
		snprintf(err, errlen, "delay: \"ms\" rendered to a non-number");
		return WF_FATAL;
	}
	if (ms < 0 || ms > WF_DELAY_MAX_MS) {
		snprintf(err, errlen, "delay: %g ms is out of range", ms);
		return WF_FATAL;
	}
	enum wf_status s = wait_until(call->host, call->host->step_started + ms / 1000, err, errlen);
	if (s == WF_OK)
		*output = json_pack("{s:f}", "slept_ms", ms);
	return s;
}

/* --- sleep_until: {"until": ISO-8601 text or Unix milliseconds} --- */

/* The time of "until" (Unix seconds): 0, or -1 with err. */
static int
until_of(json_t *v, double *out, char *err, size_t errlen)
{
	if (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) < 1e14) {
		*out = json_number_value(v) / 1000;
		return 0;
	}
	if (json_is_string(v) && wf_iso_time(json_string_value(v), out) == 0)
		return 0;
	snprintf(err, errlen,
	         "sleep_until: \"until\" must be an ISO-8601 time (2026-12-03T16:40:00Z, or with +HH:MM) or Unix "
	         "milliseconds");
	return -1;
}

int
wf_sleep_until_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                        size_t errlen)
{
	json_t *v = json_object_get(st->params, "until");
	double t;
	if (json_is_string(v) && strstr(json_string_value(v), "{{"))
		return 0;
	return until_of(v, &t, err, errlen);
}

enum wf_status
wf_sleep_until_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	double until;
	if (until_of(json_object_get(call->params, "until"), &until, err, errlen) < 0)
		return WF_FATAL;
	if (until - clock_now() > WF_SLEEP_AHEAD_MAX_S) {
		snprintf(err, errlen, "sleep_until: the time is more than 366 days ahead");
		return WF_FATAL;
	}
	enum wf_status s = wait_until(call->host, until, err, errlen);
	if (s == WF_OK) {
		char iso[96];
		iso_of(until, iso, sizeof(iso));
		*output = json_pack("{s:s,s:f}", "until", iso, "until_ms", floor(until * 1000));
	}
	return s;
}

/* --- enqueue's wait --- */

/* 1 with *s set when the child's reply says it ended; 0 while it has not. */
static int
child_ended(json_t *rep, const char *child, json_t **output, enum wf_status *s, char *err, size_t errlen)
{
	const char *state = json_string_value(json_object_get(rep, "state"));
	if (state != NULL && strcmp(state, "unknown") == 0) { /* its hash is gone (expired, deleted): it never ends */
		snprintf(err, errlen, "job %s no longer exists", child);
		*s = WF_FAIL;
		return 1;
	}
	if (state != NULL && strcmp(state, "succeeded") == 0) {
		json_t *res = json_object_get(rep, "result");
		*output =
		        json_pack("{s:s,s:s,s:O}", "job_id", child, "state", state, "result", res ? res : json_null());
		*s = WF_OK;
		return 1;
	}
	if (state != NULL &&
	    (strcmp(state, "failed") == 0 || strcmp(state, "dead") == 0 || strcmp(state, "cancelled") == 0)) {
		const char *e = json_string_value(json_object_get(rep, "error"));
		snprintf(err, errlen, "job %s ended %s: %s", child, state, e ? e : "");
		*s = WF_FAIL;
		return 1;
	}
	return 0;
}

enum wf_status
wf_wait_child(struct wf_step_call *call, const char *child, const char *queue, json_t **output, char *err,
              size_t errlen)
{
	struct wf_host *h = call->host;
	for (int first = 1;; first = 0) {
		if (!first && wf_sleep_ms(h, WF_POLL_MS) < 0) {
			snprintf(err, errlen, "stopped while waiting for job %s", child);
			return WF_STOPPED;
		}
		json_t *rep = h->request(h->ctx, FRAME_QUERY,
		                         json_pack("{s:s,s:s,s:s}", "id", h->job_id, "job_id", child, "queue", queue),
		                         err, errlen);
		if (rep == NULL)
			return WF_FAIL;
		enum wf_status s;
		int ended = child_ended(rep, child, output, &s, err, errlen);
		json_decref(rep);
		if (ended)
			return s;
		double now_mono = clock_monotonic_ms();
		if (h->deadline > 0 && now_mono > h->deadline) {
			snprintf(err, errlen, "timed out waiting for job %s", child);
			return WF_FAIL;
		}
		/* Park until the child's end wakes the run, or the fallback time, or the step's deadline. */
		double wait_s = WF_WAKE_FALLBACK_S * pow(2, h->step_parks < 10 ? h->step_parks : 10);
		if (wait_s > WF_WAKE_FALLBACK_MAX_S)
			wait_s = WF_WAKE_FALLBACK_MAX_S;
		if (h->deadline > 0 && (h->deadline - now_mono) / 1000 < wait_s)
			wait_s = (h->deadline - now_mono) / 1000;
		if (h->can_park && wait_s * 1000 > WF_PARK_MIN_MS) {
			char why[200];
			snprintf(why, sizeof(why), "job %s", child);
			return park(h, clock_now() + wait_s, why, child, queue);
		}
	}
}

/* --- wait_event: park until an event with the key arrives (daemon/lua/20_events.lua) --- */

#define WF_EVENT_TIMEOUT_DEFAULT_S  86400.0
#define WF_EVENT_LOOKBACK_DEFAULT_S 300.0
#define WF_EVENT_KEY_MAX            120 /* CTL_EVENT_KEY_MAX: "evt:" + the key names the park's wake */

static int
event_seconds(json_t *p, const char *name, double def, double *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(p, name);
	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > WF_SLEEP_AHEAD_MAX_S) {
		snprintf(err, errlen, "wait_event: \"%s\" must be a number of seconds from 0 to 31622400", name);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

int
wf_wait_event_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                       size_t errlen)
{
	json_t *key = json_object_get(st->params, "key");
	double t;
	if (!json_is_string(key) || json_string_length(key) == 0) {
		snprintf(err, errlen, "wait_event: \"key\" (a string) is required");
		return -1;
	}
	return event_seconds(st->params, "timeout_s", 0, &t, err, errlen) < 0 ||
	                       event_seconds(st->params, "lookback_s", 0, &t, err, errlen) < 0
	               ? -1
	               : 0;
}

/* The step's wait: the first event of key at or after its first start minus lookback_s, until timeout_s after
 * that start. Parks between looks; the event's send wakes the run. */
enum wf_status
wf_wait_event_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	struct wf_host *h = call->host;
	const char *key = json_string_value(json_object_get(call->params, "key"));
	double timeout, lookback;
	if (event_seconds(call->params, "timeout_s", WF_EVENT_TIMEOUT_DEFAULT_S, &timeout, err, errlen) < 0 ||
	    event_seconds(call->params, "lookback_s", WF_EVENT_LOOKBACK_DEFAULT_S, &lookback, err, errlen) < 0)
		return WF_FATAL;
	if (key == NULL || !job_name_valid(key, WF_EVENT_KEY_MAX)) {
		snprintf(err, errlen, "wait_event: the key must be 1-%d letters, digits and . _ : - (rendered: %.60s)",
		         WF_EVENT_KEY_MAX, key ? key : "");
		return WF_FATAL;
	}
	double start = h->step_started > 0 ? h->step_started : clock_now();
	for (;;) {
		json_t *q =
		        json_pack("{s:s,s:I,s:I}", "key", key, "since_ms", (json_int_t)floor((start - lookback) * 1000),
		                  "deadline_ms", (json_int_t)floor((start + timeout) * 1000));
		json_t *rep = h->request(h->ctx, FRAME_QUERY, json_pack("{s:s,s:o}", "id", h->job_id, "event", q), err,
		                         errlen);
		if (rep == NULL)
			return WF_FAIL;
		const char *verdict = json_string_value(json_object_get(rep, "verdict"));
		enum wf_status s = WF_PARKED;
		if (verdict != NULL && strcmp(verdict, "event") == 0) {
			const char *id = json_string_value(json_object_get(rep, "event"));
			*output = json_pack("{s:s,s:s,s:f,s:O}", "key", key, "event", id ? id : "", "at",
			                    id ? strtod(id, NULL) / 1000 : 0.0, "data", json_object_get(rep, "data"));
			s = WF_OK;
		} else if (verdict != NULL && strcmp(verdict, "timeout") == 0) {
			snprintf(err, errlen, "timed out waiting for event %s after %g s", key, timeout);
			s = WF_FAIL;
		} else if (verdict != NULL && strcmp(verdict, "full") == 0) {
			snprintf(err, errlen, "event %s: too many runs wait for it (event_max_waiters)", key);
			s = WF_FAIL;
		} else if (verdict == NULL || strcmp(verdict, "waiting") != 0) {
			const char *e = json_string_value(json_object_get(rep, "error"));
			snprintf(err, errlen, "wait_event: %s", e ? e : "the daemon's answer has no verdict");
			s = WF_FAIL;
		}
		json_decref(rep);
		if (s != WF_PARKED)
			return s;
		double wait_s = WF_WAKE_FALLBACK_S * pow(2, h->step_parks < 10 ? h->step_parks : 10);
		if (wait_s > WF_WAKE_FALLBACK_MAX_S)
			wait_s = WF_WAKE_FALLBACK_MAX_S;
		double left = start + timeout - clock_now(), step_left = step_left_s(h);
		if (step_left <= 0) {
			snprintf(err, errlen, "timed out (the step's timeout_s) waiting for event %s", key);
			return WF_FAIL;
		}
		if (step_left < left)
			left = step_left;
		if (left < wait_s)
			wait_s = left > 0 ? left : 0;
		if (h->can_park && wait_s * 1000 > WF_PARK_MIN_MS) {
			char why[160], wake[8 + WF_EVENT_KEY_MAX];
			snprintf(why, sizeof(why), "event %s", key);
			snprintf(wake, sizeof(wake), "evt:%s", key);
			return park(h, clock_now() + wait_s, why, wake, NULL);
		}
		if (wf_sleep_ms(h, wait_s * 1000 < WF_POLL_MS ? WF_POLL_MS : WF_POLL_MS * 5) < 0) {
			snprintf(err, errlen, "stopped while waiting for event %s", key);
			return WF_STOPPED;
		}
	}
}

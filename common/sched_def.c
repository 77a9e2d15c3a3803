/* sched_def: schedule definitions and the misfire decisions (see sched_def.h). */
#include "sched_def.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jsonx.h"
#include "sched_tz.h"

_Static_assert(SCHED_PLAN_MAX > SCHED_MISFIRE_MAX + 1, "a claim fits a whole run of misfire all");

/* Fire times one plan walks one by one before it jumps over the rest of a long run of misses. */
#define PLAN_WALK_MAX 2000

static const char *const misfire_names[] = {
        [SCHED_MISFIRE_SKIP] = "skip", [SCHED_MISFIRE_ONCE] = "once", [SCHED_MISFIRE_ALL] = "all"};

const char *
sched_misfire_name(enum sched_misfire m)
{
	return misfire_names[m];
}

int
sched_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SCHED_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* A time field: Unix seconds (integer or fraction) -> ms; 0 when absent. */
static int
time_field(json_t *def, const char *key, int64_t *out, char *err, size_t errlen)
{
	double v = 0;
	int r = jsonx_number(def, key, 0, (double)SCHED_TIME_MAX_S, &v, err, errlen);
	*out = r == 1 ? (int64_t)(v * 1000.0) : 0;
	return r < 0 ? -1 : 0;
}

static int
parse_policy(json_t *def, struct sched_def *out, char *err, size_t errlen)
{
	const char *m = NULL;
	long long v = 0;
	int r = jsonx_string(def, "misfire", 8, &m, err, errlen);
	if (r < 0)
		return -1;
	out->misfire = SCHED_MISFIRE_ONCE;
	if (r == 1) {
		size_t i;
		for (i = 0; i < sizeof(misfire_names) / sizeof(misfire_names[0]); i++)
			if (strcmp(m, misfire_names[i]) == 0)
				break;
		if (i == sizeof(misfire_names) / sizeof(misfire_names[0])) {
			snprintf(err, errlen, "field 'misfire' must be skip, once or all");
			return -1;
		}
		out->misfire = (enum sched_misfire)i;
	}
	if ((r = jsonx_int(def, "misfire_max", 1, SCHED_MISFIRE_MAX, &v, err, errlen)) < 0)
		return -1;
	out->misfire_max = r == 1 ? (int)v : 10;
	if ((r = jsonx_int(def, "misfire_grace_s", 0, SCHED_GRACE_MAX_S, &v, err, errlen)) < 0)
		return -1;
	out->grace_ms = (r == 1 ? v : SCHED_GRACE_DEFAULT) * 1000LL;
	if ((r = jsonx_int(def, "jitter_s", 0, SCHED_JITTER_MAX_S, &v, err, errlen)) < 0)
		return -1;
	out->jitter_s = r == 1 ? v : 0;
	if (time_field(def, "start", &out->start_ms, err, errlen) < 0 ||
	    time_field(def, "end", &out->end_ms, err, errlen) < 0)
		return -1;
	if (out->start_ms && out->end_ms && out->end_ms <= out->start_ms) {
		snprintf(err, errlen, "field 'end' must be after 'start'");
		return -1;
	}
	if (jsonx_bool(def, "paused", &out->paused, err, errlen) < 0)
		return -1;
	return 0;
}

static int
parse_job(json_t *def, struct sched_def *out, char *err, size_t errlen)
{
	json_t *job = json_object_get(def, "job");
	if (!json_is_object(job)) {
		snprintf(err, errlen, "field 'job' must be a job object (schema/job.schema.json)");
		return -1;
	}
	static const char *const refused[] = {"id", "run_at", "created_at", NULL};
	for (size_t i = 0; refused[i] != NULL; i++)
		if (json_object_get(job, refused[i]) != NULL) {
			snprintf(err, errlen, "field 'job.%s' is set by each fire; leave it out", refused[i]);
			return -1;
		}
	out->job = json_incref(job);
	return 0;
}

int
sched_def_parse(json_t *def, struct sched_def *out, char *err, size_t errlen)
{
	const char *s = NULL;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(def)) {
		snprintf(err, errlen, "a schedule must be a JSON object");
		return -1;
	}
	int r = jsonx_string(def, "name", SCHED_NAME_MAX, &s, err, errlen);
	if (r <= 0 || !sched_name_valid(s)) {
		if (r >= 0)
			snprintf(err, errlen, "field 'name' must be 1-%d letters, digits and . _ -", SCHED_NAME_MAX);
		return -1;
	}
	snprintf(out->name, sizeof(out->name), "%s", s);
	if ((r = jsonx_string(def, "cron", SCHED_SPEC_MAX, &s, err, errlen)) <= 0) {
		if (r == 0)
			snprintf(err, errlen, "field 'cron' is required (5 fields, @hourly... or @every 30s)");
		return -1;
	}
	snprintf(out->cron, sizeof(out->cron), "%s", s);
	char why[256];
	if (sched_parse(out->cron, strlen(out->cron), &out->spec, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "field 'cron': %s", why);
		return -1;
	}
	if ((r = jsonx_string(def, "tz", SCHED_TZ_MAX, &s, err, errlen)) < 0)
		return -1;
	snprintf(out->tz, sizeof(out->tz), "%s", r == 1 ? s : "UTC");
	if (strcmp(out->tz, "UTC") != 0 && out->spec.every_ms == 0) {
		out->zone = sched_zone_load(out->tz, why, sizeof(why));
		if (out->zone == NULL) {
			snprintf(err, errlen, "field 'tz': %s", why);
			return -1;
		}
	}
	if (parse_policy(def, out, err, errlen) < 0 || parse_job(def, out, err, errlen) < 0) {
		sched_def_free(out);
		return -1;
	}
	return 0;
}

void
sched_def_free(struct sched_def *d)
{
	if (d->zone != NULL)
		sched_zone_free(d->zone);
	json_decref(d->job);
	d->zone = NULL;
	d->job = NULL;
}

int64_t
sched_def_next(const struct sched_def *d, int64_t after_ms)
{
	if (d->start_ms > 0 && after_ms < d->start_ms - 1)
		after_ms = d->start_ms - 1;
	int64_t t = d->zone != NULL ? sched_next_zone(&d->spec, d->zone, after_ms) : sched_next_utc(&d->spec, after_ms);
	if (t < 0 || (d->end_ms > 0 && t > d->end_ms))
		return -1;
	return t;
}

int64_t
sched_def_due(const struct sched_def *d, int64_t f)
{
	int64_t j = sched_jitter_ms(d->name, f, d->jitter_s);
	if (j <= 0)
		return f;
	/* Never past the next fire time: fires stay due in their order, so a jitter longer than the schedule's
	 * period cannot leave a fire waiting behind a later one until it is late. */
	int64_t nx = sched_def_next(d, f);
	return nx > f ? f + j % (nx - f) : f + j;
}

/* The first fire time after a run of late ones that may still be on time at now (-1: none left). */
static int64_t
past_late_run(const struct sched_def *d, int64_t t, int64_t now_ms)
{
	int64_t j = sched_def_next(d, now_ms - d->grace_ms - d->jitter_s * 1000 - 1);
	return (j >= 0 && j <= t) ? sched_def_next(d, t) : j;
}

int64_t
sched_def_plan(const struct sched_def *d, int64_t next, int64_t now_ms, int64_t *fires, size_t max, size_t *n,
               uint64_t *missed)
{
	int64_t t = next;
	int took_once = 0, walked = 0, all = 0;
	*n = 0;
	*missed = 0;
	while (t >= 0 && *n < max && sched_def_due(d, t) <= now_ms) {
		if (now_ms <= sched_def_due(d, t) + d->grace_ms) {
			fires[(*n)++] = t; /* on time */
			t = sched_def_next(d, t);
			continue;
		}
		if (d->misfire == SCHED_MISFIRE_ONCE && !took_once) {
			fires[(*n)++] = t;
			took_once = 1;
		} else if (d->misfire == SCHED_MISFIRE_ALL && all < d->misfire_max) {
			fires[(*n)++] = t;
			all++;
		} else if (++walked > PLAN_WALK_MAX) {
			/* A long run of misses (a week of "@every 1s"): jump past it; the count takes the rest as
			 * one. (misfire_max < SCHED_PLAN_MAX, so a claim never stops inside a run of misses with its
			 * budget spent: the next claim cannot start a second budget for the same run.) */
			(*missed)++;
			t = past_late_run(d, t, now_ms);
			walked = 0;
			continue;
		} else
			(*missed)++;
		t = sched_def_next(d, t);
	}
	return t;
}

void
sched_job_id(const char *name, int64_t fire_ms, char *out, size_t outlen)
{
	snprintf(out, outlen, "sched-%s-%" PRId64, name, fire_ms);
}

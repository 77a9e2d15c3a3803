/*
 * sched_def: a schedule's definition (schema/schedule.schema.json) and the pure decisions made from it: the
 * next fire times, and which fire times one claim submits (the misfire policy). No I/O besides reading the
 * time zone file once in sched_def_parse; no clock: every "now" is passed in (the daemon passes Redis's).
 *
 * A fire time is the nominal instant the spec names (UTC ms); the job's id derives from it
 * (sched_job_id), so a fire time can create at most one job. Its due time is the fire time plus the
 * schedule's deterministic jitter (sched_jitter_ms), the same on every daemon. A fire is on time while
 * now <= due + grace; later it is missed and the misfire policy decides: skip (no job), once (one job for
 * the first missed fire of the run of misses), all (one job per missed fire, at most misfire_max).
 */
#ifndef HOPPER_SCHED_DEF_H
#define HOPPER_SCHED_DEF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sched_time.h"

#define SCHED_NAME_MAX      48 /* keeps sched-NAME-<ms> inside an owner's id space (job_ns.h) */
#define SCHED_TZ_MAX        64
#define SCHED_MISFIRE_MAX   100   /* misfire all: most missed fires one claim submits */
#define SCHED_JITTER_MAX_S  86400 /* one day */
#define SCHED_GRACE_DEFAULT 60    /* seconds a fire may be late and still count as on time */
#define SCHED_GRACE_MAX_S   86400
#define SCHED_PLAN_MAX      200            /* fire times one claim may submit: more than SCHED_MISFIRE_MAX */
#define SCHED_PER_QUEUE_MAX 1000           /* schedules one queue may hold (bounds list and the due set) */
#define SCHED_TIME_MAX_S    253402300799LL /* 9999-12-31T23:59:59Z */

enum sched_misfire { SCHED_MISFIRE_SKIP, SCHED_MISFIRE_ONCE, SCHED_MISFIRE_ALL };

struct sched_zone;

/* A parsed definition. zone is owned (NULL = UTC); job is a new reference. Free with sched_def_free. */
struct sched_def {
	char name[SCHED_NAME_MAX + 1];
	char cron[SCHED_SPEC_MAX + 1];
	struct sched_spec spec;
	char tz[SCHED_TZ_MAX + 1];
	struct sched_zone *zone;
	enum sched_misfire misfire;
	int misfire_max;
	int64_t grace_ms;
	int64_t start_ms; /* 0: none */
	int64_t end_ms;   /* 0: none */
	int64_t jitter_s;
	int paused;
	json_t *job; /* the job template: type, args, queue and the other job fields; never an id */
};

/*
 * Parses and checks a definition object (the stored form: "job" present; schedule.put turns "workflow" into
 * "job" before). Returns 0 and fills *out, or -1 with a readable reason naming the field (nothing to free).
 */
int sched_def_parse(json_t *def, struct sched_def *out, char *err, size_t errlen);
void sched_def_free(struct sched_def *d);

/* 1 if s is a valid schedule name: 1..SCHED_NAME_MAX of letters, digits and . _ - */
int sched_name_valid(const char *s);

/* The first fire time strictly after after_ms inside the window, or -1 (none: ended, or never fires). */
int64_t sched_def_next(const struct sched_def *d, int64_t after_ms);
/* The due time of fire time f: f plus its jitter, which never reaches the next fire time. */
int64_t sched_def_due(const struct sched_def *d, int64_t f);

/*
 * What one claim of a due schedule does. next is the stored next fire time (due: its due time <= now_ms).
 * Fills fires[0..*n) (ascending, at most max) with the fire times to submit: every one still on time, and
 * the missed ones the misfire policy keeps. Returns the new next fire time (-1: none left); *missed counts
 * the fire times passed over without a job (a run of misses too long to walk counts once).
 */
int64_t sched_def_plan(const struct sched_def *d, int64_t next, int64_t now_ms, int64_t *fires, size_t max, size_t *n,
                       uint64_t *missed);

/* "sched-NAME-<fire_ms>" into out (at least SCHED_NAME_MAX + 32 bytes). */
void sched_job_id(const char *name, int64_t fire_ms, char *out, size_t outlen);

const char *sched_misfire_name(enum sched_misfire m);

#endif

/*
 * job_limits: a job message's "rate_limit" field (README "Rate limits and concurrency keys",
 * schema/job.schema.json): {"key": "api.example.com", "rate": "10/s", "burst": 20}. A pure parser called by
 * job_parse, and the one-line argument form hopperd hands to the Redis functions (daemon/lua/17_limits.lua).
 */
#ifndef HOPPER_JOB_LIMITS_H
#define HOPPER_JOB_LIMITS_H

#include <jansson.h>
#include <stddef.h>

#define JOB_RL_KEY_MAX   200           /* part of a Redis key name: a name, not a blob */
#define JOB_RL_RATE_MAX  1e6           /* per second: more than Redis can admit; a typo, not a limit */
#define JOB_RL_RATE_MIN  (1.0 / 86400) /* one a day: slower limits are schedules */
#define JOB_RL_BURST_MAX 1000000
#define JOB_RL_ARG_MAX   64

struct job_limits {
	char rl_key[JOB_RL_KEY_MAX + 1]; /* empty: no rate limit */
	double rate_per_s;
	int burst; /* jobs that may start at once from an idle bucket; default 1 */
};

/* Reads root's "rate_limit" into *out (zeroed first). Returns 0, or -1 with a reason naming the field. */
int job_limits_parse(json_t *root, struct job_limits *out, char *err, size_t errlen);

/* The argument form for the Redis functions: "" for none, else "INTERVAL_MS<TAB>BURST". */
void job_limits_arg(const struct job_limits *l, char *buf, size_t len);

#endif

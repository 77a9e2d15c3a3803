/*
 * job_limits: a job message's "rate_limit" and "concurrency" fields (README "Rate limits and concurrency
 * keys", schema/job.schema.json): {"key": "api.example.com", "rate": "10/s", "burst": 20} and {"key":
 * "customer:42", "limit": 2}. Pure parsers called by job_parse, and the one-line argument forms hopperd hands
 * to the Redis functions (daemon/lua/17_limits.lua), which never decode a message themselves.
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
#define JOB_CC_LIMIT_MAX 10000 /* running jobs per key: beyond that a key limits nothing */

struct job_limits {
	char rl_key[JOB_RL_KEY_MAX + 1]; /* empty: no rate limit */
	double rate_per_s;
	int burst;                       /* jobs that may start at once from an idle bucket; default 1 */
	char cc_key[JOB_RL_KEY_MAX + 1]; /* empty: no concurrency key */
	int cc_limit;                    /* at most this many of the key's jobs hold a worker at once */
};

/* Reads root's "rate_limit" and "concurrency" into *out (zeroed first). Returns 0, or -1 with a reason
 * naming the field. */
int job_limits_parse(json_t *root, struct job_limits *out, char *err, size_t errlen);

/* The argument form for the Redis functions: "" for none, else "INTERVAL_MS<TAB>BURST". */
void job_limits_arg(const struct job_limits *l, char *buf, size_t len);
/* The concurrency argument: "" for none, else the limit N in decimal. */
void job_limits_cc_arg(const struct job_limits *l, char *buf, size_t len);

#endif

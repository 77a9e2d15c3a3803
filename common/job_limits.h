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

/*
 * Configured rate limits (hopperd.conf rate_limits, queue_rate_limits): named limits a job may use by name
 * ("rate_limit": "stripe"), and per-queue defaults that apply to every job of the queue that names no rate
 * limit of its own. A configured limit is deployment-wide: its bucket is shared by every owner's jobs (the
 * operator's limit on a shared resource), unlike a job's own {"key": ...} limit, which is per owner. Its
 * bucket key is "=NAME" ('=' cannot start a job-given key, so the two never meet; daemon/redis/rfunc.c builds it
 * without the owner scope). Every daemon should be configured alike: a daemon that does not know a name a job
 * uses refuses the job (dead, with the reason).
 */
#define JOB_RL_NAMED_MAX 64
#define JOB_RL_QUEUE_MAX 64 /* = QUEUE_NAME_MAX (job.h; checked in job_limits.c) */
struct job_rl_named {
	char name[JOB_RL_KEY_MAX + 1];
	double rate_per_s;
	int burst;
};
struct job_rl_config {
	struct job_rl_named named[JOB_RL_NAMED_MAX];
	int nnamed;
	struct {
		char queue[JOB_RL_QUEUE_MAX + 1];
		int named; /* index into named[] */
	} queue_default[JOB_RL_NAMED_MAX];
	int nqueue;
};

/* Parses "NAME:RATE[:BURST] ..." (rate as in jobs: 10/s, 100/m, 3600/h; separated by spaces or commas) and
 * "QUEUE:NAME ..." into *out (zeroed first). Returns 0, or -1 with a reason naming the entry. */
int job_rl_config_parse(const char *named, const char *queues, struct job_rl_config *out, char *err, size_t errlen);

/* Reads root's "rate_limit" and "concurrency" into *out (zeroed first). cfg (NULL: none) resolves a named
 * "rate_limit": "NAME" and gives queue's default limit to a job without one. Returns 0, or -1 with a reason
 * naming the field. */
int job_limits_parse(json_t *root, const char *queue, const struct job_rl_config *cfg, struct job_limits *out,
                     char *err, size_t errlen);

/* The argument form for the Redis functions: "" for none, else "INTERVAL_MS<TAB>BURST". */
void job_limits_arg(const struct job_limits *l, char *buf, size_t len);
/* The concurrency argument: "" for none, else the limit N in decimal. */
void job_limits_cc_arg(const struct job_limits *l, char *buf, size_t len);

#endif

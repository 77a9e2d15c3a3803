/*
 * job_flow: a job message's flow-control fields "unique" and "debounce" (README "Unique jobs and debounce",
 * schema/job.schema.json). A pure parser called by job_parse, and the one-line form hopperd hands to the Redis
 * functions (daemon/lua/16_flow.lua), which never decode a message themselves.
 */
#ifndef HOPPER_JOB_FLOW_H
#define HOPPER_JOB_FLOW_H

#include <jansson.h>
#include <stddef.h>

#define JOB_FLOW_KEY_MAX      200            /* the key is part of a Redis key name: a name, not a blob */
#define JOB_FLOW_TTL_MAX_S    (30.0 * 86400) /* a unique lock outliving a month is a bug, not a lock */
#define JOB_FLOW_DELAY_MAX_S  86400.0        /* a day: longer waits are schedules (run_at) */
#define JOB_FLOW_WAIT_MAX_S   (7.0 * 86400)  /* as a job's own timeout bound */
#define JOB_FLOW_WAIT_DEFAULT 10             /* max_wait_s when absent: this many delays */
#define JOB_FLOW_ARG_MAX      (JOB_FLOW_KEY_MAX + 64)

enum job_flow_kind { JOB_FLOW_NONE, JOB_FLOW_UNIQUE, JOB_FLOW_DEBOUNCE };
enum job_flow_until { JOB_UNTIL_FINISHED, JOB_UNTIL_STARTED, JOB_UNTIL_TTL };

struct job_flow {
	enum job_flow_kind kind;
	/* "u:KEY" or "d:KEY": the variable part of the lock's Redis key (rfunc.c scopes it by queue and owner),
	 * so a unique key and a debounce key of the same text never meet. Empty for JOB_FLOW_NONE. */
	char lock[JOB_FLOW_KEY_MAX + 3];
	enum job_flow_until until; /* unique */
	double ttl_s;              /* unique: lock lifetime; 0 = until the event alone (started / finished) */
	double delay_s;            /* debounce: start this long after the latest submit ... */
	double max_wait_s;         /* ... but never later than this after the first one */
};

/*
 * Reads root's "unique" and "debounce" fields into *out (zeroed first; kind NONE when neither is there).
 * has_run_at: the message names a run_at (debounce decides the start itself, so the two exclude each
 * other). Returns 0, or -1 with a reason in err that names the field.
 */
int job_flow_parse(json_t *root, int has_run_at, struct job_flow *out, char *err, size_t errlen);

/*
 * The argument form for the Redis functions (at most JOB_FLOW_ARG_MAX bytes with the NUL): "" for none,
 * "u<TAB>UNTIL<TAB>TTL_S" (until: started, finished, ttl; ttl 0 = none) or "d<TAB>DELAY_S<TAB>MAX_WAIT_S".
 */
void job_flow_arg(const struct job_flow *f, char *buf, size_t len);

const char *job_flow_until_name(enum job_flow_until u);

#endif

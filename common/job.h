/*
 * job: the job model shared by daemon, worker and client: the wire format's parser and validator (a pure
 * function over the message bytes), the state names, the outcome of an attempt, and retry backoff.
 * The format is documented in schema/job.schema.json and README.md.
 */
#ifndef HOPPER_JOB_H
#define HOPPER_JOB_H

#include <jansson.h>
#include <stddef.h>

#include "job_flow.h"
#include "job_limits.h"

#define JOB_ID_MAX             128 /* a UUID is 36, a ULID 26; room for client-chosen ids with a prefix */
#define JOB_TYPE_MAX           64
#define QUEUE_NAME_MAX         64
#define JOB_OWNER_MAX          128
#define JOB_IDEM_KEY_MAX       256
#define JOB_MAX_ATTEMPTS_LIMIT 100
#define JOB_TIMEOUT_LIMIT_S    (7.0 * 86400) /* a week: longer work should be split into steps */

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_RETRYING,
	JOB_DEAD,
	JOB_CANCELLED,
	JOB_SCHEDULED, /* parked (a workflow run's durable wait): in the scheduled set until its time or a wake */
	JOB_STATE_COUNT
};

struct job_defaults {
	size_t max_bytes; /* a message longer than this is dead on arrival */
	int max_attempts; /* when the job does not say */
	double timeout_s; /* when the job does not say */
	double backoff_base_s;
	double backoff_max_s;
	const struct job_rl_config *rl; /* configured rate limits (NULL: none) */
};

/* A validated job. Strings are owned copies; args is a new reference. Free with job_spec_free. */
struct job_spec {
	char id[JOB_ID_MAX + 1]; /* empty when the message had none: the caller assigns one */
	char type[JOB_TYPE_MAX + 1];
	char queue[QUEUE_NAME_MAX + 1];
	json_t *args;
	int max_attempts;
	double timeout_s;
	double created_at; /* 0 when absent */
	double run_at;     /* 0 when absent */
	double backoff_base_s;
	double backoff_max_s;
	char *owner;              /* NULL when absent */
	char *idempotency_key;    /* NULL when absent */
	struct job_flow flow;     /* "unique" / "debounce" (job_flow.h); kind NONE when absent */
	struct job_limits limits; /* "rate_limit" (job_limits.h); rl_key empty when absent */
	/* "parent": {"id", "queue"}: the workflow run that enqueued it and waits for its end (hopperd sets it,
	 * README "Durable waits"); both empty when absent */
	char parent_id[JOB_ID_MAX + 1];
	char parent_queue[QUEUE_NAME_MAX + 1];
};

/*
 * Parses and validates one job message. queue is the queue the message was taken from (it wins over the
 * message's own "queue" field, which must match if present). Returns 0 and fills *out (caller calls
 * job_spec_free), or -1 with a readable reason in err (nothing to free).
 */
int job_parse(const char *buf, size_t len, const char *queue, const struct job_defaults *defaults, struct job_spec *out,
              char *err, size_t errlen);
void job_spec_free(struct job_spec *spec);

/* 1 if s is a valid id, queue or type name (letters, digits and ._:- ; 1..max bytes). */
int job_name_valid(const char *s, size_t max);
/* 1 if a handler of this name is built into the worker. */
int job_type_known(const char *type);
/* NULL-terminated list of the built-in job types, for help texts and the worker's self-check. */
extern const char *const job_type_names[];

/* Writes a random UUIDv4 (36 chars + NUL). Returns -1 if the system has no randomness to give. */
int job_new_id(char out[37]);

const char *job_state_name(enum job_state state);
/* Returns the state named s, or -1. */
int job_state_parse(const char *s);
int job_state_terminal(enum job_state state);
/* 1 if a job in state from may move to state to (terminal states never move, except by an explicit retry). */
int job_transition_allowed(enum job_state from, enum job_state to);

/* What a finished attempt leads to. */
enum job_state job_outcome(int ok, int retryable, int attempt, int max_attempts);

/*
 * Delay before retry number `attempt` (1 = after the first failure): base * 2^(attempt-1), capped at max,
 * then "equal jitter": half of it fixed, half scaled by unit_random in [0,1).
 */
double job_backoff_s(int attempt, double base_s, double max_s, double unit_random);

#endif

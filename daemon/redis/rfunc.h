/*
 * rfunc: the one table of hopper's Redis functions (the files of daemon/lua) and the only place that spells
 * Redis key names (schema/redis-keys.md).
 *
 * Each row says a function's name, the kinds of the keys it receives in KEYS (in order), the names of its
 * arguments (in order) and its flags. A call is built from the row: rcall_new picks the row, rcall_key
 * builds each key from the call's context (queue, node, job id, idempotency key and its owner), rcall_arg sets
 * an argument by name (a name the row lacks, or one left unset, is a programming error and aborts), and rcall_send /
 * rcall_batch send it as FCALL / FCALL_RO or as an entry of the loop turn's hopper_batch of the call's hash
 * tag. The Lua side declares the same rows (SPEC in 00_common.lua); `hopperd --functions` prints this table
 * and tests/e2e/core_functions.sh checks it against the loaded library, so the two cannot drift.
 *
 * Key layout: per-queue keys are P{Q}:KIND[:VAR] (hash tag {Q}), deployment-wide keys P{@}:KIND[:VAR]
 * (tag {@}; no queue can be named @). The kind comes before the variable part, so no id can name a key of
 * another kind.
 */
#ifndef HOPPER_RFUNC_H
#define HOPPER_RFUNC_H

#include <stddef.h>

#include "redis.h"

struct server;

/* Key kinds. RK_G_* are deployment-wide (tag {@}); the others belong to the call's queue. */
enum rkey {
	RK_QUEUE,       /* P{Q}:queue */
	RK_INFLIGHT,    /* P{Q}:inflight:NODE */
	RK_SCHEDULED,   /* P{Q}:scheduled */
	RK_PAUSED,      /* P{Q}:paused */
	RK_JOB,         /* P{Q}:job:ID */
	RK_EVENTS,      /* P{Q}:events:ID */
	RK_STEPS,       /* P{Q}:steps:ID */
	RK_IDEM,        /* P{Q}:idem:KEY (no owner) or P{Q}:idem:@LEN:OWNER:KEY */
	RK_DEAD,        /* P{Q}:dead */
	RK_DEADMSG,     /* P{Q}:deadmsg */
	RK_JOBS,        /* P{Q}:jobs */
	RK_STATS,       /* P{Q}:stats */
	RK_REAPED,      /* P{Q}:reaped */
	RK_G_SEEN,      /* P{@}:seen */
	RK_G_SINCE,     /* P{@}:since */
	RK_G_SEQ,       /* P{@}:seq */
	RK_G_INC,       /* P{@}:inc */
	RK_G_NODEQ,     /* P{@}:nodeq */
	RK_G_HB,        /* P{@}:hb */
	RK_G_REAPING,   /* P{@}:reaping */
	RK_G_PAUSED,    /* P{@}:paused */
	RK_G_QUEUES,    /* P{@}:queues */
	RK_G_CINFL,     /* P{@}:celery:inflight:NODE */
	RK_G_CNODES,    /* P{@}:celery:nodes */
	RK_G_CREVOK,    /* P{@}:celery:revoked */
	RK_FLOW,        /* P{Q}:flow:LOCK or P{Q}:flow:@LEN:OWNER:LOCK (LOCK: u:KEY unique, d:KEY debounce) */
	RK_RL,          /* P{Q}:rl:[@LEN:OWNER:]KEY a rate limit's bucket (17_limits.lua) */
	RK_CC,          /* P{Q}:cc:[@LEN:OWNER:]KEY the jobs holding a concurrency key's slots */
	RK_CCQ,         /* P{Q}:ccq the concurrency keys that have waiters, with their limits */
	RK_SCHEDS,      /* P{Q}:scheds the names of the queue's schedules (15_sched.lua) */
	RK_SCHED,       /* P{Q}:sched:NAME one schedule (rctx.id = NAME) */
	RK_SCHED_DUE,   /* P{Q}:sched_due schedule names by due time */
	RK_G_TOKENS,    /* P{@}:tokens the deployment's control-socket tokens (18_shared.lua) */
	RK_G_TOKNAMES,  /* P{@}:token_names token name -> id */
	RK_G_SHVER,     /* P{@}:shared_ver the shared set's version counter */
	RK_G_WORKFLOWS, /* P{@}:workflows the deployment's stored workflows (18_shared.lua) */
	RK_G_EVT,       /* P{@}:evt:[@LEN:OWNER:]KEY an event key's events (stream; 20_events.lua) */
	RK_G_EVW,       /* P{@}:evw:[@LEN:OWNER:]KEY the runs waiting for it */
	RK_COUNT
};

enum rf {
	RF_FETCH,
	RF_CLAIM,
	RF_RUN,
	RF_PROGRESS,
	RF_FINISH,
	RF_REQUEUE,
	RF_BURY,
	RF_ACK,
	RF_PROMOTE,
	RF_HEARTBEAT,
	RF_REAP,
	RF_RETURN,
	RF_REAPED_DONE,
	RF_RECONCILE,
	RF_HELD,
	RF_STEP_SAVE,
	RF_ENQUEUE,
	RF_WF_RESTART,
	RF_CELERY_TAKE,
	RF_CELERY_ENQUEUE,
	RF_CELERY_REFUSE,
	RF_CELERY_REVOKE,
	RF_CELERY_CANCEL,
	RF_CELERY_REVOKED,
	RF_CELERY_REPLY,
	RF_CTL_SUBMIT,
	RF_CTL_CANCEL,
	RF_CTL_RETRY,
	RF_CTL_LIST,
	RF_CTL_PAUSE,
	RF_CTL_PAUSE_G,
	RF_CTL_QUEUES,
	RF_CTL_COUNTERS,
	RF_CTL_NODES,
	RF_CTL_STATE,
	RF_DEAD_SCAN,
	RF_DEAD_RETRY,
	RF_SCHED_PUT,
	RF_SCHED_RM,
	RF_SCHED_PAUSE,
	RF_SCHED_DUE,
	RF_SCHED_FIRE,
	RF_SCHED_LIST,
	RF_SCHED_SHOW,
	RF_PARK,
	RF_WAKE,
	RF_TOKEN_PUT,
	RF_TOKEN_REVOKE,
	RF_TOKEN_VERIFIER,
	RF_TOKENS_GET,
	RF_SHARED_VER,
	RF_WF_PUT,
	RF_WF_RM,
	RF_EVENT_SEND,
	RF_EVENT_WAIT,
	RF_EVENT_LIST,
	RF_WAIT_NOTE,
	RF_EVENT_UNWAIT,
	RF_COUNT
};

#define RF_NO_WRITES 1u /* registered no-writes, called FCALL_RO; works under OOM */
#define RF_ALLOW_OOM 2u /* registered allow-oom: frees or moves memory (finish, requeue...), runs under OOM */

#define RF_MAX_KEYS 16
#define RF_MAX_ARGS 24

struct rfunc {
	const char *name;
	enum rkey keys[RF_MAX_KEYS];
	int nkeys;
	int var_keys; /* 1: then any number of further keys (rcall_key) */
	const char *args[RF_MAX_ARGS];
	int var_args; /* 1: then any number of extra arguments (rcall_more) */
	unsigned flags;
};

extern const struct rfunc rfuncs[RF_COUNT];

/* The call's context: from it come its keys. Strings are copied. */
struct rctx {
	const char *queue; /* NULL for deployment-wide calls */
	const char *node;  /* inflight / celery inflight owner; NULL = this daemon */
	const char *id;    /* job id (job, events, steps) */
	const char *idem;  /* idempotency key */
	const char *owner; /* the job's owner, which scopes its idempotency key; NULL or "" for none */
	const char *flow;  /* unique / debounce lock name (job_flow.lock), scoped by owner like idem */
	const char *rl;    /* rate limit key (job_limits.rl_key), scoped the same way */
	const char *cc;    /* concurrency key (job_limits.cc_key), scoped the same way */
	const char *ev;    /* event key (ctl_event.c), scoped the same way */
};

struct rcall;

/* A call of function f. Keys are built now from the row and ctx. Free with rcall_send/rcall_batch. */
struct rcall *rcall_new(const struct server *s, enum rf f, const struct rctx *ctx);
/* Sets the argument called name (binary-safe; len -1 = strlen). */
void rcall_arg(struct rcall *c, const char *name, const char *value, long len);
void rcall_int(struct rcall *c, const char *name, long long v);
void rcall_num(struct rcall *c, const char *name, double v);
/* Appends a variadic argument (rows with var_args). */
void rcall_more(struct rcall *c, const char *value, long len);
/* Appends a key of kind k built from ctx (rows with var_keys: held's job hashes, ctl_queues' inflight lists,
 * ctl_submit's job/events/idem triples). */
void rcall_key(struct rcall *c, enum rkey k, const struct rctx *ctx);
/* Sends it now (FCALL or FCALL_RO) / adds it to its tag's batch. Frees c. Returns 0, or -1 when Redis is down. */
int rcall_send(struct server *s, struct rcall *c, redis_cb *cb, void *priv);
int rcall_batch(struct server *s, struct rcall *c, redis_cb *cb, void *priv);
/* Sends it on a blocking connection (redis_sync, the command-line modes) and waits. Frees c. Returns the
 * reply (free with redis_sync_reply_free), or NULL when the connection failed. */
struct redis_reply *rcall_sync(struct server *s, struct rcall *c, struct redis_sync *rs);

struct job_spec;
/* Appends one job to a ctl_submit-style call (ctl_submit, sched_fire): its job, events, idem and flow keys
 * and its nine arguments (id, type, max_attempts, created_at, owner, idem, run_at, payload, flow). */
void rcall_submit_job(struct rcall *c, const char *queue, const struct job_spec *sp, const char *payload);

/* A key name (caller frees): for the few plain commands (BLMOVE, HGETALL of a job for a watch...). */
char *rkey_name(const struct server *s, enum rkey k, const struct rctx *ctx);
/* Channel names (caller frees): P{@}:control, P{@}:events, P{Q}:job:ID, P{@}:ping:NODE. */
char *rchan_control(const struct server *s);
char *rchan_job(const struct server *s, const char *queue, const char *id);
char *rchan_ping(const struct server *s);
/* P{@}:shared: a notice after each write of the shared set (18_shared.lua). Caller frees. */
char *rchan_shared(const struct server *s);

/* Prints "name keys=k1,k2 args=a1,a2 flags=..." per function (hopperd --functions). */
void rfunc_print(void);

#endif

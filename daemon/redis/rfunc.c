/* rfunc: the table of hopper's Redis functions and the key builder (see rfunc.h). */
#include "rfunc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopperd.h"
#include "log.h"
#include "xmalloc.h"

/* The kind's name (as in SPEC of 00_common.lua) and its key pattern after P: q = {Q}, g = {@}. */
static const struct {
	const char *name;
	int global;
	const char *kind; /* the text after the tag */
	enum { V_NONE, V_NODE, V_ID, V_IDEM, V_FLOW, V_RL, V_CC, V_EV } var;
} kinds[RK_COUNT] = {
        [RK_QUEUE] = {"queue", 0, "queue", V_NONE},
        [RK_INFLIGHT] = {"inflight", 0, "inflight", V_NODE},
        [RK_SCHEDULED] = {"scheduled", 0, "scheduled", V_NONE},
        [RK_PAUSED] = {"paused", 0, "paused", V_NONE},
        [RK_JOB] = {"job", 0, "job", V_ID},
        [RK_EVENTS] = {"events", 0, "events", V_ID},
        [RK_STEPS] = {"steps", 0, "steps", V_ID},
        [RK_IDEM] = {"idem", 0, "idem", V_IDEM},
        [RK_DEAD] = {"dead", 0, "dead", V_NONE},
        [RK_DEADMSG] = {"deadmsg", 0, "deadmsg", V_NONE},
        [RK_JOBS] = {"jobs", 0, "jobs", V_NONE},
        [RK_STATS] = {"stats", 0, "stats", V_NONE},
        [RK_REAPED] = {"reaped", 0, "reaped", V_NONE},
        [RK_G_SEEN] = {"g_seen", 1, "seen", V_NONE},
        [RK_G_SINCE] = {"g_since", 1, "since", V_NONE},
        [RK_G_SEQ] = {"g_seq", 1, "seq", V_NONE},
        [RK_G_INC] = {"g_inc", 1, "inc", V_NONE},
        [RK_G_NODEQ] = {"g_nodeq", 1, "nodeq", V_NONE},
        [RK_G_HB] = {"g_hb", 1, "hb", V_NONE},
        [RK_G_REAPING] = {"g_reaping", 1, "reaping", V_NONE},
        [RK_G_PAUSED] = {"g_paused", 1, "paused", V_NONE},
        [RK_G_QUEUES] = {"g_queues", 1, "queues", V_NONE},
        [RK_G_CINFL] = {"g_cinflight", 1, "celery:inflight", V_NODE},
        [RK_G_CNODES] = {"g_cnodes", 1, "celery:nodes", V_NONE},
        [RK_G_CREVOK] = {"g_crevoked", 1, "celery:revoked", V_NONE},
        [RK_FLOW] = {"flow", 0, "flow", V_FLOW},
        [RK_RL] = {"rl", 0, "rl", V_RL},
        [RK_CC] = {"cc", 0, "cc", V_CC},
        [RK_CCQ] = {"ccq", 0, "ccq", V_NONE},
        [RK_SCHEDS] = {"scheds", 0, "scheds", V_NONE},
        [RK_SCHED] = {"sched", 0, "sched", V_ID},
        [RK_SCHED_DUE] = {"sched_due", 0, "sched_due", V_NONE},
        [RK_G_TOKENS] = {"g_tokens", 1, "tokens", V_NONE},
        [RK_G_TOKNAMES] = {"g_toknames", 1, "token_names", V_NONE},
        [RK_G_SHVER] = {"g_shver", 1, "shared_ver", V_NONE},
        [RK_G_WORKFLOWS] = {"g_workflows", 1, "workflows", V_NONE},
        [RK_G_EVT] = {"g_evt", 1, "evt", V_EV},
        [RK_G_EVW] = {"g_evw", 1, "evw", V_EV},
};

#define K(...) {__VA_ARGS__}, sizeof((enum rkey[]){__VA_ARGS__}) / sizeof(enum rkey)
#define NOKEYS {RK_QUEUE}, 0
#define A(...)                                                                                                         \
	{                                                                                                              \
		__VA_ARGS__, NULL                                                                                      \
	}
#define NOARGS                                                                                                         \
	{                                                                                                              \
		NULL                                                                                                   \
	}

/* Keep in step with SPEC in daemon/lua/00_common.lua (tests/e2e/core_functions.sh checks it). */
const struct rfunc rfuncs[RF_COUNT] = {
        [RF_FETCH] = {"fetch", K(RK_QUEUE, RK_INFLIGHT, RK_PAUSED), 0, A("max"), 0, RF_ALLOW_OOM},
        [RF_CLAIM] = {"claim",
                      K(RK_QUEUE, RK_INFLIGHT, RK_PAUSED, RK_JOB, RK_EVENTS, RK_IDEM, RK_JOBS, RK_STATS, RK_REAPED,
                        RK_SCHEDULED, RK_DEAD, RK_DEADMSG, RK_FLOW, RK_RL, RK_CC),
                      0,
                      A("raw", "payload", "id", "type", "max_attempts", "created_at", "owner", "idem", "run_at", "node",
                        "inc", "max_stalls", "ttl", "max_events", "dead_max", "dead_age", "flow", "rl", "cc"),
                      0, 0},
        [RF_ACK] = {"ack", K(RK_INFLIGHT), 0, A("raw"), 0, RF_ALLOW_OOM},
        [RF_RUN] = {"run", K(RK_JOB, RK_EVENTS), 0,
                    A("id", "fence", "node", "pid", "attempt", "max_attempts", "ttl", "max_events"), 0, RF_ALLOW_OOM},
        [RF_PROGRESS] = {"progress", K(RK_JOB, RK_EVENTS), 0,
                         A("id", "fence", "attempt", "progress", "stage", "message", "ttl", "max_events"), 0,
                         RF_ALLOW_OOM},
        [RF_FINISH] = {"finish", K(RK_INFLIGHT, RK_JOB, RK_EVENTS, RK_SCHEDULED, RK_DEAD, RK_DEADMSG, RK_STATS), 0,
                       A("payload", "id", "fence", "node", "outcome", "attempt", "error", "result", "delay", "ran",
                         "pid", "max_attempts", "ttl", "max_events", "dead_max", "dead_age"),
                       0, RF_ALLOW_OOM},
        [RF_REQUEUE] = {"requeue", K(RK_INFLIGHT, RK_QUEUE, RK_JOB, RK_EVENTS), 0,
                        A("payload", "id", "fence", "attempt", "ttl", "max_events"), 0, RF_ALLOW_OOM},
        [RF_BURY] = {"bury", K(RK_INFLIGHT, RK_DEAD, RK_DEADMSG, RK_STATS), 0,
                     A("raw", "entry_id", "entry", "dead_max", "dead_age"), 0, RF_ALLOW_OOM},
        [RF_PROMOTE] = {"promote", K(RK_SCHEDULED, RK_QUEUE, RK_CCQ, RK_REAPED), 0, A("limit"), 0, RF_ALLOW_OOM},
        [RF_HEARTBEAT] = {"heartbeat",
                          K(RK_G_SEEN, RK_G_SINCE, RK_G_SEQ, RK_G_INC, RK_G_NODEQ, RK_G_HB, RK_G_REAPING, RK_G_QUEUES),
                          0, A("node", "inc", "seq", "lease_ms", "gap_ms", "check", "hb", "queues"), 0, RF_ALLOW_OOM},
        [RF_REAP] = {"reap", K(RK_G_SEEN, RK_G_SINCE, RK_G_SEQ, RK_G_INC, RK_G_NODEQ, RK_G_HB, RK_G_REAPING), 0,
                     A("node", "inc", "seq", "lease_ms"), 0, RF_ALLOW_OOM},
        [RF_RETURN] = {"return", K(RK_INFLIGHT, RK_QUEUE, RK_REAPED), 0, A("inc", "ttl"), 0, RF_ALLOW_OOM},
        [RF_REAPED_DONE] = {"reaped_done", K(RK_G_REAPING), 0, A("node", "inc"), 0, RF_ALLOW_OOM},
        [RF_RECONCILE] = {"reconcile", K(RK_INFLIGHT, RK_QUEUE), 0, NOARGS, 1, RF_ALLOW_OOM},
        [RF_HELD] = {"held", NOKEYS, 1, NOARGS, 1, RF_NO_WRITES},
        [RF_STEP_SAVE] = {"step_save", K(RK_JOB, RK_STEPS), 0, A("fence", "step", "record", "ttl"), 0, RF_ALLOW_OOM},
        [RF_WF_RESTART] = {"wf_restart", K(RK_JOB, RK_EVENTS, RK_QUEUE, RK_DEAD, RK_DEADMSG, RK_JOBS, RK_STEPS), 0,
                           A("id", "owner", "admin", "ttl", "max_events", "step"), 0, 0},
        [RF_ENQUEUE] = {"enqueue", K(RK_QUEUE, RK_JOB, RK_EVENTS, RK_IDEM, RK_JOBS, RK_STATS, RK_FLOW, RK_SCHEDULED), 0,
                        A("id", "type", "max_attempts", "created_at", "owner", "idem", "payload", "flow", "run_at",
                          "ttl", "max_events"),
                        0, 0},
        [RF_CELERY_TAKE] = {"celery_take", K(RK_G_CINFL, RK_G_CNODES, RK_G_SEEN), 0,
                            A("prefix", "node", "window", "recover", "celery_prefix", "lease_ms"), 1, 0},
        [RF_CELERY_ENQUEUE] = {"celery_enqueue",
                               K(RK_G_CINFL, RK_QUEUE, RK_SCHEDULED, RK_JOB, RK_EVENTS, RK_IDEM, RK_JOBS, RK_STATS,
                                 RK_G_CREVOK),
                               0,
                               A("entry", "id", "type", "max_attempts", "payload", "run_at", "ttl", "max_events",
                                 "result_key", "result_expires", "track_started", "expires", "side", "progress"),
                               0, 0},
        [RF_CELERY_REFUSE] = {"celery_refuse",
                              K(RK_G_CINFL, RK_JOB, RK_EVENTS, RK_IDEM, RK_JOBS, RK_STATS, RK_DEAD, RK_DEADMSG), 0,
                              A("entry", "id", "task", "state", "error", "result_key", "result_expires", "status",
                                "result", "ttl", "max_events", "entry_id", "dead_entry", "dead_max", "dead_age",
                                "payload", "side"),
                              0, RF_ALLOW_OOM},
        [RF_CELERY_REVOKE] = {"celery_revoke", K(RK_G_CREVOK), 0, A("max", "expires"), 1, 0},
        [RF_CELERY_CANCEL] = {"celery_cancel", K(RK_JOB, RK_EVENTS, RK_QUEUE, RK_SCHEDULED, RK_STATS), 0,
                              A("id", "owner", "terminate", "ttl", "max_events", "channel"), 0, RF_ALLOW_OOM},
        [RF_CELERY_REVOKED] = {"celery_revoked", K(RK_G_CREVOK), 0, A("expires"), 0, RF_NO_WRITES},
        [RF_CELERY_REPLY] = {"celery_reply", NOKEYS, 0, A("celery_prefix", "routing_key", "envelope"), 0, 0},
        [RF_CTL_SUBMIT] = {"ctl_submit", K(RK_QUEUE, RK_SCHEDULED, RK_JOBS, RK_STATS), 1, A("ttl", "max_events", "n"),
                           1, 0},
        [RF_CTL_CANCEL] = {"ctl_cancel", K(RK_JOB, RK_EVENTS, RK_QUEUE, RK_SCHEDULED, RK_STATS), 0,
                           A("id", "owner", "admin", "ttl", "max_events", "channel"), 0, RF_ALLOW_OOM},
        [RF_CTL_RETRY] = {"ctl_retry", K(RK_JOB, RK_EVENTS, RK_QUEUE, RK_DEAD, RK_DEADMSG, RK_JOBS), 0,
                          A("id", "owner", "admin", "ttl", "max_events"), 0, 0},
        [RF_CTL_LIST] = {"ctl_list", K(RK_JOBS), 0,
                         A("tag", "score", "cursor_id", "limit", "state", "type", "owner", "scan_max", "max_bytes"), 0,
                         RF_NO_WRITES},
        [RF_CTL_PAUSE] = {"ctl_pause", K(RK_PAUSED), 0, A("on"), 0, RF_ALLOW_OOM},
        [RF_CTL_PAUSE_G] = {"ctl_pause_g", K(RK_G_PAUSED), 0, A("queue", "on", "channel"), 0, RF_ALLOW_OOM},
        [RF_CTL_QUEUES] = {"ctl_queues", K(RK_QUEUE, RK_SCHEDULED, RK_PAUSED, RK_DEAD), 1, NOARGS, 0, RF_NO_WRITES},
        [RF_CTL_COUNTERS] = {"ctl_counters", K(RK_STATS, RK_DEAD), 0, NOARGS, 0, RF_NO_WRITES},
        [RF_CTL_NODES] = {"ctl_nodes", K(RK_G_HB, RK_G_SEEN), 0, A("lease_ms"), 0, RF_NO_WRITES},
        [RF_CTL_STATE] = {"ctl_state", K(RK_G_PAUSED, RK_G_QUEUES, RK_G_SEEN), 0, NOARGS, 0, RF_NO_WRITES},
        [RF_DEAD_SCAN] = {"dead_scan", K(RK_DEAD), 0, A("upto", "older_s", "score", "cursor_id", "limit"), 0,
                          RF_NO_WRITES},
        [RF_DEAD_RETRY] = {"dead_retry", K(RK_QUEUE, RK_DEAD, RK_DEADMSG, RK_JOBS), 1,
                           A("token", "upto", "older_s", "owner", "admin", "type", "error", "ttl", "max_events"), 1, 0},
        [RF_SCHED_PUT] = {"sched_put", K(RK_SCHEDS, RK_SCHED, RK_SCHED_DUE), 0,
                          A("name", "def", "owner", "admin", "cron", "tz", "paused", "max"), 0, 0},
        [RF_SCHED_RM] = {"sched_rm", K(RK_SCHEDS, RK_SCHED, RK_SCHED_DUE), 0, A("name", "owner", "admin"), 0,
                         RF_ALLOW_OOM},
        [RF_SCHED_PAUSE] = {"sched_pause", K(RK_SCHED, RK_SCHED_DUE), 0, A("name", "owner", "admin", "on"), 0,
                            RF_ALLOW_OOM},
        [RF_SCHED_DUE] = {"sched_due", K(RK_SCHED_DUE), 0, A("tag", "limit"), 0, RF_NO_WRITES},
        [RF_SCHED_FIRE] = {"sched_fire", K(RK_SCHED, RK_SCHED_DUE, RK_QUEUE, RK_SCHEDULED, RK_JOBS, RK_STATS), 1,
                           A("name", "ver", "expect", "next", "due", "missed", "error", "ttl", "max_events", "n"), 1,
                           0},
        [RF_SCHED_LIST] = {"sched_list", K(RK_SCHEDS), 0, A("tag", "owner", "admin"), 0, RF_NO_WRITES},
        [RF_SCHED_SHOW] = {"sched_show", K(RK_SCHED), 0, A("owner", "admin"), 0, RF_NO_WRITES},
        [RF_PARK] = {"park", K(RK_INFLIGHT, RK_JOB, RK_EVENTS, RK_SCHEDULED, RK_STEPS), 0,
                     A("payload", "id", "fence", "node", "attempt", "until", "reason", "wake", "ran", "pid", "ttl",
                       "max_events"),
                     0, RF_ALLOW_OOM},
        [RF_WAKE] = {"wake", K(RK_JOB, RK_SCHEDULED), 0, A("child", "owner"), 0, RF_ALLOW_OOM},
        [RF_TOKEN_PUT] = {"token_put", K(RK_G_TOKENS, RK_G_TOKNAMES, RK_G_SHVER), 0,
                          A("id", "name", "owner", "scopes", "verifier", "created_at", "revoked_at", "replace"), 0, 0},
        [RF_TOKEN_REVOKE] = {"token_revoke", K(RK_G_TOKENS, RK_G_SHVER), 0, A("id"), 0, RF_ALLOW_OOM},
        [RF_TOKEN_VERIFIER] = {"token_verifier", K(RK_G_TOKENS, RK_G_SHVER), 0, A("id", "old", "new"), 0, RF_ALLOW_OOM},
        [RF_TOKENS_GET] = {"tokens_get", K(RK_G_TOKENS, RK_G_WORKFLOWS, RK_G_SHVER), 0, NOARGS, 0, RF_NO_WRITES},
        [RF_SHARED_VER] = {"shared_ver", K(RK_G_SHVER), 0, NOARGS, 0, RF_NO_WRITES},
        [RF_WF_PUT] = {"wf_put", K(RK_G_WORKFLOWS, RK_G_SHVER), 0,
                       A("name", "description", "definition", "owner", "active", "created_at", "updated_at"), 0, 0},
        [RF_WF_RM] = {"wf_rm", K(RK_G_WORKFLOWS, RK_G_SHVER), 0, A("name"), 0, RF_ALLOW_OOM},
        [RF_EVENT_SEND] = {"event_send", K(RK_G_EVT, RK_G_EVW), 0, A("data", "keep_ms", "max"), 0, 0},
        [RF_EVENT_WAIT] = {"event_wait", K(RK_G_EVT, RK_G_EVW), 0,
                           A("since_ms", "member", "deadline_ms", "max_waiters"), 0, 0},
        [RF_EVENT_LIST] = {"event_list", K(RK_G_EVT, RK_G_EVW), 0, A("since_ms", "count"), 0, RF_NO_WRITES},
        [RF_WAIT_NOTE] = {"wait_note", K(RK_JOB), 0, A("fence", "key"), 0, RF_ALLOW_OOM},
        [RF_EVENT_UNWAIT] = {"event_unwait", K(RK_G_EVW), 0, A("member"), 0, RF_ALLOW_OOM},
};

/*
 * Every key and argument of a call is a span of one arena (an inline buffer first, the heap only for
 * large payloads), and numbers and key names are written without printf: the claim alone has 15 keys and
 * 19 arguments, and their mallocs and formatting were the largest share of hopperd's CPU per job.
 */
#define RCALL_INLINE 2048

struct span {
	size_t off, len;
};

struct arena {
	char *p;
	size_t used, cap;
	char *inl; /* the inline buffer p starts as (not freed), or NULL */
};

struct rcall {
	const struct server *s;
	enum rf f;
	char tag[QUEUE_NAME_MAX + 3]; /* "{Q}" or "{@}" */
	struct arena a;
	struct span keys[RF_MAX_KEYS];
	size_t nkeys;
	struct span *vkeys; /* variadic keys (var_keys rows) */
	size_t nvkeys, vkeycap;
	struct span args[RF_MAX_ARGS];
	unsigned char set[RF_MAX_ARGS];
	int nargs;
	int next_arg;      /* where rcall_arg looks first: callers set arguments mostly in table order */
	struct span *more; /* variadic arguments */
	size_t nmore, morecap;
	char inl[RCALL_INLINE];
};

static void
arena_put(struct arena *a, const char *v, size_t n)
{
	if (a->used + n + 1 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 128;
		while (cap < a->used + n + 1)
			cap *= 2;
		if (a->p == a->inl) {
			char *p = xmalloc(cap);
			if (a->used > 0)
				memcpy(p, a->p, a->used);
			a->p = p;
		} else
			a->p = xrealloc(a->p, cap);
		a->cap = cap;
	}
	if (n > 0)
		memcpy(a->p + a->used, v, n);
	a->used += n;
}

static void
arena_str(struct arena *a, const char *v)
{
	arena_put(a, v, strlen(v));
}

/* Ends the value begun at off with a NUL (not counted in its length). */
static struct span
arena_end(struct arena *a, size_t off)
{
	struct span sp = {off, a->used - off};
	arena_put(a, "", 0);
	a->p[a->used++] = '\0';
	return sp;
}

/* Writes v in decimal at b (room for 21 bytes); returns the length. */
static size_t
fmt_ll(char *b, long long v)
{
	char t[24];
	size_t k = 0, len = 0;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do
		t[k++] = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		b[len++] = '-';
	while (k > 0)
		b[len++] = t[--k];
	return len;
}

/* v with three decimals, as "%.3f" prints it (times and delays in seconds, to the millisecond). */
static size_t
fmt_ms(char *b, size_t size, double v)
{
	if (!isfinite(v) || fabs(v) >= 1e15)
		return (size_t)snprintf(b, size, "%.3f", v);
	long long m = llround(v * 1000.0);
	size_t len = 0;
	if (m < 0 || (m == 0 && signbit(v)))
		b[len++] = '-';
	unsigned long long u = m < 0 ? 0ULL - (unsigned long long)m : (unsigned long long)m;
	len += fmt_ll(b + len, (long long)(u / 1000));
	unsigned f = (unsigned)(u % 1000);
	b[len++] = '.';
	b[len++] = (char)('0' + f / 100);
	b[len++] = (char)('0' + f / 10 % 10);
	b[len++] = (char)('0' + f % 10);
	b[len] = '\0';
	return len;
}

/* Appends key k's name to a (no NUL). */
static void
key_put(struct arena *a, const struct server *s, enum rkey k, const struct rctx *ctx)
{
	const char *queue = ctx->queue, *node = ctx->node, *id = ctx->id, *idem = ctx->idem, *owner = ctx->owner;
	if (kinds[k].global)
		queue = "@";
	if (queue == NULL)
		fatal("rfunc: key %s needs a queue", kinds[k].name);
	arena_str(a, s->cfg.key_prefix);
	arena_put(a, "{", 1);
	arena_str(a, queue);
	arena_put(a, "}:", 2);
	arena_str(a, kinds[k].kind);
	switch (kinds[k].var) {
	case V_NODE:
		arena_put(a, ":", 1);
		arena_str(a, node ? node : s->cfg.node_id);
		return;
	case V_ID:
		arena_put(a, ":", 1);
		arena_str(a, id ? id : "");
		return;
	case V_FLOW:
	case V_RL:
	case V_CC:
	case V_EV:
	case V_IDEM:
		/* Per owner: P{Q}:idem:KEY for a job without an owner, P{Q}:idem:@LEN:OWNER:KEY for one with (the
		 * length keeps owner and key apart whatever bytes they hold), so another owner's key never collides
		 * with this one or reveals its holder. A unique / debounce lock (flow), a rate limit's bucket and a
		 * concurrency key's slots are scoped the same way: one owner's jobs never use up another's. */
		if (kinds[k].var == V_FLOW)
			idem = ctx->flow;
		else if (kinds[k].var == V_RL)
			idem = ctx->rl;
		else if (kinds[k].var == V_CC)
			idem = ctx->cc;
		else if (kinds[k].var == V_EV)
			idem = ctx->ev;
		arena_put(a, ":", 1);
		/* A configured rate limit ("=NAME", job_limits.h) is the operator's, shared by every owner. */
		if (owner != NULL && owner[0] != '\0' && !(kinds[k].var == V_RL && idem != NULL && idem[0] == '=')) {
			char n[24];
			arena_put(a, "@", 1);
			arena_put(a, n, fmt_ll(n, (long long)strlen(owner)));
			arena_put(a, ":", 1);
			arena_str(a, owner);
			arena_put(a, ":", 1);
		}
		arena_str(a, idem ? idem : "");
		return;
	default: return;
	}
}

void
rcall_submit_job(struct rcall *rc, const char *queue, const struct job_spec *sp, const char *payload)
{
	struct rctx jc = {
	        .queue = queue, .id = sp->id, .idem = sp->idempotency_key, .owner = sp->owner, .flow = sp->flow.lock};
	rcall_key(rc, RK_JOB, &jc);
	rcall_key(rc, RK_EVENTS, &jc);
	rcall_key(rc, RK_IDEM, &jc);
	rcall_key(rc, RK_FLOW, &jc);
	rcall_more(rc, sp->id, -1);
	rcall_more(rc, sp->type, -1);
	char b[48];
	snprintf(b, sizeof(b), "%d", sp->max_attempts);
	rcall_more(rc, b, -1);
	snprintf(b, sizeof(b), "%.3f", sp->created_at);
	rcall_more(rc, sp->created_at > 0 ? b : "", -1);
	rcall_more(rc, sp->owner ? sp->owner : "", -1);
	rcall_more(rc, sp->idempotency_key ? sp->idempotency_key : "", -1);
	snprintf(b, sizeof(b), "%.3f", sp->run_at);
	rcall_more(rc, b, -1);
	rcall_more(rc, payload, -1);
	char flow[JOB_FLOW_ARG_MAX];
	job_flow_arg(&sp->flow, flow, sizeof(flow));
	rcall_more(rc, flow, -1);
}

char *
rkey_name(const struct server *s, enum rkey k, const struct rctx *ctx)
{
	struct arena a = {0};
	key_put(&a, s, k, ctx);
	arena_end(&a, 0);
	return a.p;
}

char *
rchan_control(const struct server *s)
{
	return xasprintf("%s{@}:control", s->cfg.key_prefix);
}

char *
rchan_job(const struct server *s, const char *queue, const char *id)
{
	return xasprintf("%s{%s}:job:%s", s->cfg.key_prefix, queue, id);
}

char *
rchan_ping(const struct server *s)
{
	return xasprintf("%s{@}:ping:%s", s->cfg.key_prefix, s->cfg.node_id);
}

char *
rchan_shared(const struct server *s)
{
	return xasprintf("%s{@}:shared", s->cfg.key_prefix);
}

static struct span
rcall_keyspan(struct rcall *c, enum rkey k, const struct rctx *ctx)
{
	size_t off = c->a.used;
	key_put(&c->a, c->s, k, ctx);
	return arena_end(&c->a, off);
}

struct rcall *
rcall_new(const struct server *s, enum rf f, const struct rctx *ctx)
{
	const struct rfunc *rf = &rfuncs[f];
	struct rcall *c = xmalloc(sizeof(*c));
	c->s = s;
	c->f = f;
	c->a = (struct arena){.p = c->inl, .used = 0, .cap = sizeof(c->inl), .inl = c->inl};
	c->nkeys = c->nvkeys = c->vkeycap = c->nmore = c->morecap = 0;
	c->next_arg = 0;
	c->vkeys = c->more = NULL;
	memset(c->set, 0, sizeof(c->set));
	int global = rf->nkeys > 0 && kinds[rf->keys[0]].global;
	snprintf(c->tag, sizeof(c->tag), "{%s}", global || ctx->queue == NULL ? "@" : ctx->queue);
	for (int i = 0; i < rf->nkeys; i++)
		c->keys[c->nkeys++] = rcall_keyspan(c, rf->keys[i], ctx);
	for (c->nargs = 0; rf->args[c->nargs] != NULL; c->nargs++)
		;
	return c;
}

void
rcall_arg(struct rcall *c, const char *name, const char *value, long len)
{
	const struct rfunc *rf = &rfuncs[c->f];
	for (int n = 0, i = c->next_arg; n < c->nargs; n++, i = i + 1 < c->nargs ? i + 1 : 0) {
		if (strcmp(rf->args[i], name) != 0)
			continue;
		c->next_arg = i + 1 < c->nargs ? i + 1 : 0;
		size_t off = c->a.used;
		arena_put(&c->a, value, len < 0 ? strlen(value) : (size_t)len);
		c->args[i] = arena_end(&c->a, off); /* a value set twice: the first stays unused in the arena */
		c->set[i] = 1;
		return;
	}
	fatal("rfunc: %s has no argument %s", rf->name, name);
}

void
rcall_int(struct rcall *c, const char *name, long long v)
{
	char b[32];
	rcall_arg(c, name, b, (long)fmt_ll(b, v));
}

void
rcall_num(struct rcall *c, const char *name, double v)
{
	char b[64];
	rcall_arg(c, name, b, (long)fmt_ms(b, sizeof(b), v));
}

static void
span_add(struct span **v, size_t *n, size_t *cap, struct span sp)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = sp;
}

void
rcall_more(struct rcall *c, const char *value, long len)
{
	if (!rfuncs[c->f].var_args)
		fatal("rfunc: %s takes no extra arguments", rfuncs[c->f].name);
	size_t off = c->a.used;
	arena_put(&c->a, value, len < 0 ? strlen(value) : (size_t)len);
	span_add(&c->more, &c->nmore, &c->morecap, arena_end(&c->a, off));
}

void
rcall_key(struct rcall *c, enum rkey k, const struct rctx *ctx)
{
	if (!rfuncs[c->f].var_keys)
		fatal("rfunc: %s takes no extra keys", rfuncs[c->f].name);
	span_add(&c->vkeys, &c->nvkeys, &c->vkeycap, rcall_keyspan(c, k, ctx));
}

static void
rcall_free(struct rcall *c)
{
	if (c->a.p != c->inl)
		free(c->a.p);
	free(c->vkeys);
	free(c->more);
	free(c);
}

/* Calls of up to this many keys plus arguments need no allocation for the pointer vectors. */
#define RCALL_STACK_VEC 64

/* Sends c (batched, or alone; or, with rs, on the blocking connection with the reply in *out). Frees c. */
static int
rcall_go(struct server *s, struct rcall *c, redis_cb *cb, void *priv, int batch, struct redis_sync *rs,
         struct redis_reply **out)
{
	const struct rfunc *rf = &rfuncs[c->f];
	size_t nkeys = c->nkeys + c->nvkeys, nargs = (size_t)c->nargs + c->nmore, n = nkeys + nargs;
	const char *sv[RCALL_STACK_VEC];
	size_t sl[RCALL_STACK_VEC];
	const char **vec = n <= RCALL_STACK_VEC ? sv : xcalloc(n, sizeof(*vec));
	size_t *lens = n <= RCALL_STACK_VEC ? sl : xcalloc(n, sizeof(*lens));
	/* Pointers are taken only now: the arena may have moved while the call was built. */
	for (size_t i = 0; i < nkeys; i++) {
		struct span sp = i < c->nkeys ? c->keys[i] : c->vkeys[i - c->nkeys];
		vec[i] = c->a.p + sp.off;
		lens[i] = sp.len;
	}
	for (int i = 0; i < c->nargs; i++) {
		if (!c->set[i])
			fatal("rfunc: %s: argument %s not set", rf->name, rf->args[i]);
		vec[nkeys + (size_t)i] = c->a.p + c->args[i].off;
		lens[nkeys + (size_t)i] = c->args[i].len;
	}
	for (size_t i = 0; i < c->nmore; i++) {
		vec[nkeys + (size_t)c->nargs + i] = c->a.p + c->more[i].off;
		lens[nkeys + (size_t)c->nargs + i] = c->more[i].len;
	}
	int rc;
	if (rs != NULL) {
		*out = redis_sync_fcall(rs, rf->name, (rf->flags & RF_NO_WRITES) != 0, nkeys, vec, lens, nargs,
		                        vec + nkeys, lens + nkeys);
		rc = *out != NULL ? 0 : -1;
	} else if (batch && !(rf->flags & RF_NO_WRITES))
		rc = redis_batch(s->redis, c->tag, rf->name, (rf->flags & RF_ALLOW_OOM) != 0, nkeys, vec, lens, nargs,
		                 vec + nkeys, lens + nkeys, cb, priv);
	else
		rc = redis_fcall(s->redis, rf->name, (rf->flags & RF_NO_WRITES) != 0, nkeys, vec, lens, nargs,
		                 vec + nkeys, lens + nkeys, cb, priv);
	if (vec != sv)
		free(vec);
	if (lens != sl)
		free(lens);
	rcall_free(c);
	return rc;
}

int
rcall_send(struct server *s, struct rcall *c, redis_cb *cb, void *priv)
{
	return rcall_go(s, c, cb, priv, 0, NULL, NULL);
}

int
rcall_batch(struct server *s, struct rcall *c, redis_cb *cb, void *priv)
{
	return rcall_go(s, c, cb, priv, 1, NULL, NULL);
}

struct redis_reply *
rcall_sync(struct server *s, struct rcall *c, struct redis_sync *rs)
{
	struct redis_reply *out = NULL;
	rcall_go(s, c, NULL, NULL, 0, rs, &out);
	return out;
}

static void
print_list(const char *label, const char *const *names, size_t n)
{
	printf(" %s=", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? "," : "", names[i]);
}

void
rfunc_print(void)
{
	for (int f = 0; f < RF_COUNT; f++) {
		const struct rfunc *rf = &rfuncs[f];
		const char *kn[RF_MAX_KEYS];
		size_t na = 0;
		for (int i = 0; i < rf->nkeys; i++)
			kn[i] = kinds[rf->keys[i]].name;
		while (rf->args[na] != NULL)
			na++;
		printf("%s", rf->name);
		print_list("keys", kn, (size_t)rf->nkeys);
		printf("%s", rf->var_keys ? ",*" : "");
		print_list("args", rf->args, na);
		printf("%s", rf->var_args ? ",*" : "");
		printf(" flags=%s\n", rf->flags & RF_NO_WRITES   ? "no-writes"
		                      : rf->flags & RF_ALLOW_OOM ? "allow-oom"
		                                                 : "-");
	}
}

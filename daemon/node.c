/*
 * node: this daemon as one member of the group sharing a Redis. The heartbeat (its lease), taking back
 * its own leftovers at start-up, refusing a node id a live daemon holds, returning the jobs of nodes
 * whose heartbeat expired, and promoting due delayed jobs and retries.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

static void heartbeat(struct server *s, int check);

/* Monotonic seconds (heartbeat intervals must not jump with the wall clock). */
static double
mono(void)
{
	return clock_monotonic_ms() / 1000.0;
}

/* A new incarnation id: NODE/16 hex digits. Every claim records it; a reaped incarnation never comes back. */
static void
new_incarnation(struct server *s)
{
	unsigned char r[8] = {0};
	FILE *f = fopen("/dev/urandom", "re");
	if (f == NULL || fread(r, 1, sizeof(r), f) != sizeof(r)) {
		long long t = (long long)(clock_now() * 1e6) ^ getpid();
		memcpy(r, &t, sizeof(r));
	}
	if (f != NULL)
		fclose(f);
	snprintf(s->inc, sizeof(s->inc), "%s/%02x%02x%02x%02x%02x%02x%02x%02x", s->cfg.node_id, r[0], r[1], r[2], r[3],
	         r[4], r[5], r[6], r[7]);
}

/* --- returning a reaped incarnation's inflight lists, one queue at a time --- */

struct reaping {
	char inc[96];
	char node[72];
	int left; /* return calls outstanding */
	int failed;
};

static void
reaped_done_reply(struct server *s, const struct redis_reply *r, void *priv)
{
}

/* Once every queue of the incarnation is back, its reaping entry goes. */
static void
reaping_release(struct server *s, struct reaping *rp)
{
	if (--rp->left > 0)
		return;
	if (!rp->failed) {
		struct rctx ctx = {0};
		struct rcall *c = rcall_new(s, RF_REAPED_DONE, &ctx);
		rcall_arg(c, "node", rp->node, -1);
		rcall_arg(c, "inc", rp->inc, -1);
		rcall_send(s, c, reaped_done_reply, NULL);
	}
	free(rp);
}

static void
return_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct reaping *rp = priv;
	if (r == NULL || rr_type(r) != RR_INTEGER)
		rp->failed = 1;
	else if (rr_int(r) > 0) {
		log_warn("returned %lld jobs of %s (node %s) to their queues", rr_int(r),
		         strcmp(rp->node, s->cfg.node_id) == 0 ? "this node's previous run" : "a reaped node",
		         rp->node);
		fetch_more(s);
	}
	reaping_release(s, rp);
}

/* One reaping entry (inc -> "node\nq1,q2"): each queue's inflight list of that node goes back. */
static void
return_incarnation(struct server *s, const char *inc, const char *value)
{
	const char *nl = strchr(value, '\n');
	if (nl == NULL)
		return;
	struct reaping *rp = xcalloc(1, sizeof(*rp));
	snprintf(rp->inc, sizeof(rp->inc), "%s", inc);
	snprintf(rp->node, sizeof(rp->node), "%.*s", (int)(nl - value), value);
	char *queues = xstrdup(nl + 1), *save = NULL;
	rp->left = 1; /* held until every call went out */
	for (char *q = strtok_r(queues, ",", &save); q != NULL; q = strtok_r(NULL, ",", &save)) {
		if (!job_name_valid(q, QUEUE_NAME_MAX))
			continue;
		struct rctx ctx = {.queue = q, .node = rp->node};
		struct rcall *c = rcall_new(s, RF_RETURN, &ctx);
		rcall_arg(c, "inc", inc, -1);
		rcall_int(c, "ttl", s->cfg.result_ttl_s);
		if (rcall_batch(s, c, return_reply, rp) == 0)
			rp->left++;
		else
			rp->failed = 1;
	}
	free(queues);
	if (strcmp(rp->node, s->cfg.node_id) != 0)
		log_warn("node %s (%s) was silent for a lease: its jobs go back to their queues", rp->node, inc);
	reaping_release(s, rp); /* drops the hold taken above */
}

static void
reap_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("reap failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	for (size_t i = 0; i + 1 < rr_count(r); i += 2) {
		const char *inc = rr_str(rr_elem(r, i), NULL), *v = rr_str(rr_elem(r, i + 1), NULL);
		if (inc != NULL && v != NULL)
			return_incarnation(s, inc, v);
	}
	if (priv != NULL && !s->registered) {
		s->registered = 1;
		log_info("node %s registered as %s; consuming %s", s->cfg.node_id, s->inc, s->cfg.queues_spec);
		fetch_more(s);
	}
}

/* Reaps nodes silent for a lease (see 10_nodes.lua) and returns the jobs of every reaped incarnation. */
static void
reap(struct server *s, int registering)
{
	struct rctx ctx = {0};
	struct rcall *c = rcall_new(s, RF_REAP, &ctx);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_arg(c, "inc", s->inc, -1);
	rcall_int(c, "seq", s->hb_seq);
	rcall_int(c, "lease_ms", (long long)(s->cfg.lease_s * 1000));
	rcall_send(s, c, reap_reply, registering ? (void *)s : NULL);
}

/* 1 if pid is a live (not zombie) hopperd on this host: the holder of a heartbeat we found at start-up. */
static int
hopperd_alive(long pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = pid > 0 ? fopen(path, "r") : NULL;
	if (f == NULL)
		return 0;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* "pid (comm) state ...": comm may hold spaces, so look from the last ')'. */
	char *open = strchr(stat, '('), *close = strrchr(stat, ')');
	if (open == NULL || close == NULL || close[1] != ' ')
		return 0;
	int zombie = close[2] == 'Z' || close[2] == 'X';
	return !zombie && strncmp(open + 1, "hopperd", (size_t)(close - open - 1)) == 0 && close - open - 1 == 7;
}

static void
heartbeat_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("heartbeat failed: %s",
			          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	const char *verdict = rr_str(rr_elem(r, 0), NULL);
	if (verdict == NULL)
		return;
	if (strcmp(verdict, "reaped") == 0) {
		/* Another node reaped this one (it was silent for a lease, or Redis lost its registration): every
		 * job it holds may be running elsewhere now. Stop them all and register as a new incarnation. */
		log_error("node %s (%s) was reaped while alive: stopping every attempt it holds and registering again",
		          s->cfg.node_id, s->inc);
		jobs_supersede_all(s, "this node was reaped");
		s->registered = 0;
		new_incarnation(s);
		heartbeat(s, 2);
		return;
	}
	if (strcmp(verdict, "ok") == 0) {
		if (priv != NULL)
			reap(s, 1);
		return;
	}
	if (priv == NULL || strcmp(verdict, "held") != 0)
		return; /* stale: an older beat, nothing to do */
	size_t hlen = 0;
	const char *hb = rr_str(rr_elem(r, 1), &hlen);
	json_t *o = hb != NULL ? json_loadb(hb, hlen, 0, NULL) : NULL;
	long pid = (long)json_integer_value(json_object_get(o, "pid"));
	const char *host = json_string_value(json_object_get(o, "host"));
	if (host != NULL && strcmp(host, s->host) == 0 && !hopperd_alive(pid)) {
		log_warn("node id %s was held by pid %ld, which is gone: taking over", s->cfg.node_id, pid);
		json_decref(o);
		heartbeat(s, 2);
		return;
	}
	log_error("node id %s is in use by pid %ld on %s: give each daemon its own node_id", s->cfg.node_id, pid,
	          host ? host : "?");
	json_decref(o);
	s->exit_code = 1;
	ev_break(s->loop, EVBREAK_ALL);
}

/* check: 0 a beat, 1 registration, 2 registration taking over the id from a holder that is gone. */
static void
heartbeat(struct server *s, int check)
{
	char queues[MAX_QUEUES * (QUEUE_NAME_MAX + 1) + 1] = "";
	for (int i = 0; i < s->cfg.nqueues; i++) {
		if (i > 0)
			strcat(queues, ",");
		strcat(queues, s->cfg.queues[i].name);
	}
	json_t *hb = json_pack("{s:s, s:s, s:I, s:s, s:f, s:i, s:s, s:s, s:f}", "node", s->cfg.node_id, "inc", s->inc,
	                       "pid", (json_int_t)getpid(), "host", s->host, "started_at", s->started_at, "running",
	                       s->nrunning, "version", HOPPER_VERSION, "queues", queues, "updated_at", clock_now());
	char *text = jsonx_dump(hb);
	json_decref(hb);
	struct rctx ctx = {0};
	struct rcall *c = rcall_new(s, RF_HEARTBEAT, &ctx);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_arg(c, "inc", s->inc, -1);
	rcall_int(c, "seq", ++s->hb_seq);
	rcall_int(c, "lease_ms", (long long)(s->cfg.lease_s * 1000));
	/* A gap of more than two intervals breaks this node's run of beats (it then reaps nobody for a lease). */
	rcall_int(c, "gap_ms", (long long)(s->cfg.heartbeat_s * 2000) + 500);
	rcall_int(c, "check", check);
	rcall_arg(c, "hb", text, -1);
	rcall_arg(c, "queues", queues, -1);
	free(text);
	if (rcall_send(s, c, heartbeat_reply, check ? (void *)s : NULL) == 0)
		s->last_heartbeat = mono();
}

void
node_on_connect(struct server *s)
{
	if (s->inc[0] == '\0')
		new_incarnation(s);
	if (!s->registered) {
		heartbeat(s, 1);
		return;
	}
	s->need_reconcile = 1;
	heartbeat(s, 0);
	jobs_resend(s);
	fetch_more(s);
}

void
node_on_disconnect(struct server *s, int blocking_conn)
{
	if (blocking_conn)
		s->blocking = 0;
	else {
		s->fetching = 0;
		s->nreconcile = 0;
	}
	s->need_reconcile = 1;
}

void
node_tick(struct server *s)
{
	if (!redis_ready(s->redis))
		return;
	double now = mono();
	if (now - s->last_heartbeat >= s->cfg.heartbeat_s && s->registered) {
		heartbeat(s, 0);
		reap(s, 0);
		/* Every few beats, the held jobs' states: a cancel whose message was lost still arrives. */
		if (++s->beats % 3 == 0)
			jobs_recheck_held(s);
	}
	jobs_retry_failed_ops(s);
	fetch_more(s);
}

static void
promote_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_INTEGER && rr_int(r) > 0)
		fetch_more(s);
}

/* Moves due delayed jobs and retries (due by Redis's clock) of each queue to its head. */
void
node_promote(struct server *s)
{
	if (!redis_ready(s->redis) || !s->registered)
		return;
	for (int i = 0; i < s->cfg.nqueues; i++) {
		struct rctx ctx = {.queue = s->cfg.queues[i].name};
		struct rcall *c = rcall_new(s, RF_PROMOTE, &ctx);
		rcall_int(c, "limit", 1000);
		rcall_batch(s, c, promote_reply, NULL);
	}
}

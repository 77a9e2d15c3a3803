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
#include "store.h"
#include "xmalloc.h"

static void heartbeat(struct server *s, int check);

static void
reap_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("reap failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	long long moved = rr_int(rr_elem(r, 0));
	for (size_t i = 1; i < rr_count(r); i++)
		log_warn("node %s stopped heartbeating: its jobs went back to their queues",
		         rr_str(rr_elem(r, i), NULL));
	if (priv != NULL) {
		if (moved > 0)
			log_warn("returned %lld jobs left in flight by this node's previous run", moved);
		s->registered = 1;
		log_info("node %s registered; consuming %s", s->cfg.node_id, s->cfg.queues_spec);
		fetch_more(s);
	} else if (moved > 0) {
		log_warn("returned %lld jobs of dead nodes to their queues", moved);
		fetch_more(s);
	}
}

/* Returns dead nodes' jobs; with recover_self, also this node's own leftovers (start-up only). */
static void
reap(struct server *s, int recover_self)
{
	const char *argv[] = {s->cfg.key_prefix, s->cfg.node_id, recover_self ? "1" : "0"};
	redis_call(s->redis, "reap", 3, argv, NULL, reap_reply, recover_self ? (void *)s : NULL);
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
	if (priv == NULL || verdict == NULL || strcmp(verdict, "held") != 0) {
		if (priv != NULL)
			reap(s, 1);
		return;
	}
	const char *pid = rr_str(rr_elem(r, 1), NULL), *host = rr_str(rr_elem(r, 2), NULL);
	if (host != NULL && strcmp(host, s->host) == 0 && pid != NULL && !hopperd_alive(atol(pid))) {
		log_warn("node id %s was held by pid %s, which is gone: taking over", s->cfg.node_id, pid);
		heartbeat(s, 0);
		reap(s, 1);
		return;
	}
	log_error("node id %s is in use by pid %s on %s: give each daemon its own node_id", s->cfg.node_id,
	          pid ? pid : "?", host ? host : "?");
	s->exit_code = 1;
	ev_break(s->loop, EVBREAK_ALL);
}

static void
heartbeat(struct server *s, int check)
{
	const char *argv[10 + MAX_QUEUES];
	char pid[16], started[32], running[16], lease[16], now[32];
	int n = 0;
	argv[n++] = s->cfg.key_prefix;
	argv[n++] = s->cfg.node_id;
	argv[n++] = FMT_INT(pid, getpid());
	argv[n++] = s->host;
	argv[n++] = FMT_NUM(started, s->started_at);
	argv[n++] = FMT_INT(running, s->nrunning);
	argv[n++] = HOPPER_VERSION;
	argv[n++] = FMT_INT(lease, (long long)(s->cfg.lease_s * 1000));
	argv[n++] = FMT_NUM(now, clock_now());
	argv[n++] = check ? "1" : "0";
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[n++] = s->cfg.queues[i].name;
	if (redis_call(s->redis, "heartbeat", n, argv, NULL, heartbeat_reply, check ? (void *)s : NULL) == 0)
		s->last_heartbeat = clock_now();
}

void
node_on_connect(struct server *s)
{
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
	else
		s->fetching = 0;
	s->need_reconcile = 1;
}

void
node_tick(struct server *s)
{
	if (!redis_ready(s->redis))
		return;
	double now = clock_now();
	if (now - s->last_heartbeat >= s->cfg.heartbeat_s && s->registered) {
		heartbeat(s, 0);
		reap(s, 0);
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

void
node_promote(struct server *s)
{
	if (!redis_ready(s->redis) || !s->registered)
		return;
	const char *argv[3 + MAX_QUEUES];
	char now[32];
	argv[0] = s->cfg.key_prefix;
	argv[1] = FMT_NUM(now, clock_now());
	argv[2] = "1000";
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[3 + i] = s->cfg.queues[i].name;
	redis_call(s->redis, "promote", 3 + s->cfg.nqueues, argv, NULL, promote_reply, NULL);
}

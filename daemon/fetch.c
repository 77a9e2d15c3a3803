/*
 * fetch: how jobs come in. One hopper_fetch call per batch moves up to `room` jobs from the queues into
 * this node's inflight lists and claims them; when the queues run dry a BLMOVE waits for the next one.
 * Also here: the prefetch limit (automatic by default), giving back hoarded jobs, and reconciling the
 * inflight lists after a connection was lost.
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

/*
 * How many fetched-but-not-started jobs this daemon may hold. A fixed `prefetch` is used as given. The
 * default (0) is one per worker, raised for short jobs so that a prefetched job waits about
 * PREFETCH_WAIT_S on average: with jobs of 50 us that is up to PREFETCH_MAX_MULT per worker, which is what
 * keeps workers busy across a Redis round trip; with jobs of a millisecond or more it stays one per
 * worker. fetch_unhoard gives back the extra if jobs turn slow.
 */
#define PREFETCH_WAIT_S   0.002
#define PREFETCH_MAX_MULT 16
/* An extra prefetched job that has waited this long goes back to its queue for any daemon to take. */
#define HOARD_MAX_S 0.5

static int
prefetch_limit(const struct server *s)
{
	if (s->cfg.prefetch > 0)
		return s->cfg.prefetch;
	double per_worker = s->avg_job_s > 0 ? PREFETCH_WAIT_S / s->avg_job_s : 1;
	if (per_worker < 1)
		per_worker = 1;
	if (per_worker > PREFETCH_MAX_MULT)
		per_worker = PREFETCH_MAX_MULT;
	return (int)(s->cfg.workers * per_worker);
}

static int
fetch_room(const struct server *s)
{
	return s->cfg.workers - s->nrunning + prefetch_limit(s) - s->nfetched;
}

/* With the automatic prefetch, returns the jobs beyond one per worker that have waited too long. */
void
fetch_unhoard(struct server *s)
{
	if (s->cfg.prefetch > 0 || s->shutting_down)
		return;
	double now = ev_now(s->loop);
	int kept = 0;
	for (struct job *j = s->ready_head, *next; j != NULL; j = next) {
		next = j->ready_next;
		if (++kept <= s->cfg.workers || now - j->ready_at < HOARD_MAX_S)
			continue;
		job_ready_remove(s, j);
		log_debug("job %s: waited %.1f s for a worker; back to queue %s", j->spec.id, now - j->ready_at,
		          j->queue);
		job_op_start(s, j, OP_REQUEUE);
	}
}

/* Queue names in the order this fetch should try them: as configured, or shuffled by weight. */
static int
fetch_order(struct server *s, const char **names)
{
	int n = s->cfg.nqueues;
	for (int i = 0; i < n; i++)
		names[i] = s->cfg.queues[i].name;
	if (strcmp(s->cfg.queue_mode, "weighted") != 0)
		return n;
	/* Weighted random order without replacement: pick each next queue in proportion to its weight. */
	int weights[MAX_QUEUES], total = 0;
	for (int i = 0; i < n; i++)
		total += weights[i] = s->cfg.queues[i].weight;
	for (int i = 0; i < n; i++) {
		int r = (int)(drand48() * total), k = i;
		for (int acc = 0; k < n; k++) {
			acc += weights[k];
			if (r < acc)
				break;
		}
		if (k >= n)
			k = n - 1;
		const char *tn = names[i];
		int tw = weights[i];
		names[i] = names[k];
		weights[i] = weights[k];
		names[k] = tn;
		weights[k] = tw;
		total -= weights[i];
	}
	return n;
}

static void block_fetch(struct server *s);

static void
fetch_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->fetching = 0;
	if (r == NULL)
		return;
	if (rr_type(r) != RR_ARRAY) {
		log_error("fetch failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return; /* the next tick tries again */
	}
	size_t n = rr_count(r);
	for (size_t i = 0; i + 3 < n; i += 4) {
		size_t len;
		const char *queue = rr_str(rr_elem(r, i), NULL), *payload = rr_str(rr_elem(r, i + 1), &len);
		const char *verdict = rr_str(rr_elem(r, i + 2), NULL), *detail = rr_str(rr_elem(r, i + 3), NULL);
		if (queue == NULL || payload == NULL || verdict == NULL)
			continue;
		if (strcmp(verdict, "raw") == 0)
			job_accept(s, queue, payload, len);
		else
			job_accept_claimed(s, queue, payload, len, verdict, detail);
	}
	if ((intptr_t)priv > (intptr_t)(n / 4))
		block_fetch(s); /* the queues ran dry: wait for the next job */
	else
		fetch_more(s);
}

/* Asks for a fetch; fetch_flush adds it to this turn's batch, beside the turn's finishes. */
void
fetch_more(struct server *s)
{
	s->want_fetch = 1;
}

static void
reconcile_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->fetching = 0;
	if (r == NULL || rr_type(r) != RR_INTEGER) {
		if (r != NULL)
			log_error("reconcile failed: %s",
			          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return; /* still needed: tried again with the next fetch */
	}
	s->need_reconcile = 0;
	if (rr_int(r) > 0)
		log_warn("returned %lld jobs whose fetch reply was lost with the connection to their queues",
		         rr_int(r));
	fetch_more(s);
}

/*
 * After a reconnect, before fetching again: returns to their queues the inflight entries this daemon does
 * not hold (their fetch or BLMOVE reply was lost). It runs only while no fetch is outstanding on either
 * connection, or it could return a job whose reply is still on its way.
 */
static void
reconcile(struct server *s)
{
	int n = 3 + s->cfg.nqueues, k = 0;
	const char **argv = xcalloc((size_t)(n + s->njobs + 1), sizeof(*argv));
	size_t *lens = xcalloc((size_t)(n + s->njobs + 1), sizeof(*lens));
	char nq[16];
	argv[k++] = s->cfg.key_prefix;
	argv[k++] = s->cfg.node_id;
	argv[k++] = FMT_INT(nq, s->cfg.nqueues);
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[k++] = s->cfg.queues[i].name;
	for (int i = 0; i < k; i++)
		lens[i] = strlen(argv[i]);
	for (struct job *j = s->jobs; j != NULL && k < n + s->njobs; j = j->next) {
		if (j->dead)
			continue;
		argv[k] = j->payload;
		lens[k++] = j->payload_len;
	}
	if (redis_batch(s->redis, "reconcile", k, argv, lens, reconcile_reply, NULL) == 0)
		s->fetching = 1;
	free(argv);
	free(lens);
}

void
fetch_flush(struct server *s)
{
	if (s->need_reconcile && s->registered && !s->fetching && !s->blocking && redis_ready(s->redis)) {
		reconcile(s);
		return;
	}
	if (!s->want_fetch || s->need_reconcile || s->shutting_down || !s->registered || s->fetching ||
	    !redis_ready(s->redis))
		return;
	s->want_fetch = 0;
	int room = fetch_room(s);
	if (room <= 0)
		return;
	const char *argv[8 + MAX_QUEUES];
	char max[16], stalls[16], ttl[16], evmax[16], attempts[16], now[32];
	argv[0] = s->cfg.key_prefix;
	argv[1] = s->cfg.node_id;
	argv[2] = FMT_INT(max, room);
	argv[3] = FMT_INT(stalls, s->cfg.max_stalls);
	argv[4] = FMT_INT(ttl, s->cfg.result_ttl_s);
	argv[5] = FMT_INT(evmax, s->cfg.events_max);
	argv[6] = FMT_INT(attempts, s->cfg.max_attempts);
	argv[7] = FMT_NUM(now, clock_now());
	int nq = fetch_order(s, argv + 8);
	if (redis_batch(s->redis, "fetch", 8 + nq, argv, NULL, fetch_reply, (void *)(intptr_t)room) == 0)
		s->fetching = 1;
}

static void
block_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->blocking = 0;
	if (r == NULL)
		return;
	if (rr_type(r) == RR_STRING) {
		size_t len;
		const char *payload = rr_str(r, &len);
		job_accept(s, s->cfg.queues[(uintptr_t)priv].name, payload, len);
	} else if (rr_type(r) == RR_ERROR)
		log_error("blocking fetch failed: %s", rr_str(r, NULL));
	fetch_more(s);
}

/*
 * Waits on one queue with BLMOVE. With several queues the wait rotates among them with a short timeout,
 * since BLMOVE watches one list: a job on another queue waits at most that long, or less when a worker
 * frees up.
 */
static void
block_fetch(struct server *s)
{
	if (s->shutting_down || s->blocking || !redis_block_ready(s->redis) || fetch_room(s) <= 0)
		return;
	/* A paused queue is not waited on (the fetch script skips it too). */
	unsigned qi = s->block_rr++ % (unsigned)s->cfg.nqueues;
	for (int tries = 0; s->paused[qi] && tries < s->cfg.nqueues; tries++)
		qi = s->block_rr++ % (unsigned)s->cfg.nqueues;
	if (s->paused[qi])
		return;
	double timeout = s->cfg.nqueues == 1 ? s->cfg.block_s : (s->cfg.block_s < 0.1 ? s->cfg.block_s : 0.1);
	char src[256], dst[256];
	snprintf(src, sizeof(src), "%squeue:%s", s->cfg.key_prefix, s->cfg.queues[qi].name);
	snprintf(dst, sizeof(dst), "%sinflight:%s:%s", s->cfg.key_prefix, s->cfg.node_id, s->cfg.queues[qi].name);
	if (redis_block_move(s->redis, src, dst, timeout, block_reply, (void *)(uintptr_t)qi) == 0)
		s->blocking = 1;
}

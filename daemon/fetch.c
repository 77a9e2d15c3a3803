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
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

/*
 * How many fetched-but-not-started jobs this daemon may hold. A fixed `prefetch` is used as given. The
 * default (0) is one per worker, raised for short jobs so that a prefetched job waits about
 * PREFETCH_WAIT_S on average: with jobs of 80 us that is up to PREFETCH_MAX_MULT per worker, which keeps
 * workers busy across the two round trips (fetch, then claim) of the next jobs while several batches are
 * queued in Redis; with jobs of 5 ms or more it stays one per worker. fetch_unhoard gives back the extra
 * if jobs turn slow.
 */
#define PREFETCH_WAIT_S   0.005
#define PREFETCH_MAX_MULT 64
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
	double now = clock_mono();
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

/*
 * A fetch asks one queue (hash tag {Q}: one queue's keys per call). A round walks the queues in fetch order:
 * a reply that filled the room starts the next round from the first queue again (strict priority, or a new
 * weighted draw); a short one moves on to the next queue; once every queue came up short, a blocking
 * fetch waits for the next job.
 */
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
	intptr_t asked = (intptr_t)priv & 0xffffff, qi = (intptr_t)priv >> 24;
	size_t n = rr_count(r);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *payload = rr_str(rr_elem(r, i), &len);
		if (payload != NULL)
			job_accept(s, s->cfg.queues[qi].name, payload, len);
	}
	if ((intptr_t)n >= asked) {
		s->fetch_qi = 0;
		fetch_more(s);
	} else if (++s->fetch_qi < s->cfg.nqueues)
		fetch_more(s);
	else {
		s->fetch_qi = 0;
		block_fetch(s); /* the queues ran dry: wait for the next job */
	}
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
	if (s->nreconcile > 0)
		s->nreconcile--;
	if (r == NULL || rr_type(r) != RR_INTEGER) {
		if (r != NULL)
			log_error("reconcile failed: %s",
			          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		s->reconcile_failed = 1;
	} else if (rr_int(r) > 0)
		log_warn("returned %lld jobs whose fetch reply was lost with the connection to their queues",
		         rr_int(r));
	if (s->nreconcile > 0)
		return;
	s->fetching = 0;
	if (!s->reconcile_failed)
		s->need_reconcile = 0; /* else still needed: tried again with the next fetch */
	fetch_more(s);
}

/*
 * After a reconnect, before fetching again: returns to their queues the inflight entries this daemon does
 * not hold (their fetch or BLMOVE reply was lost), one call per queue. It runs only while no fetch is
 * outstanding on either connection, or it could return a job whose reply is still on its way.
 */
static void
reconcile(struct server *s)
{
	s->reconcile_failed = 0;
	for (int q = 0; q < s->cfg.nqueues; q++) {
		struct rctx ctx = {.queue = s->cfg.queues[q].name};
		struct rcall *c = rcall_new(s, RF_RECONCILE, &ctx);
		for (struct job *j = s->jobs; j != NULL; j = j->next) {
			if (j->dead || strcmp(j->queue, ctx.queue) != 0)
				continue;
			rcall_more(c, j->payload, (long)j->payload_len);
			/* A claim whose reply was lost may have replaced the entry with the id-stamped message. */
			if (j->admitted != NULL)
				rcall_more(c, j->admitted, (long)j->admitted_len);
		}
		if (rcall_batch(s, c, reconcile_reply, NULL) == 0) {
			s->nreconcile++;
			s->fetching = 1;
		}
	}
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
	if (s->fetch_qi == 0)
		s->nfetch_order = fetch_order(s, s->fetch_order);
	if (s->fetch_qi >= s->nfetch_order)
		s->fetch_qi = 0;
	int qi = 0;
	for (int i = 0; i < s->cfg.nqueues; i++)
		if (strcmp(s->cfg.queues[i].name, s->fetch_order[s->fetch_qi]) == 0)
			qi = i;
	if (room > 0xffffff)
		room = 0xffffff;
	struct rctx ctx = {.queue = s->cfg.queues[qi].name};
	struct rcall *c = rcall_new(s, RF_FETCH, &ctx);
	rcall_int(c, "max", room);
	if (rcall_batch(s, c, fetch_reply, (void *)(((intptr_t)qi << 24) | room)) == 0)
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
	} else if (rr_type(r) == RR_ERROR) {
		/* e.g. OOM (BLMOVE may not run at maxmemory): wait a second, not a loop turn */
		log_error("blocking fetch failed: %s (waiting 1 s)", rr_str(r, NULL));
		s->block_retry_at = clock_monotonic_ms() / 1000.0 + 1;
		return;
	}
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
	if (s->shutting_down || s->blocking || !redis_block_ready(s->redis) || fetch_room(s) <= 0 ||
	    clock_monotonic_ms() / 1000.0 < s->block_retry_at)
		return;
	/* A paused queue is not waited on (the fetch function skips it too). */
	unsigned qi = s->block_rr++ % (unsigned)s->cfg.nqueues;
	for (int tries = 0; s->paused[qi] && tries < s->cfg.nqueues; tries++)
		qi = s->block_rr++ % (unsigned)s->cfg.nqueues;
	if (s->paused[qi])
		return;
	double timeout = s->cfg.nqueues == 1 ? s->cfg.block_s : (s->cfg.block_s < 0.1 ? s->cfg.block_s : 0.1);
	struct rctx ctx = {.queue = s->cfg.queues[qi].name};
	char *src = rkey_name(s, RK_QUEUE, &ctx), *dst = rkey_name(s, RK_INFLIGHT, &ctx);
	if (redis_block_move(s->redis, src, dst, timeout, block_reply, (void *)(uintptr_t)qi) == 0)
		s->blocking = 1;
	free(src);
	free(dst);
}

/*
 * sched: fires the schedules of the queues this daemon serves. The schedules live in Redis
 * (daemon/lua/15_sched.lua); the decisions are common/sched_def.c's, pure. Every SCHED_POLL_S each served
 * queue's due schedules are read with Redis's clock (sched_due); for each, the fire times to submit are
 * planned here and claimed with one sched_fire, which writes only if no daemon claimed them first (the
 * schedule's version and next fire time are compared in the same atomic step). Every daemon serving a queue
 * polls it, so a schedule fires while any of them lives; no leader is elected, and a fire time makes at
 * most one job, with an id derived from it.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperd.h"
#include "job_ns.h"
#include "jsonx.h"
#include "log.h"
#include "rfunc.h"
#include "sched_def.h"
#include "xmalloc.h"

/* How often each served queue's due set is read: a fire starts at most this late (plus a round trip). */
#define SCHED_POLL_S 0.25
/* A schedule this daemon cannot fire (its zone file or a configured limit missing here) is left to the other
 * daemons this long before this one tries again. */
#define SCHED_RETRY_MS 60000
/* Due schedules one poll of a queue takes (the others stay due for the next poll). */
#define SCHED_DUE_LIMIT 50

/* Schedules this daemon holds off at once after a local failure (the oldest entry is reused). */
#define SCHED_BACKOFF_MAX 64

struct sched {
	struct server *s;
	ev_timer timer;
	unsigned char polling[MAX_QUEUES]; /* a sched_due of cfg.queues[i] is outstanding */
	struct {
		char queue[QUEUE_NAME_MAX + 1];
		char name[SCHED_NAME_MAX + 1];
		double until; /* monotonic seconds */
	} backoff[SCHED_BACKOFF_MAX];
};

struct fire_ctx {
	char queue[QUEUE_NAME_MAX + 1];
	char name[SCHED_NAME_MAX + 1];
};

static void
fire_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct fire_ctx *fc = priv;
	const struct redis_reply *e0 = r != NULL ? rr_elem(r, 0) : NULL;
	const char *v = e0 != NULL ? rr_str(e0, NULL) : NULL;
	if (r == NULL)
		; /* connection lost: the schedule is still due; the next poll claims it again */
	else if (rr_type(r) == RR_ERROR)
		log_error("schedule %s/%s: sched_fire: Redis: %s", fc->queue, fc->name, rr_str(r, NULL));
	else if (v != NULL && strcmp(v, "fired") == 0 && rr_count(r) >= 4) {
		long long created = rr_int(rr_elem(r, 1)), existing = rr_int(rr_elem(r, 2)),
		          held = rr_int(rr_elem(r, 3));
		if (created > 0 || existing > 0 || held > 0)
			log_info(
			        "schedule %s/%s fired: %lld job(s) made, %lld existed already, %lld skipped (key held)",
			        fc->queue, fc->name, created, existing, held);
		s->metrics.sched_fires += (uint64_t)created;
	} else if (v != NULL && strcmp(v, "noted") == 0)
		;
	else
		s->metrics.sched_stale++; /* another daemon claimed it first, or it changed meanwhile */
	free(fc);
}

char *
sched_job_payload(struct server *s, const char *queue, const struct sched_def *d, const char *ns, int64_t t,
                  int64_t now_ms, struct job_spec *spec, char *err, size_t errlen)
{
	char base[SCHED_NAME_MAX + 32], id[JOB_ID_MAX + 1];
	sched_job_id(d->name, t, base, sizeof(base));
	if (ns != NULL && ns[0] != '\0') {
		if (job_ns_make(ns, base, id, sizeof(id), err, errlen) != 0)
			return NULL;
	} else
		snprintf(id, sizeof(id), "%s", base);
	json_t *job = json_deep_copy(d->job);
	json_object_set_new(job, "id", json_string(id));
	json_object_set_new(job, "created_at", json_real((double)now_ms / 1000.0));
	json_object_set_new(job, "schedule", json_pack("{s:s, s:f}", "name", d->name, "fire_at", (double)t / 1000.0));
	char *payload = jsonx_dump(job);
	json_decref(job);
	if (job_parse(payload, strlen(payload), queue, &s->defaults, spec, err, errlen) != 0) {
		free(payload);
		return NULL;
	}
	return payload;
}

/* 1 while this daemon holds off schedule queue/name after a local failure. */
static int
backed_off(struct sched *sc, const char *queue, const char *name)
{
	double now = clock_monotonic_ms() / 1000.0;
	for (int i = 0; i < SCHED_BACKOFF_MAX; i++)
		if (sc->backoff[i].until > now && strcmp(sc->backoff[i].queue, queue) == 0 &&
		    strcmp(sc->backoff[i].name, name) == 0)
			return 1;
	return 0;
}

static void
back_off(struct sched *sc, const char *queue, const char *name)
{
	int slot = 0;
	for (int i = 1; i < SCHED_BACKOFF_MAX; i++)
		if (sc->backoff[i].until < sc->backoff[slot].until)
			slot = i;
	snprintf(sc->backoff[slot].queue, sizeof(sc->backoff[slot].queue), "%s", queue);
	snprintf(sc->backoff[slot].name, sizeof(sc->backoff[slot].name), "%s", name);
	sc->backoff[slot].until = clock_monotonic_ms() / 1000.0 + SCHED_RETRY_MS / 1000.0;
}

/* The common part of a sched_fire call; sends it. */
static void
fire_call(struct server *s, struct rcall *rc, const char *queue, const char *name, const char *ver, const char *expect,
          const char *next, const char *due, uint64_t missed, const char *error, size_t n)
{
	rcall_arg(rc, "name", name, -1);
	rcall_arg(rc, "ver", ver, -1);
	rcall_arg(rc, "expect", expect, -1);
	rcall_arg(rc, "next", next, -1);
	rcall_arg(rc, "due", due, -1);
	rcall_int(rc, "missed", (long long)missed);
	rcall_arg(rc, "error", error, -1);
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	rcall_int(rc, "n", (long long)n);
	struct fire_ctx *fc = xcalloc(1, sizeof(*fc));
	snprintf(fc->queue, sizeof(fc->queue), "%s", queue);
	snprintf(fc->name, sizeof(fc->name), "%s", name);
	if (rcall_batch(s, rc, fire_reply, fc) != 0)
		free(fc);
}

/*
 * This daemon cannot make the schedule's jobs (its definition or job does not pass here: a zone file or a
 * configured limit this host lacks). That is this daemon's failure, not the schedule's: it claims nothing,
 * notes why on the schedule (the call changes neither its next fire time nor its due time, so every other
 * daemon still claims it on time) and holds off this schedule for SCHED_RETRY_MS.
 */
static void
local_failure(struct server *s, const char *queue, const char *name, const char *ver, const char *next, const char *why)
{
	char msg[640];
	snprintf(msg, sizeof(msg), "node %s cannot fire it: %s", s->cfg.node_id, why);
	log_error("schedule %s/%s: %s", queue, name, msg);
	back_off(s->sched, queue, name);
	struct rctx ctx = {.queue = queue, .id = name};
	fire_call(s, rcall_new(s, RF_SCHED_FIRE, &ctx), queue, name, ver, next, next, "", 0, msg, 0);
}

/* Claims fires[0..n) of d and moves it on to next (due at due): all the jobs are built first, so a refused
 * one claims nothing (local_failure). */
static void
fire_send(struct server *s, const char *queue, const struct sched_def *d, const char *ns, const char *ver,
          const char *expect, int64_t next, uint64_t missed, const int64_t *fires, size_t n, int64_t now_ms)
{
	struct job_spec *specs = xcalloc(n ? n : 1, sizeof(*specs));
	char **payloads = xcalloc(n ? n : 1, sizeof(*payloads));
	char err[512] = "";
	size_t made = 0;
	while (made < n && (payloads[made] = sched_job_payload(s, queue, d, ns, fires[made], now_ms, &specs[made], err,
	                                                       sizeof(err))) != NULL)
		made++;
	if (made == n) {
		struct rctx ctx = {.queue = queue, .id = d->name};
		struct rcall *rc = rcall_new(s, RF_SCHED_FIRE, &ctx);
		for (size_t i = 0; i < n; i++)
			rcall_submit_job(rc, queue, &specs[i], payloads[i]);
		char nx[32], due[32];
		snprintf(nx, sizeof(nx), "%lld", (long long)next);
		snprintf(due, sizeof(due), "%lld", (long long)(next >= 0 ? sched_def_due(d, next) : -1));
		fire_call(s, rc, queue, d->name, ver, expect, nx, due, missed, "", n);
	} else {
		char why[600];
		snprintf(why, sizeof(why), "its job is refused: %s", err);
		local_failure(s, queue, d->name, ver, expect, why);
	}
	for (size_t i = 0; i < made; i++) {
		job_spec_free(&specs[i]);
		free(payloads[i]);
	}
	free(specs);
	free(payloads);
}

/* One due schedule: plan its fire times from its definition and claim them. */
static void
sched_one(struct server *s, const char *queue, int64_t now_ms, const char *name, const char *ver, const char *next,
          const char *defjson)
{
	if (backed_off(s->sched, queue, name))
		return;
	json_t *root = json_loads(defjson, 0, NULL);
	struct sched_def d;
	char err[512];
	if (sched_def_parse(root, &d, err, sizeof(err)) != 0) {
		/* put stored it after the same check: only this host differs (a zone file missing) */
		local_failure(s, queue, name, ver, next, err);
		json_decref(root);
		return;
	}
	const char *ns = json_string_value(json_object_get(root, "ns"));
	int64_t fires[SCHED_PLAN_MAX];
	size_t n = 0;
	uint64_t missed = 0;
	int64_t nx;
	if (next[0] == '\0') /* just put or resumed: the first fire after now */
		nx = sched_def_next(&d, now_ms);
	else
		nx = sched_def_plan(&d, atoll(next), now_ms, fires, SCHED_PLAN_MAX, &n, &missed);
	if (missed > 0)
		log_warn("schedule %s/%s: %llu fire time(s) missed (misfire %s)", queue, name,
		         (unsigned long long)missed, sched_misfire_name(d.misfire));
	fire_send(s, queue, &d, ns, ver, next, nx, missed, fires, n, now_ms);
	sched_def_free(&d);
	json_decref(root);
}

struct due_ctx {
	int qi;
};

static void
due_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct due_ctx *dc = priv;
	int qi = dc->qi;
	free(dc);
	if (s->sched == NULL) /* stopping: Redis fails what is pending */
		return;
	s->sched->polling[qi] = 0;
	if (r == NULL || rr_type(r) != RR_ARRAY || rr_count(r) < 2) {
		if (r != NULL && rr_type(r) == RR_ERROR)
			log_error("schedules of %s: sched_due: Redis: %s", s->cfg.queues[qi].name, rr_str(r, NULL));
		return;
	}
	int64_t now_ms = atoll(rr_str(rr_elem(r, 0), NULL) ? rr_str(rr_elem(r, 0), NULL) : "0");
	for (size_t i = 2; i + 3 < rr_count(r); i += 4) {
		const char *name = rr_str(rr_elem(r, i), NULL), *ver = rr_str(rr_elem(r, i + 1), NULL);
		const char *next = rr_str(rr_elem(r, i + 2), NULL), *def = rr_str(rr_elem(r, i + 3), NULL);
		if (name != NULL && ver != NULL && next != NULL && def != NULL)
			sched_one(s, s->cfg.queues[qi].name, now_ms, name, ver, next, def);
	}
}

static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sched_poll(((struct sched *)w->data)->s);
}

void
sched_poll(struct server *s)
{
	struct sched *sc = s->sched;
	if (sc == NULL || !redis_ready(s->redis) || !s->registered || s->shutting_down)
		return;
	for (int i = 0; i < s->cfg.nqueues; i++) {
		if (sc->polling[i])
			continue;
		const char *q = s->cfg.queues[i].name;
		struct rctx ctx = {.queue = q};
		struct rcall *rc = rcall_new(s, RF_SCHED_DUE, &ctx);
		char *tag = rkey_name(s, RK_SCHED, &ctx); /* "P{Q}:sched:" (no id) */
		rcall_arg(rc, "tag", tag, -1);
		free(tag);
		rcall_int(rc, "limit", SCHED_DUE_LIMIT);
		struct due_ctx *dc = xcalloc(1, sizeof(*dc));
		dc->qi = i;
		sc->polling[i] = 1;
		if (rcall_send(s, rc, due_reply, dc) != 0) {
			sc->polling[i] = 0;
			free(dc);
		}
	}
}

void
sched_start(struct server *s)
{
	struct sched *sc = xcalloc(1, sizeof(*sc));
	sc->s = s;
	ev_timer_init(&sc->timer, poll_cb, SCHED_POLL_S, SCHED_POLL_S);
	sc->timer.data = sc;
	ev_timer_start(s->loop, &sc->timer);
	s->sched = sc;
}

void
sched_stop(struct server *s)
{
	if (s->sched == NULL)
		return;
	ev_timer_stop(s->loop, &s->sched->timer);
	free(s->sched);
	s->sched = NULL;
}

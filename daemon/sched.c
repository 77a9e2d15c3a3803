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

#include "hopperd.h"
#include "job_ns.h"
#include "jsonx.h"
#include "log.h"
#include "rfunc.h"
#include "sched_def.h"
#include "xmalloc.h"

/* How often each served queue's due set is read: a fire starts at most this late (plus a round trip). */
#define SCHED_POLL_S 0.25
/* A schedule whose definition cannot be used now (its zone file went away) is looked at again this late. */
#define SCHED_RETRY_MS 60000
/* Due schedules one poll of a queue takes (the others stay due for the next poll). */
#define SCHED_DUE_LIMIT 50

struct sched {
	struct server *s;
	ev_timer timer;
	unsigned char polling[MAX_QUEUES]; /* a sched_due of cfg.queues[i] is outstanding */
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
	else if (v != NULL && strcmp(v, "fired") == 0 && rr_count(r) >= 3) {
		long long created = rr_int(rr_elem(r, 1)), existing = rr_int(rr_elem(r, 2));
		if (created > 0 || existing > 0)
			log_info("schedule %s/%s fired: %lld job(s) made, %lld existed already", fc->queue, fc->name,
			         created, existing);
		s->metrics.sched_fires += (uint64_t)created;
	} else
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

/* Sends one sched_fire: the jobs of fires[0..n), then the schedule moves on to next. */
static void
fire_send(struct server *s, const char *queue, const struct sched_def *d, const char *ns, const char *ver,
          const char *expect, const char *next, int64_t due, uint64_t missed, const int64_t *fires, size_t n,
          int64_t now_ms, const char *error)
{
	struct rctx ctx = {.queue = queue, .id = d != NULL ? d->name : NULL};
	struct rcall *rc = rcall_new(s, RF_SCHED_FIRE, &ctx);
	char err[512] = "";
	size_t made = 0;
	for (size_t i = 0; i < n; i++) {
		struct job_spec spec;
		char *payload = sched_job_payload(s, queue, d, ns, fires[i], now_ms, &spec, err, sizeof(err));
		if (payload == NULL) {
			log_error("schedule %s/%s: its job is refused: %s", queue, d->name, err);
			continue;
		}
		rcall_submit_job(rc, queue, &spec, payload);
		made++;
		job_spec_free(&spec);
		free(payload);
	}
	char buf[sizeof(err) + 32];
	if (err[0] != '\0' && error[0] == '\0') {
		snprintf(buf, sizeof(buf), "job refused: %s", err);
		error = buf;
	}
	rcall_arg(rc, "name", ctx.id, -1);
	rcall_arg(rc, "ver", ver, -1);
	rcall_arg(rc, "expect", expect, -1);
	rcall_arg(rc, "next", next, -1);
	rcall_int(rc, "due", due);
	rcall_int(rc, "missed", (long long)missed);
	rcall_arg(rc, "error", error, -1);
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	rcall_int(rc, "n", (long long)made);
	struct fire_ctx *fc = xcalloc(1, sizeof(*fc));
	snprintf(fc->queue, sizeof(fc->queue), "%s", queue);
	snprintf(fc->name, sizeof(fc->name), "%s", ctx.id);
	if (rcall_batch(s, rc, fire_reply, fc) != 0)
		free(fc);
}

/* One due schedule: plan its fire times from its definition and claim them. */
static void
sched_one(struct server *s, const char *queue, int64_t now_ms, const char *name, const char *ver, const char *next,
          const char *defjson)
{
	json_t *root = json_loads(defjson, 0, NULL);
	struct sched_def d;
	char err[512];
	if (sched_def_parse(root, &d, err, sizeof(err)) != 0) {
		/* Stored by put after the same check, so only the environment changed (a zone file removed): keep
		 * the schedule and its next fire time, say why it waits, look again later. */
		log_error("schedule %s/%s: cannot fire: %s", queue, name, err);
		struct sched_def stub = {.job = NULL};
		snprintf(stub.name, sizeof(stub.name), "%s", name);
		fire_send(s, queue, &stub, NULL, ver, next, next, now_ms + SCHED_RETRY_MS, 0, NULL, 0, now_ms, err);
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
	char nxs[32];
	snprintf(nxs, sizeof(nxs), "%lld", (long long)nx);
	fire_send(s, queue, &d, ns, ver, next, nxs, nx >= 0 ? sched_def_due(&d, nx) : -1, missed, fires, n, now_ms, "");
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

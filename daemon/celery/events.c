/*
 * celery/events: with celery_events = on, hopperd sends Celery's monitoring events on the "celeryev"
 * fanout exchange as a Celery worker started with -E does (PUBLISH P/DB.celeryev/ROUTING_KEY ENVELOPE, the
 * routing key being the type with '-' as '.'; format in schema/celery-control.md), so `celery events`,
 * Flower and app.events.Receiver see hopperd's daemons and tasks:
 *   worker-online at start, worker-heartbeat every CELERY_HEARTBEAT_S, worker-offline at shutdown;
 *   task-received (a Celery message became a hopper job here), task-started, task-succeeded,
 *   task-failed, task-retried (an attempt of a Celery job ended here), task-revoked (remote revoke).
 * Events are fire-and-forget, as in Celery: none is stored, a lost one is not resent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery_msg.h"
#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "xmalloc.h"

#define CELERY_HEARTBEAT_S 2.0 /* Celery's worker_heartbeat / event heartbeat default (freq 2.0) */

/* Module state: set by celery_events_start. */
static struct {
	int on;
	int online_sent, offline_sent;
	unsigned long clock, processed;
	ev_timer heartbeat;
	char prefix[256]; /* P/DB.celeryev/ */
} ev;

static void
ignore_reply(struct server *s, const struct redis_reply *r, void *priv)
{
}

/* Publishes one event. Takes ownership of body (an object: the fields of this event type). */
static void
send_event(struct server *s, const char *type, json_t *body)
{
	if (!ev.on || !redis_ready(s->redis)) {
		json_decref(body);
		return;
	}
	char rk[64], channel[320];
	snprintf(rk, sizeof(rk), "%s", type);
	for (char *p = rk; *p; p++)
		if (*p == '-')
			*p = '.';
	snprintf(channel, sizeof(channel), "%s%s", ev.prefix, rk);
	json_object_set_new(body, "hostname", json_string(celery_pidbox_hostname()));
	json_object_set_new(body, "utcoffset", json_integer(0));
	json_object_set_new(body, "pid", json_integer(getpid()));
	json_object_set_new(body, "clock", json_integer((json_int_t)++ev.clock));
	json_object_set_new(body, "timestamp", json_real(clock_now()));
	json_object_set_new(body, "type", json_string(type));
	char *text = jsonx_dump(body);
	json_t *headers = json_pack("{s:s}", "hostname", celery_pidbox_hostname());
	char *env = celery_envelope_encode(text, headers, "celeryev", rk, 1);
	const char *argv[] = {"PUBLISH", channel, env};
	redis_command(s->redis, 3, argv, NULL, ignore_reply, NULL);
	free(env);
	json_decref(headers);
	free(text);
	json_decref(body);
}

static void
worker_event(struct server *s, const char *type)
{
	double load[3] = {0, 0, 0};
	if (getloadavg(load, 3) < 0)
		load[0] = load[1] = load[2] = 0;
	send_event(s, type,
	           json_pack("{s:f, s:i, s:I, s:[f, f, f], s:s, s:s, s:s}", "freq", CELERY_HEARTBEAT_S, "active",
	                     s->nrunning, "processed", (json_int_t)ev.processed, "loadavg", load[0], load[1], load[2],
	                     "sw_ident", "hopperd", "sw_ver", HOPPER_VERSION, "sw_sys", "Linux"));
}

static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	if (s->shutting_down)
		return;
	worker_event(s, ev.online_sent ? "worker-heartbeat" : "worker-online");
	ev.online_sent = redis_ready(s->redis);
}

void
celery_events_start(struct server *s)
{
	if (strcmp(s->cfg.celery_events, "on") != 0)
		return;
	ev.on = 1;
	snprintf(ev.prefix, sizeof(ev.prefix), "%s/%d.celeryev/", s->cfg.celery_prefix, s->cfg.redis_db);
	ev_timer_init(&ev.heartbeat, heartbeat_cb, 0.2, CELERY_HEARTBEAT_S);
	ev.heartbeat.data = s;
	ev_timer_start(s->loop, &ev.heartbeat);
}

void
celery_events_stop(struct server *s)
{
	if (!ev.on)
		return;
	ev_timer_stop(s->loop, &ev.heartbeat);
	if (!ev.offline_sent) {
		worker_event(s, "worker-offline");
		ev.offline_sent = 1;
	}
}

void
celery_events_received(struct server *s, const struct celery_task *t)
{
	if (!ev.on)
		return;
	char *args = jsonx_dump(t->args), *kwargs = jsonx_dump(t->kwargs);
	char eta[40] = "", expires[40] = "";
	if (t->eta > 0)
		celery_iso_format(t->eta, 1, eta, sizeof(eta));
	if (t->expires > 0)
		celery_iso_format(t->expires, 1, expires, sizeof(expires));
	send_event(s, "task-received",
	           json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:i, s:s?, s:s?}", "uuid", t->id, "name", t->task, "args",
	                     args, "kwargs", kwargs, "root_id", t->root_id[0] ? t->root_id : t->id, "parent_id",
	                     t->parent_id[0] ? t->parent_id : NULL, "retries", t->retries, "eta", eta[0] ? eta : NULL,
	                     "expires", expires[0] ? expires : NULL));
	free(args);
	free(kwargs);
}

void
celery_events_revoked(struct server *s, const char *id, int terminated)
{
	if (ev.on)
		send_event(s, "task-revoked",
		           json_pack("{s:s, s:b, s:i, s:b}", "uuid", id, "terminated", terminated, "signum",
		                     terminated ? 15 : 0, "expired", 0));
}

/* A hopper job of a consumed Celery queue whose type a Celery task maps to. */
static int
is_celery_job(const struct server *s, const struct job *j)
{
	const struct celery_map *m = celery_task_map(s);
	if (m == NULL || !celery_consumes(s, j->queue))
		return 0;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->routes[i].type, j->spec.type) == 0)
			return 1;
	return 0;
}

void
celery_events_job(struct server *s, const struct job *j)
{
	if (!ev.on || !is_celery_job(s, j))
		return;
	if (j->phase == PHASE_RUNNING) {
		send_event(s, "task-started", json_pack("{s:s, s:i}", "uuid", j->spec.id, "pid", (int)j->worker_pid));
		return;
	}
	double runtime = clock_now() - j->started_at;
	const char *err = j->error ? j->error : "";
	switch (j->outcome) {
	case JOB_SUCCEEDED:
		ev.processed++;
		send_event(s, "task-succeeded",
		           json_pack("{s:s, s:s, s:f}", "uuid", j->spec.id, "result", j->result ? j->result : "null",
		                     "runtime", runtime));
		break;
	case JOB_RETRYING:
		send_event(s, "task-retried",
		           json_pack("{s:s, s:s, s:s}", "uuid", j->spec.id, "exception", err, "traceback", err));
		break;
	case JOB_FAILED:
	case JOB_DEAD:
		ev.processed++;
		send_event(s, "task-failed",
		           json_pack("{s:s, s:s, s:s}", "uuid", j->spec.id, "exception", err, "traceback", err));
		break;
	default: break;
	}
}

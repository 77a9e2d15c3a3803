/*
 * celery/pidbox: hopperd answers Celery's remote control as a Celery worker does, on kombu's Redis fanout
 * exchange "celery.pidbox" (PUBLISH /DB.celery.pidbox; wire format in schema/celery-control.md):
 *   ping, inspect active / reserved / scheduled / stats / registered / revoked / query_task, and
 *   revoke (and terminate): the ids join a revoked set in Redis shared by every daemon (bounded by
 *   celery_revoked_max, entries expire after celery_revoked_expires, kept across restarts like a Celery
 *   worker's --statedb); a queued revoked task never runs (REVOKED), with terminate=True a running attempt
 *   is stopped through hopper's cancel (SIGTERM, SIGKILL after kill_grace_s).
 * Replies are LPUSHed, as kombu's reply exchange does, to the caller's reply list only while the caller's
 * binding exists (a caller that gave up gets no stray list). The Redis side is in daemon/lua/12_celery.lua
 * (celery_revoke, celery_cancel, celery_revoked, celery_reply; rows in daemon/redis/rfunc.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "celery_msg.h"
#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "xmalloc.h"

#define PIDBOX_REVOKE_IDS_MAX 1000 /* ids in one revoke: Celery sends one or a few */

/* Module state: set by celery_pidbox_start, read by the handlers. */
static struct {
	int on;
	char channel[256];
	char hostname[300];
	unsigned long clock;
} pb;

/* A request whose reply waits for Redis. Owned by the pending callback(s), the last of which frees it. */
struct pending {
	char ticket[64];
	char rk[128];
	char method[CELERY_METHOD_MAX + 1];
	/* revoke: the ids, the replies still awaited, and the ids whose running attempt was stopped */
	int terminate;
	char **ids;
	size_t nids;
	int left;
	int failed;
	char stopped[1024];
	size_t nstopped;
};

const char *
celery_pidbox_hostname(void)
{
	return pb.hostname;
}

static void
ignore_errors(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("celery pidbox: %s: %s", (const char *)priv, rr_str(r, NULL));
}

/* Sends {hostname: value} to the caller's reply list. Takes ownership of value. */
static void
reply_send(struct server *s, const char *ticket, const char *rk, json_t *value)
{
	if (rk[0] == '\0') {
		json_decref(value);
		return;
	}
	json_t *body = json_object();
	json_object_set_new(body, pb.hostname, value);
	char *text = jsonx_dump(body);
	json_t *headers = json_pack("{s:s, s:I}", "ticket", ticket, "clock", (json_int_t)++pb.clock);
	char *env = celery_envelope_encode(text, headers, "reply.celery.pidbox", rk, 1);
	struct rctx ctx = {0};
	struct rcall *c = rcall_new(s, RF_CELERY_REPLY, &ctx);
	rcall_arg(c, "celery_prefix", s->cfg.celery_prefix, -1);
	rcall_arg(c, "routing_key", rk, -1);
	rcall_arg(c, "envelope", env, -1);
	rcall_batch(s, c, ignore_errors, (void *)"reply");
	free(env);
	json_decref(headers);
	json_decref(body);
	free(text);
}

static json_t *
ok_text(const char *text)
{
	return json_pack("{s:s}", "ok", text);
}

/* The Celery task name of a hopper job: the first celery_tasks entry mapping to its type. */
static const char *
task_name(const struct server *s, const struct job *j)
{
	const struct celery_map *m = celery_task_map(s);
	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (strcmp(m->routes[i].type, j->spec.type) == 0)
			return m->routes[i].task;
	return NULL;
}

/* A request dict as `celery inspect active/reserved` shows it. */
static json_t *
request_json(const struct server *s, const struct job *j, const char *name, int running)
{
	json_t *r = json_pack("{s:s, s:s, s:[], s:O, s:s, s:s, s:b, s:{s:s, s:s, s:i, s:b}}", "id", j->spec.id, "name",
	                      name, "args", "kwargs", j->spec.args ? j->spec.args : json_null(), "type", name,
	                      "hostname", pb.hostname, "acknowledged", 1, "delivery_info", "exchange", "",
	                      "routing_key", j->queue, "priority", 0, "redelivered", 0);
	json_object_set_new(r, "time_start", running ? json_real(j->started_at) : json_null());
	json_object_set_new(r, "worker_pid", running && j->worker_pid > 0 ? json_integer(j->worker_pid) : json_null());
	return r;
}

/* The Celery tasks this daemon holds: running ones (active) or fetched, not yet started (reserved). */
static json_t *
requests(const struct server *s, int running)
{
	json_t *out = json_array();
	for (const struct job *j = s->jobs; j != NULL; j = j->next) {
		const char *name = j->dead ? NULL : task_name(s, j);
		int is_running = j->phase == PHASE_RUNNING || j->phase == PHASE_FINISHING;
		if (name != NULL && celery_consumes(s, j->queue) && is_running == running)
			json_array_append_new(out, request_json(s, j, name, running));
	}
	return out;
}

static json_t *
h_ping(struct server *s, const struct celery_control *c)
{
	return ok_text("pong");
}

static json_t *
h_active(struct server *s, const struct celery_control *c)
{
	return requests(s, 1);
}

static json_t *
h_reserved(struct server *s, const struct celery_control *c)
{
	return requests(s, 0);
}

/* ETA tasks wait in hopper's scheduled sets in Redis, not in a worker's memory: none is held here. */
static json_t *
h_scheduled(struct server *s, const struct celery_control *c)
{
	return json_array();
}

static json_t *
h_registered(struct server *s, const struct celery_control *c)
{
	json_t *out = json_array();
	const struct celery_map *m = celery_task_map(s);
	for (size_t i = 0; m != NULL && i < m->n; i++)
		json_array_append_new(out, json_string(m->routes[i].task));
	return out;
}

static json_t *
h_stats(struct server *s, const struct celery_control *c)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	json_t *procs = json_array();
	for (const struct worker *w = s->workers; w != NULL; w = w->next)
		if (!w->dead)
			json_array_append_new(procs, json_integer(w->pid));
	char clk[32];
	snprintf(clk, sizeof(clk), "%lu", pb.clock);
	return json_pack(
	        "{s:{}, s:i, s:s, s:I, s:{s:s, s:i, s:o, s:i}, s:{s:s, s:s, s:i}, s:i, s:{s:f, s:f, s:I}}", "total",
	        "pid", (int)getpid(), "clock", clk, "uptime", (json_int_t)(clock_now() - s->started_at), "pool",
	        "implementation", "hopperd", "max-concurrency", s->cfg.workers, "processes", procs,
	        "max-tasks-per-child", s->cfg.worker_max_jobs, "broker", "transport", "redis", "hostname",
	        s->cfg.redis_unix[0] ? s->cfg.redis_unix : s->cfg.redis_host, "port", s->cfg.redis_port,
	        "prefetch_count", s->cfg.prefetch, "rusage", "utime", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	        "stime", ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, "maxrss", (json_int_t)ru.ru_maxrss);
}

static void
revoked_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending *p = priv;
	json_t *ids = json_array();
	for (size_t i = 0; r != NULL && rr_type(r) == RR_ARRAY && i < rr_count(r); i++) {
		size_t n;
		const char *id = rr_str(rr_elem(r, i), &n);
		if (id != NULL)
			json_array_append_new(ids, json_stringn(id, n));
	}
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("celery pidbox: revoked: %s", rr_str(r, NULL));
	reply_send(s, p->ticket, p->rk, ids);
	free(p);
}

static struct pending *
pending_new(const struct celery_control *c)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	snprintf(p->ticket, sizeof(p->ticket), "%s", c->ticket);
	snprintf(p->rk, sizeof(p->rk), "%s", c->reply_rk);
	snprintf(p->method, sizeof(p->method), "%s", c->method);
	return p;
}

/* NULL: the reply comes later (or there is none). */
static json_t *
h_revoked(struct server *s, const struct celery_control *c)
{
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_CELERY_REVOKED, &ctx);
	rcall_int(rc, "expires", s->cfg.celery_revoked_expires);
	struct pending *p = pending_new(c);
	if (rcall_send(s, rc, revoked_reply, p) < 0) {
		free(p);
		return json_pack("{s:s}", "error", "hopperd: Redis unavailable");
	}
	return NULL;
}

static void
pending_free(struct pending *p)
{
	for (size_t i = 0; i < p->nids; i++)
		free(p->ids[i]);
	free(p->ids);
	free(p);
}

/* One reply of a revoke is in; the last one answers the caller, in Celery's own words (celery/worker/control.py
 * revoke): the ids revoked, or with terminate those whose running attempt was stopped. */
static void
revoke_release(struct server *s, struct pending *p)
{
	if (--p->left > 0)
		return;
	if (p->failed) {
		reply_send(s, p->ticket, p->rk, json_pack("{s:s}", "error", "hopperd could not record the revoke"));
		pending_free(p);
		return;
	}
	char ids[1024], out[1100];
	size_t k = 0;
	ids[0] = '\0';
	for (size_t i = 0; i < p->nids && k + 1 < sizeof(ids); i++) {
		int n = snprintf(ids + k, sizeof(ids) - k, "%s%s", i > 0 ? ", " : "", p->ids[i]);
		k += n > 0 ? (size_t)n : 0;
	}
	if (p->terminate)
		snprintf(out, sizeof(out), "terminate: %s", p->nstopped > 0 ? p->stopped : "tasks unknown");
	else
		snprintf(out, sizeof(out), "tasks %s flagged as revoked", ids);
	reply_send(s, p->ticket, p->rk, ok_text(out));
	pending_free(p);
}

struct cancel_ref {
	struct pending *p;
	size_t idx;
};

/* celery_cancel of one id in one queue: 2 = its running attempt was stopped. */
static void
cancel_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct cancel_ref *ref = priv;
	struct pending *p = ref->p;
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("celery pidbox: revoke of %s: %s", p->ids[ref->idx], rr_str(r, NULL));
	else if (r != NULL && rr_type(r) == RR_INTEGER && rr_int(r) == 2 &&
	         p->nstopped + strlen(p->ids[ref->idx]) + 3 < sizeof(p->stopped)) {
		int n = snprintf(p->stopped + p->nstopped, sizeof(p->stopped) - p->nstopped, "%s%s",
		                 p->nstopped > 0 ? ", " : "", p->ids[ref->idx]);
		p->nstopped += n > 0 ? (size_t)n : 0;
	}
	free(ref);
	revoke_release(s, p);
}

/*
 * The ids are in the revoked set (so no later intake runs them): now every known queue ends the Celery tasks
 * it holds under those ids (celery_cancel, one per queue and id, in each queue's batch), and this daemon stops
 * its own copies. Every daemon gets the broadcast and stops its own copy (also without a control socket,
 * whose channel would carry the cancel otherwise): a task waiting for a worker is dropped, a running one is
 * stopped only with terminate, as a Celery worker does.
 */
static void
revoke_recorded(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending *p = priv;
	if (r == NULL || rr_type(r) != RR_INTEGER) {
		if (r != NULL && rr_type(r) == RR_ERROR)
			log_warn("celery pidbox: revoke: %s", rr_str(r, NULL));
		p->failed = 1;
		revoke_release(s, p);
		return;
	}
	int nq;
	const char **qs = ctl_all_queues(s, &nq);
	char *channel = rchan_control(s), owner[340];
	snprintf(owner, sizeof(owner), "celery revoke (%s)", pb.hostname);
	/* p->left still holds the revoke's own count: released below, once every cancel went out */
	for (size_t i = 0; i < p->nids; i++)
		for (int q = 0; q < nq; q++) {
			struct rctx ctx = {.queue = qs[q], .id = p->ids[i]};
			struct rcall *c = rcall_new(s, RF_CELERY_CANCEL, &ctx);
			rcall_arg(c, "id", p->ids[i], -1);
			rcall_arg(c, "owner", owner, -1);
			rcall_arg(c, "terminate", p->terminate ? "1" : "0", -1);
			rcall_int(c, "ttl", s->cfg.result_ttl_s);
			rcall_int(c, "max_events", s->cfg.events_max);
			rcall_arg(c, "channel", channel, -1);
			struct cancel_ref *ref = xcalloc(1, sizeof(*ref));
			ref->p = p;
			ref->idx = i;
			if (rcall_batch(s, c, cancel_reply, ref) == 0)
				p->left++;
			else
				free(ref);
		}
	free(channel);
	free(qs);
	for (size_t i = 0; i < p->nids; i++)
		celery_events_revoked(s, p->ids[i], p->terminate);
	for (size_t i = 0; i < p->nids; i++)
		for (struct job *j = s->jobs; j != NULL; j = j->next)
			if (!j->dead && strcmp(j->spec.id, p->ids[i]) == 0 && celery_consumes(s, j->queue) &&
			    (p->terminate || (j->phase != PHASE_RUNNING && j->phase != PHASE_FINISHING))) {
				jobs_cancel(s, p->ids[i]);
				break;
			}
	revoke_release(s, p);
}

/* revoke(task_id: str | [str], terminate: bool, signal: str); terminate(signal, task_id). */
static json_t *
h_revoke(struct server *s, const struct celery_control *c)
{
	json_t *ids = json_object_get(c->arguments, "task_id"), *list = json_array();
	int terminate = strcmp(c->method, "terminate") == 0 || json_is_true(json_object_get(c->arguments, "terminate"));
	if (json_is_string(ids))
		json_array_append(list, ids);
	else if (json_is_array(ids))
		json_array_extend(list, ids);
	size_t n = json_array_size(list);
	if (n == 0 || n > PIDBOX_REVOKE_IDS_MAX) {
		json_decref(list);
		return json_pack("{s:s}", "error", "revoke: task_id must be an id or a list of ids");
	}
	struct pending *p = pending_new(c);
	p->terminate = terminate;
	p->ids = xcalloc(n, sizeof(*p->ids));
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_CELERY_REVOKE, &ctx);
	rcall_int(rc, "max", s->cfg.celery_revoked_max);
	rcall_int(rc, "expires", s->cfg.celery_revoked_expires);
	for (size_t i = 0; i < n; i++) {
		const char *id = json_string_value(json_array_get(list, i));
		if (id != NULL && job_name_valid(id, JOB_ID_MAX)) {
			p->ids[p->nids++] = xstrdup(id);
			rcall_more(rc, id, -1);
		}
	}
	json_decref(list);
	log_info("celery: revoke%s of %zu task(s) from remote control", terminate ? " (terminate)" : "", p->nids);
	/* Sent at once, not batched: the ids are recorded before any queue is asked for its copies, so a task
	 * converted meanwhile is either found by its queue's celery_cancel or sees the revoked set at intake. */
	p->left = 1;
	if (rcall_send(s, rc, revoke_recorded, p) < 0) {
		pending_free(p);
		return json_pack("{s:s}", "error", "hopperd: Redis unavailable");
	}
	return NULL;
}

/* Methods a Celery worker has and hopperd deliberately does not do: a clear error, not silence. */
static json_t *
h_unsupported(struct server *s, const struct celery_control *c)
{
	char text[200];
	snprintf(text, sizeof(text), "hopperd does not support the remote control command '%s'", c->method);
	return json_pack("{s:s}", "error", text);
}

static const struct {
	const char *method;
	json_t *(*handler)(struct server *s, const struct celery_control *c);
} methods[] = {
        {"ping", h_ping},           {"active", h_active},         {"reserved", h_reserved},
        {"scheduled", h_scheduled}, {"registered", h_registered}, {"dump_tasks", h_registered},
        {"stats", h_stats},         {"revoked", h_revoked},       {"revoke", h_revoke},
        {"terminate", h_revoke},
};

void
celery_pidbox_start(struct server *s)
{
	pb.on = 1;
	snprintf(pb.channel, sizeof(pb.channel), "%s/%d.celery.pidbox", s->cfg.celery_prefix, s->cfg.redis_db);
	if (s->cfg.celery_hostname[0] != '\0')
		snprintf(pb.hostname, sizeof(pb.hostname), "%s", s->cfg.celery_hostname);
	else
		snprintf(pb.hostname, sizeof(pb.hostname), "hopperd@%s", s->cfg.node_id);
	if (redis_sub_ready(s->redis))
		celery_pidbox_connected(s);
}

void
celery_pidbox_connected(struct server *s)
{
	if (pb.on && redis_subscribe(s->redis, pb.channel) < 0)
		log_warn("celery pidbox: cannot subscribe to %s yet", pb.channel);
}

int
celery_pidbox_message(struct server *s, const char *channel, const char *msg, size_t len)
{
	if (!pb.on || strcmp(channel, pb.channel) != 0)
		return 0;
	struct celery_control c;
	char err[128];
	if (celery_control_parse(msg, len, pb.hostname, clock_now(), &c, err, sizeof(err)) < 0) {
		log_warn("celery pidbox: ignored a message: %s", err);
		return 1;
	}
	if (c.for_us && strcmp(c.method, "hello") != 0) {
		json_t *(*h)(struct server *, const struct celery_control *) = h_unsupported;
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
			if (strcmp(methods[i].method, c.method) == 0)
				h = methods[i].handler;
		log_debug("celery pidbox: %s", c.method);
		json_t *v = h(s, &c);
		if (v != NULL)
			reply_send(s, c.ticket, c.reply_rk, v);
	}
	celery_control_free(&c);
	return 1;
}

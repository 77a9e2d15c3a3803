/*
 * ctl_sched: the control socket's schedule ops (schedule.put, list, show, rm, pause, resume). Schedules live
 * in Redis, per queue (daemon/lua/15_sched.lua), so every daemon sees the same set at once; sched.c fires
 * them. Owner rules are the stored workflows': a schedule belongs to the owner of the credential that put it
 * (admin may name another); without admin a client sees and changes only its own owner's, another owner's
 * answers not_found like a missing one, except put of a name another owner holds in that queue: conflict.
 *
 * A schedule that runs a stored workflow has the workflow's definition resolved at put (as workflow.run
 * does at submission): any daemon can fire it, and a later workflow.put changes it only when the schedule is
 * put again. The jobs its fires make carry the owner's id namespace, like the owner's own submissions.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "rfunc.h"
#include "sched_def.h"
#include "xmalloc.h"

/* A stored definition's largest size (a workflow schedule carries the workflow's definition). */
#define SCHED_DEF_MAX    (256 * 1024)
#define UPCOMING_DEFAULT 5
#define DEFAULT_QUEUE    "default"

static int
is_admin(const struct ctl_conn *c)
{
	return (c->cred.scopes & CTL_SCOPE_ADMIN) != 0;
}

static const char *
req_queue(const struct ctl_request *req)
{
	const char *q = json_string_value(json_object_get(req->root, "queue"));
	return q != NULL ? q : DEFAULT_QUEUE;
}

/* The next count fire times after after_ms (Unix seconds, as JSON numbers). New reference. */
static json_t *
upcoming(const struct sched_def *d, int64_t first, int64_t after_ms, int count)
{
	json_t *a = json_array();
	int64_t t = first >= 0 ? first : sched_def_next(d, after_ms);
	for (int i = 0; i < count && t >= 0; i++) {
		json_array_append_new(a, json_real((double)t / 1000.0));
		t = sched_def_next(d, t);
	}
	return a;
}

/* --- put --- */

struct put_data {
	char queue[QUEUE_NAME_MAX + 1];
	json_t *view; /* the reply's body, completed with created */
};

static void
put_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct put_data *pd = p->data;
	int ok = ctl_rf_usable(p, r, "schedule.put");
	const char *v = ok ? ctl_rf_elem(r, 0) : NULL;
	if (!ok)
		;
	else if (v != NULL && strcmp(v, "conflict") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "schedule %s belongs to another owner",
		              json_string_value(json_object_get(pd->view, "name")));
	else if (v != NULL && strcmp(v, "limit") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_LIMIT, "queue %s holds %d schedules already", pd->queue,
		              SCHED_PER_QUEUE_MAX);
	else {
		json_object_set_new(pd->view, "created", json_boolean(v != NULL && strcmp(v, "created") == 0));
		ctl_send(p->c, ctl_reply_ok(p->id, json_incref(pd->view)));
		sched_poll(s); /* computes its first fire time now, from Redis's clock */
	}
	json_decref(pd->view);
	free(pd);
	ctl_pending_end(p);
}

/* The stored form of a schedule.put request: the job template completed (queue, owner; a workflow resolved
 * into a workflow.run job). New reference, or NULL with *code and err. */
static json_t *
put_definition(struct ctl_conn *c, json_t *in, enum ctl_err *code, char *err, size_t errlen)
{
	json_t *def = json_deep_copy(in);
	json_object_del(def, "op");
	json_object_del(def, "id");
	*code = CTL_E_BAD_REQUEST;
	const char *owner = json_string_value(json_object_get(def, "owner"));
	if (owner != NULL && !is_admin(c) && strcmp(owner, c->cred.owner) != 0) {
		*code = CTL_E_FORBIDDEN;
		snprintf(err, errlen, "only admin may store a schedule for another owner");
		goto fail;
	}
	/* The jobs' id namespace, as submit's (ctl_ops.c submit_prepare): admin's own jobs have none. */
	const char *ns = !is_admin(c) ? c->cred.owner : owner;
	if (owner == NULL)
		json_object_set_new(def, "owner", json_string(c->cred.owner));
	if (ns != NULL)
		json_object_set_new(def, "ns", json_string(ns));
	const char *wf = json_string_value(json_object_get(def, "workflow"));
	if (wf != NULL) {
		json_t *wdef = ctl_workflow_resolve(c, wf, code, err, errlen);
		if (wdef == NULL)
			goto fail;
		json_t *input = json_object_get(def, "input");
		input = input != NULL ? json_incref(input) : json_object();
		json_object_set_new(def, "job",
		                    json_pack("{s:s, s:{s:s, s:o, s:o}}", "type", "workflow.run", "args", "workflow",
		                              wf, "definition", wdef, "input", input));
	}
	json_t *job = json_object_get(def, "job");
	const char *jq = json_string_value(json_object_get(job, "queue"));
	const char *q = json_string_value(json_object_get(def, "queue"));
	if (jq != NULL && q != NULL && strcmp(jq, q) != 0) {
		snprintf(err, errlen, "job.queue (%s) differs from the schedule's queue (%s)", jq, q);
		goto fail;
	}
	if (q == NULL)
		json_object_set_new(def, "queue", json_string(jq != NULL ? jq : DEFAULT_QUEUE));
	json_object_set(job, "queue", json_object_get(def, "queue"));
	const char *jo = json_string_value(json_object_get(job, "owner"));
	if (jo != NULL && strcmp(jo, json_string_value(json_object_get(def, "owner"))) != 0) {
		snprintf(err, errlen, "job.owner differs from the schedule's owner");
		goto fail;
	}
	json_object_set(job, "owner", json_object_get(def, "owner"));
	return def;
fail:
	json_decref(def);
	return NULL;
}

void
ctl_op_schedule_put(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	enum ctl_err code = CTL_E_BAD_REQUEST;
	char err[512];
	json_t *def = put_definition(c, req->root, &code, err, sizeof(err));
	struct sched_def d;
	if (def == NULL || sched_def_parse(def, &d, err, sizeof(err)) != 0) {
		ctl_reply_err(c, req->id, code, "%s", err);
		json_decref(def);
		return;
	}
	const char *queue = json_string_value(json_object_get(def, "queue"));
	/* The job a fire would make must pass the daemon's own parser now, not fail at every fire later. */
	struct job_spec spec;
	char *sample = sched_job_payload(s, queue, &d, json_string_value(json_object_get(def, "ns")), 0,
	                                 (int64_t)(clock_now() * 1000), &spec, err, sizeof(err));
	char *text = jsonx_dump(def);
	if (sample == NULL || strlen(text) > SCHED_DEF_MAX) {
		if (sample == NULL)
			ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "job: %s", err);
		else
			ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "the schedule is over %d bytes", SCHED_DEF_MAX);
		goto out;
	}
	struct rctx ctx = {.queue = queue, .id = d.name};
	struct rcall *rc = rcall_new(s, RF_SCHED_PUT, &ctx);
	rcall_arg(rc, "name", d.name, -1);
	rcall_arg(rc, "def", text, -1);
	rcall_arg(rc, "owner", json_string_value(json_object_get(def, "owner")), -1);
	rcall_arg(rc, "admin", is_admin(c) ? "1" : "0", 1);
	rcall_arg(rc, "cron", d.cron, -1);
	rcall_arg(rc, "tz", d.tz, -1);
	rcall_arg(rc, "paused", d.paused ? "1" : "0", 1);
	rcall_int(rc, "max", SCHED_PER_QUEUE_MAX);
	struct put_data *pd = xcalloc(1, sizeof(*pd));
	snprintf(pd->queue, sizeof(pd->queue), "%s", queue);
	/* What this daemon's clock says; schedule show gives the times the daemons will use. */
	pd->view = json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", d.name, "queue", queue, "cron", d.cron, "tz", d.tz,
	                     "upcoming", upcoming(&d, -1, (int64_t)(clock_now() * 1000), UPCOMING_DEFAULT));
	ctl_known_queue(s, queue);
	if (ctl_rf_send(c, req->id, rc, 0, put_reply, pd) != 0) {
		json_decref(pd->view);
		free(pd);
	}
out:
	if (sample != NULL) {
		job_spec_free(&spec);
		free(sample);
	}
	free(text);
	sched_def_free(&d);
	json_decref(def);
}

/* --- rm, pause, resume --- */

static void
simple_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	char *what = p->data; /* "rm", "pause" or "resume", then NUL, then the name */
	const char *name = what + strlen(what) + 1;
	const char *v = ctl_rf_usable(p, r, "schedule") ? ctl_rf_elem(r, 0) : NULL;
	if (v != NULL && strcmp(v, "not_found") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no schedule %s", name);
	else if (v != NULL && strcmp(what, "rm") == 0)
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:b}", "name", name, "removed", 1)));
	else if (v != NULL) {
		const char *was = ctl_rf_elem(r, 1);
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:b, s:b}", "name", name, "paused",
		                                             strcmp(what, "pause") == 0, "was_paused",
		                                             was != NULL && strcmp(was, "1") == 0)));
		if (strcmp(what, "resume") == 0)
			sched_poll(s);
	}
	free(p->data);
	ctl_pending_end(p);
}

static void
simple_op(struct ctl_conn *c, struct ctl_request *req, enum rf f, const char *what)
{
	struct server *s = c->ctl->s;
	const char *name = json_string_value(json_object_get(req->root, "name"));
	struct rctx ctx = {.queue = req_queue(req), .id = name};
	struct rcall *rc = rcall_new(s, f, &ctx);
	rcall_arg(rc, "name", name, -1);
	rcall_arg(rc, "owner", c->cred.owner, -1);
	rcall_arg(rc, "admin", is_admin(c) ? "1" : "0", 1);
	if (f == RF_SCHED_PAUSE)
		rcall_arg(rc, "on", strcmp(what, "pause") == 0 ? "1" : "0", 1);
	size_t wl = strlen(what), nl = strlen(name);
	char *data = xmalloc(wl + nl + 2);
	memcpy(data, what, wl + 1);
	memcpy(data + wl + 1, name, nl + 1);
	if (ctl_rf_send(c, req->id, rc, 0, simple_reply, data) != 0)
		free(data);
}

void
ctl_op_schedule_rm(struct ctl_conn *c, struct ctl_request *req)
{
	simple_op(c, req, RF_SCHED_RM, "rm");
}

void
ctl_op_schedule_pause(struct ctl_conn *c, struct ctl_request *req)
{
	simple_op(c, req, RF_SCHED_PAUSE, req->op->id == CTL_OP_SCHEDULE_PAUSE ? "pause" : "resume");
}

/* --- show --- */

struct show_data {
	char queue[QUEUE_NAME_MAX + 1];
	char name[SCHED_NAME_MAX + 1];
	int count;
};

/* A stored time field (Unix seconds with ms, or ms for next/due) as a JSON number, or null. */
static json_t *
num_or_null(const char *v, double scale)
{
	if (v == NULL || v[0] == '\0' || strcmp(v, "-1") == 0)
		return json_null();
	return json_real(strtod(v, NULL) / scale);
}

/* The view of a schedule's hash (flat field/value reply): its definition and its state. New reference. */
static json_t *
sched_view(const struct redis_reply *r, const char *queue, int count)
{
	json_t *h = json_object();
	for (size_t i = 0; i + 1 < rr_count(r); i += 2)
		json_object_set_new(h, ctl_rf_elem(r, i), json_string(ctl_rf_elem(r, i + 1)));
	const char *defs = json_string_value(json_object_get(h, "def"));
	json_t *def = defs != NULL ? json_loads(defs, 0, NULL) : NULL;
	const char *next = json_string_value(json_object_get(h, "next"));
	const char *paused = json_string_value(json_object_get(h, "paused"));
	const char *fires = json_string_value(json_object_get(h, "fires"));
	const char *missed = json_string_value(json_object_get(h, "missed"));
	const char *skipped = json_string_value(json_object_get(h, "skipped"));
	json_t *v = json_pack("{s:s, s:s, s:o, s:b, s:o, s:o, s:I, s:I, s:o}", "name",
	                      json_string_value(json_object_get(h, "name")), "queue", queue, "definition",
	                      def != NULL ? def : json_null(), "paused", paused != NULL && strcmp(paused, "1") == 0,
	                      "next_fire", num_or_null(next, 1000.0), "next_due",
	                      num_or_null(json_string_value(json_object_get(h, "due")), 1000.0), "fires",
	                      (json_int_t)strtoll(fires != NULL ? fires : "0", NULL, 10), "missed",
	                      (json_int_t)strtoll(missed != NULL ? missed : "0", NULL, 10), "last_fire_at",
	                      num_or_null(json_string_value(json_object_get(h, "last_at")), 1.0));
	json_object_set_new(v, "skipped", json_integer((json_int_t)strtoll(skipped != NULL ? skipped : "0", NULL, 10)));
	static const char *const texts[] = {"last_job", "error", NULL};
	for (size_t i = 0; texts[i] != NULL; i++) {
		json_t *t = json_object_get(h, texts[i]);
		if (t != NULL && json_string_length(t) > 0)
			json_object_set(v, texts[i], t);
	}
	struct sched_def d;
	char err[256];
	if (count > 0 && def != NULL && sched_def_parse(def, &d, err, sizeof(err)) == 0) {
		int64_t first = next != NULL && next[0] != '\0' ? strtoll(next, NULL, 10) : -1;
		json_object_set_new(v, "upcoming", upcoming(&d, first, (int64_t)(clock_now() * 1000), count));
		sched_def_free(&d);
	}
	json_decref(h);
	return v;
}

static void
show_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct show_data *sd = p->data;
	if (!ctl_rf_usable(p, r, "schedule.show"))
		;
	else if (rr_count(r) == 0)
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no schedule %s in queue %s", sd->name, sd->queue);
	else
		ctl_send(p->c, ctl_reply_ok(p->id, sched_view(r, sd->queue, sd->count)));
	free(sd);
	ctl_pending_end(p);
}

void
ctl_op_schedule_show(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct show_data *sd = xcalloc(1, sizeof(*sd));
	snprintf(sd->queue, sizeof(sd->queue), "%s", req_queue(req));
	snprintf(sd->name, sizeof(sd->name), "%s", json_string_value(json_object_get(req->root, "name")));
	json_t *n = json_object_get(req->root, "count");
	sd->count = n != NULL ? (int)json_integer_value(n) : UPCOMING_DEFAULT;
	struct rctx ctx = {.queue = sd->queue, .id = sd->name};
	struct rcall *rc = rcall_new(s, RF_SCHED_SHOW, &ctx);
	rcall_arg(rc, "owner", c->cred.owner, -1);
	rcall_arg(rc, "admin", is_admin(c) ? "1" : "0", 1);
	if (ctl_rf_send(c, req->id, rc, 1, show_reply, sd) != 0)
		free(sd);
}

/* --- list --- */

struct list_data {
	int left, failed;
	json_t *acc; /* the schedules so far */
};

struct list_part {
	struct ctl_pending *p;
	char queue[QUEUE_NAME_MAX + 1];
};

static int
by_queue_name(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(x, "queue")), json_string_value(json_object_get(y, "queue")));
	return c != 0 ? c
	              : strcmp(json_string_value(json_object_get(x, "name")),
	                       json_string_value(json_object_get(y, "name")));
}

static void
list_release(struct ctl_pending *p)
{
	struct list_data *ld = p->data;
	if (--ld->left > 0)
		return;
	if (p->c->dead)
		;
	else if (ld->failed)
		ctl_reply_err(p->c, p->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
	else {
		size_t n = json_array_size(ld->acc);
		json_t **v = xcalloc(n ? n : 1, sizeof(*v));
		for (size_t i = 0; i < n; i++)
			v[i] = json_array_get(ld->acc, i);
		qsort(v, n, sizeof(*v), by_queue_name);
		json_t *out = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append(out, v[i]);
		free(v);
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:o}", "schedules", out)));
	}
	json_decref(ld->acc);
	free(ld);
	ctl_pending_end(p);
}

/* sched_list's per-schedule fields (15_sched.lua SCHED_SUMMARY), in order. */
enum { L_NAME, L_OWNER, L_CRON, L_TZ, L_NEXT, L_PAUSED, L_FIRES, L_MISSED, L_LAST_AT, L_LAST_JOB, L_ERROR, L_COUNT };

static void
list_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct list_part *lp = priv;
	struct ctl_pending *p = lp->p;
	struct list_data *ld = p->data;
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("ctl: schedule.list: Redis: %s", rr_str(r, NULL));
		ld->failed = 1;
	} else
		for (size_t i = 0; i < rr_count(r); i++) {
			const struct redis_reply *e = rr_elem(r, i);
			if (rr_count(e) != L_COUNT)
				continue;
			const char *f[L_COUNT];
			for (int k = 0; k < L_COUNT; k++)
				f[k] = ctl_rf_elem(e, (size_t)k);
			json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:I, s:I, s:o}", "name", f[L_NAME],
			                      "queue", lp->queue, "owner", f[L_OWNER], "cron", f[L_CRON], "tz", f[L_TZ],
			                      "next_fire", num_or_null(f[L_NEXT], 1000.0), "paused",
			                      strcmp(f[L_PAUSED], "1") == 0, "fires",
			                      (json_int_t)strtoll(f[L_FIRES], NULL, 10), "missed",
			                      (json_int_t)strtoll(f[L_MISSED], NULL, 10), "last_fire_at",
			                      num_or_null(f[L_LAST_AT], 1.0));
			if (o == NULL)
				continue;
			if (f[L_LAST_JOB][0] != '\0')
				json_object_set_new(o, "last_job", json_string(f[L_LAST_JOB]));
			if (f[L_ERROR][0] != '\0')
				json_object_set_new(o, "error", json_string(f[L_ERROR]));
			json_array_append_new(ld->acc, o);
		}
	free(lp);
	list_release(p);
}

void
ctl_op_schedule_list(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct list_data *ld = xcalloc(1, sizeof(*ld));
	ld->acc = json_array();
	ld->left = 1; /* held until every part went out */
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = ld;
	const char *only = json_string_value(json_object_get(req->root, "queue"));
	int nq = 1;
	const char **qs = only != NULL ? NULL : ctl_all_queues(s, &nq);
	for (int i = 0; i < nq; i++) {
		const char *q = only != NULL ? only : qs[i];
		struct rctx ctx = {.queue = q};
		struct rcall *rc = rcall_new(s, RF_SCHED_LIST, &ctx);
		char *tag = rkey_name(s, RK_SCHED, &ctx);
		rcall_arg(rc, "tag", tag, -1);
		free(tag);
		rcall_arg(rc, "owner", c->cred.owner, -1);
		rcall_arg(rc, "admin", is_admin(c) ? "1" : "0", 1);
		struct list_part *lp = xcalloc(1, sizeof(*lp));
		lp->p = p;
		snprintf(lp->queue, sizeof(lp->queue), "%s", q);
		ld->left++;
		if (rcall_send(s, rc, list_reply, lp) != 0) {
			ld->left--;
			ld->failed = 1;
			free(lp);
		}
	}
	free(qs);
	list_release(p);
}

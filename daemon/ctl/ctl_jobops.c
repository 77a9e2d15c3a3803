/*
 * ctl_jobops: the ops that send an existing job to another state: cancel, retry, and workflow.restart (a
 * workflow run again from one of its steps, issue #18 item 4). Each is one Redis function on the job's queue,
 * found first by ctl_locate.
 *
 * workflow.restart: the run's step records decide what is kept. Each record names the steps it depends on,
 * directly or not ("after", written by the worker), so Redis drops STEP's record and those of the steps
 * downstream of it in one atomic call (wf_restart, daemon/lua/13_workflow.lua) and requeues the run like a
 * retry. Its next attempt resumes from the records left: the steps that do not depend on STEP are not run
 * again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "job.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "xmalloc.h"

/* --- cancel and retry --- */

struct job_call {
	int retry;
	char job[JOB_ID_MAX + 1];
	char queue[QUEUE_NAME_MAX + 1]; /* where ctl_locate found it */
};

/* A cancelled run that waited for event key (ctl_cancel's reply) is no longer one of its waiters: the waiters
 * sit in the deployment-wide slot, the job in its queue's, so this is a second call (event_unwait). */
static void
unwait(struct server *s, const char *queue, const char *job, const char *key, const char *owner)
{
	if (key == NULL || key[0] == '\0' || !job_name_valid(key, CTL_EVENT_KEY_MAX))
		return;
	char member[QUEUE_NAME_MAX + JOB_ID_MAX + 2];
	snprintf(member, sizeof(member), "%s\t%s", queue, job);
	struct rctx ctx = {.ev = key, .owner = owner};
	struct rcall *rc = rcall_new(s, RF_EVENT_UNWAIT, &ctx);
	rcall_arg(rc, "member", member, -1);
	rcall_batch(s, rc, NULL, NULL); /* lost: the waiter stays until its deadline, and a wake finds it ended */
}

static void
cancel_retry_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct job_call *d = p->data;
	if (!ctl_rf_usable(p, r, d->retry ? "retry" : "cancel")) {
		free(d);
		ctl_pending_end(p);
		return;
	}
	const char *v = ctl_rf_elem(r, 0), *arg = ctl_rf_elem(r, 1);
	if (v != NULL && strcmp(v, "ok") == 0) {
		log_info("ctl: %s: %s job %s%s%s", p->c->peer, d->retry ? "retried" : "cancelled", d->job,
		         d->retry ? "" : ", was ", d->retry ? "" : (arg ? arg : "?"));
		json_t *res = d->retry ? json_pack("{s:s, s:s, s:s}", "id", d->job, "queue", arg ? arg : "", "state",
		                                   "queued")
		                       : json_pack("{s:s, s:s, s:s}", "id", d->job, "state", "cancelled", "was",
		                                   arg ? arg : "queued");
		ctl_send(p->c, ctl_reply_ok(p->id, res));
		if (!d->retry) {
			jobs_cancel(s, d->job); /* this daemon may hold it: no need to wait for the message */
			unwait(s, d->queue, d->job, ctl_rf_elem(r, 2), ctl_rf_elem(r, 3));
		}
	} else if (v != NULL && strcmp(v, "held") == 0)
		ctl_reply_err(
		        p->c, p->id, CTL_E_CONFLICT,
		        "job %s cannot be retried now: its unique key is held by job %s (retry it when that one ends)",
		        d->job, arg ? arg : "?");
	else if (v != NULL && strcmp(v, "conflict") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "job %s is %s: %s", d->job, arg ? arg : "?",
		              d->retry ? "only failed or dead jobs can be retried" : "it has ended already");
	else
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", d->job);
	free(d);
	ctl_pending_end(p);
}

static void
cancel_retry_located(struct ctl_conn *c, json_t *rid, const char *queue, void *data)
{
	struct server *s = c->ctl->s;
	struct job_call *d = data;
	snprintf(d->queue, sizeof(d->queue), "%s", queue);
	struct rctx ctx = {.queue = queue, .id = d->job};
	struct rcall *rc = rcall_new(s, d->retry ? RF_CTL_RETRY : RF_CTL_CANCEL, &ctx);
	rcall_arg(rc, "id", d->job, -1);
	rcall_arg(rc, "owner", c->cred.owner, -1);
	rcall_arg(rc, "admin", (c->cred.scopes & CTL_SCOPE_ADMIN) != 0 ? "1" : "0", -1);
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	if (!d->retry) {
		char *ch = rchan_control(s);
		rcall_arg(rc, "channel", ch, -1);
		free(ch);
	}
	if (ctl_rf_send(c, rid, rc, 0, cancel_retry_reply, d) < 0)
		free(d);
}

static void
cancel_or_retry(struct ctl_conn *c, struct ctl_request *req, int retry)
{
	struct job_call *d = xcalloc(1, sizeof(*d));
	d->retry = retry;
	snprintf(d->job, sizeof(d->job), "%s", json_string_value(json_object_get(req->root, "job")));
	ctl_locate(c, req->id, d->job, json_string_value(json_object_get(req->root, "queue")), cancel_retry_located, d);
}

void
ctl_op_cancel(struct ctl_conn *c, struct ctl_request *req)
{
	cancel_or_retry(c, req, 0);
}

void
ctl_op_retry(struct ctl_conn *c, struct ctl_request *req)
{
	cancel_or_retry(c, req, 1);
}

/* --- workflow.restart --- */

struct restart {
	char job[JOB_ID_MAX + 1];
	char step[CTL_STEP_ID_MAX + 1];
};

/* The names in a ','-joined list as a JSON array. New reference. */
static json_t *
id_list(const char *joined)
{
	json_t *a = json_array();
	for (const char *p = joined; p != NULL && *p != '\0';) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		json_array_append_new(a, json_stringn(p, n));
		p = e ? e + 1 : NULL;
	}
	return a;
}

static void
restart_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct restart *d = p->data;
	if (!ctl_rf_usable(p, r, "workflow.restart")) {
		ctl_pending_end(p);
		free(d);
		return;
	}
	const char *v = ctl_rf_elem(r, 0), *arg = ctl_rf_elem(r, 1);
	if (v != NULL && strcmp(v, "ok") == 0) {
		json_t *dropped = id_list(ctl_rf_elem(r, 2));
		log_info("ctl: %s: restarted workflow run %s from step %s (%zu step record(s) dropped)", p->c->peer,
		         d->job, d->step, json_array_size(dropped));
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", d->job, "queue",
		                                             arg ? arg : "", "state", "queued", "from", d->step,
		                                             "rerun", dropped)));
	} else if (v != NULL && strcmp(v, "not_workflow") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_BAD_REQUEST, "job %s is a %s job, not a workflow.run", d->job,
		              arg && *arg ? arg : "?");
	else if (v != NULL && strcmp(v, "no_step") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_BAD_REQUEST,
		              "run %s has no record of step %s (the steps with records: %s); a step that never ran is "
		              "run by a plain retry",
		              d->job, d->step, arg && *arg ? arg : "none");
	else if (v != NULL && strcmp(v, "held") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT,
		              "run %s cannot be restarted now: its unique key is held by job %s", d->job,
		              arg ? arg : "?");
	else if (v != NULL && strcmp(v, "conflict") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT,
		              "run %s is %s: only an ended run (succeeded, failed or dead) "
		              "can be restarted",
		              d->job, arg ? arg : "?");
	else
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", d->job);
	ctl_pending_end(p);
	free(d);
}

static void
restart_located(struct ctl_conn *c, json_t *rid, const char *queue, void *data)
{
	struct server *s = c->ctl->s;
	struct restart *d = data;
	struct rctx ctx = {.queue = queue, .id = d->job};
	struct rcall *rc = rcall_new(s, RF_WF_RESTART, &ctx);
	rcall_arg(rc, "id", d->job, -1);
	rcall_arg(rc, "owner", c->cred.owner, -1);
	rcall_arg(rc, "admin", (c->cred.scopes & CTL_SCOPE_ADMIN) != 0 ? "1" : "0", -1);
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	rcall_arg(rc, "step", d->step, -1);
	if (ctl_rf_send(c, rid, rc, 0, restart_reply, d) < 0)
		free(d);
}

void
ctl_op_workflow_restart(struct ctl_conn *c, struct ctl_request *req)
{
	struct restart *d = xcalloc(1, sizeof(*d));
	snprintf(d->job, sizeof(d->job), "%s", json_string_value(json_object_get(req->root, "job")));
	snprintf(d->step, sizeof(d->step), "%s", json_string_value(json_object_get(req->root, "from")));
	ctl_locate(c, req->id, d->job, json_string_value(json_object_get(req->root, "queue")), restart_located, d);
}

/*
 * ctl_restart: workflow.restart, re-running an ended workflow run from one of its steps (issue #18 item 4).
 * The run's step records decide what is kept: each record names the steps it depends on, directly or not
 * ("after", written by the worker), so Redis drops STEP's record and those of the steps downstream of it in
 * one atomic call (wf_restart, daemon/lua/13_workflow.lua) and requeues the run like a retry. Its next
 * attempt resumes from the records left: the steps that do not depend on STEP are not run again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "job.h"
#include "log.h"
#include "rfunc.h"
#include "xmalloc.h"

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

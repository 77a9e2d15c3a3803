/*
 * ctl_workflow: the control socket's stored-workflow ops. The deployment's stored workflows live in Redis
 * (P{@}:workflows, 18_shared.lua) and every daemon on it sees the same set: put and rm write Redis first,
 * then this daemon's SQLite cache (shared.c syncs the others'), so a workflow put through one daemon runs
 * through any. list and show read the cache and answer without Redis.
 *
 * Owner rules (schema/control-protocol.md): a stored workflow belongs to the owner of the credential that
 * put it (admin may name another with "owner"). Without admin a client sees, replaces, removes and runs only
 * its own owner's workflows; another owner's answers not_found, like a missing one, except that put of a
 * name another owner holds answers conflict (names are one namespace).
 *
 * workflow.run (and a plain submit of a workflow.run job that names a stored workflow, through
 * ctl_workflow_resolve: one owner rule for both) resolves the definition here, at submission, and submits a
 * workflow.run job through the submit op's path (ctl_submit) with args {"workflow": NAME, "definition": {...}, "input":
 * {...}}: the job carries its definition, so any daemon can run it, and a later put or rm does not change a queued run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

static int
is_admin(const struct ctl_conn *c)
{
	return (c->cred.scopes & CTL_SCOPE_ADMIN) != 0;
}

/* The stored workflow named in the request if this credential may see it, else NULL. New reference. */
static json_t *
visible(struct ctl_conn *c, const char *name)
{
	json_t *w = workflows_get(c->ctl->s, name);
	if (w != NULL && !ctl_may_see(c, json_string_value(json_object_get(w, "owner")))) {
		json_decref(w);
		return NULL;
	}
	return w;
}

struct wf_op {
	struct store_workflow w;
	int replaced;
};

static void
wf_op_end(struct ctl_pending *p)
{
	struct wf_op *op = p->data;
	store_workflow_free(&op->w);
	free(op);
	ctl_pending_end(p);
}

static const char *
elem(const struct redis_reply *r, size_t i)
{
	const struct redis_reply *e = r != NULL ? rr_elem(r, i) : NULL;
	return e != NULL ? rr_str(e, NULL) : NULL;
}

/* The reply's first word, or NULL after answering (unless the client is gone). */
static const char *
reply_word(struct ctl_pending *p, const struct redis_reply *r, const char *what)
{
	const char *v = elem(r, 0);
	if (!p->c->dead && v != NULL && rr_type(r) == RR_ARRAY)
		return v;
	if (r != NULL)
		log_error("ctl: %s: Redis: %s", what, rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
	if (!p->c->dead)
		ctl_reply_err(p->c, p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; the workflow may or may not have been written"
		                        : "Redis refused the operation (see the daemon's log)");
	return NULL;
}

static void
put_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct wf_op *op = p->data;
	const char *v = reply_word(p, r, "workflow.put");
	if (v != NULL && strcmp(v, "limit") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_LIMIT, "the shared set holds the most stored workflows it may");
	else if (v != NULL && elem(r, 3) != NULL) {
		op->w.created_at = atof(elem(r, 2));
		op->w.updated_at = atof(elem(r, 3));
		if (store_workflow_sync(s->store, &op->w, 1, 0) == 0)
			shared_wrote(s, atoll(elem(r, 1)));
		json_t *row = workflows_get(s, op->w.name);
		if (row == NULL)
			row = json_pack("{s:s}", "name", op->w.name);
		json_object_del(row, "definition");
		json_object_set_new(row, "replaced", json_boolean(op->replaced || strcmp(v, "replaced") == 0));
		log_info("ctl: %s: workflow %s %s", p->c->peer, op->w.name,
		         strcmp(v, "replaced") == 0 ? "replaced" : "stored");
		ctl_send(p->c, ctl_reply_ok(p->id, row));
	} else if (v != NULL)
		ctl_reply_err(p->c, p->id, CTL_E_INTERNAL, "unexpected reply from Redis (see the daemon's log)");
	wf_op_end(p);
}

void
ctl_op_workflow_put(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	json_t *owner = json_object_get(req->root, "owner");
	if (owner != NULL && !is_admin(c) && strcmp(json_string_value(owner), c->cred.owner) != 0) {
		ctl_reply_err(c, req->id, CTL_E_FORBIDDEN, "only admin may store a workflow for another owner");
		return;
	}
	json_t *w = json_deep_copy(req->root);
	json_object_del(w, "op");
	json_object_del(w, "id");
	if (owner == NULL)
		json_object_set_new(w, "owner", json_string(c->cred.owner));
	struct wf_op *op = xcalloc(1, sizeof(*op));
	char *cause = NULL;
	if (workflows_check(w, &op->w, &cause) != 0) {
		ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "%s", cause);
		free(cause);
		free(op);
		json_decref(w);
		return;
	}
	json_decref(w);
	json_t *old = workflows_get(s, op->w.name);
	if (old != NULL && !ctl_may_see(c, json_string_value(json_object_get(old, "owner")))) {
		ctl_reply_err(c, req->id, CTL_E_CONFLICT, "workflow %s belongs to another owner", op->w.name);
		json_decref(old);
		store_workflow_free(&op->w);
		free(op);
		return;
	}
	op->replaced = old != NULL;
	json_decref(old);
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = op;
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_WF_PUT, &ctx);
	rcall_arg(rc, "name", op->w.name, -1);
	rcall_arg(rc, "description", op->w.description != NULL ? op->w.description : "", -1);
	rcall_arg(rc, "definition", op->w.definition, -1);
	rcall_arg(rc, "owner", op->w.owner != NULL ? op->w.owner : "", -1);
	rcall_arg(rc, "active", op->w.active ? "1" : "0", 1);
	rcall_arg(rc, "created_at", "", 0);
	rcall_arg(rc, "updated_at", "", 0);
	if (rcall_send(s, rc, put_reply, p) == 0)
		return;
	ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE,
	              "Redis is unreachable: stored workflows are written to the deployment's shared set first; try "
	              "again");
	wf_op_end(p);
}

void
ctl_op_workflow_list(struct ctl_conn *c, struct ctl_request *req)
{
	json_t *all = workflows_list(c->ctl->s), *mine = json_array(), *w;
	size_t i;
	json_array_foreach(all, i, w) if (ctl_may_see(c, json_string_value(json_object_get(w, "owner"))))
	        json_array_append(mine, w);
	json_decref(all);
	ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:o}", "workflows", mine)));
}

void
ctl_op_workflow_show(struct ctl_conn *c, struct ctl_request *req)
{
	const char *name = json_string_value(json_object_get(req->root, "name"));
	json_t *w = visible(c, name);
	if (w == NULL)
		ctl_reply_err(c, req->id, CTL_E_NOT_FOUND, "no stored workflow %s", name);
	else
		ctl_send(c, ctl_reply_ok(req->id, w));
}

static void
rm_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct wf_op *op = p->data;
	const char *v = reply_word(p, r, "workflow.rm");
	if (v != NULL) {
		/* Absent from Redis: a workflow of this node's own from before shared ones; removed here only. */
		int shared = strcmp(v, "ok") == 0;
		if (shared && elem(r, 1) != NULL)
			shared_wrote(s, atoll(elem(r, 1)));
		int k = workflows_rm(s, op->w.name);
		if (k > 0 && store_webhook_rm(s->store, op->w.name) < 0) /* its webhook goes with it (ctl_webhook.c) */
			k = -1;
		if (k < 0) /* store_workflow_rm and store_webhook_rm commit on return */
			ctl_reply_err(p->c, p->id, CTL_E_INTERNAL, "the store refused the delete (see the daemon log)");
		else {
			log_info("ctl: %s: workflow %s removed%s", p->c->peer, op->w.name,
			         shared ? " from the shared set" : "");
			ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:b}", "name", op->w.name, "removed",
			                                             shared || k == 1)));
		}
	}
	wf_op_end(p);
}

void
ctl_op_workflow_rm(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *name = json_string_value(json_object_get(req->root, "name"));
	json_t *w = visible(c, name);
	if (w == NULL) {
		ctl_reply_err(c, req->id, CTL_E_NOT_FOUND, "no stored workflow %s", name);
		return;
	}
	json_decref(w);
	struct wf_op *op = xcalloc(1, sizeof(*op));
	op->w.name = xstrdup(name);
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = op;
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_WF_RM, &ctx);
	rcall_arg(rc, "name", name, -1);
	if (rcall_send(s, rc, rm_reply, p) == 0)
		return;
	ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE,
	              "Redis is unreachable: stored workflows are removed from the deployment's shared set first; "
	              "try again");
	wf_op_end(p);
}

/* Copies the request's field `from` into job as `to`, when present. */
static void
copy_field(json_t *job, const char *to, json_t *req, const char *from)
{
	json_t *v = json_object_get(req, from);
	if (v != NULL)
		json_object_set(job, to, v);
}

/*
 * The one owner rule for running a stored workflow, which workflow.run and a plain submit of a workflow.run
 * job naming one (args.workflow without args.definition) both follow: the credential must see the workflow
 * (its owner's, or admin) and it must be active. Returns its definition (new reference), or NULL with *code
 * and err: another owner's workflow answers not_found exactly like a missing one.
 */
json_t *
ctl_workflow_resolve(struct ctl_conn *c, const char *name, enum ctl_err *code, char *err, size_t errlen)
{
	json_t *w = name != NULL ? visible(c, name) : NULL, *def = NULL;
	if (w == NULL) {
		*code = CTL_E_NOT_FOUND;
		snprintf(err, errlen, "no stored workflow %s", name != NULL ? name : "(unnamed)");
	} else if (!json_is_true(json_object_get(w, "active"))) {
		*code = CTL_E_CONFLICT;
		snprintf(err, errlen, "stored workflow %s is not active", name);
	} else if (!json_is_object(def = json_object_get(w, "definition"))) {
		*code = CTL_E_INTERNAL;
		snprintf(err, errlen, "stored workflow %s has a definition that is not an object", name);
		def = NULL;
	} else
		json_incref(def);
	json_decref(w);
	return def;
}

void
ctl_op_workflow_run(struct ctl_conn *c, struct ctl_request *req)
{
	const char *name = json_string_value(json_object_get(req->root, "name"));
	enum ctl_err code;
	char err[256];
	json_t *def = ctl_workflow_resolve(c, name, &code, err, sizeof(err));
	if (def == NULL) {
		ctl_reply_err(c, req->id, code, "%s", err);
		return;
	}
	json_t *input = json_object_get(req->root, "input");
	json_t *job = json_pack("{s:s, s:{s:s, s:o, s:o}}", "type", "workflow.run", "args", "workflow", name,
	                        "definition", def, "input", input != NULL ? json_incref(input) : json_object());
	copy_field(job, "queue", req->root, "queue");
	copy_field(job, "idempotency_key", req->root, "idempotency_key");
	copy_field(job, "id", req->root, "job_id");
	ctl_submit(c, req->id, job, NULL);
	json_decref(job);
}

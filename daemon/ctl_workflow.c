/*
 * ctl_workflow: the control socket's stored-workflow ops. The rows live in this daemon's SQLite
 * (daemon/workflows.c over store.c), so put, list, show and rm answer without Redis.
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
#include "store.h"

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
	const char *name = json_string_value(json_object_get(w, "name"));
	if (name == NULL)
		name = json_string_value(json_object_get(json_object_get(w, "definition"), "name"));
	json_t *old = name != NULL ? workflows_get(s, name) : NULL;
	if (old != NULL && !ctl_may_see(c, json_string_value(json_object_get(old, "owner")))) {
		ctl_reply_err(c, req->id, CTL_E_CONFLICT, "workflow %s belongs to another owner", name);
		json_decref(old);
		json_decref(w);
		return;
	}
	char *cause = NULL;
	int rc = workflows_put(s, w, &cause);
	if (rc != 0) {
		ctl_reply_err(c, req->id, rc == -2 ? CTL_E_INTERNAL : CTL_E_BAD_REQUEST, "%s", cause);
		free(cause);
	} else { /* store_workflow_put committed it: told "stored", it survives a crash */
		json_t *row = workflows_get(s, name);
		if (row == NULL)
			row = json_pack("{s:s}", "name", name);
		json_object_del(row, "definition");
		json_object_set_new(row, "replaced", json_boolean(old != NULL));
		log_info("ctl: %s: workflow %s %s", c->peer, name, old != NULL ? "replaced" : "stored");
		ctl_send(c, ctl_reply_ok(req->id, row));
	}
	json_decref(old);
	json_decref(w);
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
	int r = workflows_rm(s, name);
	if (r > 0 && store_webhook_rm(s->store, name) < 0) /* its webhook goes with it (ctl_webhook.c) */
		r = -1;
	if (r < 0) /* store_workflow_rm and store_webhook_rm commit on return */
		ctl_reply_err(c, req->id, CTL_E_INTERNAL, "the store refused the delete (see the daemon log)");
	else {
		log_info("ctl: %s: workflow %s removed", c->peer, name);
		ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:s, s:b}", "name", name, "removed", r == 1)));
	}
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

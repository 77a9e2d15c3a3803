/*
 * ctl_webhook: webhooks of stored workflows (SQLite table webhooks, migration 006) and their triggering.
 *
 * workflow.webhook NAME: show (default), create, rotate (a new random URL token; the signature settings kept
 * unless given) or revoke the webhook of a stored workflow; the owner rules of the workflow ops apply (a
 * non-admin handles only its own owner's workflows). The reply carries the token and the path
 * /webhook/TOKEN that hopper-web serves; the secret is never sent back.
 *
 * webhook.trigger TOKEN: what hopper-web asks for a POST /webhook/TOKEN, with its own token (scope submit).
 * The webhook token is the capability: the daemon looks it up, verifies the body's signature when the
 * webhook has a secret (hopper-web sends the raw body; secrets never leave this process), refuses an
 * inactive workflow (conflict), and submits the workflow.run job exactly as workflow.run does, on behalf of
 * the workflow's owner (so its runs show up for that owner, and idempotency keys are that owner's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_crypto.h"
#include "log.h"
#include "store.h"
#include "webhook_sig.h"

#define TOKEN_BYTES 32

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

static json_t *
hook_view(const struct store_webhook *h)
{
	char path[16 + CTL_WEBHOOK_TOKEN_LEN];
	snprintf(path, sizeof(path), "/webhook/%s", h->token);
	return json_pack("{s:s, s:s, s:s, s:s, s:f}", "workflow", h->workflow, "token", h->token, "path", path,
	                 "signature", h->signature != NULL ? h->signature : "none", "created_at", h->created_at);
}

static void
new_token(char out[CTL_WEBHOOK_TOKEN_LEN + 1])
{
	unsigned char b[TOKEN_BYTES];
	ctl_random(b, sizeof(b));
	ctl_b64_encode(b, sizeof(b), out, CTL_WEBHOOK_TOKEN_LEN + 1);
	ctl_wipe(b, sizeof(b));
}

/* create / rotate: writes the row (a new token, committed on return), answers with it. old may be NULL (create). */
static void
hook_write(struct ctl_conn *c, struct ctl_request *req, const char *name, struct store_webhook *old)
{
	struct server *s = c->ctl->s;
	const char *sig = json_string_value(json_object_get(req->root, "signature"));
	const char *secret = json_string_value(json_object_get(req->root, "secret"));
	char token[CTL_WEBHOOK_TOKEN_LEN + 1];
	new_token(token);
	struct store_webhook h = {.token = token, .workflow = (char *)name, .created_at = clock_now()};
	if (sig != NULL) {
		h.signature = (char *)sig;
		h.secret = (char *)secret;
	} else if (old != NULL) {
		h.signature = old->signature;
		h.secret = old->secret;
	} else
		h.signature = (char *)"none";
	if (store_webhook_put(s->store, &h) != 0) { /* committed on return */
		ctl_reply_err(c, req->id, CTL_E_INTERNAL, "the store could not save the webhook (see the daemon log)");
		return;
	}
	log_info("ctl: %s: webhook of workflow %s %s (signature %s)", c->peer, name, old ? "rotated" : "created",
	         h.signature);
	json_t *v = hook_view(&h);
	json_object_set_new(v, "rotated", json_boolean(old != NULL));
	ctl_send(c, ctl_reply_ok(req->id, v));
}

void
ctl_op_workflow_webhook(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *name = json_string_value(json_object_get(req->root, "name"));
	const char *action = json_string_value(json_object_get(req->root, "action"));
	if (action == NULL)
		action = "show";
	json_t *w = visible(c, name);
	if (w == NULL) {
		ctl_reply_err(c, req->id, CTL_E_NOT_FOUND, "no stored workflow %s", name);
		return;
	}
	json_decref(w);
	struct store_webhook old;
	int have = store_webhook_get(s->store, NULL, name, &old);
	if (have < 0)
		ctl_reply_err(c, req->id, CTL_E_INTERNAL, "the store could not read the webhook (see the daemon log)");
	else if (strcmp(action, "create") == 0 && have)
		ctl_reply_err(c, req->id, CTL_E_CONFLICT, "workflow %s has a webhook already (rotate or revoke it)",
		              name);
	else if ((strcmp(action, "show") == 0 || strcmp(action, "rotate") == 0 || strcmp(action, "revoke") == 0) &&
	         !have)
		ctl_reply_err(c, req->id, CTL_E_NOT_FOUND, "workflow %s has no webhook", name);
	else if (strcmp(action, "show") == 0)
		ctl_send(c, ctl_reply_ok(req->id, hook_view(&old)));
	else if (strcmp(action, "revoke") == 0) {
		if (store_webhook_rm(s->store, name) < 0) /* committed on return */
			ctl_reply_err(c, req->id, CTL_E_INTERNAL, "the store refused the delete (see the daemon log)");
		else {
			log_info("ctl: %s: webhook of workflow %s revoked", c->peer, name);
			ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:s, s:b}", "workflow", name, "revoked", 1)));
		}
	} else
		hook_write(c, req, name, have ? &old : NULL);
	if (have)
		store_webhook_free(&old);
}

/* The signature check of a trigger: 0, or answers forbidden and returns -1. */
static int
trigger_verify(struct ctl_conn *c, struct ctl_request *req, const struct store_webhook *h)
{
	if (h->signature == NULL || strcmp(h->signature, "none") == 0)
		return 0;
	const char *b64 = json_string_value(json_object_get(req->root, "body"));
	size_t len = 0;
	unsigned char *body = b64 != NULL ? webhook_sig_b64decode(b64, &len) : NULL;
	const char *hdr = json_string_value(json_object_get(
	        req->root, strcmp(h->signature, "github") == 0 ? "hub_signature_256" : "stripe_signature"));
	char err[256] = "the request carries no body to check the signature of";
	int r = body != NULL ? webhook_sig_verify(h->signature, h->secret, body, len, hdr, clock_now(),
	                                          WEBHOOK_SIG_TOLERANCE_S, err, sizeof(err))
	                     : -1;
	free(body);
	if (r != 0) {
		log_warn("ctl: %s: webhook of workflow %s: signature refused: %s", c->peer, h->workflow, err);
		ctl_reply_err(c, req->id, CTL_E_FORBIDDEN, "signature refused: %s", err);
	}
	return r;
}

void
ctl_op_webhook_trigger(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *token = json_string_value(json_object_get(req->root, "token"));
	struct store_webhook h;
	int have = store_webhook_get(s->store, token, NULL, &h);
	if (have <= 0) {
		ctl_reply_err(c, req->id, have < 0 ? CTL_E_INTERNAL : CTL_E_NOT_FOUND, "no such webhook");
		return;
	}
	json_t *w = workflows_get(s, h.workflow);
	json_t *def = json_object_get(w, "definition");
	if (w == NULL)
		ctl_reply_err(c, req->id, CTL_E_NOT_FOUND, "the webhook's workflow %s is gone", h.workflow);
	else if (trigger_verify(c, req, &h) != 0)
		;
	else if (!json_is_true(json_object_get(w, "active")))
		ctl_reply_err(c, req->id, CTL_E_CONFLICT, "stored workflow %s is not active", h.workflow);
	else if (!json_is_object(def))
		ctl_reply_err(c, req->id, CTL_E_INTERNAL, "stored workflow %s has a definition that is not an object",
		              h.workflow);
	else {
		json_t *job = json_pack("{s:s, s:{s:s, s:O, s:O}}", "type", "workflow.run", "args", "workflow",
		                        h.workflow, "definition", def, "input", json_object_get(req->root, "trigger"));
		json_t *idem = json_object_get(req->root, "idempotency_key");
		if (idem != NULL)
			json_object_set(job, "idempotency_key", idem);
		/* The run belongs to the workflow's owner: submit under that owner, for this one call only (ctl_submit
		 * reads the credential synchronously, before its Redis call). */
		const char *owner = json_string_value(json_object_get(w, "owner"));
		struct ctl_cred saved = c->cred;
		if (owner != NULL && *owner != '\0')
			snprintf(c->cred.owner, sizeof(c->cred.owner), "%s", owner);
		json_t *extra = json_pack("{s:s}", "workflow", h.workflow);
		ctl_submit_with(c, req->id, job, NULL, extra);
		c->cred = saved;
		json_decref(extra);
		json_decref(job);
	}
	json_decref(w);
	store_webhook_free(&h);
}

/*
 * ctl_token: the token ops (token.create, token.list, token.revoke). A token belongs to the deployment's
 * shared set (shared.c, 18_shared.lua): create and revoke write to Redis first and to this node's cache when
 * Redis answered, so a token made on one daemon authenticates on every daemon of the same Redis, and a
 * revocation cuts the token's connections on each of them (their caches see it within a notice, or within
 * the periodic check). Only the verifier is stored, here and in Redis; the token is shown once.
 *
 * A node's own token from before shared tokens (shared = 0) is revoked in its SQLite only: Redis never had it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

/* A clash of 48-bit ids is rare; a new id is drawn this many times. */
#define TOKEN_ID_TRIES 3

struct token_op {
	struct store_token t;
	char token[CTL_TOKEN_LEN + 1]; /* create: the token shown once; wiped */
	int tries;
};

static json_t *
token_json(const struct store_token *t)
{
	unsigned bits = 0;
	char err[64];
	ctl_scopes_parse(t->scopes, &bits, err, sizeof(err));
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:f}", "token_id", t->id, "name", t->name, "owner", t->owner,
	                      "scopes", ctl_scopes_json(bits), "created_at", t->created_at);
	json_object_set_new(o, "last_used_at", t->last_used_at ? json_real(t->last_used_at) : json_null());
	json_object_set_new(o, "revoked_at", t->revoked_at ? json_real(t->revoked_at) : json_null());
	return o;
}

static const char *
elem(const struct redis_reply *r, size_t i)
{
	const struct redis_reply *e = rr_elem(r, i);
	return e != NULL ? rr_str(e, NULL) : NULL;
}

/* 1 if the reply may be used; otherwise it answered (unless the client is gone). */
static int
usable(struct ctl_pending *p, const struct redis_reply *r, const char *what)
{
	if (!p->c->dead && r != NULL && rr_type(r) == RR_ARRAY && elem(r, 0) != NULL)
		return 1;
	if (r != NULL)
		log_error("ctl: %s: Redis: %s", what, rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
	if (!p->c->dead)
		ctl_reply_err(p->c, p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; the token may or may not have been written"
		                        : "Redis refused the operation (see the daemon's log)");
	return 0;
}

static void
op_end(struct ctl_pending *p)
{
	struct token_op *op = p->data;
	ctl_wipe(op->token, sizeof(op->token));
	free(op);
	ctl_pending_end(p);
}

static int send_put(struct ctl_conn *c, struct ctl_pending *p);

static void
put_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct token_op *op = p->data;
	struct store_token *t = &op->t;
	const char *v = usable(p, r, "token.put") ? elem(r, 0) : NULL;
	if (v == NULL)
		;
	else if (strcmp(v, "id_taken") == 0 && ++op->tries < TOKEN_ID_TRIES) {
		send_put(p->c, p); /* ends p itself if it cannot send */
		return;
	} else if (strcmp(v, "name_taken") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "a token named '%s' exists", t->name);
	else if (strcmp(v, "limit") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_LIMIT, "the shared set holds the most tokens it may");
	else if (strcmp(v, "ok") != 0 || elem(r, 2) == NULL)
		ctl_reply_err(p->c, p->id, CTL_E_INTERNAL, "could not store the token (see the daemon's log)");
	else {
		t->created_at = atof(elem(r, 2));
		t->shared = 1;
		if (store_token_sync(s->store, t, 1, 0) == 0)
			shared_wrote(s, atoll(elem(r, 1)));
		log_info("ctl: token %s (%s) created by %s: owner %s, scopes %s", t->name, t->id, p->c->cred.owner,
		         t->owner, t->scopes);
		json_t *j = token_json(t);
		json_object_set_new(j, "token", json_string(op->token));
		ctl_send(p->c, ctl_reply_ok(p->id, j));
	}
	op_end(p);
}

/* Draws the token and sends it. 0, or -1 after answering (p ended). */
static int
send_put(struct ctl_conn *c, struct ctl_pending *p)
{
	struct server *s = c->ctl->s;
	struct token_op *op = p->data;
	struct store_token *t = &op->t;
	char hex[65];
	ctl_token_generate(op->token, t->id, t->hash);
	shared_hex(t->hash, hex);
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_TOKEN_PUT, &ctx);
	rcall_arg(rc, "id", t->id, -1);
	rcall_arg(rc, "name", t->name, -1);
	rcall_arg(rc, "owner", t->owner, -1);
	rcall_arg(rc, "scopes", t->scopes, -1);
	rcall_arg(rc, "verifier", hex, -1);
	rcall_arg(rc, "created_at", "", 0);
	rcall_arg(rc, "revoked_at", "", 0);
	rcall_arg(rc, "replace", "0", 1);
	if (rcall_send(s, rc, put_reply, p) == 0)
		return 0;
	ctl_reply_err(c, p->id, CTL_E_UNAVAILABLE,
	              "Redis is unreachable: tokens are written to the deployment's shared set first; try again");
	op_end(p);
	return -1;
}

void
ctl_op_token_create(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *name = json_string_value(json_object_get(req->root, "name"));
	const char *owner = json_string_value(json_object_get(req->root, "owner"));
	unsigned scopes = 0;
	char err[128];
	struct store_token old;
	int own = store_token_count(s->store, 0);
	if (!shared_active(s) && own > 0) {
		/* The first shared token would retire this node's own ones at once: they are copied first. */
		ctl_reply_err(c, req->id, CTL_E_CONFLICT,
		              "this node has %d tokens of its own that are not in the deployment's shared set yet: "
		              "copy them first (hopperd --migrate-shared)",
		              own);
		return;
	}
	if (store_token_by_name(s->store, name, &old) == 1 && old.shared) {
		ctl_reply_err(c, req->id, CTL_E_CONFLICT, "a token named '%s' exists", name);
		return;
	}
	ctl_scopes_from_json(json_object_get(req->root, "scopes"), &scopes, err, sizeof(err));
	struct token_op *op = xcalloc(1, sizeof(*op));
	snprintf(op->t.name, sizeof(op->t.name), "%s", name);
	snprintf(op->t.owner, sizeof(op->t.owner), "%s", owner != NULL ? owner : name);
	ctl_scopes_format(scopes, op->t.scopes, sizeof(op->t.scopes));
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = op;
	send_put(c, p);
}

void
ctl_op_token_list(struct ctl_conn *c, struct ctl_request *req)
{
	struct store_token *v = NULL;
	int n = store_token_list(c->ctl->s->store, &v);
	if (n < 0) {
		ctl_reply_err(c, req->id, CTL_E_INTERNAL, "could not read the tokens");
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < n; i++) {
		json_t *o = token_json(&v[i]);
		json_object_set_new(o, "shared", json_boolean(v[i].shared));
		json_array_append_new(arr, o);
	}
	free(v);
	ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:o}", "tokens", arr)));
}

/* The revocation is in the cache: this node's connections of the token go, the client is answered. */
static void
revoked(struct ctl_conn *c, json_t *id, const struct store_token *t)
{
	/* Every open connection of the token goes now, before the reply; this one after it, if it used it. */
	int self = c->cred.method == CTL_AUTH_TOKEN && strcmp(c->cred.token_id, t->id) == 0;
	int closed = ctl_close_token(c->ctl, t->id, c) + self;
	log_info("ctl: token %s (%s) revoked by %s%s; %d connections closed here", t->name, t->id, c->cred.owner,
	         t->shared ? " in the shared set" : " (this node's own)", closed);
	ctl_send(c,
	         ctl_reply_ok(id, json_pack("{s:s, s:s, s:i}", "token_id", t->id, "name", t->name, "closed", closed)));
	if (self)
		ctl_close_after_flush(c, "its token was revoked");
}

static void
revoke_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct token_op *op = p->data;
	const char *v = usable(p, r, "token.revoke") ? elem(r, 0) : NULL;
	if (v == NULL)
		;
	else if (strcmp(v, "absent") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no token %s in the shared set", op->t.name);
	else if (elem(r, 2) == NULL)
		ctl_reply_err(p->c, p->id, CTL_E_INTERNAL, "could not revoke (see the daemon's log)");
	else {
		op->t.revoked_at = atof(elem(r, 2));
		if (store_token_sync(s->store, &op->t, 1, 0) == 0)
			shared_wrote(s, atoll(elem(r, 1)));
		revoked(p->c, p->id, &op->t);
	}
	op_end(p);
}

void
ctl_op_token_revoke(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *name = json_string_value(json_object_get(req->root, "name"));
	const char *tid = json_string_value(json_object_get(req->root, "token_id"));
	struct store_token t;
	int found = name != NULL ? store_token_by_name(s->store, name, &t) : store_token_get(s->store, tid, &t);
	if (found != 1) {
		ctl_reply_err(c, req->id, found == 0 ? CTL_E_NOT_FOUND : CTL_E_INTERNAL, "no token %s",
		              name != NULL ? name : tid);
		return;
	}
	if (!t.shared) {
		if (store_token_revoke(s->store, t.id, clock_now()) < 0) {
			ctl_reply_err(c, req->id, CTL_E_INTERNAL, "could not revoke (see the daemon's log)");
			return;
		}
		revoked(c, req->id, &t);
		return;
	}
	struct token_op *op = xcalloc(1, sizeof(*op));
	op->t = t;
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = op;
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_TOKEN_REVOKE, &ctx);
	rcall_arg(rc, "id", t.id, -1);
	if (rcall_send(s, rc, revoke_reply, p) == 0)
		return;
	ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE,
	              "Redis is unreachable: a revocation is written to the deployment's shared set first; try again");
	op_end(p);
}

static void
upgrade_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("tokens: the shared set did not take a verifier: %s", rr_str(r, NULL));
}

void
ctl_token_upgrade_shared(struct server *s, const char *id, const unsigned char old[32],
                         const unsigned char verifier[32])
{
	char ho[65], hn[65];
	shared_hex(old, ho);
	shared_hex(verifier, hn);
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_TOKEN_VERIFIER, &ctx);
	rcall_arg(rc, "id", id, -1);
	rcall_arg(rc, "old", ho, -1);
	rcall_arg(rc, "new", hn, -1);
	if (rcall_send(s, rc, upgrade_reply, NULL) != 0)
		log_warn("tokens: Redis unreachable: token %s's verifier reaches the shared set at a later use", id);
}

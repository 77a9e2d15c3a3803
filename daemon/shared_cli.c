/*
 * shared_cli: hopperd's command-line modes for the shared token set (shared.c): --migrate-shared copies
 * this node's SQLite tokens into Redis, --token-create bootstraps a token. Both talk to Redis over one
 * blocking connection (redis_sync) and exit; they never run the event loop. Messages go to stderr, the
 * token (shown once) to stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

static const char *
elem(const struct redis_reply *r, size_t i)
{
	const struct redis_reply *e = r != NULL ? rr_elem(r, i) : NULL;
	return e != NULL ? rr_str(e, NULL) : NULL;
}

/* How many tokens (part 1) or stored workflows (part 2) the shared set holds, or -1 (said on stderr). */
static int
shared_count(struct server *s, struct redis_sync *rs, size_t part)
{
	struct rctx ctx = {0};
	struct redis_reply *r = rcall_sync(s, rcall_new(s, RF_TOKENS_GET, &ctx), rs);
	const struct redis_reply *e = r != NULL && rr_type(r) == RR_ARRAY ? rr_elem(r, part) : NULL;
	int n = e != NULL && rr_type(e) == RR_ARRAY ? (int)(rr_count(e) / 2) : -1;
	if (n < 0)
		fprintf(stderr, "hopperd: reading the shared set: %s\n",
		        r != NULL && rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "no reply");
	redis_sync_reply_free(r);
	return n;
}

/* token_put of t (times kept when set). Returns the reply's first word (static) or NULL; *ver, *created. */
static const char *
put(struct server *s, struct redis_sync *rs, struct store_token *t, int replace, long long *ver)
{
	static char word[32];
	char hex[65], created[32] = "", revoked[32] = "";
	shared_hex(t->hash, hex);
	if (t->created_at > 0)
		snprintf(created, sizeof(created), "%.3f", t->created_at);
	if (t->revoked_at > 0)
		snprintf(revoked, sizeof(revoked), "%.3f", t->revoked_at);
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_TOKEN_PUT, &ctx);
	rcall_arg(rc, "id", t->id, -1);
	rcall_arg(rc, "name", t->name, -1);
	rcall_arg(rc, "owner", t->owner, -1);
	rcall_arg(rc, "scopes", t->scopes, -1);
	rcall_arg(rc, "verifier", hex, -1);
	rcall_arg(rc, "created_at", created, -1);
	rcall_arg(rc, "revoked_at", revoked, -1);
	rcall_arg(rc, "replace", replace ? "1" : "0", 1);
	struct redis_reply *r = rcall_sync(s, rc, rs);
	const char *w = elem(r, 0);
	if (w == NULL && r != NULL && rr_type(r) == RR_ERROR)
		fprintf(stderr, "hopperd: token_put: %s\n", rr_str(r, NULL));
	snprintf(word, sizeof(word), "%s", w != NULL ? w : "");
	if (w != NULL && strcmp(w, "ok") == 0) {
		*ver = atoll(elem(r, 1));
		t->created_at = atof(elem(r, 2));
		t->shared = 1;
	}
	redis_sync_reply_free(r);
	return w != NULL ? word : NULL;
}

static struct redis_sync *
open_or_say(struct server *s)
{
	char *cause = NULL;
	struct redis_sync *rs = redis_sync_open(s, &cause);
	if (rs == NULL) {
		fprintf(stderr, "hopperd: Redis: %s\n", cause);
		free(cause);
	}
	return rs;
}

/* --- stored workflows --- */

struct wf_list {
	struct store_workflow *v;
	int n, cap;
};

static char *
dup_or_null(const char *t)
{
	return t != NULL ? xstrdup(t) : NULL;
}

static void
wf_collect(const struct store_workflow *w, void *arg)
{
	struct wf_list *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct store_workflow){.name = xstrdup(w->name),
	                                       .description = dup_or_null(w->description),
	                                       .definition = xstrdup(w->definition),
	                                       .owner = dup_or_null(w->owner),
	                                       .active = w->active,
	                                       .created_at = w->created_at,
	                                       .updated_at = w->updated_at};
}

/* wf_put of w with its times. 0, or -1 (said on stderr). */
static int
wf_put(struct server *s, struct redis_sync *rs, const struct store_workflow *w)
{
	char created[32], updated[32];
	snprintf(created, sizeof(created), "%.3f", w->created_at);
	snprintf(updated, sizeof(updated), "%.3f", w->updated_at);
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_WF_PUT, &ctx);
	rcall_arg(rc, "name", w->name, -1);
	rcall_arg(rc, "description", w->description != NULL ? w->description : "", -1);
	rcall_arg(rc, "definition", w->definition, -1);
	rcall_arg(rc, "owner", w->owner != NULL ? w->owner : "", -1);
	rcall_arg(rc, "active", w->active ? "1" : "0", 1);
	rcall_arg(rc, "created_at", w->created_at > 0 ? created : "", -1);
	rcall_arg(rc, "updated_at", w->updated_at > 0 ? updated : "", -1);
	struct redis_reply *r = rcall_sync(s, rc, rs);
	const char *v = elem(r, 0);
	int ok = v != NULL && (strcmp(v, "created") == 0 || strcmp(v, "replaced") == 0);
	if (!ok)
		fprintf(stderr, "hopperd: workflow %s not copied: %s\n", w->name,
		        v != NULL                             ? v
		        : r != NULL && rr_type(r) == RR_ERROR ? rr_str(r, NULL)
		                                              : "no reply");
	redis_sync_reply_free(r);
	return ok ? 0 : -1;
}

/* Copies the SQLite's stored workflows (when Redis holds none, or force). 0, or 1 if any failed. */
static int
migrate_workflows(struct server *s, struct redis_sync *rs, int force)
{
	struct wf_list l = {0};
	int have = shared_count(s, rs, 2), copied = 0, failed = 0;
	if (store_workflow_list(s->store, wf_collect, &l) < 0 || have < 0)
		failed = 1;
	else if (have > 0 && !force && l.n > 0)
		fprintf(stderr,
		        "hopperd: the shared set in Redis already holds %d stored workflows: none copied "
		        "(--force adds this node's %d, replacing those of the same name)\n",
		        have, l.n);
	else {
		for (int i = 0; i < l.n; i++) {
			if (wf_put(s, rs, &l.v[i]) == 0)
				l.v[copied++] = l.v[i];
			else {
				failed++;
				store_workflow_free(&l.v[i]);
			}
		}
		if (copied > 0 && store_workflow_sync(s->store, l.v, copied, 0) != 0)
			fprintf(stderr, "hopperd: copied, but this node's cache was not updated (it syncs at start)\n");
		fprintf(stderr, "hopperd: copied %d stored workflows of %s into the shared set in Redis, %d failed\n",
		        copied, s->cfg.db_path, failed);
		l.n = copied;
	}
	for (int i = 0; i < l.n; i++)
		store_workflow_free(&l.v[i]);
	free(l.v);
	return failed > 0 || (have > 0 && !force && l.n > 0) ? 1 : 0;
}

/* Copies the SQLite's tokens (when Redis holds none, or force). 0, or 1 if refused or any was not copied. */
static int
migrate_tokens(struct server *s, struct redis_sync *rs, int force)
{
	struct store_token *v = NULL;
	int n = store_token_list(s->store, &v);
	int have = n >= 0 ? shared_count(s, rs, 1) : -1, copied = 0, skipped = 0, rc = 1;
	long long ver = 0;
	if (have < 0)
		;
	else if (have > 0 && !force)
		fprintf(stderr,
		        "hopperd: the shared set in Redis already holds %d tokens: nothing copied. --migrate-shared "
		        "--force adds this node's %d (an entry of the same id is replaced; a name another token "
		        "holds is skipped)\n",
		        have, n);
	else {
		for (int i = 0; i < n; i++) {
			const char *w = put(s, rs, &v[i], force, &ver);
			if (w != NULL && strcmp(w, "ok") == 0) {
				v[copied++] = v[i];
				continue;
			}
			skipped++;
			fprintf(stderr, "hopperd: token %s (%s) not copied: %s\n", v[i].name, v[i].id,
			        w == NULL ? "no reply" : w);
		}
		if (copied > 0 && store_token_sync(s->store, v, copied, 0) != 0)
			fprintf(stderr, "hopperd: copied, but this node's cache was not updated (it syncs at start)\n");
		fprintf(stderr,
		        "hopperd: copied %d tokens of %s into the shared set in Redis (version %lld), %d "
		        "skipped; every daemon on this Redis accepts them now\n",
		        copied, s->cfg.db_path, ver, skipped);
		rc = skipped > 0 ? 1 : 0;
	}
	free(v);
	return rc;
}

int
shared_migrate(struct server *s, int force)
{
	struct redis_sync *rs = open_or_say(s);
	if (rs == NULL)
		return 1;
	int rc = migrate_tokens(s, rs, force);
	rc |= migrate_workflows(s, rs, force);
	redis_sync_close(rs);
	return rc;
}

int
shared_token_create_offline(struct server *s, const char *name, const char *scopes, const char *owner)
{
	unsigned bits = 0;
	char err[128], token[CTL_TOKEN_LEN + 1];
	struct store_token t = {0};
	if (!job_name_valid(name, CTL_TOKEN_NAME_MAX)) {
		fprintf(stderr, "hopperd: token name '%s': letters, digits and . _ : - only\n", name);
		return 2;
	}
	if (ctl_scopes_parse(scopes, &bits, err, sizeof(err)) != 0) {
		fprintf(stderr, "hopperd: --token-scopes: %s\n", err);
		return 2;
	}
	if (ctl_crypto_init() != 0) {
		fprintf(stderr, "hopperd: libsodium failed to initialise\n");
		return 1;
	}
	int own = store_token_count(s->store, 0);
	if (own > 0 && store_token_count(s->store, 1) == 0) {
		fprintf(stderr,
		        "hopperd: %s has %d tokens of its own that are not in the shared set: copy them first "
		        "(hopperd --migrate-shared), or the new token would retire them\n",
		        s->cfg.db_path, own);
		return 1;
	}
	struct redis_sync *rs = open_or_say(s);
	if (rs == NULL) {
		fprintf(stderr,
		        "hopperd: tokens are written to the deployment's shared set in Redis first; start Redis "
		        "(or give --redis-host / --redis-unix) and try again\n");
		return 1;
	}
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.owner, sizeof(t.owner), "%s", owner != NULL ? owner : name);
	ctl_scopes_format(bits, t.scopes, sizeof(t.scopes));
	const char *w = NULL;
	long long ver = 0;
	for (int tries = 0; tries < 3; tries++) { /* a clash of 48-bit ids is rare */
		ctl_token_generate(token, t.id, t.hash);
		w = put(s, rs, &t, 0, &ver);
		if (w == NULL || strcmp(w, "id_taken") != 0)
			break;
	}
	redis_sync_close(rs);
	int ok = w != NULL && strcmp(w, "ok") == 0;
	if (!ok)
		fprintf(stderr, "hopperd: could not store the token: %s\n",
		        w == NULL                      ? "no reply from Redis"
		        : strcmp(w, "name_taken") == 0 ? "a token of that name exists"
		                                       : w);
	else {
		if (store_token_sync(s->store, &t, 1, 0) != 0)
			fprintf(stderr, "hopperd: stored in Redis; this node's cache gets it at its next sync\n");
		printf("%s\n", token);
		fprintf(stderr,
		        "hopperd: token %s (id %s, owner %s, scopes %s) stored in the shared set in Redis (version "
		        "%lld) "
		        "and %s; it is shown only now\n",
		        t.name, t.id, t.owner, t.scopes, ver, s->cfg.db_path);
	}
	ctl_wipe(token, sizeof(token));
	return ok ? 0 : 1;
}

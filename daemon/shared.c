/*
 * shared: one set of control-socket tokens and stored workflows for every daemon on one Redis (issue #16,
 * item 1).
 *
 * Redis holds the truth (P{@}:tokens, written only through the functions of 18_shared.lua); this node's
 * SQLite tokens table is its cache, and authentication reads only the cache (ctl_auth.c), so a handshake
 * never waits on Redis and a daemon whose Redis is down still authenticates the tokens it knew. The cache
 * is brought up to date by a full read of the set (tokens_get) at every connect of the command connection,
 * on every change notice (P{@}:shared, published by each write) and when the periodic check of the set's
 * version (every SHARED_CHECK_S) finds another than the cache's, so a lost notice costs at most that long.
 * A sync that finds a token revoked closes this node's control connections authenticated with it.
 *
 * The cache's rows carry `shared`: once it holds shared rows, only they authenticate; a node's own rows
 * from before (shared = 0) are kept for hopperd --migrate-shared (shared_cli.c), which this module asks
 * for, loudly, when Redis holds no tokens but the cache does. It never copies them by itself.
 *
 * Stored workflows ride on the same reads, notices and version (P{@}:workflows; the SQLite workflows table
 * is their cache): shared rows Redis no longer has are removed, a node's own old rows stay usable there
 * until copied, and a set never written (version 0: a new Redis, or one that lost its data) removes none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

/* The periodic version check: a change whose notice was lost reaches this node's cache within this long
 * (plus one sync). One FCALL_RO of one GET per interval per daemon. */
#define SHARED_CHECK_S 2.0

struct shared {
	long long ver; /* the version of the set the cache holds; -1 = not read since start */
	int syncing;   /* a tokens_get is out */
	int again;     /* a notice came while it was out: read once more */
	int checking;  /* a shared_ver is out */
	double next_check;
	int active;         /* the cache holds shared rows */
	int legacy_warned;  /* the "run --migrate-shared" line was logged on this connection */
	int closed_revoked; /* connections closed by syncs, for the log */
};

static void sync_now(struct server *s);

void
shared_hex(const unsigned char v[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[v[i] >> 4];
		out[2 * i + 1] = digits[v[i] & 15];
	}
	out[64] = '\0';
}

static int
hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
shared_unhex(const char *hex, unsigned char v[32])
{
	if (hex == NULL || strlen(hex) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		v[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static void
recount(struct server *s)
{
	s->shared->active = store_token_count(s->store, 1) > 0;
}

void
shared_start(struct server *s)
{
	s->shared = xcalloc(1, sizeof(*s->shared));
	s->shared->ver = -1;
	recount(s);
	int own = store_token_count(s->store, 0), cached = store_token_count(s->store, 1);
	if (cached > 0)
		log_info("tokens: %d shared tokens in this node's cache; they authenticate until Redis is read (and "
		         "while it is unreachable)",
		         cached);
	else if (own > 0)
		log_info("tokens: %d tokens of this node's own and no shared ones yet; they authenticate until the "
		         "deployment's set in Redis holds tokens",
		         own);
}

void
shared_free(struct server *s)
{
	free(s->shared);
	s->shared = NULL;
}

int
shared_active(const struct server *s)
{
	return s->shared != NULL && s->shared->active;
}

/* One entry of the set, {"id","name","owner","scopes","verifier","created_at"[,"revoked_at"]}. 0 or -1. */
static int
entry_parse(const char *id, const char *text, size_t len, struct store_token *t)
{
	json_t *o = json_loadb(text, len, 0, NULL);
	const char *name = json_string_value(json_object_get(o, "name"));
	const char *owner = json_string_value(json_object_get(o, "owner"));
	const char *scopes = json_string_value(json_object_get(o, "scopes"));
	const char *ver = json_string_value(json_object_get(o, "verifier"));
	memset(t, 0, sizeof(*t));
	int rc = -1;
	if (name != NULL && owner != NULL && scopes != NULL && strlen(id) < sizeof(t->id) &&
	    strlen(name) < sizeof(t->name) && strlen(owner) < sizeof(t->owner) && strlen(scopes) < sizeof(t->scopes) &&
	    shared_unhex(ver, t->hash) == 0) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		snprintf(t->name, sizeof(t->name), "%s", name);
		snprintf(t->owner, sizeof(t->owner), "%s", owner);
		snprintf(t->scopes, sizeof(t->scopes), "%s", scopes);
		t->created_at = json_number_value(json_object_get(o, "created_at"));
		t->revoked_at = json_number_value(json_object_get(o, "revoked_at"));
		t->shared = 1;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/* Redis holds none of `what` but the cache has n: either a node from before shared state or one whose Redis
 * lost its data. Never copied silently; the operator is told how (once per connection). */
static void
empty_set(struct server *s, const char *what, int n)
{
	struct shared *sh = s->shared;
	if (n <= 0 || (sh->legacy_warned & (what[0] == 't' ? 1 : 2)))
		return;
	sh->legacy_warned |= what[0] == 't' ? 1 : 2;
	log_warn("%s: Redis holds no shared %s but this node's SQLite (%s) has %d: they keep serving on this node "
	         "only. Copy them into the deployment's shared set with `hopperd --migrate-shared` (same config), "
	         "then every daemon on this Redis has them",
	         what, what, s->cfg.db_path, n);
}

/* Closes this node's connections of every revoked token of v. */
static void
close_revoked(struct server *s, const struct store_token *v, int n)
{
	if (s->ctl == NULL)
		return;
	for (int i = 0; i < n; i++) {
		if (v[i].revoked_at == 0)
			continue;
		int k = ctl_close_token(s->ctl, v[i].id, NULL);
		if (k > 0)
			log_info("tokens: token %s (%s) was revoked in the shared set; %d connections closed",
			         v[i].name, v[i].id, k);
		s->shared->closed_revoked += k;
	}
}

/* Applies the tokens of a tokens_get reply (r: {id, json, ...}). 0, or -1 when the cache refused them. */
static int
apply_tokens(struct server *s, const struct redis_reply *r)
{
	size_t n = rr_count(r);
	int m = (int)(n / 2), k = 0;
	struct store_token *v = xcalloc(m > 0 ? (size_t)m : 1, sizeof(*v));
	for (int i = 0; i < m; i++) {
		size_t len = 0;
		const char *id = rr_str(rr_elem(r, 2 * (size_t)i), NULL);
		const char *text = rr_str(rr_elem(r, 1 + 2 * (size_t)i), &len);
		if (id != NULL && text != NULL && entry_parse(id, text, len, &v[k]) == 0)
			k++;
		else
			log_error("tokens: shared entry %s unreadable; skipped", id != NULL ? id : "?");
	}
	if (m == 0)
		empty_set(s, "tokens", store_token_count(s->store, 0) + store_token_count(s->store, 1));
	else if (store_token_sync(s->store, v, k, 1) != 0) {
		free(v);
		return -1;
	}
	recount(s);
	close_revoked(s, v, k);
	free(v);
	return 0;
}

/* One stored workflow's entry. 0 or -1; the strings point into o (valid while o lives). */
static int
workflow_parse(json_t *o, struct store_workflow *w)
{
	memset(w, 0, sizeof(*w));
	w->name = (char *)json_string_value(json_object_get(o, "name"));
	w->definition = (char *)json_string_value(json_object_get(o, "definition"));
	w->description = (char *)json_string_value(json_object_get(o, "description"));
	w->owner = (char *)json_string_value(json_object_get(o, "owner"));
	w->active = json_is_true(json_object_get(o, "active"));
	w->created_at = json_number_value(json_object_get(o, "created_at"));
	w->updated_at = json_number_value(json_object_get(o, "updated_at"));
	return w->name != NULL && w->definition != NULL ? 0 : -1;
}

/* Applies the workflows of a tokens_get reply (r: {name, json, ...}) at version ver. 0 or -1. A set never
 * written (ver 0: a new Redis, or one that lost its data) removes nothing from the cache. */
static int
apply_workflows(struct server *s, const struct redis_reply *r, long long ver)
{
	int m = (int)(rr_count(r) / 2), k = 0, rc = 0;
	struct store_workflow *v = xcalloc(m > 0 ? (size_t)m : 1, sizeof(*v));
	json_t **docs = xcalloc(m > 0 ? (size_t)m : 1, sizeof(*docs));
	for (int i = 0; i < m; i++) {
		size_t len = 0;
		const char *text = rr_str(rr_elem(r, 1 + 2 * (size_t)i), &len);
		docs[i] = text != NULL ? json_loadb(text, len, 0, NULL) : NULL;
		if (docs[i] != NULL && workflow_parse(docs[i], &v[k]) == 0)
			k++;
		else
			log_error("workflows: a shared entry is unreadable; skipped");
	}
	if (m == 0 && ver == 0)
		empty_set(s, "workflows", store_workflow_count(s->store, 0) + store_workflow_count(s->store, 1));
	else {
		if (m == 0)
			empty_set(s, "workflows", store_workflow_count(s->store, 0));
		rc = store_workflow_sync(s->store, v, k, 1);
	}
	for (int i = 0; i < m; i++)
		json_decref(docs[i]);
	free(docs);
	free(v);
	return rc;
}

/* Applies a tokens_get reply: {ver, {id, json, ...}, {name, json, ...}}. */
static void
apply(struct server *s, const struct redis_reply *r)
{
	struct shared *sh = s->shared;
	const struct redis_reply *e = rr_elem(r, 0), *tok = rr_elem(r, 1), *wf = rr_elem(r, 2);
	const char *vtext = e != NULL ? rr_str(e, NULL) : NULL;
	if (rr_type(r) != RR_ARRAY || vtext == NULL || tok == NULL || wf == NULL) {
		log_error("tokens: unreadable reply to tokens_get%s%s", rr_type(r) == RR_ERROR ? ": " : "",
		          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "");
		return;
	}
	long long ver = atoll(vtext);
	if (apply_tokens(s, tok) != 0 || apply_workflows(s, wf, ver) != 0)
		return; /* the version stays: the next check reads again */
	if (sh->ver != ver)
		log_info("shared: cache synced with the shared set: %zu tokens, %zu workflows, version %lld",
		         rr_count(tok) / 2, rr_count(wf) / 2, ver);
	sh->ver = ver;
}

static void
sync_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct shared *sh = s->shared;
	if (sh == NULL)
		return; /* exiting */
	sh->syncing = 0;
	if (r != NULL)
		apply(s, r);
	if (sh->again && r != NULL) {
		sh->again = 0;
		sync_now(s);
	}
}

static void
sync_now(struct server *s)
{
	struct shared *sh = s->shared;
	if (sh == NULL)
		return;
	if (sh->syncing) {
		sh->again = 1;
		return;
	}
	struct rctx ctx = {0};
	if (rcall_send(s, rcall_new(s, RF_TOKENS_GET, &ctx), sync_reply, NULL) == 0)
		sh->syncing = 1;
}

void
shared_connected(struct server *s)
{
	if (s->shared == NULL)
		return;
	s->shared->legacy_warned = 0;
	s->shared->next_check = clock_mono() + SHARED_CHECK_S;
	sync_now(s);
}

void
shared_sub_connected(struct server *s)
{
	char *ch = rchan_shared(s);
	redis_subscribe(s->redis, ch);
	free(ch);
}

void
shared_sub_confirmed(struct server *s, const char *channel)
{
	char *ch = rchan_shared(s);
	if (strcmp(ch, channel) == 0) /* a notice published while unsubscribed is caught now */
		sync_now(s);
	free(ch);
}

int
shared_sub_message(struct server *s, const char *channel, const char *msg, size_t len)
{
	char *ch = rchan_shared(s);
	int ours = strcmp(ch, channel) == 0;
	free(ch);
	if (!ours || s->shared == NULL)
		return ours;
	json_t *m = json_loadb(msg, len, 0, NULL);
	long long ver = json_integer_value(json_object_get(m, "ver"));
	json_decref(m);
	if (ver != s->shared->ver)
		sync_now(s);
	return 1;
}

static void
check_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct shared *sh = s->shared;
	if (sh == NULL)
		return;
	sh->checking = 0;
	const char *v = r != NULL ? rr_str(r, NULL) : NULL;
	if (v == NULL || rr_type(r) == RR_ERROR)
		return;
	long long ver = atoll(v);
	if (ver != sh->ver) {
		log_info("tokens: the shared set is at version %lld, the cache at %lld (a notice was lost): syncing",
		         ver, sh->ver);
		sync_now(s);
	}
}

void
shared_tick(struct server *s)
{
	struct shared *sh = s->shared;
	double now = clock_mono();
	if (sh == NULL || sh->checking || sh->syncing || now < sh->next_check || !redis_ready(s->redis))
		return;
	sh->next_check = now + SHARED_CHECK_S;
	struct rctx ctx = {0};
	if (rcall_send(s, rcall_new(s, RF_SHARED_VER, &ctx), check_reply, NULL) == 0)
		sh->checking = 1;
}

void
shared_wrote(struct server *s, long long ver)
{
	struct shared *sh = s->shared;
	recount(s);
	/* The write's own notice comes too; when the cache held the version just before, it holds this one. */
	if (sh->ver == ver - 1)
		sh->ver = ver;
	else
		sync_now(s);
}

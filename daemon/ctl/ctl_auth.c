/*
 * ctl_auth: who a control client is. The hello (version exchange; on TCP the handshake that keys the
 * session), auth by token or by peer credentials, the per-peer failed-auth table (exponential delay, then a
 * lockout). Tokens are read from this node's SQLite cache of the deployment's shared set (shared.c), never
 * from Redis: a handshake does not wait on it. The token ops are in ctl_token.c.
 * See schema/control-protocol.md, "Credentials", "Rate limiting" and "TCP".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

/* last_used_at is written at most this often per token: a busy client does not cost a write per auth. */
#define TOUCH_EVERY_S 60.0

/* --- the failed-auth table --- */

static struct ctl_peer *
peer_find(struct ctl *ctl, const char *key)
{
	for (size_t i = 0; i < ctl->npeers; i++)
		if (strcmp(ctl->peers[i].key, key) == 0)
			return &ctl->peers[i];
	return NULL;
}

/*
 * A slot for a new peer: a free one, else the unlocked one whose last failure is oldest (a flood from many
 * addresses cannot evict a peer that is locked out while unlocked ones remain).
 */
static struct ctl_peer *
peer_add(struct ctl *ctl, const char *key, double now)
{
	struct ctl_peer *p;
	if (ctl->npeers < CTL_PEERS_MAX)
		p = &ctl->peers[ctl->npeers++];
	else {
		p = &ctl->peers[0];
		for (size_t i = 1; i < ctl->npeers; i++) {
			struct ctl_peer *q = &ctl->peers[i];
			int q_locked = q->locked_until > now, p_locked = p->locked_until > now;
			if ((p_locked && !q_locked) || (p_locked == q_locked && q->last_at < p->last_at))
				p = q;
		}
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->key, sizeof(p->key), "%s", key);
	return p;
}

/*
 * Failed authentications are counted under three keys, and a success clears none of them (a client must
 * not wash its guesses away with its own valid token):
 *   - the peer: "uid:N" on the unix socket, "ip:A" (or "ip6:PREFIX/64") on TCP;
 *   - the peer and the token id it named: "uid:N|ID", "ip:A|ID" ("" when it named none);
 *   - everyone: the global failure rate.
 * Who is locked out: on the unix socket the peer (uid) - a local user locks out only itself. On TCP the
 * (address, token id) pair: many local users share 127.0.0.1, so one of them guessing must not lock every
 * TCP client out; guessing at many token ids from one address is slowed by the address's count, which
 * grows the delay but never locks. A failure rate over CTL_GLOBAL_FAILURES per window (from anyone) gives
 * every failed attempt the longest delay: it delays, never locks.
 */
#define CTL_GLOBAL_FAILURES_FACTOR 10

static void
key_join(char *out, size_t n, const char *peer, const char *tid)
{
	snprintf(out, n, "%s|%s", peer, tid != NULL ? tid : "");
}

/* The token id this connection's credential attempt named ("" if none yet). */
static const char *
attempt_token_id(const struct ctl_conn *c)
{
	return c->tcp ? c->hello_token_id : c->auth_token_id;
}

int
ctl_auth_locked(struct ctl_conn *c, const char *token_id, double now, double *left)
{
	char k[sizeof(c->peer_key) + CTL_TOKEN_ID_LEN + 2];
	if (!c->tcp)
		return ctl_peer_locked(c->ctl, c->peer_key, now, left);
	key_join(k, sizeof(k), c->peer_key, token_id);
	return ctl_peer_locked(c->ctl, k, now, left);
}

int
ctl_peer_locked(struct ctl *ctl, const char *key, double now, double *left)
{
	struct ctl_peer *p = peer_find(ctl, key);
	if (p == NULL || p->locked_until <= now)
		return 0;
	*left = p->locked_until - now;
	return 1;
}

/* Counts a failure under key. Returns the failures in its current window; locks it out at the limit if lock. */
static int
peer_fail(struct ctl *ctl, const char *key, double now, int lock)
{
	const struct config *cfg = &ctl->s->cfg;
	struct ctl_peer *p = peer_find(ctl, key);
	if (p == NULL)
		p = peer_add(ctl, key, now);
	if (p->failures == 0 || now - p->first_at > cfg->ctl_lockout_s) {
		p->failures = 0;
		p->first_at = now;
	}
	p->failures++;
	p->last_at = now;
	if (lock && p->failures >= cfg->ctl_auth_max_failures && p->locked_until <= now) {
		p->locked_until = now + cfg->ctl_lockout_s;
		log_error("ctl: %s locked out for %g s after %d failed authentications", key, cfg->ctl_lockout_s,
		          p->failures);
	}
	return p->failures;
}

/* Counts one failure everywhere it counts (see above). Returns the count the delay grows with. */
static int
failure_count(struct ctl_conn *c, double now, int *global_flood)
{
	struct ctl *ctl = c->ctl;
	const struct config *cfg = &ctl->s->cfg;
	char k[sizeof(c->peer_key) + CTL_TOKEN_ID_LEN + 2];
	key_join(k, sizeof(k), c->peer_key, attempt_token_id(c));
	int by_peer = peer_fail(ctl, c->peer_key, now, !c->tcp);
	int by_token = peer_fail(ctl, k, now, c->tcp);
	if (ctl->global_failures == 0 || now - ctl->global_first_at > cfg->ctl_lockout_s) {
		ctl->global_failures = 0;
		ctl->global_first_at = now;
	}
	ctl->global_failures++;
	*global_flood = ctl->global_failures > CTL_GLOBAL_FAILURES_FACTOR * cfg->ctl_auth_max_failures;
	return by_peer > by_token ? by_peer : by_token;
}

static void
delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_conn *c = w->data;
	json_t *msg = c->delayed_reply;
	c->delayed_reply = NULL;
	if (c->delayed_close) {
		ctl_send(c, msg); /* sealed once the handshake completed, else in clear */
		ctl_close_after_flush(c, "failed authentication");
		return;
	}
	ctl_send(c, msg);
	ctl_resume(c);
}

void
ctl_auth_failed(struct ctl_conn *c, json_t *id, const char *why)
{
	struct ctl *ctl = c->ctl;
	double now = clock_mono();
	int flood = 0, n = failure_count(c, now, &flood);
	const char *tid = attempt_token_id(c);
	log_warn("ctl: %s: authentication failed (%d in the window%s%s%s): %s", c->peer, n, tid[0] ? ", token " : "",
	         tid, flood ? ", global failure rate exceeded" : "", why);
	double delay = ctl->s->cfg.ctl_auth_delay_ms / 1000.0;
	for (int i = 1; i < n && delay < CTL_AUTH_DELAY_MAX_S; i++)
		delay *= 2;
	if (delay > CTL_AUTH_DELAY_MAX_S || flood)
		delay = CTL_AUTH_DELAY_MAX_S;
	/* Reading stops for the delay: the client cannot queue guesses behind it. */
	c->reading_paused = 1;
	ev_io_stop(ctl->s->loop, &c->rio);
	json_decref(c->delayed_reply);
	c->delayed_reply = ctl_reply_error(id, CTL_E_AUTH_FAILED, "authentication failed");
	c->delayed_close = c->tcp; /* over TCP one handshake proves one key: answer, then close */
	ev_timer_init(&c->delay, delay_cb, delay, 0);
	c->delay.data = c;
	ev_timer_start(ctl->s->loop, &c->delay);
}

/* --- hello --- */

static json_t *
hello_result(struct ctl_conn *c, int version)
{
	const struct server *s = c->ctl->s;
	json_t *auth = json_array();
	json_array_append_new(auth, json_string("token"));
	if (!c->tcp)
		json_array_append_new(auth, json_string("peercred"));
	return json_pack("{s:i, s:s, s:s, s:o, s:i}", "version", version, "server", "hopperd " HOPPER_VERSION, "node",
	                 s->cfg.node_id, "auth", auth, "max_frame", s->cfg.ctl_max_frame);
}

/* The TCP hello: a version-1 client, a key probe, or handshake message 1. */
static void
hello_tcp(struct ctl_conn *c, struct ctl_request *req, int version)
{
	struct ctl *ctl = c->ctl;
	const char *m64 = json_string_value(json_object_get(req->root, "noise"));
	unsigned char msg1[256], pl[256];
	char pk64[CTL_PK_B64_LEN + 1];
	size_t plen = 0;
	if (version < 2) {
		ctl_reply_err(c, req->id, CTL_E_VERSION,
		              "over TCP this server speaks protocol version %d only (the Noise handshake); protocol "
		              "1's handshake is retired: upgrade the client",
		              CTL_PROTOCOL_VERSION);
		ctl_close_after_flush(c, "protocol 1 over TCP");
		return;
	}
	ctl_b64_encode(ctl->key.pk, sizeof(ctl->key.pk), pk64, sizeof(pk64));
	if (m64 == NULL) { /* first use: the client asks for the key to pin; unauthenticated, as ssh's first contact */
		ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:i, s:s}", "version", version, "server_key", pk64)));
		ctl_close_after_flush(c, "key probe answered");
		return;
	}
	long n = ctl_b64_decode_var(m64, strlen(m64), msg1, sizeof(msg1));
	c->noise = xmalloc(sizeof(*c->noise));
	ctl_noise_init(c->noise, 0, (const unsigned char *)CTL_NOISE_PROLOGUE, strlen(CTL_NOISE_PROLOGUE), &ctl->key,
	               NULL);
	if (n < 0 || ctl_noise_read(c->noise, msg1, (size_t)n, pl, &plen) != 0) {
		/* Not sealed to this daemon's key: the client pinned another (the key was replaced, or this daemon
		 * holds a copy of another's database). Not a credential guess: not counted for lockout. */
		log_warn("ctl: %s: handshake message 1 does not open with this daemon's key (%s): the client "
		         "pinned another key",
		         c->peer, pk64);
		ctl_reply_err(c, req->id, CTL_E_AUTH_FAILED,
		              "the handshake is not for this daemon's key: the key the client pinned is not this "
		              "daemon's (hopperd --print-pubkey shows it)");
		ctl_close_after_flush(c, "handshake for another key");
		return;
	}
	/* Message 2 carries the hello result, so it is authenticated by the daemon's key. */
	json_t *result = hello_result(c, version);
	char *text = jsonx_dump(result);
	json_decref(result);
	size_t tlen = strlen(text);
	unsigned char *msg2 = xmalloc(tlen + CTL_NOISE_OVERHEAD(1));
	size_t m2 = ctl_noise_write(c->noise, (const unsigned char *)text, tlen, msg2);
	free(text);
	char *b64 = xmalloc(2 * m2 + 4);
	ctl_b64_encode(msg2, m2, b64, 2 * m2 + 4);
	free(msg2);
	ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:i, s:s}", "version", version, "noise", b64)));
	free(b64);
	c->hello = 1;
}

int
ctl_handshake_finish(struct ctl_conn *c, const unsigned char *msg, size_t n, unsigned char *out, size_t *plen)
{
	int rc = ctl_noise_read(c->noise, msg, n, out, plen);
	if (rc == 0) {
		memcpy(c->client_static, ctl_noise_remote_static(c->noise), sizeof(c->client_static));
		ctl_noise_split(c->noise, &c->sess);
		c->encrypted = 1;
	}
	ctl_noise_wipe(c->noise);
	free(c->noise);
	c->noise = NULL;
	if (rc != 0)
		ctl_auth_failed(c, NULL, "handshake message 3 does not open");
	return rc;
}

void
ctl_hello(struct ctl_conn *c, struct ctl_request *req, const unsigned char *payload, size_t len)
{
	long long v = json_integer_value(json_object_get(req->root, "version"));
	double left;
	if (v < 1) {
		ctl_reply_err(c, req->id, CTL_E_VERSION, "this server speaks protocol version %d",
		              CTL_PROTOCOL_VERSION);
		ctl_close_after_flush(c, "no common protocol version");
		return;
	}
	int version = v < CTL_PROTOCOL_VERSION ? (int)v : CTL_PROTOCOL_VERSION;
	const char *hello_tid = json_string_value(json_object_get(req->root, "token_id"));
	if (c->tcp && ctl_auth_locked(c, hello_tid, clock_mono(), &left)) {
		ctl_reply_err(c, req->id, CTL_E_LOCKED_OUT, "too many failed authentications; locked out for %.0f s",
		              left + 0.5);
		ctl_close_after_flush(c, "locked out");
		return;
	}
	if (c->tcp) {
		hello_tcp(c, req, version);
		return;
	}
	if (json_object_get(req->root, "token_id") != NULL || json_object_get(req->root, "noise") != NULL) {
		ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "token_id, pk and noise belong to the TCP handshake");
		ctl_close_after_flush(c, "TCP hello on the unix socket");
		return;
	}
	c->hello = 1;
	ctl_send(c, ctl_reply_ok(req->id, hello_result(c, version)));
}

/* --- auth --- */

static void
auth_ok(struct ctl_conn *c, json_t *id)
{
	c->authed = 1; /* the failure counts stay: a success does not forgive other guesses */
	log_info("ctl: %s: authenticated as %s%s (owner %s)", c->peer,
	         c->cred.method == CTL_AUTH_PEERCRED ? "peer credentials" : "token ", c->cred.name, c->cred.owner);
	json_t *r = json_pack("{s:s, s:s, s:o}", "method", c->cred.method == CTL_AUTH_PEERCRED ? "peercred" : "token",
	                      "owner", c->cred.owner, "scopes", ctl_scopes_json(c->cred.scopes));
	json_object_set_new(r, "name", c->cred.name[0] ? json_string(c->cred.name) : json_null());
	ctl_send(c, ctl_reply_ok(id, r));
}

/*
 * Is the presented credential the token's? The store keeps one 32-byte value per token, its verifier (the
 * public half of the key the secret derives, ctl_token_verifier); rows written before protocol 2 keep
 * BLAKE2b(secret) there until their first use on the unix socket replaces it with the verifier. Over TCP
 * the handshake proved the key c->client_static: it must be the verifier (a protocol-1 row never matches,
 * the token must be used once over the unix socket or re-issued). On the unix socket the secret itself
 * came through the kernel: its verifier, or its old hash, must match. Constant-time comparisons.
 * Returns 1 (and *upgrade when the row holds the old hash), 0 when not.
 */
static int
token_matches(const struct ctl_conn *c, const unsigned char secret[CTL_TOKEN_SECRET_BYTES], const struct store_token *t,
              int *upgrade, unsigned char verifier[CTL_HASH_BYTES])
{
	unsigned char old[CTL_HASH_BYTES];
	*upgrade = 0;
	if (c->tcp)
		return ctl_hash_equal(c->client_static, t->hash);
	ctl_token_verifier(secret, verifier);
	ctl_token_hash(secret, old);
	int v = ctl_hash_equal(verifier, t->hash), h = ctl_hash_equal(old, t->hash);
	ctl_wipe(old, sizeof(old));
	*upgrade = h;
	return v | h;
}

/* Checks a token against the store. Returns 0 (c->cred filled) or -1 with *why. */
static int
token_check(struct ctl_conn *c, const char *token, const char *token_id, const char **why)
{
	char tid[CTL_TOKEN_ID_LEN + 1];
	unsigned char secret[CTL_TOKEN_SECRET_BYTES] = {0}, verifier[CTL_HASH_BYTES];
	struct store_token t;
	int upgrade = 0;
	if (token_id != NULL) /* TCP: the id only; the handshake proved the key */
		snprintf(tid, sizeof(tid), "%s", token_id);
	else if (ctl_token_parse(token, strlen(token), tid, secret) != 0) {
		*why = "malformed token";
		return -1;
	}
	int found = store_token_get(c->ctl->s->store, tid, &t);
	if (found != 1) {
		ctl_wipe(secret, sizeof(secret));
		*why = found == 0 ? "unknown token id" : "token store error";
		return -1;
	}
	int same = token_matches(c, secret, &t, &upgrade, verifier);
	ctl_wipe(secret, sizeof(secret));
	if (same && t.revoked_at == 0 && !t.shared && shared_active(c->ctl->s)) {
		*why = "the token is this node's own, not in the deployment's shared set (hopperd --migrate-shared "
		       "copies such tokens)";
		return -1;
	}
	if (!same || t.revoked_at != 0) {
		*why = !same ? (c->tcp ? "the handshake's key is not the token's (wrong secret, or a token stored "
		                         "before protocol 2 not yet used over the unix socket)"
		                       : "wrong secret")
		             : "revoked token";
		return -1;
	}
	char err[128];
	c->cred.method = CTL_AUTH_TOKEN;
	if (ctl_scopes_parse(t.scopes, &c->cred.scopes, err, sizeof(err)) != 0) {
		*why = "stored scopes unreadable";
		return -1;
	}
	if (upgrade && store_token_set_hash(c->ctl->s->store, t.id, verifier) == 0) {
		log_info("ctl: token %s (%s): its stored hash replaced by its protocol-2 verifier", t.name, t.id);
		if (t.shared)
			ctl_token_upgrade_shared(c->ctl->s, t.id, t.hash, verifier);
	}
	snprintf(c->cred.owner, sizeof(c->cred.owner), "%s", t.owner);
	snprintf(c->cred.token_id, sizeof(c->cred.token_id), "%s", t.id);
	snprintf(c->cred.name, sizeof(c->cred.name), "%s", t.name);
	double now = clock_now();
	if (now - t.last_used_at > TOUCH_EVERY_S)
		store_token_touch(c->ctl->s->store, t.id, now);
	return 0;
}

void
ctl_op_auth(struct ctl_conn *c, struct ctl_request *req)
{
	double left;
	const char *why = NULL;
	if (c->authed) {
		ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "already authenticated");
		return;
	}
	const char *token = json_string_value(json_object_get(req->root, "token"));
	const char *token_id = json_string_value(json_object_get(req->root, "token_id"));
	char tid[CTL_TOKEN_ID_LEN + 1] = "";
	unsigned char scratch[CTL_TOKEN_SECRET_BYTES];
	if (token != NULL && ctl_token_parse(token, strlen(token), tid, scratch) != 0)
		tid[0] = '\0';
	ctl_wipe(scratch, sizeof(scratch));
	if (token_id != NULL) { /* TCP (protocol 2): the id comes in handshake message 3 */
		snprintf(tid, sizeof(tid), "%s", token_id);
		snprintf(c->hello_token_id, sizeof(c->hello_token_id), "%s", token_id);
	}
	snprintf(c->auth_token_id, sizeof(c->auth_token_id), "%s", tid);
	if (ctl_auth_locked(c, tid, clock_mono(), &left)) {
		log_warn("ctl: %s: auth refused: locked out for %.0f s more", c->peer, left);
		ctl_reply_err(c, req->id, CTL_E_LOCKED_OUT, "too many failed authentications; locked out for %.0f s",
		              left + 0.5);
		if (c->tcp)
			ctl_close_after_flush(c, "locked out");
		return;
	}
	if (c->tcp && token != NULL)
		why = "a token over TCP: the secret never crosses the connection (auth gives token_id; the "
		      "handshake proves the secret)";
	else if (!c->tcp && token_id != NULL)
		why = "token_id alone on the unix socket (give the token)";
	else if (token != NULL || token_id != NULL)
		token_check(c, token, token_id, &why);
	else { /* peercred */
		uid_t me = geteuid();
		if (c->tcp)
			why = "peercred over TCP";
		else if (c->uid != 0 && c->uid != (long)me)
			why = "peercred: uid is neither root nor the daemon's";
		else {
			c->cred.method = CTL_AUTH_PEERCRED;
			c->cred.scopes = CTL_SCOPE_ALL;
			snprintf(c->cred.owner, sizeof(c->cred.owner), "uid:%ld", c->uid);
		}
	}
	if (why != NULL) {
		memset(&c->cred, 0, sizeof(c->cred));
		ctl_auth_failed(c, req->id, why);
		return;
	}
	auth_ok(c, req->id);
}

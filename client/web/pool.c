/*
 * pool: the control connections hopper-web's request threads use. The daemon enforces scopes and owners per
 * connection, on the credential it authenticated, so every HTTP request runs on a connection authenticated
 * with that request's own token: never on hopper-web's. A connection serves one request at a time (libhopper
 * handles are not shared between threads) and goes back to the pool for the next request bearing the same
 * token. At most pool_max connections exist, all tokens together; a request that finds none free takes an
 * idle one of another token (closed and reopened for its own), or waits for one up to the request timeout.
 *
 * Failed authentication: the daemon counts failures per peer (hopper-web's uid, for every web client at
 * once) and locks the peer out after ctl_auth_max_failures within ctl_lockout_s. So that a stream of wrong
 * bearer tokens cannot lock every web user out, hopper-web spends at most auth_fail_budget failed daemon
 * auths per 60 s (below the daemon's threshold: its successful auths reset the count); past that, tokens it
 * has not seen succeed lately answer 429 without reaching the daemon, while tokens it has (the last
 * KNOWN_MAX, by hash) still connect. A token that is not of the hop_<12 hex>_<secret> form never reaches it.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web.h"
#include "xmalloc.h"

#define KNOWN_MAX     1024
#define FAIL_WINDOW_S 60.0
/* A pooled connection idle this long is closed before the daemon's idle timeout (300 s by default) would. */
#define IDLE_CLOSE_S 240.0

struct pool_conn {
	char token[WEB_TOKEN_MAX + 1];
	struct hopper *h;
	int busy;
	double last_used;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct web_config *cfg;
	struct pool_conn *conns;
	int n;
	unsigned char known[KNOWN_MAX][crypto_generichash_BYTES];
	double known_at[KNOWN_MAX];
	double fails[64];
	int nfails;
	long long auth_failures, budget_refusals;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
pool_init(const struct web_config *cfg)
{
	P.cfg = cfg;
	P.conns = xcalloc((size_t)cfg->pool_max, sizeof(*P.conns));
	P.n = cfg->pool_max;
}

void
pool_shutdown(void)
{
	pthread_mutex_lock(&P.mu);
	for (int i = 0; i < P.n; i++) {
		if (P.conns[i].h != NULL && !P.conns[i].busy) {
			hopper_close(P.conns[i].h);
			P.conns[i].h = NULL;
		}
		sodium_memzero(P.conns[i].token, sizeof(P.conns[i].token));
	}
	pthread_mutex_unlock(&P.mu);
}

/* 1 if s looks like a hopper token: hop_, 12 lowercase hex, _, 43 base64url characters. */
static int
token_shaped(const char *s)
{
	size_t n = strlen(s);
	if (n != 60 || strncmp(s, "hop_", 4) != 0 || s[16] != '_')
		return 0;
	for (size_t i = 4; i < 16; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	for (size_t i = 17; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return 0;
	}
	return 1;
}

static void
token_hash(const char *token, unsigned char out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)token, strlen(token), NULL, 0);
}

/* Under P.mu. */
static int
known(const unsigned char hash[crypto_generichash_BYTES])
{
	for (int i = 0; i < KNOWN_MAX; i++)
		if (P.known_at[i] > 0 && sodium_memcmp(P.known[i], hash, crypto_generichash_BYTES) == 0)
			return 1;
	return 0;
}

/* Under P.mu: remembers a token that authenticated, replacing the oldest entry. */
static void
remember(const unsigned char hash[crypto_generichash_BYTES], double now)
{
	int slot = 0;
	for (int i = 0; i < KNOWN_MAX; i++) {
		if (sodium_memcmp(P.known[i], hash, crypto_generichash_BYTES) == 0) {
			slot = i;
			break;
		}
		if (P.known_at[i] < P.known_at[slot])
			slot = i;
	}
	memcpy(P.known[slot], hash, crypto_generichash_BYTES);
	P.known_at[slot] = now;
}

/* Under P.mu: failures within the window. */
static int
recent_failures(double now)
{
	int k = 0;
	for (int i = 0; i < P.nfails; i++)
		if (now - P.fails[i] < FAIL_WINDOW_S)
			P.fails[k++] = P.fails[i];
	P.nfails = k;
	return k;
}

/* Under P.mu: a free slot for token (same token idle first, then empty, then another's idle), or -1. */
static int
find_slot(const char *token, double now)
{
	int empty = -1, other = -1;
	for (int i = 0; i < P.n; i++) {
		struct pool_conn *c = &P.conns[i];
		if (c->busy)
			continue;
		if (c->h != NULL && now - c->last_used > IDLE_CLOSE_S) {
			hopper_close(c->h);
			c->h = NULL;
		}
		if (c->h != NULL && strcmp(c->token, token) == 0)
			return i;
		if (c->h == NULL && empty < 0)
			empty = i;
		else if (c->h != NULL && (other < 0 || c->last_used < P.conns[other].last_used))
			other = i;
	}
	return empty >= 0 ? empty : other;
}

static struct pool_conn *
connect_slot(struct pool_conn *c, const char *token, const unsigned char hash[crypto_generichash_BYTES],
             enum hopper_err *code, char *msg, size_t msglen)
{
	struct hopper_opts o = {.socket = P.cfg->socket,
	                        .token = token,
	                        .timeout_ms = P.cfg->timeout_ms,
	                        .client = "hopper-web/" WEB_VERSION};
	int rc = 0;
	struct hopper *h = hopper_connect(&o, &rc, msg, msglen);
	pthread_mutex_lock(&P.mu);
	if (h == NULL) {
		c->busy = 0;
		if (rc == HOPPER_E_AUTH_FAILED) {
			P.auth_failures++;
			if (P.nfails < (int)(sizeof(P.fails) / sizeof(P.fails[0])))
				P.fails[P.nfails++] = now_s();
		}
		pthread_cond_broadcast(&P.cv);
		pthread_mutex_unlock(&P.mu);
		*code = (enum hopper_err)rc;
		return NULL;
	}
	remember(hash, now_s());
	c->h = h;
	snprintf(c->token, sizeof(c->token), "%s", token);
	pthread_mutex_unlock(&P.mu);
	return c;
}

struct pool_conn *
pool_acquire(const char *token, enum hopper_err *code, char *msg, size_t msglen)
{
	if (token == NULL || !token_shaped(token)) {
		*code = HOPPER_E_AUTH_FAILED;
		snprintf(msg, msglen, "not a hopper token (hop_<id>_<secret>)");
		return NULL;
	}
	unsigned char hash[crypto_generichash_BYTES];
	token_hash(token, hash);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += P.cfg->timeout_ms / 1000 + 1;
	pthread_mutex_lock(&P.mu);
	for (;;) {
		double now = now_s();
		int i = find_slot(token, now);
		if (i >= 0) {
			struct pool_conn *c = &P.conns[i];
			c->busy = 1;
			c->last_used = now;
			if (c->h != NULL && strcmp(c->token, token) == 0) {
				pthread_mutex_unlock(&P.mu);
				return c;
			}
			if (!known(hash) && recent_failures(now) >= P.cfg->auth_fail_budget) {
				c->busy = 0;
				P.budget_refusals++;
				pthread_mutex_unlock(&P.mu);
				*code = HOPPER_E_LOCKED_OUT;
				snprintf(msg, msglen, "too many failed authentications lately; try again in a minute");
				return NULL;
			}
			if (c->h != NULL) {
				hopper_close(c->h);
				c->h = NULL;
			}
			pthread_mutex_unlock(&P.mu);
			return connect_slot(c, token, hash, code, msg, msglen);
		}
		if (pthread_cond_timedwait(&P.cv, &P.mu, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&P.mu);
			*code = HOPPER_E_LIMIT;
			snprintf(msg, msglen, "every control connection is busy; try again");
			return NULL;
		}
	}
}

struct hopper *
pool_handle(struct pool_conn *pc)
{
	return pc->h;
}

void
pool_release(struct pool_conn *pc)
{
	pthread_mutex_lock(&P.mu);
	enum hopper_err e = hopper_errcode(pc->h);
	if (e == HOPPER_E_TRANSPORT || e == HOPPER_E_TIMEOUT || e == HOPPER_E_STOPPED) {
		hopper_close(pc->h);
		pc->h = NULL;
	}
	pc->busy = 0;
	pc->last_used = now_s();
	pthread_cond_signal(&P.cv);
	pthread_mutex_unlock(&P.mu);
}

int
pool_call(const char *token, const char *op, json_t *fields, json_t **result, enum hopper_err *code, char *msg,
          size_t msglen, json_t **identity)
{
	const struct ctl_op *o = op != NULL ? ctl_op_find(op) : NULL;
	int writes = op != NULL && (o == NULL || (o->flags & CTL_F_WRITES));
	*result = NULL;
	for (int tries = 0; tries < 2; tries++) {
		struct pool_conn *pc = pool_acquire(token, code, msg, msglen);
		if (pc == NULL)
			return -1;
		int r = op != NULL ? hopper_call(pc->h, op, fields, result) : HOPPER_OK;
		if (r == HOPPER_OK) {
			if (identity != NULL)
				*identity = json_deep_copy(hopper_identity(pc->h));
			pool_release(pc);
			return HOPPER_OK;
		}
		*code = (enum hopper_err)r;
		snprintf(msg, msglen, "%s", hopper_errmsg(pc->h));
		pool_release(pc);
		/* A pooled connection the daemon closed meanwhile: once more on a new one, if nothing was written. */
		if (r != HOPPER_E_TRANSPORT || writes)
			return -1;
	}
	return -1;
}

void
pool_figures(int *open, int *busy, long long *auth_failures, long long *budget_refusals)
{
	pthread_mutex_lock(&P.mu);
	*open = *busy = 0;
	for (int i = 0; i < P.n; i++) {
		*open += P.conns[i].h != NULL;
		*busy += P.conns[i].busy;
	}
	*auth_failures = P.auth_failures;
	*budget_refusals = P.budget_refusals;
	pthread_mutex_unlock(&P.mu);
}

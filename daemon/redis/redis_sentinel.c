/*
 * redis_sentinel: master discovery through Redis Sentinel (see redis_sentinel.h).
 *
 * The Sentinels are asked with hiredis's synchronous API, each with a short connect and command timeout.
 * That blocks the loop, which is acceptable here only because it runs on the reconnect path alone: the
 * connections are down (no job state can be written anyway), an answer on a LAN takes well under a
 * millisecond, and the worst case (every Sentinel silent) is SENTINEL_TIMEOUT_MS per Sentinel, far below
 * lease_s, so no heartbeat is missed for long. An async query would need a fourth connection state machine
 * per Sentinel for no gain in that state.
 *
 * The watch is the one async link here: subscribed to +switch-master on one Sentinel (the next in the list
 * after a failure, with backoff), it names the new master the moment a failover ends, so the links leave
 * the old master at once instead of waiting for it to refuse a write (READONLY) or to drop them.
 */
#include "redis_sentinel.h"

#include <fcntl.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperd.h"
#include "log.h"
#include "xmalloc.h"

/* Per Sentinel, for the connect and again for the command: a Sentinel slower than this is skipped. */
#define SENTINEL_TIMEOUT_MS 300
/* An answer this recent is reused: the three connections reconnect together and need ask only once. */
#define SENTINEL_FRESH_MS 500
/* The watch's reconnect backoff (like redis.c's connections). */
#define WATCH_RETRY_MIN_S 0.1
#define WATCH_RETRY_MAX_S 5.0

struct redis_sentinel {
	struct server *s;
	char host[256]; /* the last master named; "" = none yet */
	int port;
	int known;          /* host:port is a current answer (not forgotten) */
	double asked_at_ms; /* monotonic */
	int unknown_logged; /* "does not know master" logged for this outage */
	/* the +switch-master watch */
	redis_sentinel_switch_cb *on_switch;
	void *on_switch_priv;
	redisAsyncContext *watch; /* NULL while down */
	int watch_idx;            /* the Sentinel it is (or will be) on */
	int watch_confirmed;      /* the SUBSCRIBE was confirmed: the next loss retries at once */
	double watch_backoff;
	ev_timer watch_retry;
};

static void watch_connect(struct redis_sentinel *rs);

struct redis_sentinel *
redis_sentinel_new(struct server *s)
{
	if (s->cfg.nsentinels == 0)
		return NULL;
	struct redis_sentinel *rs = xcalloc(1, sizeof(*rs));
	rs->s = s;
	ev_timer_init(&rs->watch_retry, NULL, 0, 0);
	return rs;
}

void
redis_sentinel_free(struct redis_sentinel *rs)
{
	if (rs == NULL)
		return;
	ev_timer_stop(rs->s->loop, &rs->watch_retry);
	if (rs->watch != NULL) {
		redisAsyncContext *ac = rs->watch;
		ac->onDisconnect = NULL; /* going away: no reconnect */
		rs->watch = NULL;
		redisAsyncFree(ac);
	}
	free(rs);
}

void
redis_sentinel_forget(struct redis_sentinel *rs)
{
	if (rs != NULL)
		rs->known = 0;
}

/* Asks one Sentinel. Returns 0 with host/port, -1 (logged). */
static int
ask(struct redis_sentinel *rs, const struct sentinel_addr *a, char *host, size_t hostlen, int *port)
{
	const struct config *cfg = &rs->s->cfg;
	struct timeval tv = {SENTINEL_TIMEOUT_MS / 1000, (SENTINEL_TIMEOUT_MS % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
	if (c == NULL || c->err) {
		log_warn("redis: sentinel %s:%d: %s", a->host, a->port, c ? c->errstr : "out of memory");
		redisFree(c);
		return -1;
	}
	redisSetTimeout(c, tv);
	int rc = -1;
	redisReply *r = NULL;
	if (cfg->redis_sentinel_password[0] != '\0') {
		r = redisCommand(c, "AUTH %s", cfg->redis_sentinel_password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			log_warn("redis: sentinel %s:%d: AUTH failed: %s", a->host, a->port, r ? r->str : c->errstr);
			goto out;
		}
		freeReplyObject(r);
	}
	r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", cfg->redis_master_name);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		log_warn("redis: sentinel %s:%d: %s", a->host, a->port, r ? r->str : c->errstr);
	else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		if (!rs->unknown_logged)
			log_error(
			        "redis: sentinel %s:%d does not know a master named '%s' (check redis_master_name and "
			        "the Sentinels' 'sentinel monitor' lines); retrying",
			        a->host, a->port, cfg->redis_master_name);
		rs->unknown_logged = 1;
	} else if (r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
		snprintf(host, hostlen, "%s", r->element[0]->str);
		*port = atoi(r->element[1]->str);
		rc = *port > 0 && *port <= 65535 ? 0 : -1;
	}
out:
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

int
redis_sentinel_master(struct redis_sentinel *rs, const char **host, int *port)
{
	double now = clock_monotonic_ms();
	if (rs->known && now - rs->asked_at_ms < SENTINEL_FRESH_MS) {
		*host = rs->host;
		*port = rs->port;
		return 0;
	}
	const struct config *cfg = &rs->s->cfg;
	char h[256];
	int p = 0, i;
	for (i = 0; i < cfg->nsentinels; i++)
		if (ask(rs, &cfg->sentinels[i], h, sizeof(h), &p) == 0)
			break;
	if (i == cfg->nsentinels) {
		log_warn("redis: no sentinel named the master '%s'; retrying", cfg->redis_master_name);
		rs->known = 0;
		return -1;
	}
	rs->unknown_logged = 0;
	int changed = strcmp(h, rs->host) != 0 || p != rs->port;
	if (changed) {
		if (rs->host[0] != '\0') {
			log_warn("redis: master %s is now %s:%d (was %s:%d)", cfg->redis_master_name, h, p, rs->host,
			         rs->port);
			rs->s->metrics.redis_master_changes++;
		} else
			log_info("redis: master %s is %s:%d (sentinel %s:%d)", cfg->redis_master_name, h, p,
			         cfg->sentinels[i].host, cfg->sentinels[i].port);
		snprintf(rs->host, sizeof(rs->host), "%s", h);
		rs->port = p;
	}
	rs->known = 1;
	rs->asked_at_ms = now;
	*host = rs->host;
	*port = rs->port;
	return changed;
}

/* --- the +switch-master watch --- */

static void
watch_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	watch_connect(w->data);
}

/* The watch's Sentinel failed or left: the next one, after a backoff (none after a confirmed SUBSCRIBE). */
static void
watch_schedule(struct redis_sentinel *rs)
{
	rs->watch_idx = (rs->watch_idx + 1) % rs->s->cfg.nsentinels;
	if (rs->watch_confirmed)
		rs->watch_backoff = 0;
	else
		rs->watch_backoff = rs->watch_backoff == 0 ? WATCH_RETRY_MIN_S : rs->watch_backoff * 2;
	if (rs->watch_backoff > WATCH_RETRY_MAX_S)
		rs->watch_backoff = WATCH_RETRY_MAX_S;
	rs->watch_confirmed = 0;
	ev_timer_stop(rs->s->loop, &rs->watch_retry);
	ev_timer_set(&rs->watch_retry, rs->watch_backoff, 0);
	ev_timer_start(rs->s->loop, &rs->watch_retry);
}

/* "<name> <oldip> <oldport> <newip> <newport>" for our master: the answer is taken as fresh and the links
 * told. Another master's switch (one Sentinel set may watch several) is ignored. */
static void
watch_message(struct redis_sentinel *rs, const char *msg)
{
	const struct config *cfg = &rs->s->cfg;
	char name[256], oldh[256], newh[256];
	int oldp, newp;
	if (sscanf(msg, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5 ||
	    strcmp(name, cfg->redis_master_name) != 0 || newp <= 0 || newp > 65535)
		return;
	if (rs->host[0] != '\0' && strcmp(newh, rs->host) == 0 && newp == rs->port) {
		rs->known = 1; /* a discovery already followed it */
		rs->asked_at_ms = clock_monotonic_ms();
		return;
	}
	log_warn("redis: +switch-master from sentinel %s:%d: master %s is now %s:%d (was %s:%d); following at once",
	         cfg->sentinels[rs->watch_idx].host, cfg->sentinels[rs->watch_idx].port, name, newh, newp, oldh, oldp);
	rs->s->metrics.redis_master_changes++;
	snprintf(rs->host, sizeof(rs->host), "%s", newh);
	rs->port = newp;
	rs->known = 1;
	rs->asked_at_ms = clock_monotonic_ms();
	if (rs->on_switch != NULL)
		rs->on_switch(rs->on_switch_priv, rs->host, rs->port);
}

/* Every reply on the watch: AUTH's, then the subscribe confirmation and the messages. NULL on teardown. */
static void
watch_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_sentinel *rs = privdata;
	redisReply *r = reply;
	if (r == NULL || rs->watch != ac)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("redis: sentinel %s:%d (+switch-master watch): %s", rs->s->cfg.sentinels[rs->watch_idx].host,
		         rs->s->cfg.sentinels[rs->watch_idx].port, r->str);
		redisAsyncDisconnect(ac);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		log_info("redis: watching +switch-master on sentinel %s:%d", rs->s->cfg.sentinels[rs->watch_idx].host,
		         rs->s->cfg.sentinels[rs->watch_idx].port);
		rs->watch_confirmed = 1;
		rs->watch_backoff = 0;
	} else if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
		watch_message(rs, r->element[2]->str);
}

static void
watch_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_sentinel *rs = ac->data;
	if (status == REDIS_OK)
		return;
	log_warn("redis: sentinel %s:%d (+switch-master watch): %s", rs->s->cfg.sentinels[rs->watch_idx].host,
	         rs->s->cfg.sentinels[rs->watch_idx].port, ac->errstr);
	rs->watch = NULL; /* hiredis frees a context whose connect failed */
	watch_schedule(rs);
}

static void
watch_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_sentinel *rs = ac->data;
	if (rs->watch_confirmed)
		log_warn("redis: sentinel %s:%d (+switch-master watch) lost", rs->s->cfg.sentinels[rs->watch_idx].host,
		         rs->s->cfg.sentinels[rs->watch_idx].port);
	rs->watch = NULL;
	watch_schedule(rs);
}

static void
watch_connect(struct redis_sentinel *rs)
{
	const struct config *cfg = &rs->s->cfg;
	const struct sentinel_addr *a = &cfg->sentinels[rs->watch_idx];
	redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
	if (ac == NULL || ac->err) {
		log_warn("redis: sentinel %s:%d (+switch-master watch): %s", a->host, a->port,
		         ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		watch_schedule(rs);
		return;
	}
	int fl = fcntl(ac->c.fd, F_GETFD); /* workers must not inherit it */
	if (fl >= 0)
		fcntl(ac->c.fd, F_SETFD, fl | FD_CLOEXEC);
	ac->data = rs;
	redisLibevAttach(rs->s->loop, ac);
	redisAsyncSetConnectCallback(ac, watch_on_connect);
	redisAsyncSetDisconnectCallback(ac, watch_on_disconnect);
	rs->watch = ac;
	/* Queued now, sent once connected: AUTH first, then the subscription (one callback for both). */
	if (cfg->redis_sentinel_password[0] != '\0')
		redisAsyncCommand(ac, watch_reply, rs, "AUTH %s", cfg->redis_sentinel_password);
	redisAsyncCommand(ac, watch_reply, rs, "SUBSCRIBE +switch-master");
}

void
redis_sentinel_watch(struct redis_sentinel *rs, redis_sentinel_switch_cb *cb, void *priv)
{
	if (rs == NULL || rs->watch != NULL || ev_is_active(&rs->watch_retry))
		return;
	rs->on_switch = cb;
	rs->on_switch_priv = priv;
	rs->watch_retry.data = rs;
	ev_set_cb(&rs->watch_retry, watch_retry_cb);
	watch_connect(rs);
}

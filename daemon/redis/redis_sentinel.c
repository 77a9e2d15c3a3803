/*
 * redis_sentinel: master discovery through Redis Sentinel (see redis_sentinel.h).
 *
 * The Sentinels are asked with hiredis's synchronous API, each with a short connect and command timeout.
 * That blocks the loop, which is acceptable here only because it runs on the reconnect path alone: the
 * connections are down (no job state can be written anyway), an answer on a LAN takes well under a
 * millisecond, and the worst case (every Sentinel silent) is SENTINEL_TIMEOUT_MS per Sentinel, far below
 * lease_s, so no heartbeat is missed for long. An async query would need a fourth connection state machine
 * per Sentinel for no gain in that state.
 */
#include "redis_sentinel.h"

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

struct redis_sentinel {
	struct server *s;
	char host[256]; /* the last master named; "" = none yet */
	int port;
	int known;          /* host:port is a current answer (not forgotten) */
	double asked_at_ms; /* monotonic */
	int unknown_logged; /* "does not know master" logged for this outage */
};

struct redis_sentinel *
redis_sentinel_new(struct server *s)
{
	if (s->cfg.nsentinels == 0)
		return NULL;
	struct redis_sentinel *rs = xcalloc(1, sizeof(*rs));
	rs->s = s;
	return rs;
}

void
redis_sentinel_free(struct redis_sentinel *rs)
{
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

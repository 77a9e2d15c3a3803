/*
 * redis_wait: the replica acknowledgement of redis_wait_replicas (see redis_wait.h).
 */
#include "redis_wait.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperd.h"
#include "log.h"
#include "xmalloc.h"

/* A replica that lags lags for every batch: one line per this many seconds, with the count, not per batch. */
#define WAIT_WARN_EVERY_S 10.0

/* The copy is built with malloc like hiredis's own replies, so freeReplyObject frees it. */
static redisReply *
dup_reply(const redisReply *r)
{
	redisReply *c = xcalloc(1, sizeof(*c));
	c->type = r->type;
	c->integer = r->integer;
	if (r->str != NULL) {
		c->str = xmalloc(r->len + 1);
		memcpy(c->str, r->str, r->len);
		c->str[r->len] = '\0';
		c->len = r->len;
	}
	if (r->element != NULL) {
		c->element = xcalloc(r->elements > 0 ? r->elements : 1, sizeof(*c->element));
		for (size_t i = 0; i < r->elements; i++)
			c->element[i] = r->element[i] != NULL ? dup_reply(r->element[i]) : NULL;
		c->elements = r->elements;
	}
	return c;
}

struct redis_reply *
redis_wait_hold(const struct redis_reply *r)
{
	return r != NULL ? (struct redis_reply *)dup_reply((const redisReply *)r) : NULL;
}

void
redis_wait_check(struct server *s, const struct redis_reply *r, double *warned_at, unsigned *unlogged)
{
	const redisReply *rep = (const redisReply *)r;
	int want = s->cfg.redis_wait_replicas;
	if (rep == NULL)
		return; /* the connection went away: the batch's callbacks get NULL and resend */
	long long got = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
	if (got >= want)
		return;
	s->metrics.redis_wait_short++;
	(*unlogged)++;
	double now = clock_monotonic_ms();
	if (*warned_at != 0 && now - *warned_at < WAIT_WARN_EVERY_S * 1000)
		return;
	if (got < 0)
		log_warn("redis: WAIT %d %d failed: %s (%u batch(es) since the last warning)", want,
		         s->cfg.redis_wait_timeout_ms, rep->type == REDIS_REPLY_ERROR ? rep->str : "not an integer",
		         *unlogged);
	else
		log_warn("redis: WAIT: only %lld of %d replicas acknowledged within %d ms (%u batch(es) short since "
		         "the last warning); carrying on",
		         got, want, s->cfg.redis_wait_timeout_ms, *unlogged);
	*warned_at = now;
	*unlogged = 0;
}

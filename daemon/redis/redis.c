#include "redis.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "embedded.h"
#include "hopperd.h"
#include "log.h"
#include "redis_sentinel.h"
#include "redis_wait.h"
#include "rfunc.h"
#include "xmalloc.h"

#include <fcntl.h>

/* Monotonic seconds: every interval here (overdue replies, pings) must not jump with the wall clock. */
static double
mono(void)
{
	return clock_monotonic_ms() / 1000.0;
}

/* A reply that has not come this long after its request (beyond any blocking timeout) means a dead link. */
#define REPLY_OVERDUE_S 5.0
/* An idle command connection is pinged this often, so a dead link is noticed before work needs it. */
#define PING_IDLE_S     1.0
#define RECONNECT_MIN_S 0.1
#define RECONNECT_MAX_S 5.0

enum conn_kind { CONN_CMD, CONN_BLOCK, CONN_SUB };

struct conn {
	struct redis *r;
	const char *name;
	int is_cmd;
	enum conn_kind kind;
	redisAsyncContext *ac;
	int up;
	int was_up; /* connected before: the next connection is a reconnection */
	int pending;
	double last_io;
	double overdue_extra; /* the blocking timeout of an outstanding BLMOVE */
	double backoff;
	int loading;        /* dropped because Redis was loading: the reconnect keeps the backoff */
	int loading_logged; /* this outage's LOADING was logged: once, until Redis answers for real */
	int ready;          /* conn_ready ran: the modules were told it is up, so they are told of its loss */
	char host[256];     /* Sentinel: the master address this connection went to */
	int port;
	ev_timer retry;
};

/*
 * One loop turn's operations of one hash tag, sent as one hopper_batch call (hopper_batch_oom for ops that
 * may run under OOM): FCALL hopper_batch NKEYS key... n (name nkeys nargs arg...)... Keys and arguments
 * are kept apart until the flush joins them.
 */
struct batch {
	struct batch *next;
	char tag[QUEUE_NAME_MAX + 3];
	int oom;
	size_t nops;
	redis_cb **cbs;
	void **privs;
	size_t opcap;
	struct vec {
		char *p; /* n RESP bulk strings ("$LEN\r\nBYTES\r\n"), back to back: one buffer, not one per value */
		size_t len, cap, n;
	} keys, args;
	size_t bytes;
	int wait;                 /* a WAIT follows it: the reply is held until WAIT answers */
	struct redis_reply *held; /* that reply (a copy), or NULL */
};

/* A batch is sent without waiting for the turn to end once it holds this many operations or bytes, so a
 * resend of many large results after a reconnect never builds one command beyond Redis's query buffer. */
#define BATCH_MAX_OPS   2000
#define BATCH_MAX_BYTES (8u << 20)
/* Loop turns whose batches may be in flight at once. One at a time let the next grow, but left Redis idle
 * while hopperd handled a reply and hopperd idle while Redis ran the batch (a third of the machine idle
 * under make bench); four keep both busy. Order is kept: one connection, so Redis runs them in the order
 * sent, and a job's next op leaves only after its previous op's reply (redis_busy). */
#define BATCH_MAX_INFLIGHT 4

struct redis {
	struct server *s;
	struct conn cmd, blk;
	struct conn sub;       /* pub/sub only: the control channel and watched jobs' channels (ctl_watch.c) */
	char *library;         /* "#!lua name=hopper" and every daemon/lua file */
	struct batch *batches; /* this turn's, one per (tag, oom) */
	int batch_inflight;    /* batches awaiting their reply */
	char *ping_chan;       /* P{@}:ping:NODE: the pub/sub link's health check */
	double ping_sent;      /* monotonic seconds; 0 = no ping outstanding */
	double ping_last;
	int unsafe;                      /* maxmemory-policy evicts keys: no work until it changes (or the override) */
	struct redis_sentinel *sentinel; /* NULL unless redis_sentinels is set */
	double wait_warned;              /* redis_wait.c's rate limit: the last short-WAIT warning */
	unsigned wait_unlogged;
};

struct request {
	struct conn *c;
	redis_cb *cb;
	void *priv;
};

static void conn_connect(struct conn *c);
static int sub_send(struct redis *r, const char *cmd, const char *channel);

static void
conn_schedule_retry(struct conn *c)
{
	c->backoff = c->backoff == 0 ? RECONNECT_MIN_S : c->backoff * 2;
	if (c->backoff > RECONNECT_MAX_S)
		c->backoff = RECONNECT_MAX_S;
	ev_timer_stop(c->r->s->loop, &c->retry);
	ev_timer_set(&c->retry, c->backoff, 0);
	ev_timer_start(c->r->s->loop, &c->retry);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	conn_connect(w->data);
}

static void setup_reply(struct server *s, const struct redis_reply *r, void *priv);
static void policy_reply(struct server *s, const struct redis_reply *r, void *priv);
static void role_reply(struct server *s, const struct redis_reply *r, void *priv);

/*
 * An error reply that means this connection reaches the wrong server or one not serving yet: LOADING
 * (Redis reading its dataset), READONLY (a replica: after a failover the old master may be demoted) or
 * UNBLOCKED (a blocked BLMOVE whose master became a replica), NOREPLICAS (min-replicas-to-write: too few
 * replicas to accept a write; README "Redis Sentinel"). Nothing was done: the connection is dropped and
 * reconnects with backoff (asking the Sentinels again), and the callback gets NULL so the caller resends.
 */
static const char *const drop_errors[] = {"LOADING", "READONLY", "UNBLOCKED", "NOREPLICAS"};

static int
drop_error(const redisReply *rep)
{
	if (rep == NULL || rep->type != REDIS_REPLY_ERROR)
		return -1;
	for (size_t i = 0; i < sizeof(drop_errors) / sizeof(drop_errors[0]); i++)
		if (strncmp(rep->str, drop_errors[i], strlen(drop_errors[i])) == 0)
			return (int)i;
	return -1;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct request *req = privdata;
	struct conn *c = req->c;
	redisReply *rep = reply;
	if (c->pending > 0)
		c->pending--;
	c->last_io = mono();
	c->overdue_extra = 0;
	int drop = drop_error(rep);
	/* Not already leaving (c->up alone would miss a connection still in its ROLE check). */
	int live = c->ac != NULL && !(c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
	if (drop == 0) {
		/* Redis is loading its data: nothing was done. Back off like after a lost connection (the callback
		 * gets NULL, so the work is resent after the reconnect) instead of resending every loop turn. */
		if (live) {
			if (!c->loading_logged) /* once per outage, also when it began with failed connects */
				log_warn("redis: %s connection: Redis is loading its dataset; backing off", c->name);
			c->loading_logged = 1;
			c->up = 0;
			c->loading = 1;
			redisAsyncDisconnect(c->ac);
		}
		rep = NULL;
	} else if (drop > 0) {
		if (live) {
			log_warn("redis: %s connection: %s; reconnecting to the master", c->name, rep->str);
			redis_sentinel_forget(c->r->sentinel);
			c->up = 0;
			redisAsyncDisconnect(c->ac);
		}
		c->r->s->metrics.redis_errors++;
		rep = NULL;
	} else if (rep != NULL && req->cb != setup_reply && req->cb != policy_reply && req->cb != role_reply) {
		/* (CONFIG GET of the set-up is answered while Redis loads: not a sign the outage ended) */
		c->backoff = 0; /* a real answer: the next loss starts its backoff afresh */
		c->loading_logged = 0;
	}
	if (rep == NULL || rep->type == REDIS_REPLY_ERROR) /* a lost connection, LOADING, or an error reply */
		c->r->s->metrics.redis_errors++;
	if (req->cb != NULL)
		req->cb(c->r->s, (const struct redis_reply *)rep, req->priv);
	free(req);
}

/* Sends on a connection that is up or (setup: AUTH, SELECT, ROLE) connected but not yet checked. */
static int
conn_send_any(struct conn *c, int setup, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv)
{
	if (c->ac == NULL || (!c->up && !setup))
		return -1;
	struct request *req = xmalloc(sizeof(*req));
	req->c = c;
	req->cb = cb;
	req->priv = priv;
	if (redisAsyncCommandArgv(c->ac, on_reply, req, argc, argv, lens) != REDIS_OK) {
		free(req);
		return -1;
	}
	if (c->pending++ == 0)
		c->last_io = mono();
	return 0;
}

/* conn_send for a command already in RESP form (cmd, len): copied into hiredis's output buffer. */
static int
conn_send_formatted(struct conn *c, const char *cmd, size_t len, redis_cb *cb, void *priv)
{
	if (c->ac == NULL || !c->up)
		return -1;
	struct request *req = xmalloc(sizeof(*req));
	req->c = c;
	req->cb = cb;
	req->priv = priv;
	if (redisAsyncFormattedCommand(c->ac, on_reply, req, cmd, len) != REDIS_OK) {
		free(req);
		return -1;
	}
	if (c->pending++ == 0)
		c->last_io = mono();
	return 0;
}

static int
conn_send(struct conn *c, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv)
{
	return conn_send_any(c, 0, argc, argv, lens, cb, priv);
}

/* Replies to the set-up commands: an error there (bad password, Redis < 7) is logged loudly. */
static void
setup_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_error("redis: %s failed: %s", (const char *)priv, rr_str(r, NULL));
}

/*
 * maxmemory-policy, checked on every (re)connect: a policy that evicts keys (allkeys-*, volatile-*) would
 * drop queues, job hashes or heartbeats under memory pressure, so hopperd does no work on such a Redis
 * (at start-up it exits) unless redis_allow_eviction is set. noeviction is right. A Redis that denies
 * CONFIG (renamed, ACL) gets a warning and is used.
 */
static void
policy_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct redis *rd = s->redis;
	if (r == NULL)
		return;
	const struct redis_reply *v = rr_count(r) == 2 ? rr_elem(r, 1) : NULL;
	const char *pol = v != NULL ? rr_str(v, NULL) : NULL;
	if (pol == NULL) {
		log_warn("redis: cannot read maxmemory-policy (%s): make sure it is noeviction",
		         rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "no such setting");
		return;
	}
	int evicts = strncmp(pol, "allkeys-", 8) == 0 || strncmp(pol, "volatile-", 9) == 0;
	if (!evicts) {
		if (rd->unsafe)
			log_info("redis: maxmemory-policy is now %s: resuming", pol);
		rd->unsafe = 0;
		return;
	}
	if (s->cfg.redis_allow_eviction) {
		log_warn("redis: maxmemory-policy %s may evict hopper's keys (jobs lost, live nodes reaped); "
		         "used anyway because redis_allow_eviction is set",
		         pol);
		return;
	}
	log_error("redis: maxmemory-policy is %s, which evicts keys: hopper's queues, jobs and heartbeats would be "
	          "lost. Set it to noeviction (CONFIG SET maxmemory-policy noeviction), or redis_allow_eviction=1 "
	          "(unsafe)",
	          pol);
	rd->unsafe = 1;
	if (!s->registered) {
		s->exit_code = 1;
		ev_break(s->loop, EVBREAK_ALL);
	}
}

/* AUTH and SELECT, before anything else on a new connection. */
static void
conn_setup(struct conn *c)
{
	const struct config *cfg = &c->r->s->cfg;
	if (cfg->redis_password != NULL && cfg->redis_password[0] != '\0') {
		const char *argv[] = {"AUTH", cfg->redis_password};
		conn_send_any(c, 1, 2, argv, NULL, setup_reply, (void *)"AUTH");
	}
	if (cfg->redis_db != 0) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cfg->redis_db);
		const char *argv[] = {"SELECT", db};
		conn_send_any(c, 1, 2, argv, NULL, setup_reply, (void *)"SELECT");
	}
}

/* The connection serves: the library and policy check (command connection), then the modules are told. */
static void
conn_ready(struct conn *c)
{
	c->up = 1;
	c->ready = 1;
	if (c->is_cmd) {
		const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", c->r->library};
		conn_send(c, 4, argv, NULL, setup_reply, (void *)"FUNCTION LOAD (hopperd needs Redis 7 or newer)");
		const char *pol[] = {"CONFIG", "GET", "maxmemory-policy"};
		conn_send(c, 3, pol, NULL, policy_reply, NULL);
	}
	if (c->kind == CONN_SUB) {
		c->r->ping_sent = 0;
		sub_send(c->r, "SUBSCRIBE", c->r->ping_chan);
		ctl_sub_connected(c->r->s);
		ctl_logs_sub_connected(c->r->s);
		celery_pidbox_connected(c->r->s);
		shared_sub_connected(c->r->s);
	} else if (c->is_cmd) {
		node_on_connect(c->r->s);
		shared_connected(c->r->s);
	} else
		fetch_more(c->r->s);
}

/*
 * Sentinel: every connection asks ROLE before it serves, so nothing (FUNCTION LOAD, a heartbeat, a BLMOVE,
 * a SUBSCRIBE) ever reaches a replica the Sentinels named before a failover was announced. Not a master:
 * drop it and ask the Sentinels again.
 */
static void
role_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct conn *c = priv;
	if (r == NULL || c->ac == NULL || (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
		return; /* the connection went away or is leaving (a LOADING reply before it) */
	const struct redis_reply *role = rr_elem(r, 0);
	const char *name = role != NULL ? rr_str(role, NULL) : NULL;
	if (name != NULL && strcmp(name, "master") == 0) {
		conn_ready(c);
		return;
	}
	log_warn("redis: %s connection: %s:%d is %s, not the master; asking the sentinels again", c->name, c->host,
	         c->port,
	         name != NULL             ? name
	         : rr_type(r) == RR_ERROR ? rr_str(r, NULL)
	                                  : "of unknown role");
	redis_sentinel_forget(c->r->sentinel);
	redisAsyncDisconnect(c->ac);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	if (status != REDIS_OK) {
		log_warn("redis: %s connection failed: %s", c->name, ac->errstr);
		redis_sentinel_forget(c->r->sentinel); /* the master may be gone: ask again next time */
		c->ac = NULL;                          /* hiredis frees a context whose connect failed */
		conn_schedule_retry(c);
		return;
	}
	log_info("redis: %s connection up", c->name);
	if (c->was_up) /* for the stats op: the first connection is not a reconnection */
		c->r->s->metrics.redis_reconnects++;
	c->was_up = 1;
	c->loading = 0;
	c->pending = 0;
	c->last_io = mono();
	conn_setup(c);
	if (c->r->sentinel != NULL) {
		const char *argv[] = {"ROLE"};
		conn_send_any(c, 1, 1, argv, NULL, role_reply, c);
	} else
		conn_ready(c);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	log_warn("redis: %s connection lost%s%s", c->name, status == REDIS_OK ? "" : ": ",
	         status == REDIS_OK ? "" : ac->errstr);
	c->ac = NULL;
	c->up = 0;
	c->pending = 0;
	int was_ready = c->ready;
	c->ready = 0;
	if (!was_ready)
		; /* a connection that never served (Sentinel: ROLE said replica): nothing to tell */
	else if (c->kind == CONN_SUB) {
		ctl_sub_lost(c->r->s);
		ctl_logs_sub_lost(c->r->s);
	} else
		node_on_disconnect(c->r->s, !c->is_cmd);
	conn_schedule_retry(c);
}

/* Sentinel: a new master was named; the connections still on another address are dropped to follow it. */
static void
follow_master(struct redis *r, const char *host, int port)
{
	struct conn *conns[] = {&r->cmd, &r->blk, &r->sub};
	for (size_t i = 0; i < 3; i++) {
		struct conn *o = conns[i];
		if (o->ac == NULL || (o->port == port && strcmp(o->host, host) == 0))
			continue;
		log_warn("redis: %s connection: leaving %s:%d for the new master", o->name, o->host, o->port);
		o->up = 0;
		redisAsyncFree(o->ac); /* fails its pending requests; on_disconnect schedules the reconnect */
	}
}

/* The Sentinel watch saw +switch-master for our master. */
static void
on_switch(void *priv, const char *host, int port)
{
	follow_master(priv, host, port);
}

static void
conn_connect(struct conn *c)
{
	const struct config *cfg = &c->r->s->cfg;
	redisAsyncContext *ac;
	if (c->r->sentinel != NULL) {
		const char *host;
		int port, changed = redis_sentinel_master(c->r->sentinel, &host, &port);
		if (changed < 0) {
			conn_schedule_retry(c);
			return;
		}
		if (changed)
			follow_master(c->r, host, port);
		snprintf(c->host, sizeof(c->host), "%s", host);
		c->port = port;
		ac = redisAsyncConnect(c->host, c->port);
	} else
		ac = (cfg->redis_unix != NULL && cfg->redis_unix[0] != '\0')
		             ? redisAsyncConnectUnix(cfg->redis_unix)
		             : redisAsyncConnect(cfg->redis_host, cfg->redis_port);
	if (ac == NULL || ac->err) {
		log_warn("redis: %s connection failed: %s", c->name, ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		conn_schedule_retry(c);
		return;
	}
	/* Workers must not inherit Redis sockets. */
	int fl = fcntl(ac->c.fd, F_GETFD);
	if (fl >= 0)
		fcntl(ac->c.fd, F_SETFD, fl | FD_CLOEXEC);
	ac->data = c;
	redisLibevAttach(c->r->s->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->ac = ac;
}

/* The function library: its header line and every embedded Lua file. Caller frees. */
static char *
library_text(void)
{
	size_t len = strlen("#!lua name=hopper\n") + 1;
	for (const struct embedded_file *f = embedded_lua; f->name != NULL; f++)
		len += strlen(f->text) + 1;
	char *lib = xmalloc(len);
	strcpy(lib, "#!lua name=hopper\n");
	for (const struct embedded_file *f = embedded_lua; f->name != NULL; f++) {
		strcat(lib, f->text);
		strcat(lib, "\n");
	}
	return lib;
}

char *
redis_library(void)
{
	return library_text();
}

static void
conn_init(struct redis *r, struct conn *c, const char *name, enum conn_kind kind)
{
	memset(c, 0, sizeof(*c));
	c->r = r;
	c->name = name;
	c->kind = kind;
	c->is_cmd = kind == CONN_CMD;
	ev_timer_init(&c->retry, retry_cb, 0, 0);
	c->retry.data = c;
}

struct redis *
redis_new(struct server *s)
{
	struct redis *r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->library = library_text();
	r->ping_chan = rchan_ping(s);
	r->sentinel = redis_sentinel_new(s);
	conn_init(r, &r->cmd, "command", CONN_CMD);
	conn_init(r, &r->blk, "blocking", CONN_BLOCK);
	conn_init(r, &r->sub, "pub/sub", CONN_SUB);
	return r;
}

void
redis_start(struct redis *r)
{
	conn_connect(&r->cmd);
	conn_connect(&r->blk);
	conn_connect(&r->sub);
	redis_sentinel_watch(r->sentinel, on_switch, r);
}

static void batch_free(struct batch *b);

void
redis_free(struct redis *r)
{
	if (r == NULL)
		return;
	redis_flush(r);
	struct conn *conns[] = {&r->cmd, &r->blk, &r->sub};
	for (size_t i = 0; i < 3; i++) {
		ev_timer_stop(r->s->loop, &conns[i]->retry);
		if (conns[i]->ac != NULL) {
			redisAsyncContext *ac = conns[i]->ac;
			ac->onDisconnect = NULL; /* we are going away: no reconnect */
			conns[i]->ac = NULL;
			redisAsyncFree(ac);
		}
	}
	free(r->library);
	free(r->ping_chan);
	redis_sentinel_free(r->sentinel);
	free(r);
}

static void
vec_free(struct vec *v)
{
	free(v->p);
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	vec_free(&b->keys);
	vec_free(&b->args);
	free(b->cbs);
	free(b->privs);
	free(b);
}

/* Writes n in decimal at b (room for 20 digits); returns the length. printf's cost showed in profiles. */
static size_t
put_uint(char *b, size_t n)
{
	char t[24];
	size_t k = 0, len = 0;
	do
		t[k++] = (char)('0' + n % 10);
	while ((n /= 10) > 0);
	while (k > 0)
		b[len++] = t[--k];
	return len;
}

/* Appends one bulk string, already in the wire form hiredis would have built (so the flush copies nothing). */
static void
vec_add(struct vec *v, const char *arg, size_t len)
{
	size_t need = v->len + len + 32; /* '$', up to 20 digits, two CRLFs */
	if (need > v->cap) {
		v->cap = v->cap ? v->cap * 2 : 4096;
		if (v->cap < need)
			v->cap = need;
		v->p = xrealloc(v->p, v->cap);
	}
	char *w = v->p + v->len;
	*w++ = '$';
	w += put_uint(w, len);
	*w++ = '\r';
	*w++ = '\n';
	memcpy(w, arg, len);
	w += len;
	*w++ = '\r';
	*w++ = '\n';
	v->len = (size_t)(w - v->p);
	v->n++;
}

static void
vec_int(struct vec *v, size_t n)
{
	char b[24];
	vec_add(v, b, put_uint(b, n));
}

static void batch_send(struct redis *r, struct batch *b);

int
redis_batch(struct redis *r, const char *tag, const char *name, int oom, size_t nkeys, const char **keys,
            const size_t *klens, size_t nargs, const char **args, const size_t *alens, redis_cb *cb, void *priv)
{
	if (!r->cmd.up)
		return -1;
	struct batch *b = r->batches;
	while (b != NULL && (b->oom != oom || strcmp(b->tag, tag) != 0))
		b = b->next;
	size_t opbytes = 0;
	for (size_t i = 0; i < nkeys; i++)
		opbytes += klens[i];
	for (size_t i = 0; i < nargs; i++)
		opbytes += alens[i];
	if (b != NULL && b->nops > 0 && b->bytes + opbytes > BATCH_MAX_BYTES) {
		/* This op would take the batch past the byte cap: the batch goes now, the op opens the next one
		 * (so no batch is over the cap unless one op alone is). */
		struct batch **pp = &r->batches;
		while (*pp != b)
			pp = &(*pp)->next;
		*pp = b->next;
		batch_send(r, b);
		b = NULL;
	}
	if (b == NULL) {
		b = xcalloc(1, sizeof(*b));
		snprintf(b->tag, sizeof(b->tag), "%s", tag);
		b->oom = oom;
		/* Appended: batches leave in the order they were opened. */
		struct batch **tail = &r->batches;
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = b;
	}
	if (b->nops == b->opcap) {
		b->opcap = b->opcap ? b->opcap * 2 : 64;
		b->cbs = xrealloc(b->cbs, b->opcap * sizeof(*b->cbs));
		b->privs = xrealloc(b->privs, b->opcap * sizeof(*b->privs));
	}
	b->cbs[b->nops] = cb;
	b->privs[b->nops++] = priv;
	vec_add(&b->args, name, strlen(name));
	vec_int(&b->args, nkeys);
	vec_int(&b->args, nargs);
	for (size_t i = 0; i < nkeys; i++) {
		vec_add(&b->keys, keys[i], klens[i]);
		b->bytes += klens[i];
	}
	for (size_t i = 0; i < nargs; i++) {
		vec_add(&b->args, args[i], alens[i]);
		b->bytes += alens[i];
	}
	if (b->nops >= BATCH_MAX_OPS || b->bytes >= BATCH_MAX_BYTES) {
		/* Full: sent now, pipelined behind any batch in flight; the next op starts a new one. */
		struct batch **pp = &r->batches;
		while (*pp != b)
			pp = &(*pp)->next;
		*pp = b->next;
		batch_send(r, b);
	}
	return 0;
}

/* Hands each operation its element of the batch's reply (or the whole error, or NULL). */
static void
batch_reply(struct server *s, const struct redis_reply *rep, void *priv)
{
	struct batch *b = priv;
	if (b->wait) {
		b->held = redis_wait_hold(rep); /* delivered by wait_reply */
		return;
	}
	if (s->redis->batch_inflight > 0)
		s->redis->batch_inflight--;
	for (size_t i = 0; i < b->nops; i++) {
		const struct redis_reply *e = rep;
		if (rep != NULL && rr_type(rep) == RR_ARRAY)
			e = rr_elem(rep, i);
		if (b->cbs[i] != NULL)
			b->cbs[i](s, e, b->privs[i]);
	}
	batch_free(b);
}

/* WAIT's reply: the batch's own reply goes to its callbacks now (NULL if the connection went away). */
static void
wait_reply(struct server *s, const struct redis_reply *rep, void *priv)
{
	struct batch *b = priv;
	struct redis_reply *held = b->held;
	redis_wait_check(s, rep, &s->redis->wait_warned, &s->redis->wait_unlogged);
	b->wait = 0;
	batch_reply(s, rep != NULL ? held : NULL, b);
	redis_sync_reply_free(held);
}

static void
batch_send(struct redis *r, struct batch *b)
{
	struct metrics *m = &r->s->metrics; /* for the stats op: the largest batch sent, the cap's proof */
	if (b->bytes > m->batch_max_bytes)
		m->batch_max_bytes = b->bytes;
	if (b->nops > m->batch_max_ops)
		m->batch_max_ops = b->nops;
	m->batches++;
	/* FCALL hopper_batch NKEYS KEY... NOPS OP-ARG...: the header, then the two bulk-string buffers as they
	 * are (the operation count comes before the operations' arguments). */
	const char *fn = b->oom ? "hopper_batch_oom" : "hopper_batch";
	struct vec head = {0};
	vec_add(&head, "FCALL", 5);
	vec_add(&head, fn, strlen(fn));
	vec_int(&head, b->keys.n);
	size_t argc = head.n + b->keys.n + 1 + b->args.n;
	char star[32];
	size_t slen = 0;
	star[slen++] = '*';
	slen += put_uint(star + slen, argc);
	star[slen++] = '\r';
	star[slen++] = '\n';
	struct vec count = {0};
	vec_int(&count, b->nops);
	size_t total = slen + head.len + b->keys.len + count.len + b->args.len;
	char *cmd = xmalloc(total), *w = cmd;
	memcpy(w, star, slen);
	w += slen;
	memcpy(w, head.p, head.len);
	w += head.len;
	if (b->keys.len > 0)
		memcpy(w, b->keys.p, b->keys.len);
	w += b->keys.len;
	memcpy(w, count.p, count.len);
	w += count.len;
	if (b->args.len > 0)
		memcpy(w, b->args.p, b->args.len);
	vec_free(&head);
	vec_free(&count);
	vec_free(&b->keys);
	vec_free(&b->args);
	memset(&b->keys, 0, sizeof(b->keys));
	memset(&b->args, 0, sizeof(b->args));
	/* hiredis copies the command into its output buffer. */
	r->batch_inflight++;
	int rc = conn_send_formatted(&r->cmd, cmd, total, batch_reply, b);
	free(cmd);
	if (rc < 0)
		batch_reply(r->s, NULL, b);
	else if (r->s->cfg.redis_wait_replicas > 0) {
		char n[16], t[16];
		snprintf(n, sizeof(n), "%d", r->s->cfg.redis_wait_replicas);
		snprintf(t, sizeof(t), "%d", r->s->cfg.redis_wait_timeout_ms);
		const char *argv[] = {"WAIT", n, t};
		b->wait = conn_send(&r->cmd, 3, argv, NULL, wait_reply, b) == 0;
	}
}

void
redis_flush(struct redis *r)
{
	struct batch *b;
	while ((b = r->batches) != NULL) {
		r->batches = b->next;
		batch_send(r, b);
	}
}

int
redis_can_flush(const struct redis *r)
{
	return r->batch_inflight < BATCH_MAX_INFLIGHT;
}

int
redis_ready(const struct redis *r)
{
	return r->cmd.up && !r->unsafe;
}

int
redis_block_ready(const struct redis *r)
{
	return r->blk.up && r->blk.pending == 0 && !r->unsafe;
}

int
redis_fcall(struct redis *r, const char *name, int ro, size_t nkeys, const char **keys, const size_t *klens,
            size_t nargs, const char **args, const size_t *alens, redis_cb *cb, void *priv)
{
	size_t argc = 3 + nkeys + nargs, k = 0;
	const char **av = xcalloc(argc, sizeof(*av));
	size_t *lv = xcalloc(argc, sizeof(*lv));
	char fname[64], nk[24];
	snprintf(fname, sizeof(fname), "hopper_%s", name);
	snprintf(nk, sizeof(nk), "%zu", nkeys);
	av[k] = ro ? "FCALL_RO" : "FCALL";
	lv[k] = strlen(av[k]);
	k++;
	av[k] = fname;
	lv[k] = strlen(fname);
	k++;
	av[k] = nk;
	lv[k] = strlen(nk);
	k++;
	for (size_t i = 0; i < nkeys; i++, k++) {
		av[k] = keys[i];
		lv[k] = klens[i];
	}
	for (size_t i = 0; i < nargs; i++, k++) {
		av[k] = args[i];
		lv[k] = alens[i];
	}
	int rc = conn_send(&r->cmd, (int)argc, av, lv, cb, priv);
	free(av);
	free(lv);
	return rc;
}

int
redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv)
{
	return conn_send(&r->cmd, argc, argv, lens, cb, priv);
}

int
redis_block_move(struct redis *r, const char *src, const char *dst, double timeout_s, redis_cb *cb, void *priv)
{
	char t[32];
	snprintf(t, sizeof(t), "%.3f", timeout_s);
	const char *argv[] = {"BLMOVE", src, dst, "RIGHT", "LEFT", t};
	if (conn_send(&r->blk, 6, argv, NULL, cb, priv) < 0)
		return -1;
	r->blk.overdue_extra = timeout_s;
	return 0;
}

static void
ping_reply(struct server *s, const struct redis_reply *r, void *priv)
{
}

static void
conn_health(struct conn *c)
{
	/* Also a connection not up yet: a set-up reply (Sentinel: ROLE) that never comes must not leave it
	 * hanging. One already leaving is not freed twice. */
	if (c->ac == NULL || (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
		return;
	double idle = mono() - c->last_io;
	/* a WAIT (redis_wait_replicas) may take its whole timeout to answer */
	const struct config *cfg = &c->r->s->cfg;
	double wait_s = c->is_cmd && cfg->redis_wait_replicas > 0 ? cfg->redis_wait_timeout_ms / 1000.0 : 0;
	if (c->pending > 0 && idle > REPLY_OVERDUE_S + c->overdue_extra + wait_s) {
		log_warn("redis: %s connection: no reply for %.1f s; reconnecting", c->name, idle);
		redisAsyncContext *ac = c->ac;
		c->up = 0;          /* callbacks fired by the free must not queue new requests on it */
		redisAsyncFree(ac); /* fails every pending request, then on_disconnect schedules the reconnect */
		return;
	}
	if (c->up && c->is_cmd && c->pending == 0 && idle > PING_IDLE_S) {
		const char *argv[] = {"PING"};
		conn_send(c, 1, argv, NULL, ping_reply, NULL);
	}
}

/*
 * Every reply on the pub/sub connection comes here: hiredis keeps one callback per channel and calls it for
 * the subscribe confirmation, each message and the unsubscribe; privdata is the struct redis (never freed
 * per call). r is NULL when the connection goes away.
 */
static void
on_sub(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis *r = privdata;
	redisReply *rep = reply;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
		return;
	redisReply *kind = rep->element[0], *ch = rep->element[1], *msg = rep->element[2];
	if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
		return;
	r->sub.last_io = mono();
	if (strcmp(ch->str, r->ping_chan) == 0) {
		/* The link's own health check: a ping we published came back over it. */
		if (strcmp(kind->str, "message") == 0)
			r->ping_sent = 0;
		return;
	}
	if (strcmp(kind->str, "message") == 0 && msg->type == REDIS_REPLY_STRING) {
		if (!celery_pidbox_message(r->s, ch->str, msg->str, msg->len) &&
		    !shared_sub_message(r->s, ch->str, msg->str, msg->len) &&
		    !ctl_logs_message(r->s, ch->str, msg->str, msg->len))
			ctl_sub_message(r->s, ch->str, msg->str, msg->len);
	} else if (strcmp(kind->str, "subscribe") == 0) {
		ctl_sub_confirmed(r->s, ch->str);
		shared_sub_confirmed(r->s, ch->str);
		ctl_logs_confirmed(r->s, ch->str);
		char *control = rchan_control(r->s);
		if (strcmp(ch->str, control) == 0)
			jobs_recheck_held(r->s); /* a cancel published while we were not subscribed is seen now */
		free(control);
	} else if (strcmp(kind->str, "unsubscribe") == 0)
		ctl_sub_unsubscribed(r->s, ch->str);
}

static int
sub_send(struct redis *r, const char *cmd, const char *channel)
{
	if (r == NULL) /* exiting: the connection is gone */
		return -1;
	struct conn *c = &r->sub;
	if (c->ac == NULL || !c->up)
		return -1;
	const char *argv[] = {cmd, channel};
	return redisAsyncCommandArgv(c->ac, on_sub, r, 2, argv, NULL) == REDIS_OK ? 0 : -1;
}

int
redis_subscribe(struct redis *r, const char *channel)
{
	return sub_send(r, "SUBSCRIBE", channel);
}

int
redis_unsubscribe(struct redis *r, const char *channel)
{
	return sub_send(r, "UNSUBSCRIBE", channel);
}

int
redis_sub_ready(const struct redis *r)
{
	return r != NULL && r->sub.up;
}

/* Publishes to this node's ping channel; a ping not back over the pub/sub link in time drops the link. */
#define SUB_PING_S    2.0
#define SUB_OVERDUE_S 5.0

static void
sub_health(struct redis *r)
{
	struct conn *c = &r->sub;
	if (c->ac == NULL || !c->up || !r->cmd.up)
		return;
	double now = mono();
	if (r->ping_sent > 0 && now - r->ping_sent > SUB_OVERDUE_S) {
		log_warn("redis: pub/sub connection: a ping published %.1f s ago did not come back; reconnecting",
		         now - r->ping_sent);
		r->ping_sent = 0;
		c->up = 0;
		redisAsyncFree(c->ac);
		return;
	}
	if (r->ping_sent == 0 && now - r->ping_last >= SUB_PING_S) {
		const char *argv[] = {"PUBLISH", r->ping_chan, "ping"};
		if (conn_send(&r->cmd, 3, argv, NULL, ping_reply, NULL) == 0)
			r->ping_sent = r->ping_last = now;
	}
}

void
redis_tick(struct redis *r)
{
	conn_health(&r->cmd);
	conn_health(&r->blk);
	conn_health(&r->sub); /* only its set-up replies count as pending; sub_health checks the link itself */
	sub_health(r);
}

enum rr_type
rr_type(const struct redis_reply *r)
{
	switch (((const redisReply *)r)->type) {
	case REDIS_REPLY_STRING: return RR_STRING;
	case REDIS_REPLY_INTEGER: return RR_INTEGER;
	case REDIS_REPLY_ARRAY: return RR_ARRAY;
	case REDIS_REPLY_STATUS: return RR_STATUS;
	case REDIS_REPLY_ERROR: return RR_ERROR;
	default: return RR_NIL;
	}
}

const char *
rr_str(const struct redis_reply *r, size_t *len)
{
	const redisReply *rep = (const redisReply *)r;
	if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS && rep->type != REDIS_REPLY_ERROR)
		return NULL;
	if (len != NULL)
		*len = rep->len;
	return rep->str;
}

long long
rr_int(const struct redis_reply *r)
{
	const redisReply *rep = (const redisReply *)r;
	if (rep->type == REDIS_REPLY_INTEGER)
		return rep->integer;
	if (rep->type == REDIS_REPLY_STRING)
		return strtoll(rep->str, NULL, 10);
	return 0;
}

size_t
rr_count(const struct redis_reply *r)
{
	const redisReply *rep = (const redisReply *)r;
	return rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
}

const struct redis_reply *
rr_elem(const struct redis_reply *r, size_t i)
{
	const redisReply *rep = (const redisReply *)r;
	return (rep->type == REDIS_REPLY_ARRAY && i < rep->elements) ? (const struct redis_reply *)rep->element[i]
	                                                             : NULL;
}

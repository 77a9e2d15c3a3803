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
#include "xmalloc.h"

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
	ev_timer retry;
};

/* One loop turn's worth of operations, sent as one hopper_batch call. */
struct batch {
	size_t nops;
	redis_cb **cbs;
	void **privs;
	size_t opcap;
	char **argv; /* owned copies; argv[0..2] are FCALL hopper_batch 0, argv[3] the count */
	size_t *lens;
	size_t argc, argcap;
};

/* A batch grows to this many operations before it is sent without waiting for the turn to end. */
#define BATCH_MAX_OPS 2000

struct redis {
	struct server *s;
	struct conn cmd, blk;
	struct conn sub; /* pub/sub only: the control channel and watched jobs' channels (ctl_watch.c) */
	char *library;   /* "#!lua name=hopper" and every daemon/lua file */
	struct batch *batch;
	int batch_inflight; /* a batch awaits its reply */
};

struct request {
	struct conn *c;
	redis_cb *cb;
	void *priv;
};

static void conn_connect(struct conn *c);

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

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct request *req = privdata;
	struct conn *c = req->c;
	if (c->pending > 0)
		c->pending--;
	c->last_io = clock_now();
	c->overdue_extra = 0;
	if (reply == NULL || ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
		c->r->s->metrics.redis_errors++;
	if (req->cb != NULL)
		req->cb(c->r->s, reply, req->priv);
	free(req);
}

static int
conn_send(struct conn *c, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv)
{
	if (c->ac == NULL || !c->up)
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
		c->last_io = clock_now();
	return 0;
}

/* Replies to the set-up commands: an error there (bad password, Redis < 7) is logged loudly. */
static void
setup_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_error("redis: %s failed: %s", (const char *)priv, rr_str(r, NULL));
}

static void
conn_setup(struct conn *c)
{
	const struct config *cfg = &c->r->s->cfg;
	if (cfg->redis_password != NULL && cfg->redis_password[0] != '\0') {
		const char *argv[] = {"AUTH", cfg->redis_password};
		conn_send(c, 2, argv, NULL, setup_reply, (void *)"AUTH");
	}
	if (cfg->redis_db != 0) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cfg->redis_db);
		const char *argv[] = {"SELECT", db};
		conn_send(c, 2, argv, NULL, setup_reply, (void *)"SELECT");
	}
	if (c->is_cmd) {
		const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", c->r->library};
		conn_send(c, 4, argv, NULL, setup_reply, (void *)"FUNCTION LOAD (hopperd needs Redis 7 or newer)");
	}
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	if (status != REDIS_OK) {
		log_warn("redis: %s connection failed: %s", c->name, ac->errstr);
		c->ac = NULL; /* hiredis frees a context whose connect failed */
		conn_schedule_retry(c);
		return;
	}
	log_info("redis: %s connection up", c->name);
	if (c->was_up) /* for the stats op: the first connection is not a reconnection */
		c->r->s->metrics.redis_reconnects++;
	c->was_up = 1;
	c->up = 1;
	c->backoff = 0;
	c->pending = 0;
	c->last_io = clock_now();
	conn_setup(c);
	if (c->kind == CONN_SUB)
		ctl_sub_connected(c->r->s);
	else if (c->is_cmd)
		node_on_connect(c->r->s);
	else
		fetch_more(c->r->s);
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
	if (c->kind == CONN_SUB)
		ctl_sub_lost(c->r->s);
	else
		node_on_disconnect(c->r->s, !c->is_cmd);
	conn_schedule_retry(c);
}

static void
conn_connect(struct conn *c)
{
	const struct config *cfg = &c->r->s->cfg;
	redisAsyncContext *ac = (cfg->redis_unix != NULL && cfg->redis_unix[0] != '\0')
	                                ? redisAsyncConnectUnix(cfg->redis_unix)
	                                : redisAsyncConnect(cfg->redis_host, cfg->redis_port);
	if (ac == NULL || ac->err) {
		log_warn("redis: %s connection failed: %s", c->name, ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		conn_schedule_retry(c);
		return;
	}
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
	free(r);
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->argc; i++)
		free(b->argv[i]);
	free(b->argv);
	free(b->lens);
	free(b->cbs);
	free(b->privs);
	free(b);
}

static void
batch_arg(struct batch *b, const char *arg, size_t len)
{
	if (b->argc == b->argcap) {
		b->argcap = b->argcap ? b->argcap * 2 : 256;
		b->argv = xrealloc(b->argv, b->argcap * sizeof(*b->argv));
		b->lens = xrealloc(b->lens, b->argcap * sizeof(*b->lens));
	}
	b->argv[b->argc] = xstrndup(arg, len);
	b->lens[b->argc++] = len;
}

int
redis_batch(struct redis *r, const char *name, int argc, const char **argv, const size_t *lens, redis_cb *cb,
            void *priv)
{
	if (!r->cmd.up)
		return -1;
	struct batch *b = r->batch;
	if (b == NULL) {
		b = r->batch = xcalloc(1, sizeof(*b));
		batch_arg(b, "FCALL", 5);
		batch_arg(b, "hopper_batch", 12);
		batch_arg(b, "0", 1);
		batch_arg(b, "0", 1); /* the count, filled in by redis_flush */
	}
	if (b->nops == b->opcap) {
		b->opcap = b->opcap ? b->opcap * 2 : 64;
		b->cbs = xrealloc(b->cbs, b->opcap * sizeof(*b->cbs));
		b->privs = xrealloc(b->privs, b->opcap * sizeof(*b->privs));
	}
	b->cbs[b->nops] = cb;
	b->privs[b->nops++] = priv;
	char n[16];
	batch_arg(b, name, strlen(name));
	snprintf(n, sizeof(n), "%d", argc);
	batch_arg(b, n, strlen(n));
	for (int i = 0; i < argc; i++)
		batch_arg(b, argv[i], lens ? lens[i] : strlen(argv[i]));
	if (b->nops >= BATCH_MAX_OPS && !r->batch_inflight)
		redis_flush(r);
	return 0;
}

/* Hands each operation its element of the batch's reply (or the whole error, or NULL). */
static void
batch_reply(struct server *s, const struct redis_reply *rep, void *priv)
{
	struct batch *b = priv;
	s->redis->batch_inflight = 0;
	for (size_t i = 0; i < b->nops; i++) {
		const struct redis_reply *e = rep;
		if (rep != NULL && rr_type(rep) == RR_ARRAY)
			e = rr_elem(rep, i);
		if (b->cbs[i] != NULL)
			b->cbs[i](s, e, b->privs[i]);
	}
	batch_free(b);
}

void
redis_flush(struct redis *r)
{
	struct batch *b = r->batch;
	if (b == NULL)
		return;
	r->batch = NULL;
	char n[24];
	snprintf(n, sizeof(n), "%zu", b->nops);
	free(b->argv[3]);
	b->argv[3] = xstrdup(n);
	b->lens[3] = strlen(n);
	/* Arguments are copied into hiredis's output buffer, so the copies can go now. */
	int rc = conn_send(&r->cmd, (int)b->argc, (const char **)b->argv, b->lens, batch_reply, b);
	for (size_t i = 0; i < b->argc; i++) {
		free(b->argv[i]);
		b->argv[i] = NULL;
	}
	b->argc = 0;
	if (rc < 0)
		batch_reply(r->s, NULL, b);
	else
		r->batch_inflight = 1;
}

int
redis_can_flush(const struct redis *r)
{
	return !r->batch_inflight;
}

int
redis_ready(const struct redis *r)
{
	return r->cmd.up;
}

int
redis_block_ready(const struct redis *r)
{
	return r->blk.up && r->blk.pending == 0;
}

int
redis_call(struct redis *r, const char *name, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv)
{
	enum { MAX_ARGS = 64 };
	if (argc + 3 > MAX_ARGS)
		fatal("redis_call %s: too many arguments (%d)", name, argc);
	const char *av[MAX_ARGS];
	size_t lv[MAX_ARGS];
	char fname[64];
	snprintf(fname, sizeof(fname), "hopper_%s", name);
	av[0] = "FCALL";
	av[1] = fname;
	av[2] = "0";
	for (int i = 0; i < 3; i++)
		lv[i] = strlen(av[i]);
	for (int i = 0; i < argc; i++) {
		av[3 + i] = argv[i];
		lv[3 + i] = lens ? lens[i] : strlen(argv[i]);
	}
	return conn_send(&r->cmd, argc + 3, av, lv, cb, priv);
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
	if (c->ac == NULL || !c->up)
		return;
	double idle = clock_now() - c->last_io;
	if (c->pending > 0 && idle > REPLY_OVERDUE_S + c->overdue_extra) {
		log_warn("redis: %s connection: no reply for %.1f s; reconnecting", c->name, idle);
		redisAsyncContext *ac = c->ac;
		c->up = 0;          /* callbacks fired by the free must not queue new requests on it */
		redisAsyncFree(ac); /* fails every pending request, then on_disconnect schedules the reconnect */
		return;
	}
	if (c->is_cmd && c->pending == 0 && idle > PING_IDLE_S) {
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
	r->sub.last_io = clock_now();
	if (strcmp(kind->str, "message") == 0 && msg->type == REDIS_REPLY_STRING)
		ctl_sub_message(r->s, ch->str, msg->str, msg->len);
	else if (strcmp(kind->str, "subscribe") == 0)
		ctl_sub_confirmed(r->s, ch->str);
	else if (strcmp(kind->str, "unsubscribe") == 0)
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

void
redis_tick(struct redis *r)
{
	conn_health(&r->cmd);
	conn_health(&r->blk);
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

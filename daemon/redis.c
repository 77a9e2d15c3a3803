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
#define PING_IDLE_S 1.0
#define RECONNECT_MIN_S 0.1
#define RECONNECT_MAX_S 5.0

struct conn {
	struct redis *r;
	const char *name;
	int is_cmd;
	redisAsyncContext *ac;
	int up;
	int pending;
	double last_io;
	double overdue_extra; /* the blocking timeout of an outstanding BLMOVE */
	double backoff;
	ev_timer retry;
};

struct redis {
	struct server *s;
	struct conn cmd, blk;
	char *library; /* "#!lua name=hopper" and every daemon/lua file */
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
	c->up = 1;
	c->backoff = 0;
	c->pending = 0;
	c->last_io = clock_now();
	conn_setup(c);
	if (c->is_cmd)
		jobs_on_connect(c->r->s);
	else
		jobs_fetch(c->r->s);
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
	if (c->is_cmd)
		jobs_on_disconnect(c->r->s);
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
conn_init(struct redis *r, struct conn *c, const char *name, int is_cmd)
{
	memset(c, 0, sizeof(*c));
	c->r = r;
	c->name = name;
	c->is_cmd = is_cmd;
	ev_timer_init(&c->retry, retry_cb, 0, 0);
	c->retry.data = c;
}

struct redis *
redis_new(struct server *s)
{
	struct redis *r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->library = library_text();
	conn_init(r, &r->cmd, "command", 1);
	conn_init(r, &r->blk, "blocking", 0);
	return r;
}

void
redis_start(struct redis *r)
{
	conn_connect(&r->cmd);
	conn_connect(&r->blk);
}

void
redis_free(struct redis *r)
{
	if (r == NULL)
		return;
	struct conn *conns[] = {&r->cmd, &r->blk};
	for (size_t i = 0; i < 2; i++) {
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
redis_call(struct redis *r, const char *name, int argc, const char **argv, const size_t *lens, redis_cb *cb,
           void *priv)
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
		c->up = 0; /* callbacks fired by the free must not queue new requests on it */
		redisAsyncFree(ac); /* fails every pending request, then on_disconnect schedules the reconnect */
		return;
	}
	if (c->is_cmd && c->pending == 0 && idle > PING_IDLE_S) {
		const char *argv[] = {"PING"};
		conn_send(c, 1, argv, NULL, ping_reply, NULL);
	}
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

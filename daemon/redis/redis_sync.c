/*
 * redis_sync: a blocking Redis connection for hopperd's command-line modes (see redis.h). Part of the Redis
 * module: with redis.c and redis_sentinel.c the only files that include hiredis. The modes run before any
 * event loop and do a handful of calls, so blocking with a timeout is the simple and right thing here.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopperd.h"
#include "log.h"
#include "redis.h"
#include "redis_sentinel.h"
#include "xmalloc.h"

/* Connect and each reply wait at most this long: a command-line mode fails rather than hang. */
#define SYNC_TIMEOUT_S 5

struct redis_sync {
	redisContext *c;
};

/* Runs one set-up command; 0, or -1 with *cause. */
static int
setup(redisContext *c, int argc, const char **argv, const size_t *lens, const char *what, char **cause)
{
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	int rc = r != NULL && r->type != REDIS_REPLY_ERROR ? 0 : -1;
	if (rc != 0)
		*cause = xasprintf("%s: %s", what, r != NULL ? r->str : c->errstr);
	freeReplyObject(r);
	return rc;
}

static redisContext *
connect_master(struct server *s, char **cause)
{
	const struct config *cfg = &s->cfg;
	struct timeval tv = {SYNC_TIMEOUT_S, 0};
	redisContext *c;
	struct redis_sentinel *rs = redis_sentinel_new(s);
	if (rs != NULL) {
		const char *host;
		int port;
		if (redis_sentinel_master(rs, &host, &port) < 0) {
			*cause = xstrdup("no Sentinel named the master");
			redis_sentinel_free(rs);
			return NULL;
		}
		c = redisConnectWithTimeout(host, port, tv);
		redis_sentinel_free(rs);
	} else if (cfg->redis_unix != NULL && cfg->redis_unix[0] != '\0')
		c = redisConnectUnixWithTimeout(cfg->redis_unix, tv);
	else
		c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
	if (c == NULL || c->err) {
		*cause = xasprintf("connecting to Redis: %s", c != NULL ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

struct redis_sync *
redis_sync_open(struct server *s, char **cause)
{
	const struct config *cfg = &s->cfg;
	*cause = NULL;
	redisContext *c = connect_master(s, cause);
	if (c == NULL)
		return NULL;
	int rc = 0;
	if (cfg->redis_password != NULL && cfg->redis_password[0] != '\0') {
		const char *argv[] = {"AUTH", cfg->redis_password};
		rc = setup(c, 2, argv, NULL, "AUTH", cause);
	}
	if (rc == 0 && cfg->redis_db != 0) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cfg->redis_db);
		const char *argv[] = {"SELECT", db};
		rc = setup(c, 2, argv, NULL, "SELECT", cause);
	}
	if (rc == 0) {
		char *lib = redis_library();
		const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", lib};
		rc = setup(c, 4, argv, NULL, "FUNCTION LOAD (hopperd needs Redis 7 or newer)", cause);
		free(lib);
	}
	if (rc != 0) {
		redisFree(c);
		return NULL;
	}
	struct redis_sync *rs = xcalloc(1, sizeof(*rs));
	rs->c = c;
	return rs;
}

void
redis_sync_close(struct redis_sync *rs)
{
	if (rs == NULL)
		return;
	redisFree(rs->c);
	free(rs);
}

struct redis_reply *
redis_sync_fcall(struct redis_sync *rs, const char *name, int ro, size_t nkeys, const char **keys, const size_t *klens,
                 size_t nargs, const char **args, const size_t *alens)
{
	size_t n = 3 + nkeys + nargs;
	const char **argv = xcalloc(n, sizeof(*argv));
	size_t *lens = xcalloc(n, sizeof(*lens));
	char fname[128], nk[24];
	snprintf(fname, sizeof(fname), "hopper_%s", name);
	snprintf(nk, sizeof(nk), "%zu", nkeys);
	argv[0] = ro ? "FCALL_RO" : "FCALL";
	argv[1] = fname;
	argv[2] = nk;
	for (size_t i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	for (size_t i = 0; i < nkeys; i++) {
		argv[3 + i] = keys[i];
		lens[3 + i] = klens[i];
	}
	for (size_t i = 0; i < nargs; i++) {
		argv[3 + nkeys + i] = args[i];
		lens[3 + nkeys + i] = alens[i];
	}
	redisReply *r = redisCommandArgv(rs->c, (int)n, argv, lens);
	if (r == NULL)
		log_error("redis: %s: %s", fname, rs->c->errstr);
	free(argv);
	free(lens);
	return (struct redis_reply *)r;
}

void
redis_sync_reply_free(struct redis_reply *r)
{
	freeReplyObject(r);
}

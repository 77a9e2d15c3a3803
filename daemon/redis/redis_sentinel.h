/*
 * redis_sentinel: where the Redis master is, asked of Redis Sentinel (redis_sentinels, redis_master_name).
 * Part of the Redis module: with redis.c the only file that includes hiredis. redis.c asks before each
 * connection is (re)made, and forgets the answer when it proves wrong (refused connect, ROLE not master,
 * READONLY), so the next connect asks the Sentinels again.
 */
#ifndef HOPPER_REDIS_SENTINEL_H
#define HOPPER_REDIS_SENTINEL_H

struct server;
struct redis_sentinel;

/* NULL when no Sentinels are configured (redis_host / redis_unix are used). Caller frees with _free. */
struct redis_sentinel *redis_sentinel_new(struct server *s);
void redis_sentinel_free(struct redis_sentinel *rs);
/*
 * The master's address: the last answer if it is fresh and not forgotten, else the Sentinels' (asked in
 * order, blocking up to SENTINEL_TIMEOUT_MS for the connect and again for the reply, per Sentinel). Returns 1 if the
 * master changed (logged, counted in redis_master_changes), 0 if not, -1 if no Sentinel named it (logged; retry later).
 * *host is valid until the next call.
 */
int redis_sentinel_master(struct redis_sentinel *rs, const char **host, int *port);
void redis_sentinel_forget(struct redis_sentinel *rs);
/*
 * Subscribes (on the libev loop, one Sentinel at a time, reconnecting with backoff) to +switch-master. When
 * one names our master, the answer becomes that address (fresh, counted in redis_master_changes, one log
 * line) and cb gets it: host is valid until the callback returns. Stopped by redis_sentinel_free.
 */
typedef void redis_sentinel_switch_cb(void *priv, const char *host, int port);
void redis_sentinel_watch(struct redis_sentinel *rs, redis_sentinel_switch_cb *cb, void *priv);

#endif

/*
 * redis: hopperd's two Redis connections, the only module that includes hiredis.
 *
 * The command connection carries every script call, pipelined; the blocking connection carries only the
 * blocking fetch (BLMOVE), so a wait for new jobs never delays a state write. Both reconnect with backoff;
 * a health timer pings an idle command connection and drops any connection whose reply is overdue, so a
 * half-dead TCP link cannot leave the daemon silently idle. hopper's Lua code is loaded as a Redis function
 * library (FUNCTION LOAD REPLACE) on every connect, so a Redis restarted without persistence gets it back.
 *
 * Every request's callback fires exactly once: with the reply, or with NULL when the connection failed
 * before a reply came (the caller keeps the work and resends after node_on_connect). A LOADING error (Redis
 * reading its dataset) counts as a lost connection: the connection is dropped and reconnects with backoff.
 * Every socket is FD_CLOEXEC. On every connect the command connection checks maxmemory-policy (see
 * policy_reply); a pub/sub link whose ping (published to P{@}:ping:NODE) does not come back is dropped.
 */
#ifndef HOPPER_REDIS_H
#define HOPPER_REDIS_H

#include <stddef.h>

struct server;
struct redis;
struct redis_reply; /* a hiredis redisReply, read through the accessors below */

enum rr_type { RR_NIL, RR_STRING, RR_INTEGER, RR_ARRAY, RR_STATUS, RR_ERROR };

/* Valid until the callback returns. r is NULL when the request failed with its connection. */
typedef void redis_cb(struct server *s, const struct redis_reply *r, void *priv);

/* Caller frees with redis_free, which fails every pending request (callbacks get NULL) first. */
struct redis *redis_new(struct server *s);
void redis_free(struct redis *r);
/* Starts connecting both connections (and keeps them connected until redis_free). */
void redis_start(struct redis *r);
int redis_ready(const struct redis *r);
int redis_block_ready(const struct redis *r);

/*
 * Calls the function hopper_NAME (FCALL, or FCALL_RO when ro) with its keys and arguments (binary-safe).
 * Built by rfunc.c from its table; nothing else calls it. Returns 0 if queued, -1 when the connection is
 * down (cb is not called).
 */
int redis_fcall(struct redis *r, const char *name, int ro, size_t nkeys, const char **keys, const size_t *klens,
                size_t nargs, const char **args, const size_t *alens, redis_cb *cb, void *priv);
/*
 * Like redis_fcall, but the call joins this loop turn's batch of its hash tag (one batch per tag, and per
 * oom: functions allowed under OOM go in hopper_batch_oom): redis_flush (from the prepare hook) sends each
 * batch as one call, and each callback receives its own element of the reply. A batch that reaches
 * BATCH_MAX_OPS operations or BATCH_MAX_BYTES bytes is sent at once. Arguments are copied.
 */
int redis_batch(struct redis *r, const char *tag, const char *name, int oom, size_t nkeys, const char **keys,
                const size_t *klens, size_t nargs, const char **args, const size_t *alens, redis_cb *cb, void *priv);
/* Sends the batch, if any. */
void redis_flush(struct redis *r);
/* 1 when no batch is awaiting its reply (hopperd keeps one turn in flight: the next grows meanwhile). */
int redis_can_flush(const struct redis *r);
/* A plain command on the command connection. Same return rules. */
int redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb *cb, void *priv);
/* BLMOVE src dst RIGHT LEFT timeout on the blocking connection. Same return rules. */
int redis_block_move(struct redis *r, const char *src, const char *dst, double timeout_s, redis_cb *cb, void *priv);
/*
 * The pub/sub connection (third connection, subscribe mode only). SUBSCRIBE / UNSUBSCRIBE one channel;
 * returns 0 if sent, -1 when the connection is down. Confirmations and messages go to ctl_sub_confirmed /
 * ctl_sub_message (ctl_watch.c); connect and loss to ctl_sub_connected / ctl_sub_lost, which subscribe
 * again.
 */
int redis_subscribe(struct redis *r, const char *channel);
int redis_unsubscribe(struct redis *r, const char *channel);
int redis_sub_ready(const struct redis *r);
/* Health and reconnection; call once a second. */
void redis_tick(struct redis *r);

enum rr_type rr_type(const struct redis_reply *r);
/* String, status or error text; *len gets its length. NULL for other types. */
const char *rr_str(const struct redis_reply *r, size_t *len);
long long rr_int(const struct redis_reply *r);
size_t rr_count(const struct redis_reply *r);
const struct redis_reply *rr_elem(const struct redis_reply *r, size_t i);

/* The function library FUNCTION LOAD gets (every daemon/lua file). Caller frees. */
char *redis_library(void);

/*
 * redis_sync.c: one blocking connection for the command-line modes that run before (instead of) the event
 * loop (hopperd --migrate-shared, --token-create): the master (Sentinels asked if configured), AUTH, SELECT,
 * and the function library loaded. NULL with *cause (caller frees).
 */
struct redis_sync;
struct redis_sync *redis_sync_open(struct server *s, char **cause);
void redis_sync_close(struct redis_sync *rs);
/* FCALL / FCALL_RO; NULL when the connection failed (*cause in the log). Free with redis_sync_reply_free. */
struct redis_reply *redis_sync_fcall(struct redis_sync *rs, const char *name, int ro, size_t nkeys, const char **keys,
                                     const size_t *klens, size_t nargs, const char **args, const size_t *alens);
void redis_sync_reply_free(struct redis_reply *r);

#endif

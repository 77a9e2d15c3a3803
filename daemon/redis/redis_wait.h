/*
 * redis_wait: redis_wait_replicas (part of the Redis module). redis.c sends WAIT N TIMEOUT behind every
 * batch on the command connection and hands the batch's reply to its callbacks only once WAIT answered, so
 * a finish or a submission is acknowledged only when N replicas have it (or the timeout passed: counted,
 * warned, and carried on; WAIT never blocks longer than redis_wait_timeout_ms).
 */
#ifndef HOPPER_REDIS_WAIT_H
#define HOPPER_REDIS_WAIT_H

struct server;
struct redis_reply;

/* A deep copy of a reply, to outlive its callback until WAIT answers. NULL for NULL. Free with
 * redis_sync_reply_free (redis.h). */
struct redis_reply *redis_wait_hold(const struct redis_reply *r);
/* WAIT's reply (NULL: the connection went away): fewer replicas than asked counts in redis_wait_short and
 * logs a warning at most every WAIT_WARN_EVERY_S; *warned_at (monotonic ms, the caller's state) and
 * *unlogged (short WAITs not yet logged) are kept by the caller. */
void redis_wait_check(struct server *s, const struct redis_reply *r, double *warned_at, unsigned *unlogged);

#endif

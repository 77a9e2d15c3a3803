/*
 * baseline: the bare loop hopperd's throughput is compared against (make bench, bench/run.sh).
 *
 * Per job it does only what the simplest reliable consumer must: BLMOVE the job from the queue to an in-flight
 * list, then LREM it from there. One job at a time, one round trip per command, no worker, no logging, no state
 * hash. hopperd has to beat this while also running every job in a worker process and logging it to SQLite,
 * which it can only do by pipelining across jobs.
 *
 * With -f it instead pre-fills the queue with N noop jobs (pipelined LPUSH, 1000 per batch); bench/run.sh uses
 * that for hopperd's runs as well, so both consumers face the same messages.
 *
 *   baseline [-s SOCKET | -h HOST -p PORT] [-n N] [-k PREFIX] [-q QUEUE] [-t SECONDS] [-f]
 *
 * -t is BLMOVE's timeout (default 1): bench/peers/compare.py starts 2 consumers on an empty queue and hands
 * them the jobs later, so they must wait longer than that.
 *
 * Prints one line: "baseline: N jobs in S s: R jobs/s" (or "prefill: N jobs ..." with -f). Exit 0 on success,
 * 1 on a Redis error, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* LPUSHes per pipelined batch: large enough that round trips vanish, small enough to bound client memory. */
#define PREFILL_BATCH 1000
/* Key names are prefix + "{QUEUE}:queue" / "{QUEUE}:inflight:base" (hopper's layout); names are short. */
#define KEY_MAX 256
/* BLMOVE's timeout in seconds (-t): an empty queue ends the run after this long instead of blocking for ever. */
static const char *blmove_timeout = "1";

static double
now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: baseline [-s SOCKET | -h HOST -p PORT] [-n N] [-k PREFIX] [-q QUEUE] [-t SECONDS] [-f]\n"
	        "  -f  pre-fill the queue with N noop jobs instead of consuming\n");
	exit(2);
}

/* Returns 0 if r is a usable reply, else prints why and returns -1. Does not free r. */
static int
reply_ok(redisContext *c, redisReply *r, const char *what)
{
	if (r == NULL) {
		fprintf(stderr, "baseline: %s: %s\n", what, c->errstr[0] ? c->errstr : "connection lost");
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "baseline: %s: %s\n", what, r->str);
		return -1;
	}
	return 0;
}

static int
prefill(redisContext *c, const char *queue_key, long n)
{
	double created = now_wall();
	double t0 = now_mono();
	char job[160];

	for (long done = 0; done < n;) {
		long batch = n - done < PREFILL_BATCH ? n - done : PREFILL_BATCH;

		for (long i = 0; i < batch; i++) {
			snprintf(job, sizeof job, "{\"id\":\"b-%ld\",\"type\":\"noop\",\"created_at\":%.3f}", done + i,
			         created);
			if (redisAppendCommand(c, "LPUSH %s %s", queue_key, job) != REDIS_OK) {
				fprintf(stderr, "baseline: LPUSH: %s\n", c->errstr);
				return -1;
			}
		}
		for (long i = 0; i < batch; i++) {
			redisReply *r = NULL;

			if (redisGetReply(c, (void **)&r) != REDIS_OK)
				r = NULL;
			if (reply_ok(c, r, "LPUSH") < 0) {
				if (r != NULL)
					freeReplyObject(r);
				return -1;
			}
			freeReplyObject(r);
		}
		done += batch;
	}
	double secs = now_mono() - t0;
	printf("prefill: %ld jobs in %.3f s\n", n, secs);
	return 0;
}

static int
consume(redisContext *c, const char *queue_key, const char *inflight_key, long n)
{
	long done = 0;
	double t0 = now_mono(), t_last = t0;

	while (done < n) {
		redisReply *r = redisCommand(c, "BLMOVE %s %s RIGHT LEFT %s", queue_key, inflight_key, blmove_timeout);

		if (reply_ok(c, r, "BLMOVE") < 0) {
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		if (r->type == REDIS_REPLY_NIL) { /* the queue ran dry before n jobs */
			freeReplyObject(r);
			fprintf(stderr, "baseline: queue empty after %ld of %ld jobs\n", done, n);
			break;
		}
		if (r->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "baseline: BLMOVE: unexpected reply type %d\n", r->type);
			freeReplyObject(r);
			return -1;
		}
		redisReply *d = redisCommand(c, "LREM %s 1 %b", inflight_key, r->str, r->len);
		freeReplyObject(r);
		if (reply_ok(c, d, "LREM") < 0) {
			if (d != NULL)
				freeReplyObject(d);
			return -1;
		}
		freeReplyObject(d);
		done++;
		t_last = now_mono();
	}
	/* Timed to the last finished job, so a dry queue's final BLMOVE timeout is not counted. */
	double secs = t_last - t0;
	printf("baseline: %ld jobs in %.3f s: %.0f jobs/s\n", done, secs, secs > 0 ? (double)done / secs : 0.0);
	return done == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL, *host = "127.0.0.1", *prefix = "hopper:", *queue = "bench";
	int port = 6379, fill = 0, ch;
	long n = 20000;
	char *end;

	while ((ch = getopt(argc, argv, "s:h:p:n:k:q:t:f")) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'h': host = optarg; break;
		case 'p':
			errno = 0;
			port = (int)strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || port <= 0 || port > 65535)
				usage();
			break;
		case 'n':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || n <= 0 || n > 100000000)
				usage();
			break;
		case 'k': prefix = optarg; break;
		case 'q': queue = optarg; break;
		case 't':
			if (strtol(optarg, &end, 10) <= 0 || *end != '\0')
				usage();
			blmove_timeout = optarg;
			break;
		case 'f': fill = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();

	char queue_key[KEY_MAX], inflight_key[KEY_MAX];
	if (snprintf(queue_key, sizeof queue_key, "%s{%s}:queue", prefix, queue) >= (int)sizeof queue_key ||
	    snprintf(inflight_key, sizeof inflight_key, "%s{%s}:inflight:base", prefix, queue) >=
	            (int)sizeof inflight_key) {
		fprintf(stderr, "baseline: key prefix or queue name too long\n");
		return 2;
	}

	redisContext *c = sock != NULL ? redisConnectUnix(sock) : redisConnect(host, port);
	if (c == NULL || c->err) {
		fprintf(stderr, "baseline: connect: %s\n", c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return 1;
	}
	int rc = fill ? prefill(c, queue_key, n) : consume(c, queue_key, inflight_key, n);
	redisFree(c);
	return rc < 0 ? 1 : rc;
}

/*
 * ctl_dead: the dead_retry op, one bounded chunk of `dead retry --all` (schema/control-protocol.md).
 *
 * A run walks the dead sets queue by queue (names in byte order) and each set in (time of death, id) order,
 * up to the bound `upto` fixed by its first call (Redis's clock then), so that the jobs dying while it goes
 * on, and the jobs it retried dying again, are not met: each job dead when the run began is retried at most
 * once. A call examines at most `limit` dead entries: hopper_dead_scan (read-only) names them, then
 * hopper_dead_retry, with each one's job and events keys declared, re-checks and retries those that still
 * qualify (daemon/lua/14_dead.lua). The reply's cursor "queue|upto|score|id|token" resumes the run; the
 * token marks the hashes this run retried (a re-death in the same millisecond as the bound).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_crypto.h"
#include "log.h"
#include "rfunc.h"
#include "xmalloc.h"

#define DEAD_CHUNK_DEFAULT 500
#define NUM_MAX            40
#define TOKEN_HEX          16

struct dead_run {
	struct ctl_pending *p;
	int fixed; /* a queue was given: only that one */
	char queue[QUEUE_NAME_MAX + 1];
	char upto[NUM_MAX], score[NUM_MAX], id[JOB_ID_MAX + 1], token[TOKEN_HEX + 1];
	char type[JOB_TYPE_MAX + 1], error[CTL_DEAD_ERROR_MAX + 1];
	long long older_s;
	int limit;
	long long examined; /* this call */
	int ended;          /* the scan reached the end of the queue's range */
};

static void scan_send(struct server *s, struct dead_run *d);

static const char *
field(json_t *req, const char *key)
{
	const char *v = json_string_value(json_object_get(req, key));
	return v != NULL ? v : "";
}

static int
numeric(const char *v)
{
	char *end = NULL;
	if (*v == '\0')
		return 0;
	strtod(v, &end);
	return *end == '\0';
}

/* Copies the next '|'-separated part of *p into out (size n). -1 when it does not fit or is missing. */
static int
part(const char **p, char *out, size_t n, int last)
{
	const char *sep = last ? *p + strlen(*p) : strchr(*p, '|');
	if (sep == NULL || (size_t)(sep - *p) >= n)
		return -1;
	memcpy(out, *p, (size_t)(sep - *p));
	out[sep - *p] = '\0';
	*p = last ? sep : sep + 1;
	return 0;
}

/* Parses a cursor this op gave. 0, or -1 when it is not one. */
static int
cursor_parse(struct dead_run *d, const char *cur)
{
	const char *p = cur;
	if (part(&p, d->queue, sizeof(d->queue), 0) < 0 || part(&p, d->upto, sizeof(d->upto), 0) < 0 ||
	    part(&p, d->score, sizeof(d->score), 0) < 0 || part(&p, d->id, sizeof(d->id), 0) < 0 ||
	    part(&p, d->token, sizeof(d->token), 1) < 0)
		return -1;
	if (!job_name_valid(d->queue, QUEUE_NAME_MAX) || !numeric(d->upto) ||
	    (d->score[0] != '\0' && (!numeric(d->score) || !job_name_valid(d->id, JOB_ID_MAX))) ||
	    strlen(d->token) != TOKEN_HEX || strspn(d->token, "0123456789abcdef") != TOKEN_HEX)
		return -1;
	return 0;
}

/* The known queue that follows after (byte order; after "" = the first). 0 and out, or -1 when none. */
static int
queue_next(const struct server *s, const char *after, char *out, size_t n)
{
	int nq;
	const char **qs = ctl_all_queues(s, &nq);
	const char *best = NULL;
	for (int i = 0; i < nq; i++)
		if (strcmp(qs[i], after) > 0 && (best == NULL || strcmp(qs[i], best) < 0))
			best = qs[i];
	if (best != NULL)
		snprintf(out, n, "%s", best);
	free(qs);
	return best != NULL ? 0 : -1;
}

static void
run_end(struct dead_run *d)
{
	ctl_pending_end(d->p);
	free(d);
}

/* Answers this call: the count retried, the entries examined, the cursor to go on from (null: done). */
static void
reply(struct dead_run *d, long long retried)
{
	json_t *cur = json_null();
	if (!d->ended || (!d->fixed && queue_next(d->p->c->ctl->s, d->queue, d->queue, sizeof(d->queue)) == 0)) {
		if (d->ended)
			d->score[0] = d->id[0] = '\0';
		char buf[CTL_DEAD_CURSOR_MAX + 1];
		snprintf(buf, sizeof(buf), "%s|%s|%s|%s|%s", d->queue, d->upto, d->score, d->id, d->token);
		cur = json_string(buf);
	}
	if (retried > 0)
		log_info("ctl: %s: dead_retry retried %lld dead jobs", d->p->c->peer, retried);
	ctl_send(d->p->c, ctl_reply_ok(d->p->id, json_pack("{s:I, s:I, s:o}", "retried", (json_int_t)retried,
	                                                   "examined", (json_int_t)d->examined, "cursor", cur)));
	run_end(d);
}

/* 1 if r is usable; otherwise answered and ended. */
static int
usable(struct dead_run *d, const struct redis_reply *r, const char *what)
{
	if (d->p->c->dead) {
		run_end(d);
		return 0;
	}
	if (r == NULL || rr_type(r) == RR_ERROR) {
		if (r != NULL)
			log_error("ctl: dead_retry: %s: Redis: %s", what, rr_str(r, NULL));
		ctl_reply_err(d->p->c, d->p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; call again with the same cursor"
		                        : "Redis refused the operation (see the daemon's log)");
		run_end(d);
		return 0;
	}
	return 1;
}

static void
retry_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct dead_run *d = priv;
	(void)s;
	if (!usable(d, r, "retry"))
		return;
	reply(d, rr_int(r));
}

static void
scan_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct dead_run *d = priv;
	if (!usable(d, r, "scan"))
		return;
	size_t n = rr_count(r) < 2 ? 0 : (rr_count(r) - 2) / 2;
	const char *upto = rr_str(rr_elem(r, 0), NULL);
	if (upto == NULL || !numeric(upto) || strlen(upto) >= sizeof(d->upto)) {
		usable(d, NULL, "scan");
		return;
	}
	snprintf(d->upto, sizeof(d->upto), "%s", upto);
	d->ended = rr_int(rr_elem(r, 1)) == 1;
	if (n == 0) {
		/* Nothing left in this queue: go straight on to the next one within this call. */
		if (!d->fixed && queue_next(s, d->queue, d->queue, sizeof(d->queue)) == 0) {
			d->score[0] = d->id[0] = '\0';
			scan_send(s, d);
			return;
		}
		d->ended = 1;
		reply(d, 0);
		return;
	}
	struct rctx ctx = {.queue = d->queue};
	struct rcall *rc = rcall_new(s, RF_DEAD_RETRY, &ctx);
	for (size_t i = 0; i < n; i++) {
		const char *id = rr_str(rr_elem(r, 2 + 2 * i), NULL);
		struct rctx jc = {.queue = d->queue, .id = id};
		rcall_key(rc, RK_JOB, &jc);
		rcall_key(rc, RK_EVENTS, &jc);
		rcall_more(rc, id, -1);
	}
	snprintf(d->id, sizeof(d->id), "%s", rr_str(rr_elem(r, 2 + 2 * (n - 1)), NULL));
	snprintf(d->score, sizeof(d->score), "%s", rr_str(rr_elem(r, 3 + 2 * (n - 1)), NULL));
	d->examined += (long long)n;
	struct ctl_conn *c = d->p->c;
	rcall_arg(rc, "token", d->token, -1);
	rcall_arg(rc, "upto", d->upto, -1);
	rcall_int(rc, "older_s", d->older_s);
	rcall_arg(rc, "owner", c->cred.owner, -1);
	rcall_arg(rc, "admin", (c->cred.scopes & CTL_SCOPE_ADMIN) ? "1" : "0", -1);
	rcall_arg(rc, "type", d->type, -1);
	rcall_arg(rc, "error", d->error, -1);
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	if (rcall_batch(s, rc, retry_reply, d) != 0)
		usable(d, NULL, "retry");
}

static void
scan_send(struct server *s, struct dead_run *d)
{
	struct rctx ctx = {.queue = d->queue};
	struct rcall *rc = rcall_new(s, RF_DEAD_SCAN, &ctx);
	rcall_arg(rc, "upto", d->upto, -1);
	rcall_int(rc, "older_s", d->older_s);
	rcall_arg(rc, "score", d->score, -1);
	rcall_arg(rc, "cursor_id", d->id, -1);
	rcall_int(rc, "limit", d->limit);
	if (rcall_send(s, rc, scan_reply, d) != 0)
		usable(d, NULL, "scan");
}

void
ctl_op_dead_retry(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct dead_run *d = xcalloc(1, sizeof(*d));
	json_t *root = req->root;
	const char *q = field(root, "queue"), *cur = field(root, "cursor");
	d->fixed = q[0] != '\0';
	snprintf(d->type, sizeof(d->type), "%s", field(root, "type"));
	snprintf(d->error, sizeof(d->error), "%s", field(root, "error"));
	d->older_s = json_integer_value(json_object_get(root, "older_than_s"));
	d->limit = (int)json_integer_value(json_object_get(root, "limit"));
	if (d->limit <= 0)
		d->limit = DEAD_CHUNK_DEFAULT;
	if (cur[0] != '\0') {
		snprintf(d->queue, sizeof(d->queue), "%s", q);
		if (cursor_parse(d, cur) < 0 || (d->fixed && strcmp(d->queue, q) != 0)) {
			ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST,
			              "cursor is not one this server gave (with this queue)");
			free(d);
			return;
		}
	} else {
		unsigned char raw[TOKEN_HEX / 2];
		ctl_random(raw, sizeof(raw));
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(d->token + 2 * i, 3, "%02x", raw[i]);
		if (d->fixed)
			snprintf(d->queue, sizeof(d->queue), "%s", q);
		else if (queue_next(s, "", d->queue, sizeof(d->queue)) < 0) {
			ctl_send(c, ctl_reply_ok(req->id,
			                         json_pack("{s:i, s:i, s:n}", "retried", 0, "examined", 0, "cursor")));
			free(d);
			return;
		}
	}
	d->p = ctl_pending_new(c, req->id);
	scan_send(s, d);
}

/*
 * ctl_logs: the logs op, answered for the whole deployment (issue #16 item 2).
 *
 * Every daemon keeps the execution log of the attempts it ran in its own SQLite (store.c), so a job that
 * ran on several nodes has its rows in several files. The daemon asked reads its own rows, and asks every
 * other live daemon (the nodes whose heartbeat is younger than a lease, hopper_ctl_nodes) through Redis
 * pub/sub: it publishes a query {req, job, queue, owner, limit, max_bytes, from, reply} on the
 * deployment-wide channel P{@}:logq, every daemon subscribed there answers from its SQLite on the asker's
 * own channel P{@}:logq:NODE with {req, node, attempts, lines, steps, truncated}, and the asker merges the
 * answers by (attempt, node) until every live node answered or log_query_timeout_ms passed. The reply
 * names the nodes that answered and those that did not (nodes_missing); a node whose heartbeat expired is
 * not asked: its rows are simply unavailable. With Redis (or the pub/sub link) down the asker answers from
 * its own rows with scope "local".
 *
 * Nothing of this touches the job hot path: no write, no key, no cost until someone asks. A query costs
 * one FCALL_RO, one PUBLISH, and one SQLite read and one PUBLISH per live node; each answer is cut to its
 * share of the reply (ctl_max_frame / 2 divided among the nodes, at most LOGQ_ANSWER_MAX), so the merged
 * reply fits one frame however many attempts the job had.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

#define LOGS_DEFAULT 1000
#define ID_BUF       (JOB_ID_MAX + 1)
/* One node's answer, whatever the asker allows: far below Redis's default pub/sub output-buffer limit
 * (client-output-buffer-limit pubsub 32mb 8mb 60), so an answer can never get a daemon's link cut. */
#define LOGQ_ANSWER_MAX (1u << 20)
/* A request id: the asker's incarnation (NODE/16 hex) and a counter. */
#define LOGQ_REQ_MAX 160

/* One query waiting for the other nodes' answers. */
struct logq {
	struct logq *next;
	struct ctl_pending *p; /* NULL once answered (the client has its reply) */
	char req[LOGQ_REQ_MAX];
	char job[ID_BUF];
	char queue[QUEUE_NAME_MAX + 1];
	char owner[JOB_OWNER_MAX + 1];
	int has_owner; /* 0: admin, every row */
	int limit;
	size_t budget;    /* bytes per node's answer */
	double deadline;  /* monotonic seconds */
	json_t *merged;   /* {attempts, lines, steps}: every answer so far (owned) */
	json_t *answered; /* node names (owned) */
	json_t *expected; /* node names still to answer (owned) */
	int truncated;
	int publishing; /* the PUBLISH's reply is still to come: freed only after it */
};

/* The module's state: hangs off struct ctl (ctl->logs). */
struct ctl_logs {
	struct logq *queries;
	ev_timer timer; /* the earliest deadline of queries */
	unsigned long long seq;
	int req_confirmed, reply_confirmed; /* Redis confirmed our subscriptions */
};

static int
is_admin(const struct ctl_conn *c)
{
	return (c->cred.scopes & CTL_SCOPE_ADMIN) != 0;
}

static char *
chan_request(const struct server *s)
{
	return xasprintf("%s{@}:logq", s->cfg.key_prefix);
}

static char *
chan_reply(const struct server *s, const char *node)
{
	return xasprintf("%s{@}:logq:%s", s->cfg.key_prefix, node);
}

static struct ctl_logs *
state(struct server *s)
{
	if (s->ctl == NULL)
		return NULL;
	if (s->ctl->logs == NULL) {
		s->ctl->logs = xcalloc(1, sizeof(*s->ctl->logs));
		ev_init(&s->ctl->logs->timer, NULL);
	}
	return s->ctl->logs;
}

/* --- rows: reading, fitting, merging --- */

static size_t
json_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT) + 1;
}

/* Drops the oldest lines, then the oldest steps, then the oldest attempts, until log's JSON fits max. */
static void
logs_fit(json_t *log, size_t max)
{
	static const char *const order[] = {"lines", "steps", "attempts"};
	size_t total = json_size(log);
	for (size_t k = 0; k < 3 && total > max; k++) {
		json_t *a = json_object_get(log, order[k]);
		while (json_array_size(a) > 0 && total > max) {
			total -= json_size(json_array_get(a, 0));
			json_array_remove(a, 0);
			json_object_set_new(log, "truncated", json_true());
		}
	}
}

/* This daemon's rows of the job, fitted to max bytes. New reference. */
static json_t *
logs_read(struct server *s, const char *job, const char *owner, int limit, size_t max)
{
	json_t *log = store_job_log(s->store, job, owner, limit, max);
	logs_fit(log, max);
	return log;
}

/* Every row of each array of from tagged with its node (attempts keep the node they recorded). */
static void
logs_tag(json_t *from, const char *node)
{
	static const char *const arrays[] = {"attempts", "lines", "steps"};
	for (size_t k = 0; k < 3; k++) {
		json_t *row;
		size_t i;
		json_array_foreach(json_object_get(from, arrays[k]), i, row)
		{
			if (!json_is_string(json_object_get(row, "node")))
				json_object_set_new(row, "node", json_string(node));
		}
	}
}

/* Appends node's answer (attempts, lines, steps) to q->merged. */
static void
logq_merge(struct logq *q, json_t *answer, const char *node)
{
	static const char *const arrays[] = {"attempts", "lines", "steps"};
	logs_tag(answer, node);
	for (size_t k = 0; k < 3; k++) {
		json_t *dst = json_object_get(q->merged, arrays[k]), *src = json_object_get(answer, arrays[k]);
		if (json_is_array(src))
			json_array_extend(dst, src);
	}
	if (json_is_true(json_object_get(answer, "truncated")))
		q->truncated = 1;
	json_array_append_new(q->answered, json_string(node));
}

static double
num(const json_t *row, const char *key)
{
	json_t *v = json_object_get(row, key);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static const char *
str(const json_t *row, const char *key)
{
	const char *v = json_string_value(json_object_get(row, key));
	return v != NULL ? v : "";
}

static int
cmp_num(double a, double b)
{
	return a < b ? -1 : a > b;
}

/* Attempts by (attempt, node), then start: the merge key. */
static int
cmp_attempt(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	int c = cmp_num(num(a, "attempt"), num(b, "attempt"));
	if (c == 0)
		c = strcmp(str(a, "node"), str(b, "node"));
	if (c == 0)
		c = cmp_num(num(a, "started_at"), num(b, "started_at"));
	return c != 0 ? c : cmp_num(num(a, "fence"), num(b, "fence"));
}

/* Lines by time; steps by run attempt, then start (the order they ran). */
static int
cmp_line(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	return cmp_num(num(a, "at"), num(b, "at"));
}

static int
cmp_step(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	int c = cmp_num(num(a, "run_attempt"), num(b, "run_attempt"));
	return c != 0 ? c : cmp_num(num(a, "started_at"), num(b, "started_at"));
}

/*
 * arr sorted by cmp (qsort: rows equal under cmp may come in either order; the keys make that rare), keeping
 * at most `keep` rows, its last ones (last != 0: the newest lines) or its first ones (steps, as store_job_log
 * keeps them), and with dedup without a row equal (json_equal) to the one before it, so each (attempt, node)
 * attempt appears once. New reference.
 */
static json_t *
sorted(json_t *arr, int (*cmp)(const void *, const void *), size_t keep, int last, int dedup)
{
	size_t n = json_array_size(arr);
	json_t **v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(*v), cmp);
	size_t from = last && n > keep ? n - keep : 0, to = !last && n > keep ? keep : n;
	json_t *out = json_array();
	for (size_t i = from; i < to; i++)
		if (!dedup || i == 0 || !json_equal(v[i], v[i - 1]))
			json_array_append(out, v[i]);
	free(v);
	return out;
}

/* --- the reply --- */

/* The reply of q: its merged rows, in order, with who answered. scope: "cluster" or "local". */
static json_t *
logq_result(struct server *s, struct logq *q, const char *scope)
{
	json_t *m = q->merged;
	json_t *out = json_object();
	json_object_set_new(out, "job", json_string(q->job));
	json_object_set_new(out, "node", json_string(s->cfg.node_id));
	json_object_set_new(out, "attempts", sorted(json_object_get(m, "attempts"), cmp_attempt, (size_t)-1, 0, 1));
	json_object_set_new(out, "lines", sorted(json_object_get(m, "lines"), cmp_line, (size_t)q->limit, 1, 0));
	json_object_set_new(out, "steps", sorted(json_object_get(m, "steps"), cmp_step, (size_t)q->limit, 0, 0));
	if (q->truncated)
		json_object_set_new(out, "truncated", json_true());
	json_object_set_new(out, "scope", json_string(scope));
	json_object_set(out, "nodes_answered", q->answered);
	json_object_set(out, "nodes_missing", q->expected);
	return out;
}

static void
logq_free(struct logq *q)
{
	json_decref(q->merged);
	json_decref(q->answered);
	json_decref(q->expected);
	free(q);
}

static void logq_arm(struct server *s);

/* Answers q's client (if still there) and takes q off the list; freed unless its PUBLISH reply is due. */
static void
logq_finish(struct server *s, struct logq *q, const char *scope)
{
	struct ctl_logs *st = state(s);
	for (struct logq **pp = &st->queries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	q->next = NULL;
	if (q->p != NULL) {
		if (!q->p->c->dead)
			ctl_send(q->p->c, ctl_reply_ok(q->p->id, logq_result(s, q, scope)));
		ctl_pending_end(q->p);
		q->p = NULL;
	}
	if (!q->publishing)
		logq_free(q);
	logq_arm(s);
}

/* --- asking --- */

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	double now = clock_mono();
	struct ctl_logs *st = state(s);
	for (struct logq *q = st->queries, *next; q != NULL; q = next) {
		next = q->next;
		if (q->deadline <= now)
			logq_finish(s, q, "cluster");
	}
	logq_arm(s);
}

/* One timer for every waiting query: set to the earliest deadline. */
static void
logq_arm(struct server *s)
{
	struct ctl_logs *st = state(s);
	ev_timer_stop(s->loop, &st->timer);
	double first = 0;
	for (struct logq *q = st->queries; q != NULL; q = q->next)
		if (first == 0 || q->deadline < first)
			first = q->deadline;
	if (first == 0)
		return;
	double in = first - clock_mono();
	ev_timer_init(&st->timer, timer_cb, in > 0 ? in : 0, 0);
	st->timer.data = s;
	ev_timer_start(s->loop, &st->timer);
}

static void
publish_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct logq *q = priv;
	q->publishing = 0;
	if (q->p == NULL) { /* already answered (every answer came before this reply) */
		logq_free(q);
		return;
	}
	/* Lost, refused, or nobody but us listening: no answer can come. */
	if (r == NULL || rr_type(r) != RR_INTEGER || rr_int(r) <= 1)
		logq_finish(s, q, "cluster");
}

/* The query as published on P{@}:logq. Caller frees. */
static char *
logq_request(struct server *s, const struct logq *q)
{
	char *reply = chan_reply(s, s->cfg.node_id);
	json_t *m = json_pack("{s:s, s:s, s:s?, s:s?, s:i, s:I, s:s, s:s}", "req", q->req, "job", q->job, "queue",
	                      q->queue[0] ? q->queue : NULL, "owner", q->has_owner ? q->owner : NULL, "limit", q->limit,
	                      "max_bytes", (json_int_t)q->budget, "from", s->cfg.node_id, "reply", reply);
	char *text = jsonx_dump(m);
	json_decref(m);
	free(reply);
	return text;
}

/* The live nodes are known: read our rows, and ask the others (or answer now if there are none). */
static void
logq_ask(struct server *s, struct logq *q, const struct redis_reply *nodes)
{
	for (size_t i = 0; i < rr_count(nodes); i++) {
		size_t len = 0;
		const char *t = rr_str(rr_elem(nodes, i), &len);
		json_t *hb = t != NULL ? json_loadb(t, len, 0, NULL) : NULL;
		const char *n = json_string_value(json_object_get(hb, "node"));
		if (n != NULL && strcmp(n, s->cfg.node_id) != 0)
			json_array_append_new(q->expected, json_string(n));
		json_decref(hb);
	}
	q->budget /= json_array_size(q->expected) + 1;
	if (q->budget > LOGQ_ANSWER_MAX)
		q->budget = LOGQ_ANSWER_MAX;
	json_t *mine = logs_read(s, q->job, q->has_owner ? q->owner : NULL, q->limit, q->budget);
	logq_merge(q, mine, s->cfg.node_id);
	json_decref(mine);
	struct ctl_logs *st = state(s);
	q->next = st->queries;
	st->queries = q;
	if (json_array_size(q->expected) == 0) {
		logq_finish(s, q, "cluster");
		return;
	}
	q->deadline = clock_mono() + s->cfg.log_query_timeout_ms / 1000.0;
	char *chan = chan_request(s), *text = logq_request(s, q);
	const char *argv[] = {"PUBLISH", chan, text};
	if (redis_command(s->redis, 3, argv, NULL, publish_reply, q) == 0)
		q->publishing = 1;
	free(chan);
	free(text);
	if (!q->publishing)
		logq_finish(s, q, "cluster");
	else
		logq_arm(s);
}

/* Answers from this daemon's rows alone (Redis or its pub/sub link is down). */
static void
logq_local(struct server *s, struct logq *q)
{
	json_t *mine = logs_read(s, q->job, q->has_owner ? q->owner : NULL, q->limit, q->budget);
	logq_merge(q, mine, s->cfg.node_id);
	json_decref(mine);
	logq_finish(s, q, "local");
}

static void
nodes_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct logq *q = priv;
	if (q->p->c->dead) {
		ctl_pending_end(q->p);
		logq_free(q);
	} else if (r == NULL || rr_type(r) != RR_ARRAY)
		logq_local(s, q);
	else
		logq_ask(s, q, r);
}

/* Starts the query of d for the client of p (the owner check passed). Takes p. */
static void
logq_start(struct server *s, struct ctl_pending *p, const char *job, const char *queue, int limit)
{
	struct ctl_logs *st = state(s);
	struct logq *q = xcalloc(1, sizeof(*q));
	q->p = p;
	snprintf(q->req, sizeof(q->req), "%s:%llu", s->inc, ++st->seq);
	snprintf(q->job, sizeof(q->job), "%s", job);
	snprintf(q->queue, sizeof(q->queue), "%s", queue != NULL ? queue : "");
	if (!is_admin(p->c)) {
		q->has_owner = 1;
		snprintf(q->owner, sizeof(q->owner), "%s", p->c->cred.owner);
	}
	q->limit = limit;
	q->budget = (size_t)s->cfg.ctl_max_frame / 2;
	q->merged = json_pack("{s:[], s:[], s:[]}", "attempts", "lines", "steps");
	q->answered = json_array();
	q->expected = json_array();
	if (!redis_ready(s->redis) || !redis_sub_ready(s->redis) || !st->req_confirmed || !st->reply_confirmed) {
		logq_local(s, q);
		return;
	}
	struct rctx gc = {0};
	struct rcall *rc = rcall_new(s, RF_CTL_NODES, &gc);
	rcall_int(rc, "lease_ms", (long long)(s->cfg.lease_s * 1000));
	if (rcall_send(s, rc, nodes_reply, q) != 0)
		logq_local(s, q);
}

/* --- the op --- */

struct logs_data {
	char job[ID_BUF];
	char queue[QUEUE_NAME_MAX + 1];
	int limit;
};

static void
logs_owner_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct logs_data *d = p->data;
	p->data = NULL;
	const char *owner = r != NULL && rr_type(r) == RR_STRING ? rr_str(r, NULL) : NULL;
	if (p->c->dead)
		ctl_pending_end(p);
	else if (r == NULL || rr_type(r) == RR_ERROR) {
		ctl_reply_err(p->c, p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; try again" : "Redis refused the operation");
		ctl_pending_end(p);
	} else if (!ctl_may_see(p->c, owner)) {
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", d->job);
		ctl_pending_end(p);
	} else
		logq_start(s, p, d->job, d->queue, d->limit);
	free(d);
}

static void
logs_located(struct ctl_conn *c, json_t *rid, const char *queue, void *data)
{
	struct server *s = c->ctl->s;
	struct logs_data *d = data;
	snprintf(d->queue, sizeof(d->queue), "%s", queue);
	struct rctx ctx = {.queue = queue, .id = d->job};
	char *key = rkey_name(s, RK_JOB, &ctx);
	const char *argv[] = {"HGET", key, "owner"};
	struct ctl_pending *p = ctl_pending_new(c, rid);
	p->data = d;
	if (redis_command(s->redis, 3, argv, NULL, logs_owner_reply, p) != 0) {
		ctl_reply_err(c, rid, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(d);
		ctl_pending_end(p);
	}
	free(key);
}

/* Admin reads the execution logs directly (its own also while Redis is down); others prove ownership first. */
void
ctl_op_logs(struct ctl_conn *c, struct ctl_request *req)
{
	struct logs_data *d = xcalloc(1, sizeof(*d));
	snprintf(d->job, sizeof(d->job), "%s", json_string_value(json_object_get(req->root, "job")));
	const char *queue = json_string_value(json_object_get(req->root, "queue"));
	json_int_t limit = json_integer_value(json_object_get(req->root, "limit"));
	d->limit = limit > 0 ? (int)limit : LOGS_DEFAULT;
	if (is_admin(c)) {
		logq_start(c->ctl->s, ctl_pending_new(c, req->id), d->job, queue, d->limit);
		free(d);
		return;
	}
	ctl_locate(c, req->id, d->job, queue, logs_located, d);
}

/* --- answering, and the pub/sub link (called by redis.c) --- */

/* Another daemon's query: our rows of the job on its reply channel. */
static void
logq_answer(struct server *s, const char *msg, size_t len)
{
	json_t *m = json_loadb(msg, len, 0, NULL);
	const char *req = json_string_value(json_object_get(m, "req"));
	const char *job = json_string_value(json_object_get(m, "job"));
	const char *from = json_string_value(json_object_get(m, "from"));
	const char *reply = json_string_value(json_object_get(m, "reply"));
	json_int_t limit = json_integer_value(json_object_get(m, "limit"));
	json_int_t max = json_integer_value(json_object_get(m, "max_bytes"));
	char *want = from != NULL ? chan_reply(s, from) : NULL;
	/* Our own query (we read our rows directly), or a malformed one: the reply channel must be the asker's. */
	if (req == NULL || job == NULL || strlen(job) > JOB_ID_MAX || strlen(req) >= LOGQ_REQ_MAX || want == NULL ||
	    strcmp(from, s->cfg.node_id) == 0 || reply == NULL || strcmp(reply, want) != 0) {
		free(want);
		json_decref(m);
		return;
	}
	size_t cap = max > 0 && (size_t)max < LOGQ_ANSWER_MAX ? (size_t)max : LOGQ_ANSWER_MAX;
	json_t *log = logs_read(s, job, json_string_value(json_object_get(m, "owner")),
	                        limit > 0 && limit <= CTL_LOGS_MAX ? (int)limit : LOGS_DEFAULT, cap);
	json_object_set_new(log, "req", json_string(req));
	json_object_set_new(log, "node", json_string(s->cfg.node_id));
	char *text = jsonx_dump(log);
	const char *argv[] = {"PUBLISH", want, text};
	if (redis_command(s->redis, 3, argv, NULL, NULL, NULL) != 0)
		log_warn("logs: cannot answer %s's query for %s: Redis is unreachable", from, job);
	free(text);
	json_decref(log);
	free(want);
	json_decref(m);
}

/* The index of name in an array of strings, or -1. */
static int
name_index(const json_t *names, const char *name)
{
	for (size_t i = 0; i < json_array_size(names); i++)
		if (strcmp(json_string_value(json_array_get(names, i)), name) == 0)
			return (int)i;
	return -1;
}

/* An answer to one of our queries. */
static void
logq_answered(struct server *s, const char *msg, size_t len)
{
	json_t *m = json_loadb(msg, len, 0, NULL);
	const char *req = json_string_value(json_object_get(m, "req"));
	const char *node = json_string_value(json_object_get(m, "node"));
	struct logq *q = state(s)->queries;
	while (q != NULL && (req == NULL || strcmp(q->req, req) != 0))
		q = q->next;
	if (q != NULL && node != NULL) {
		if (name_index(q->answered, node) < 0) {
			int i = name_index(q->expected, node);
			if (i >= 0)
				json_array_remove(q->expected, (size_t)i);
			logq_merge(q, m, node); /* a node that came up after the query began is welcome too */
			if (json_array_size(q->expected) == 0)
				logq_finish(s, q, "cluster");
		}
	}
	json_decref(m);
}

void
ctl_logs_sub_connected(struct server *s)
{
	if (state(s) == NULL)
		return;
	char *req = chan_request(s), *reply = chan_reply(s, s->cfg.node_id);
	redis_subscribe(s->redis, req);
	redis_subscribe(s->redis, reply);
	free(req);
	free(reply);
}

void
ctl_logs_confirmed(struct server *s, const char *channel)
{
	struct ctl_logs *st = state(s);
	if (st == NULL)
		return;
	char *req = chan_request(s), *reply = chan_reply(s, s->cfg.node_id);
	if (strcmp(channel, req) == 0)
		st->req_confirmed = 1;
	else if (strcmp(channel, reply) == 0)
		st->reply_confirmed = 1;
	free(req);
	free(reply);
}

int
ctl_logs_message(struct server *s, const char *channel, const char *msg, size_t len)
{
	if (state(s) == NULL)
		return 0;
	char *req = chan_request(s), *reply = chan_reply(s, s->cfg.node_id);
	int is_req = strcmp(channel, req) == 0, is_reply = strcmp(channel, reply) == 0;
	free(req);
	free(reply);
	if (is_req)
		logq_answer(s, msg, len);
	else if (is_reply)
		logq_answered(s, msg, len);
	return is_req || is_reply;
}

/* The pub/sub link is gone: no answer can come, so every waiting query is answered with what it has. */
void
ctl_logs_sub_lost(struct server *s)
{
	struct ctl_logs *st = state(s);
	if (st == NULL)
		return;
	st->req_confirmed = st->reply_confirmed = 0;
	while (st->queries != NULL)
		logq_finish(s, st->queries, "cluster");
}

void
ctl_logs_free(struct ctl *ctl)
{
	struct ctl_logs *st = ctl->logs;
	if (st == NULL)
		return;
	while (st->queries != NULL) /* Redis is gone: no PUBLISH reply is due any more */
		logq_finish(ctl->s, st->queries, "cluster");
	ev_timer_stop(ctl->s->loop, &st->timer);
	free(st);
	ctl->logs = NULL;
}

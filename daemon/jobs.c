/*
 * jobs: a job's way through the daemon, from fetch to the script that writes its final word.
 *
 * Every Redis write that takes a job out of this node's inflight list is a job "op" (claim, bury, schedule,
 * finish, requeue). The op is remembered on the job until its reply arrives; a reply lost with the
 * connection leaves the op pending, and jobs_on_connect sends it again. The scripts are idempotent for
 * exactly this: a finish that already happened only acknowledges.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "store.h"
#include "xmalloc.h"

#define FMT_NUM(buf, v) (snprintf((buf), sizeof(buf), "%.3f", (double)(v)), (buf))
#define FMT_INT(buf, v) (snprintf((buf), sizeof(buf), "%lld", (long long)(v)), (buf))

static void op_send(struct server *s, struct job *j);

/* Takes ownership of nothing: payload is copied. */
static struct job *
job_new(struct server *s, const char *queue, const char *payload, size_t len)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->payload = xstrndup(payload, len);
	j->payload_len = len;
	snprintf(j->queue, sizeof(j->queue), "%s", queue);
	j->heap_pos = HEAP_NOT_IN;
	j->phase = PHASE_FETCHED;
	j->next = s->jobs;
	if (s->jobs != NULL)
		s->jobs->prev = j;
	s->jobs = j;
	s->njobs++;
	s->nfetched++;
	return j;
}

/* The job is finished with: unlinked now, freed by jobs_free_dead in the prepare hook. */
static void
job_done(struct server *s, struct job *j)
{
	if (j->dead)
		return;
	if (j->phase != PHASE_RUNNING && j->phase != PHASE_FINISHING)
		s->nfetched--;
	j->dead = 1;
	j->op = OP_NONE;
	s->njobs--;
}

void
jobs_free_dead(struct server *s)
{
	struct job *j = s->jobs, *next;
	for (; j != NULL; j = next) {
		next = j->next;
		if (!j->dead || j->redis_busy)
			continue;
		if (j->prev)
			j->prev->next = j->next;
		else
			s->jobs = j->next;
		if (j->next)
			j->next->prev = j->prev;
		job_spec_free(&j->spec);
		free(j->payload);
		free(j->error);
		free(j->result);
		free(j->dead_entry);
		free(j);
	}
}

void
job_ready_push(struct server *s, struct job *j)
{
	j->phase = PHASE_READY;
	j->ready_at = ev_now(s->loop);
	j->ready_next = NULL;
	if (s->ready_tail)
		s->ready_tail->ready_next = j;
	else
		s->ready_head = j;
	s->ready_tail = j;
}

/* Unlinks j from the ready FIFO (it stays a fetched job). */
static void
job_ready_remove(struct server *s, struct job *target)
{
	struct job *prev = NULL;
	for (struct job *j = s->ready_head; j != NULL; prev = j, j = j->ready_next) {
		if (j != target)
			continue;
		if (prev)
			prev->ready_next = j->ready_next;
		else
			s->ready_head = j->ready_next;
		if (s->ready_tail == j)
			s->ready_tail = prev;
		j->ready_next = NULL;
		return;
	}
}

struct job *
job_ready_pop(struct server *s)
{
	struct job *j = s->ready_head;
	if (j == NULL)
		return NULL;
	s->ready_head = j->ready_next;
	if (s->ready_head == NULL)
		s->ready_tail = NULL;
	j->ready_next = NULL;
	return j;
}

/* --- the ops: one function builds each script call; op_reply routes the answer --- */

static void claim_done(struct server *s, struct job *j, const struct redis_reply *r);

static void
op_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct job *j = priv;
	j->redis_busy = 0;
	if (r == NULL)
		return; /* connection lost: jobs_on_connect resends */
	if (rr_type(r) == RR_ERROR) {
		log_error("job %s: Redis refused %s: %s (retrying in 1 s)", j->spec.id[0] ? j->spec.id : "?",
		          j->op == OP_CLAIM ? "claim" : "write", rr_str(r, NULL));
		j->op_retry_at = clock_now() + 1;
		return;
	}
	switch (j->op) {
	case OP_CLAIM: claim_done(s, j, r); break;
	case OP_FINISH:
		if (j->outcome == JOB_SUCCEEDED)
			s->stats_succeeded++;
		else if (job_state_terminal(j->outcome))
			s->stats_failed++;
		job_done(s, j);
		break;
	default: job_done(s, j); break;
	}
	if (!s->shutting_down)
		jobs_fetch(s);
	server_maybe_exit(s);
}

/* Adds a job's op to the batch, with op_reply as its callback; the payload is passed binary-safe. */
static int
batch_job_op(struct server *s, struct job *j, const char *name, const char **argv, int argc)
{
	size_t lens[24];
	for (int i = 0; i < argc; i++)
		lens[i] = argv[i] == j->payload ? j->payload_len : strlen(argv[i]);
	return redis_batch(s->redis, name, argc, argv, lens, op_reply, j);
}

static int
send_claim(struct server *s, struct job *j, const char *now)
{
	char ma[16], stalls[16], ttl[16], evmax[16], created[32];
	const char *argv[] = {s->cfg.key_prefix,
	                      s->cfg.node_id,
	                      j->queue,
	                      j->spec.id,
	                      now,
	                      j->spec.type,
	                      FMT_INT(ma, j->spec.max_attempts),
	                      FMT_INT(stalls, s->cfg.max_stalls),
	                      j->payload,
	                      FMT_NUM(created, j->spec.created_at > 0 ? j->spec.created_at : clock_now()),
	                      j->spec.owner ? j->spec.owner : "",
	                      j->spec.idempotency_key ? j->spec.idempotency_key : "",
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	return batch_job_op(s, j, "claim", argv, 14);
}

static int
send_bury(struct server *s, struct job *j, const char *now)
{
	char ttl[16], evmax[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      s->cfg.node_id,
	                      j->queue,
	                      j->has_id ? j->spec.id : "",
	                      j->payload,
	                      now,
	                      j->error,
	                      j->dead_entry,
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	return batch_job_op(s, j, "bury", argv, 10);
}

static int
send_schedule(struct server *s, struct job *j, const char *now)
{
	char run_at[32], created[32], ma[16], ttl[16], evmax[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      s->cfg.node_id,
	                      j->queue,
	                      j->spec.id,
	                      j->payload,
	                      now,
	                      FMT_NUM(run_at, j->spec.run_at),
	                      j->spec.type,
	                      FMT_NUM(created, j->spec.created_at > 0 ? j->spec.created_at : clock_now()),
	                      FMT_INT(ma, j->spec.max_attempts),
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	return batch_job_op(s, j, "schedule", argv, 12);
}

static int
send_finish(struct server *s, struct job *j, const char *now)
{
	char attempt[16], run_at[32], ttl[16], evmax[16], pid[16], started[32], ma[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      s->cfg.node_id,
	                      j->queue,
	                      j->spec.id,
	                      j->payload,
	                      now,
	                      job_state_name(j->outcome),
	                      FMT_INT(attempt, j->attempt),
	                      j->error ? j->error : "",
	                      j->result ? j->result : "",
	                      FMT_NUM(run_at, j->retry_at),
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max),
	                      FMT_INT(pid, j->worker_pid),
	                      FMT_NUM(started, j->started_at),
	                      FMT_INT(ma, j->spec.max_attempts)};
	return batch_job_op(s, j, "finish", argv, 16);
}

static int
send_requeue(struct server *s, struct job *j, const char *now)
{
	char ttl[16], evmax[16], attempt[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      s->cfg.node_id,
	                      j->queue,
	                      j->has_id ? j->spec.id : "",
	                      j->payload,
	                      now,
	                      FMT_INT(attempt, j->attempt),
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	return batch_job_op(s, j, "requeue", argv, 9);
}

static const struct {
	enum job_op op;
	int (*send)(struct server *s, struct job *j, const char *now);
} op_table[] = {
        {OP_CLAIM, send_claim},   {OP_BURY, send_bury},       {OP_SCHEDULE, send_schedule},
        {OP_FINISH, send_finish}, {OP_REQUEUE, send_requeue},
};

/* Sends the job's pending op if Redis is up; otherwise it waits for jobs_on_connect. */
static void
op_send(struct server *s, struct job *j)
{
	if (j->op == OP_NONE || j->redis_busy || !redis_ready(s->redis))
		return;
	char now[32];
	FMT_NUM(now, clock_now());
	for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++) {
		if (op_table[i].op != j->op)
			continue;
		if (op_table[i].send(s, j, now) == 0) {
			j->redis_busy = 1;
			j->op_retry_at = 0;
		}
		return;
	}
}

static void
op_start(struct server *s, struct job *j, enum job_op op)
{
	j->op = op;
	op_send(s, j);
}

/* --- accepting fetched messages --- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of bytes that are not valid UTF-8 (they cannot sit in a JSON string). Caller frees. */
static char *
base64(const unsigned char *in, size_t len)
{
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < len ? in[i + 2] : 0);
		*o++ = b64chars[v >> 18 & 63];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64chars[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* Best effort: the id and type of a message that failed validation, so its entry says whose it was. */
static void
salvage_names(struct job *j, char *type, size_t typelen)
{
	json_t *root = json_loadb(j->payload, j->payload_len, 0, NULL);
	json_t *id = json_object_get(root, "id"), *t = json_object_get(root, "type");
	if (json_is_string(id) && job_name_valid(json_string_value(id), JOB_ID_MAX)) {
		snprintf(j->spec.id, sizeof(j->spec.id), "%s", json_string_value(id));
		j->has_id = 1;
	}
	if (json_is_string(t))
		snprintf(type, typelen, "%s", json_string_value(t));
	json_decref(root);
}

/* A message that cannot become a job goes to the dead list with the reason. Takes ownership of nothing. */
static void
job_bury(struct server *s, struct job *j, const char *why)
{
	char type[JOB_TYPE_MAX + 1] = "";
	salvage_names(j, type, sizeof(type));
	char msgid[48] = "msg-";
	if (!j->has_id && job_new_id(msgid + 4) < 0)
		snprintf(msgid + 4, sizeof(msgid) - 4, "%ld", (long)getpid());
	json_t *e = json_pack("{s:s,s:s,s:s,s:f,s:i,s:s}", "id", j->has_id ? j->spec.id : msgid, "queue", j->queue,
	                      "error", why, "died_at", clock_now(), "attempt", 0, "node", s->cfg.node_id);
	json_object_set_new(e, "type", type[0] ? json_string(type) : json_null());
	json_t *text = json_stringn(j->payload, j->payload_len);
	if (text != NULL)
		json_object_set_new(e, "payload", text);
	else {
		char *b = base64((const unsigned char *)j->payload, j->payload_len);
		json_object_set_new(e, "payload_b64", json_string(b));
		free(b);
	}
	j->dead_entry = jsonx_dump(e);
	json_decref(e);
	free(j->error);
	j->error = xstrdup(why);
	log_warn("queue %s: dead on arrival (%s): %.200s", j->queue, why, j->dead_entry);
	struct store_attempt a = {.job_id = j->has_id ? j->spec.id : msgid,
	                          .type = type,
	                          .queue = j->queue,
	                          .node = s->cfg.node_id,
	                          .attempt = 0,
	                          .created_at = clock_now(),
	                          .started_at = clock_now()};
	int64_t row = store_attempt_start(s->store, &a);
	if (row > 0)
		store_attempt_finish(s->store, row, "dead", clock_now(), why, NULL);
	op_start(s, j, OP_BURY);
}

static void
job_accept(struct server *s, const char *queue, const char *payload, size_t len)
{
	struct job *j = job_new(s, queue, payload, len);
	char err[512];
	if (job_parse(payload, len, queue, &s->defaults, &j->spec, err, sizeof(err)) < 0) {
		job_bury(s, j, err);
		return;
	}
	j->has_id = 1;
	if (j->spec.id[0] == '\0' && job_new_id(j->spec.id) < 0) {
		job_bury(s, j, "no id given and none could be generated");
		return;
	}
	if (j->spec.run_at > clock_now() + 0.001) {
		op_start(s, j, OP_SCHEDULE);
		return;
	}
	j->phase = PHASE_CLAIMING;
	op_start(s, j, OP_CLAIM);
}

/* Acts on claim's verdict: "ok" with the attempt number, or skip, dup, dead with a detail. */
static void
claim_verdict(struct server *s, struct job *j, const char *v, const char *detail)
{
	if (v != NULL && strcmp(v, "ok") == 0) {
		j->op = OP_NONE;
		j->attempt = atoi(detail ? detail : "1");
		if (s->shutting_down) {
			op_start(s, j, OP_REQUEUE);
			return;
		}
		if (j->spec.run_at > clock_now() + 0.001) {
			op_start(s, j, OP_SCHEDULE);
			return;
		}
		job_ready_push(s, j);
		pool_dispatch(s);
		return;
	}
	if (v != NULL && strcmp(v, "dead") == 0) {
		log_warn("job %s: %s", j->spec.id, detail ? detail : "dead");
		struct store_attempt a = {.job_id = j->spec.id,
		                          .type = j->spec.type,
		                          .queue = j->queue,
		                          .node = s->cfg.node_id,
		                          .attempt = 0,
		                          .created_at = j->spec.created_at,
		                          .started_at = clock_now()};
		int64_t row = store_attempt_start(s->store, &a);
		if (row > 0)
			store_attempt_finish(s->store, row, "dead", clock_now(), detail, NULL);
	} else
		log_info("job %s: not run: %s %s", j->spec.id, v ? v : "?", detail ? detail : "");
	job_done(s, j);
}

static void
claim_done(struct server *s, struct job *j, const struct redis_reply *r)
{
	const struct redis_reply *verdict = rr_elem(r, 0), *arg = rr_elem(r, 1);
	char detail[32];
	const char *d = NULL;
	if (arg != NULL && rr_type(arg) == RR_INTEGER) {
		snprintf(detail, sizeof(detail), "%lld", rr_int(arg));
		d = detail;
	} else if (arg != NULL)
		d = rr_str(arg, NULL);
	claim_verdict(s, j, verdict ? rr_str(verdict, NULL) : NULL, d);
}

/*
 * A message the fetch already claimed (its JSON named a usable id). It is still validated in full here;
 * one that fails goes to the dead list like any other bad message.
 */
static void
job_accept_claimed(struct server *s, const char *queue, const char *payload, size_t len, const char *verdict,
                   const char *detail)
{
	struct job *j = job_new(s, queue, payload, len);
	char err[512];
	if (strcmp(verdict, "ok") != 0) {
		/* Already acknowledged by the claim (it ended, or is a duplicate): only the id is needed. */
		char type[JOB_TYPE_MAX + 1];
		salvage_names(j, type, sizeof(type));
		snprintf(j->spec.type, sizeof(j->spec.type), "%s", type);
		claim_verdict(s, j, verdict, detail);
		return;
	}
	if (job_parse(payload, len, queue, &s->defaults, &j->spec, err, sizeof(err)) < 0) {
		job_bury(s, j, err);
		return;
	}
	j->has_id = 1;
	j->phase = PHASE_CLAIMING;
	claim_verdict(s, j, verdict, detail);
}

/* --- fetching --- */

/*
 * How many fetched-but-not-started jobs this daemon may hold. A fixed `prefetch` is used as given. The
 * default (0) is one per worker, raised for short jobs so that a prefetched job waits about
 * PREFETCH_WAIT_S on average: with jobs of 50 us that is up to PREFETCH_MAX_MULT per worker, which is what
 * keeps workers busy across a Redis round trip; with jobs of a millisecond or more it stays one per
 * worker. jobs_unhoard gives back the extra if jobs turn slow.
 */
#define PREFETCH_WAIT_S   0.002
#define PREFETCH_MAX_MULT 16
/* An extra prefetched job that has waited this long goes back to its queue for any daemon to take. */
#define HOARD_MAX_S 0.5

static int
prefetch_limit(const struct server *s)
{
	if (s->cfg.prefetch > 0)
		return s->cfg.prefetch;
	double per_worker = s->avg_job_s > 0 ? PREFETCH_WAIT_S / s->avg_job_s : 1;
	if (per_worker < 1)
		per_worker = 1;
	if (per_worker > PREFETCH_MAX_MULT)
		per_worker = PREFETCH_MAX_MULT;
	return (int)(s->cfg.workers * per_worker);
}

static int
fetch_room(const struct server *s)
{
	return s->cfg.workers - s->nrunning + prefetch_limit(s) - s->nfetched;
}

/* With the automatic prefetch, returns the jobs beyond one per worker that have waited too long. */
void
jobs_unhoard(struct server *s)
{
	if (s->cfg.prefetch > 0 || s->shutting_down)
		return;
	double now = ev_now(s->loop);
	int kept = 0;
	for (struct job *j = s->ready_head, *next; j != NULL; j = next) {
		next = j->ready_next;
		if (++kept <= s->cfg.workers || now - j->ready_at < HOARD_MAX_S)
			continue;
		job_ready_remove(s, j);
		log_debug("job %s: waited %.1f s for a worker; back to queue %s", j->spec.id, now - j->ready_at,
		          j->queue);
		op_start(s, j, OP_REQUEUE);
	}
}

/* Queue names in the order this fetch should try them: as configured, or shuffled by weight. */
static int
fetch_order(struct server *s, const char **names)
{
	int n = s->cfg.nqueues;
	for (int i = 0; i < n; i++)
		names[i] = s->cfg.queues[i].name;
	if (strcmp(s->cfg.queue_mode, "weighted") != 0)
		return n;
	/* Weighted random order without replacement: pick each next queue in proportion to its weight. */
	int weights[MAX_QUEUES], total = 0;
	for (int i = 0; i < n; i++)
		total += weights[i] = s->cfg.queues[i].weight;
	for (int i = 0; i < n; i++) {
		int r = (int)(drand48() * total), k = i;
		for (int acc = 0; k < n; k++) {
			acc += weights[k];
			if (r < acc)
				break;
		}
		if (k >= n)
			k = n - 1;
		const char *tn = names[i];
		int tw = weights[i];
		names[i] = names[k];
		weights[i] = weights[k];
		names[k] = tn;
		weights[k] = tw;
		total -= weights[i];
	}
	return n;
}

static void block_fetch(struct server *s);

static void
fetch_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->fetching = 0;
	if (r == NULL)
		return;
	if (rr_type(r) != RR_ARRAY) {
		log_error("fetch failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return; /* the next tick tries again */
	}
	size_t n = rr_count(r);
	for (size_t i = 0; i + 3 < n; i += 4) {
		size_t len;
		const char *queue = rr_str(rr_elem(r, i), NULL), *payload = rr_str(rr_elem(r, i + 1), &len);
		const char *verdict = rr_str(rr_elem(r, i + 2), NULL), *detail = rr_str(rr_elem(r, i + 3), NULL);
		if (queue == NULL || payload == NULL || verdict == NULL)
			continue;
		if (strcmp(verdict, "raw") == 0)
			job_accept(s, queue, payload, len);
		else
			job_accept_claimed(s, queue, payload, len, verdict, detail);
	}
	if ((intptr_t)priv > (intptr_t)(n / 4))
		block_fetch(s); /* the queues ran dry: wait for the next job */
	else
		jobs_fetch(s);
}

/* Asks for a fetch; jobs_flush_fetch adds it to this turn's batch, beside the turn's finishes. */
void
jobs_fetch(struct server *s)
{
	s->want_fetch = 1;
}

static void
reconcile_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->fetching = 0;
	if (r == NULL || rr_type(r) != RR_INTEGER) {
		if (r != NULL)
			log_error("reconcile failed: %s",
			          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return; /* still needed: tried again with the next fetch */
	}
	s->need_reconcile = 0;
	if (rr_int(r) > 0)
		log_warn("returned %lld jobs whose fetch reply was lost with the connection to their queues",
		         rr_int(r));
	jobs_fetch(s);
}

/*
 * After a reconnect, before fetching again: returns to their queues the inflight entries this daemon does
 * not hold (their fetch or BLMOVE reply was lost). It runs only while no fetch is outstanding on either
 * connection, or it could return a job whose reply is still on its way.
 */
static void
reconcile(struct server *s)
{
	int n = 3 + s->cfg.nqueues, k = 0;
	const char **argv = xcalloc((size_t)(n + s->njobs + 1), sizeof(*argv));
	size_t *lens = xcalloc((size_t)(n + s->njobs + 1), sizeof(*lens));
	char nq[16];
	argv[k++] = s->cfg.key_prefix;
	argv[k++] = s->cfg.node_id;
	argv[k++] = FMT_INT(nq, s->cfg.nqueues);
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[k++] = s->cfg.queues[i].name;
	for (int i = 0; i < k; i++)
		lens[i] = strlen(argv[i]);
	for (struct job *j = s->jobs; j != NULL && k < n + s->njobs; j = j->next) {
		if (j->dead)
			continue;
		argv[k] = j->payload;
		lens[k++] = j->payload_len;
	}
	if (redis_batch(s->redis, "reconcile", k, argv, lens, reconcile_reply, NULL) == 0)
		s->fetching = 1;
	free(argv);
	free(lens);
}

void
jobs_flush_fetch(struct server *s)
{
	if (s->need_reconcile && s->registered && !s->fetching && !s->blocking && redis_ready(s->redis)) {
		reconcile(s);
		return;
	}
	if (!s->want_fetch || s->need_reconcile || s->shutting_down || !s->registered || s->fetching ||
	    !redis_ready(s->redis))
		return;
	s->want_fetch = 0;
	int room = fetch_room(s);
	if (room <= 0)
		return;
	const char *argv[8 + MAX_QUEUES];
	char max[16], stalls[16], ttl[16], evmax[16], attempts[16], now[32];
	argv[0] = s->cfg.key_prefix;
	argv[1] = s->cfg.node_id;
	argv[2] = FMT_INT(max, room);
	argv[3] = FMT_INT(stalls, s->cfg.max_stalls);
	argv[4] = FMT_INT(ttl, s->cfg.result_ttl_s);
	argv[5] = FMT_INT(evmax, s->cfg.events_max);
	argv[6] = FMT_INT(attempts, s->cfg.max_attempts);
	argv[7] = FMT_NUM(now, clock_now());
	int nq = fetch_order(s, argv + 8);
	if (redis_batch(s->redis, "fetch", 8 + nq, argv, NULL, fetch_reply, (void *)(intptr_t)room) == 0)
		s->fetching = 1;
}

static void
block_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	s->blocking = 0;
	if (r == NULL)
		return;
	if (rr_type(r) == RR_STRING) {
		size_t len;
		const char *payload = rr_str(r, &len);
		job_accept(s, s->cfg.queues[(uintptr_t)priv].name, payload, len);
	} else if (rr_type(r) == RR_ERROR)
		log_error("blocking fetch failed: %s", rr_str(r, NULL));
	jobs_fetch(s);
}

/*
 * Waits on one queue with BLMOVE. With several queues the wait rotates among them with a short timeout,
 * since BLMOVE watches one list: a job on another queue waits at most that long, or less when a worker
 * frees up.
 */
static void
block_fetch(struct server *s)
{
	if (s->shutting_down || s->blocking || !redis_block_ready(s->redis) || fetch_room(s) <= 0)
		return;
	unsigned qi = s->block_rr++ % (unsigned)s->cfg.nqueues;
	double timeout = s->cfg.nqueues == 1 ? s->cfg.block_s : (s->cfg.block_s < 0.1 ? s->cfg.block_s : 0.1);
	char src[256], dst[256];
	snprintf(src, sizeof(src), "%squeue:%s", s->cfg.key_prefix, s->cfg.queues[qi].name);
	snprintf(dst, sizeof(dst), "%sinflight:%s:%s", s->cfg.key_prefix, s->cfg.node_id, s->cfg.queues[qi].name);
	if (redis_block_move(s->redis, src, dst, timeout, block_reply, (void *)(uintptr_t)qi) == 0)
		s->blocking = 1;
}

/* --- running --- */

static void
ignore_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("redis: %s: %s", (const char *)priv, rr_str(r, NULL));
}

/* Writes "running" for a job a worker took (hopper_run). Best effort: the finish write tells it all. */
static void
send_run(struct server *s, struct job *j)
{
	j->run_pending = 0;
	char now[32], pid[16], attempt[16], ttl[16], evmax[16], max_attempts[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      j->spec.id,
	                      s->cfg.node_id,
	                      FMT_NUM(now, j->started_at),
	                      FMT_INT(pid, j->worker_pid),
	                      FMT_INT(attempt, j->attempt),
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max),
	                      FMT_INT(max_attempts, j->spec.max_attempts)};
	redis_batch(s->redis, "run", 9, argv, NULL, ignore_reply, (void *)"run");
}

/*
 * The running state is written with the next batch that leaves, not at once: while a batch is in flight,
 * a job fast enough to finish before the next one goes out skips it, and its finish write records
 * started_at, node and worker instead (subscribers then see queued -> succeeded). That halves the Redis
 * work of short jobs under load; a job that runs longer than one round trip is marked running as before.
 */
void
jobs_started(struct server *s, struct job *j)
{
	s->nrunning++;
	j->worker_pid = j->worker->pid;
	j->run_pending = 1;
	struct store_attempt a = {.job_id = j->spec.id,
	                          .type = j->spec.type,
	                          .queue = j->queue,
	                          .node = s->cfg.node_id,
	                          .attempt = j->attempt,
	                          .worker_pid = (int)j->worker_pid,
	                          .created_at = j->spec.created_at,
	                          .started_at = j->started_at};
	j->row = store_attempt_start(s->store, &a);
}

void
jobs_flush_runs(struct server *s)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (j->run_pending && !j->dead && j->phase == PHASE_RUNNING)
			send_run(s, j);
}

void
jobs_progress(struct server *s, struct job *j, int progress, const char *stage, const char *message)
{
	char now[32], pr[16], attempt[16], ttl[16], evmax[16];
	const char *argv[] = {s->cfg.key_prefix,
	                      j->spec.id,
	                      FMT_NUM(now, clock_now()),
	                      FMT_INT(pr, progress),
	                      stage ? stage : "",
	                      message ? message : "",
	                      FMT_INT(attempt, j->attempt),
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	if (j->run_pending)
		send_run(s, j); /* progress is written only onto a running job */
	redis_batch(s->redis, "progress", 9, argv, NULL, ignore_reply, (void *)"progress");
	if (j->row > 0)
		store_event(s->store, j->row, clock_now(), "progress", NULL, progress, stage, message);
}

void
jobs_log(struct server *s, struct job *j, const char *level, const char *line)
{
	log_debug("job %s: %s: %s", j->spec.id, level, line);
	if (j->row > 0)
		store_event(s->store, j->row, clock_now(), "log", level, 0, NULL, line);
}

/* The worker is done with the job (result, crash, or stop): decide and write the outcome. */
void
jobs_attempt_done(struct server *s, struct job *j)
{
	double now = clock_now();
	s->nrunning--;
	j->phase = PHASE_FINISHING;
	/* A moving average of how long attempts take, for the automatic prefetch (1/16 weight per job). */
	double took = now - j->started_at;
	s->avg_job_s = s->avg_job_s > 0 ? s->avg_job_s + (took - s->avg_job_s) / 16 : took;
	if (j->timed_out) {
		char *e = xasprintf("timed out after %g s%s%s", j->spec.timeout_s, j->error ? ": " : "",
		                    j->error ? j->error : "");
		free(j->error);
		j->error = e;
		j->ok = 0;
		j->retryable = 1;
	}
	j->run_pending = 0; /* finish (or requeue) records the start too */
	if (j->requeue) {
		log_info("job %s: stopped by shutdown; back to the head of queue %s", j->spec.id, j->queue);
		if (j->row > 0)
			store_attempt_finish(s->store, j->row, "requeued", now, "stopped by shutdown", NULL);
		op_start(s, j, OP_REQUEUE);
		return;
	}
	j->outcome = job_outcome(j->ok, j->retryable, j->attempt, j->spec.max_attempts);
	if (j->outcome == JOB_RETRYING) {
		double base = j->spec.backoff_base_s, max = j->spec.backoff_max_s;
		j->retry_at = now + job_backoff_s(j->attempt, base, max, drand48());
	}
	if (j->outcome != JOB_SUCCEEDED)
		log_info("job %s (%s) attempt %d/%d: %s -> %s", j->spec.id, j->spec.type, j->attempt,
		         j->spec.max_attempts, j->error ? j->error : "", job_state_name(j->outcome));
	if (j->row > 0)
		store_attempt_finish(s->store, j->row, job_state_name(j->outcome), now, j->error, j->result);
	op_start(s, j, OP_FINISH);
	jobs_fetch(s);
}

/* --- the node: heartbeat, recovery, reaping, promotion --- */

static void heartbeat(struct server *s, int check);

static void
reap_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("reap failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	long long moved = rr_int(rr_elem(r, 0));
	for (size_t i = 1; i < rr_count(r); i++)
		log_warn("node %s stopped heartbeating: its jobs went back to their queues",
		         rr_str(rr_elem(r, i), NULL));
	if (priv != NULL) {
		if (moved > 0)
			log_warn("returned %lld jobs left in flight by this node's previous run", moved);
		s->registered = 1;
		log_info("node %s registered; consuming %s", s->cfg.node_id, s->cfg.queues_spec);
		jobs_fetch(s);
	} else if (moved > 0) {
		log_warn("returned %lld jobs of dead nodes to their queues", moved);
		jobs_fetch(s);
	}
}

/* Returns dead nodes' jobs; with recover_self, also this node's own leftovers (start-up only). */
static void
reap(struct server *s, int recover_self)
{
	const char *argv[] = {s->cfg.key_prefix, s->cfg.node_id, recover_self ? "1" : "0"};
	redis_call(s->redis, "reap", 3, argv, NULL, reap_reply, recover_self ? (void *)s : NULL);
}

/* 1 if pid is a live (not zombie) hopperd on this host: the holder of a heartbeat we found at start-up. */
static int
hopperd_alive(long pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = pid > 0 ? fopen(path, "r") : NULL;
	if (f == NULL)
		return 0;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* "pid (comm) state ...": comm may hold spaces, so look from the last ')'. */
	char *open = strchr(stat, '('), *close = strrchr(stat, ')');
	if (open == NULL || close == NULL || close[1] != ' ')
		return 0;
	int zombie = close[2] == 'Z' || close[2] == 'X';
	return !zombie && strncmp(open + 1, "hopperd", (size_t)(close - open - 1)) == 0 && close - open - 1 == 7;
}

static void
heartbeat_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		if (r != NULL)
			log_error("heartbeat failed: %s",
			          rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	const char *verdict = rr_str(rr_elem(r, 0), NULL);
	if (priv == NULL || verdict == NULL || strcmp(verdict, "held") != 0) {
		if (priv != NULL)
			reap(s, 1);
		return;
	}
	const char *pid = rr_str(rr_elem(r, 1), NULL), *host = rr_str(rr_elem(r, 2), NULL);
	if (host != NULL && strcmp(host, s->host) == 0 && pid != NULL && !hopperd_alive(atol(pid))) {
		log_warn("node id %s was held by pid %s, which is gone: taking over", s->cfg.node_id, pid);
		heartbeat(s, 0);
		reap(s, 1);
		return;
	}
	log_error("node id %s is in use by pid %s on %s: give each daemon its own node_id", s->cfg.node_id,
	          pid ? pid : "?", host ? host : "?");
	s->exit_code = 1;
	ev_break(s->loop, EVBREAK_ALL);
}

static void
heartbeat(struct server *s, int check)
{
	const char *argv[10 + MAX_QUEUES];
	char pid[16], started[32], running[16], lease[16], now[32];
	int n = 0;
	argv[n++] = s->cfg.key_prefix;
	argv[n++] = s->cfg.node_id;
	argv[n++] = FMT_INT(pid, getpid());
	argv[n++] = s->host;
	argv[n++] = FMT_NUM(started, s->started_at);
	argv[n++] = FMT_INT(running, s->nrunning);
	argv[n++] = HOPPER_VERSION;
	argv[n++] = FMT_INT(lease, (long long)(s->cfg.lease_s * 1000));
	argv[n++] = FMT_NUM(now, clock_now());
	argv[n++] = check ? "1" : "0";
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[n++] = s->cfg.queues[i].name;
	if (redis_call(s->redis, "heartbeat", n, argv, NULL, heartbeat_reply, check ? (void *)s : NULL) == 0)
		s->last_heartbeat = clock_now();
}

void
jobs_on_connect(struct server *s)
{
	if (!s->registered) {
		heartbeat(s, 1);
		return;
	}
	s->need_reconcile = 1;
	heartbeat(s, 0);
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead)
			op_send(s, j);
	jobs_fetch(s);
}

void
jobs_on_disconnect(struct server *s, int blocking_conn)
{
	if (blocking_conn)
		s->blocking = 0;
	else
		s->fetching = 0;
	s->need_reconcile = 1;
}

void
jobs_tick(struct server *s)
{
	if (!redis_ready(s->redis))
		return;
	double now = clock_now();
	if (now - s->last_heartbeat >= s->cfg.heartbeat_s && s->registered) {
		heartbeat(s, 0);
		reap(s, 0);
	}
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->op != OP_NONE && !j->redis_busy && j->op_retry_at > 0 && j->op_retry_at <= now)
			op_send(s, j);
	jobs_fetch(s);
}

static void
promote_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_INTEGER && rr_int(r) > 0)
		jobs_fetch(s);
}

void
jobs_promote(struct server *s)
{
	if (!redis_ready(s->redis) || !s->registered)
		return;
	const char *argv[3 + MAX_QUEUES];
	char now[32];
	argv[0] = s->cfg.key_prefix;
	argv[1] = FMT_NUM(now, clock_now());
	argv[2] = "1000";
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[3 + i] = s->cfg.queues[i].name;
	redis_call(s->redis, "promote", 3 + s->cfg.nqueues, argv, NULL, promote_reply, NULL);
}

void
jobs_requeue_unstarted(struct server *s)
{
	struct job *j;
	while ((j = job_ready_pop(s)) != NULL)
		op_start(s, j, OP_REQUEUE);
	for (j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->phase == PHASE_FETCHED && j->op == OP_NONE)
			op_start(s, j, OP_REQUEUE);
}

/* Shutdown's deadline passed: running jobs are stopped and go back to their queues. */
void
jobs_stop_running(struct server *s)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next) {
		if (j->dead || j->phase != PHASE_RUNNING)
			continue;
		j->requeue = 1;
		pool_stop_job(s, j, SIGKILL);
	}
}

void
jobs_start(struct server *s)
{
	srand48((long)(clock_now() * 1e6) ^ getpid());
}

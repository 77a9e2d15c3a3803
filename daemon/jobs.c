/*
 * jobs: a job's way through the daemon, from fetch to the script that writes its final word.
 *
 * Every Redis write that takes a job out of this node's inflight list is a job "op" (claim, bury, schedule,
 * finish, requeue). The op is remembered on the job until its reply arrives; a reply lost with the
 * connection leaves the op pending, and node_on_connect sends it again. The scripts are idempotent for
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

static void op_send(struct server *s, struct job *j);

/* A new fetched job, linked into s->jobs, which owns it (freed by jobs_free_dead). payload is copied. */
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
		if (!j->dead || j->redis_busy || j->wf_loading)
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
		json_decref(j->wf_args);
		json_decref(j->wf_resume);
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
void
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
		return; /* connection lost: node_on_connect resends */
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
		fetch_more(s);
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

/* Sends the job's pending op if Redis is up; otherwise it waits for node_on_connect. */
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

void
job_op_start(struct server *s, struct job *j, enum job_op op)
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
	job_op_start(s, j, OP_BURY);
}

void
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
		job_op_start(s, j, OP_SCHEDULE);
		return;
	}
	j->phase = PHASE_CLAIMING;
	job_op_start(s, j, OP_CLAIM);
}

/* Acts on claim's verdict: "ok" with the attempt number, or skip, dup, dead with a detail. */
static void
claim_verdict(struct server *s, struct job *j, const char *v, const char *detail)
{
	if (v != NULL && strcmp(v, "ok") == 0) {
		j->op = OP_NONE;
		j->attempt = atoi(detail ? detail : "1");
		if (j->cancelled) {
			j->outcome = JOB_CANCELLED;
			job_op_start(s, j, OP_FINISH);
			return;
		}
		if (s->shutting_down) {
			job_op_start(s, j, OP_REQUEUE);
			return;
		}
		if (j->spec.run_at > clock_now() + 0.001) {
			job_op_start(s, j, OP_SCHEDULE);
			return;
		}
		if (workflows_claimed(s, j))
			return;
		job_ready_push(s, j);
		pool_dispatch(s);
		return;
	}
	if (v != NULL && strcmp(v, "paused") == 0) {
		/* Its queue was paused after a blocking fetch took it: claim put it back; stop waiting on it. */
		for (int i = 0; i < s->cfg.nqueues; i++)
			if (strcmp(s->cfg.queues[i].name, j->queue) == 0)
				s->paused[i] = 1;
		log_debug("job %s: queue %s is paused; returned to it", j->spec.id, j->queue);
		job_done(s, j);
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
void
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
	if (j->cancelled) {
		/* Redis says cancelled already (terminal): finish only takes it out of the inflight list. */
		free(j->error);
		j->error = xstrdup("cancelled");
		j->outcome = JOB_CANCELLED;
		metrics_attempt(s, j->queue, j->spec.type, "cancelled", took);
		if (j->row > 0)
			store_attempt_finish(s->store, j->row, "cancelled", now, j->error, NULL);
		job_op_start(s, j, OP_FINISH);
		fetch_more(s);
		return;
	}
	if (j->requeue) {
		log_info("job %s: stopped by shutdown; back to the head of queue %s", j->spec.id, j->queue);
		if (j->row > 0)
			store_attempt_finish(s->store, j->row, "requeued", now, "stopped by shutdown", NULL);
		job_op_start(s, j, OP_REQUEUE);
		return;
	}
	j->outcome = job_outcome(j->ok, j->retryable, j->attempt, j->spec.max_attempts);
	metrics_attempt(s, j->queue, j->spec.type, job_state_name(j->outcome), took);
	if (j->outcome == JOB_RETRYING) {
		double base = j->spec.backoff_base_s, max = j->spec.backoff_max_s;
		j->retry_at = now + job_backoff_s(j->attempt, base, max, drand48());
	}
	if (j->outcome != JOB_SUCCEEDED)
		log_info("job %s (%s) attempt %d/%d: %s -> %s", j->spec.id, j->spec.type, j->attempt,
		         j->spec.max_attempts, j->error ? j->error : "", job_state_name(j->outcome));
	if (j->row > 0)
		store_attempt_finish(s->store, j->row, job_state_name(j->outcome), now, j->error, j->result);
	job_op_start(s, j, OP_FINISH);
	fetch_more(s);
}

void
jobs_requeue_unstarted(struct server *s)
{
	struct job *j;
	while ((j = job_ready_pop(s)) != NULL)
		job_op_start(s, j, OP_REQUEUE);
	for (j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->phase == PHASE_FETCHED && j->op == OP_NONE)
			job_op_start(s, j, OP_REQUEUE);
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

/*
 * A cancel through the control socket (it already wrote the job cancelled in Redis). A job this daemon
 * holds stops here: waiting for a worker, it is dropped (finish takes it out of the inflight list); running,
 * its worker gets SIGTERM, then SIGKILL after kill_grace_s, and the attempt ends cancelled.
 */
void
jobs_cancel(struct server *s, const char *id)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next) {
		if (j->dead || j->cancelled || strcmp(j->spec.id, id) != 0)
			continue;
		j->cancelled = 1;
		if (j->phase == PHASE_READY) {
			log_info("job %s: cancelled before it started", id);
			job_ready_remove(s, j);
			j->phase = PHASE_FETCHED;
			j->outcome = JOB_CANCELLED;
			job_op_start(s, j, OP_FINISH);
		} else if (j->phase == PHASE_RUNNING)
			pool_cancel_job(s, j);
		/* FETCHED / CLAIMING: the claim reply sees j->cancelled (or the claim finds it terminal). */
	}
}

void
jobs_start(struct server *s)
{
	srand48((long)(clock_now() * 1e6) ^ getpid());
}

void
jobs_resend(struct server *s)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead)
			op_send(s, j);
}

void
jobs_retry_failed_ops(struct server *s)
{
	double now = clock_now();
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->op != OP_NONE && !j->redis_busy && j->op_retry_at > 0 && j->op_retry_at <= now)
			op_send(s, j);
}

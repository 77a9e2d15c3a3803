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
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

static void op_send(struct server *s, struct job *j);

/* The job no longer waits for a commit (of its row's start or of its end). */
static void
commit_wait_clear(struct server *s, struct job *j)
{
	int n = (j->await_commit != 0) + (j->run_await != 0);
	j->await_commit = 0;
	j->run_await = 0;
	s->nawait_commit = s->nawait_commit > n ? s->nawait_commit - n : 0;
}

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
	commit_wait_clear(s, j);
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
		free(j->dead_id);
		free(j->admitted);
		free(j->park_reason);
		json_decref(j->wf_args);
		json_decref(j->wf_resume);
		free(j);
	}
}

void
job_ready_push(struct server *s, struct job *j)
{
	j->phase = PHASE_READY;
	j->ready_at = clock_mono();
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

/* --- the ops: one function builds each call (rfunc.c's table); op_reply routes the answer --- */

static void claim_done(struct server *s, struct job *j, const struct redis_reply *r);

/* Monotonic seconds, for every interval the daemon measures itself. */
static double
mono(void)
{
	return clock_monotonic_ms() / 1000.0;
}

/* The reply's verdict word: the string itself, or the first element of an array. */
static const char *
verdict_of(const struct redis_reply *r)
{
	if (rr_type(r) == RR_ARRAY)
		r = rr_elem(r, 0);
	return r != NULL ? rr_str(r, NULL) : NULL;
}

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
		j->op_retry_at = mono() + 1;
		return;
	}
	const char *v = verdict_of(r);
	switch (j->op) {
	case OP_CLAIM: claim_done(s, j, r); break;
	case OP_FINISH:
		if (v != NULL && strcmp(v, "superseded") == 0) {
			log_warn("job %s: attempt %d (fence %lld) was superseded: its outcome %s was not applied",
			         j->spec.id, j->attempt, (long long)j->fence, job_state_name(j->outcome));
			/* Its row was committed with the outcome before Redis answered: mark it superseded. */
			if (j->row > 0)
				store_attempt_restate(s->store, j->spec.id, j->fence, "superseded",
				                      "superseded: another claim took the job over");
		} else if (j->outcome == JOB_SUCCEEDED)
			s->stats_succeeded++;
		else if (job_state_terminal(j->outcome))
			s->stats_failed++;
		if (v != NULL && strcmp(v, "superseded") != 0 && job_state_terminal(j->outcome))
			jobs_park_child_ended(s, j);
		job_done(s, j);
		break;
	case OP_PARK:
		if (v != NULL && strcmp(v, "ok") != 0)
			log_warn("job %s: its park was not applied: %s", j->spec.id, v);
		job_done(s, j);
		break;
	default: job_done(s, j); break;
	}
	if (!s->shutting_down)
		fetch_more(s);
	server_maybe_exit(s);
}

static struct rcall *
job_call(struct server *s, struct job *j, enum rf f)
{
	struct rctx ctx = {.queue = j->queue,
	                   .id = j->spec.id,
	                   .idem = j->spec.idempotency_key,
	                   .owner = j->spec.owner,
	                   .flow = j->spec.flow.lock,
	                   .rl = j->spec.limits.rl_key,
	                   .cc = j->spec.limits.cc_key};
	return rcall_new(s, f, &ctx);
}

static void
common_args(struct server *s, struct rcall *c)
{
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	rcall_int(c, "max_events", s->cfg.events_max);
}

static void
dead_args(struct server *s, struct rcall *c)
{
	rcall_int(c, "dead_max", s->cfg.dead_max);
	rcall_int(c, "dead_age", (long long)s->cfg.dead_max_age_days * 86400);
}

static int
send_claim(struct server *s, struct job *j)
{
	struct rcall *c = job_call(s, j, RF_CLAIM);
	rcall_arg(c, "raw", j->payload, (long)j->payload_len);
	if (j->admitted != NULL)
		rcall_arg(c, "payload", j->admitted, (long)j->admitted_len);
	else
		rcall_arg(c, "payload", j->payload, (long)j->payload_len);
	rcall_arg(c, "id", j->spec.id, -1);
	rcall_arg(c, "type", j->spec.type, -1);
	rcall_int(c, "max_attempts", j->spec.max_attempts);
	if (j->spec.created_at > 0)
		rcall_num(c, "created_at", j->spec.created_at);
	else
		rcall_arg(c, "created_at", "", 0);
	rcall_arg(c, "owner", j->spec.owner ? j->spec.owner : "", -1);
	rcall_arg(c, "idem", j->spec.idempotency_key ? j->spec.idempotency_key : "", -1);
	rcall_num(c, "run_at", j->spec.run_at);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_arg(c, "inc", s->inc, -1);
	rcall_int(c, "max_stalls", s->cfg.max_stalls);
	char flow[JOB_FLOW_ARG_MAX];
	job_flow_arg(&j->spec.flow, flow, sizeof(flow));
	rcall_arg(c, "flow", flow, -1);
	char lim[JOB_RL_ARG_MAX];
	job_limits_arg(&j->spec.limits, lim, sizeof(lim));
	rcall_arg(c, "rl", lim, -1);
	job_limits_cc_arg(&j->spec.limits, lim, sizeof(lim));
	rcall_arg(c, "cc", lim, -1);
	common_args(s, c);
	dead_args(s, c);
	return rcall_batch(s, c, op_reply, j);
}

static int
send_bury(struct server *s, struct job *j)
{
	struct rcall *c = job_call(s, j, RF_BURY);
	rcall_arg(c, "raw", j->payload, (long)j->payload_len);
	rcall_arg(c, "entry_id", j->dead_id, -1);
	rcall_arg(c, "entry", j->dead_entry, -1);
	dead_args(s, c);
	return rcall_batch(s, c, op_reply, j);
}

static int
send_ack(struct server *s, struct job *j)
{
	struct rcall *c = job_call(s, j, RF_ACK);
	rcall_arg(c, "raw", j->payload, (long)j->payload_len);
	return rcall_batch(s, c, op_reply, j);
}

static int
send_finish(struct server *s, struct job *j)
{
	struct rcall *c = job_call(s, j, RF_FINISH);
	rcall_arg(c, "payload", j->payload, (long)j->payload_len);
	rcall_arg(c, "id", j->spec.id, -1);
	rcall_int(c, "fence", j->fence);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_arg(c, "outcome", job_state_name(j->outcome), -1);
	rcall_int(c, "attempt", j->attempt);
	rcall_arg(c, "error", j->error ? j->error : "", -1);
	rcall_arg(c, "result", j->result ? j->result : "", -1);
	rcall_num(c, "delay", j->retry_delay);
	rcall_num(c, "ran", j->ran_s);
	rcall_int(c, "pid", j->worker_pid);
	rcall_int(c, "max_attempts", j->spec.max_attempts);
	common_args(s, c);
	dead_args(s, c);
	return rcall_batch(s, c, op_reply, j);
}

static int
send_requeue(struct server *s, struct job *j)
{
	struct rcall *c = job_call(s, j, RF_REQUEUE);
	rcall_arg(c, "payload", j->payload, (long)j->payload_len);
	rcall_arg(c, "id", j->spec.id, -1);
	if (j->fence > 0)
		rcall_int(c, "fence", j->fence);
	else
		rcall_arg(c, "fence", "", 0); /* never claimed: only the message goes back */
	rcall_int(c, "attempt", j->attempt);
	common_args(s, c);
	return rcall_batch(s, c, op_reply, j);
}

static int
send_park(struct server *s, struct job *j)
{
	return rcall_batch(s, jobs_park_call(s, j), op_reply, j);
}

static const struct {
	enum job_op op;
	int (*send)(struct server *s, struct job *j);
} op_table[] = {
        {OP_CLAIM, send_claim},   {OP_BURY, send_bury},       {OP_ACK, send_ack},
        {OP_FINISH, send_finish}, {OP_REQUEUE, send_requeue}, {OP_PARK, send_park},
};

/* Sends the job's pending op if Redis is up; otherwise it waits for node_on_connect. A finish waits for the
 * commit of its attempt's row (jobs_release_finishes): the log hears the attempt's end before Redis does. */
static void
op_send(struct server *s, struct job *j)
{
	if (j->op == OP_NONE || j->redis_busy || j->await_commit || !redis_ready(s->redis))
		return;
	for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++) {
		if (op_table[i].op != j->op)
			continue;
		if (op_table[i].send(s, j) == 0) {
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
	if ((op == OP_FINISH || op == OP_PARK) && j->row > 0 && !j->await_commit) {
		j->await_commit = 1;
		s->nawait_commit++;
		return;
	}
	op_send(s, j);
}

void
jobs_release_finishes(struct server *s)
{
	if (s->nawait_commit == 0)
		return;
	s->nawait_commit = 0;
	for (struct job *j = s->jobs; j != NULL; j = j->next) {
		j->run_await = 0; /* its "running" leaves with the next jobs_flush_runs */
		if (!j->await_commit)
			continue;
		j->await_commit = 0;
		if (!j->dead)
			op_send(s, j);
	}
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

/* Best effort: the id and type a message that failed validation names, so its entry says whose it was. */
static void
salvage_names(struct job *j, char *id, size_t idlen, char *type, size_t typelen)
{
	json_t *root = json_loadb(j->payload, j->payload_len, 0, NULL);
	json_t *jid = json_object_get(root, "id"), *t = json_object_get(root, "type");
	if (json_is_string(jid) && job_name_valid(json_string_value(jid), JOB_ID_MAX))
		snprintf(id, idlen, "%s", json_string_value(jid));
	if (json_is_string(t) && job_name_valid(json_string_value(t), JOB_TYPE_MAX))
		snprintf(type, typelen, "%s", json_string_value(t));
	json_decref(root);
}

/*
 * A message that cannot become a job goes to its queue's dead set with its original bytes and the reason,
 * under an entry id of its own ("msg-" UUID): it never holds a job's id, hash or idempotency key, so a
 * malformed copy of a finished job, or a bad message whose corrected version follows, touches nothing.
 */
static void
job_bury(struct server *s, struct job *j, const char *why)
{
	char type[JOB_TYPE_MAX + 1] = "", named[JOB_ID_MAX + 1] = "", uuid[37];
	salvage_names(j, named, sizeof(named), type, sizeof(type));
	if (job_new_id(uuid) < 0)
		snprintf(uuid, sizeof(uuid), "%ld-%ld", (long)getpid(), (long)s->njobs);
	j->dead_id = xasprintf("msg-%s", uuid);
	json_t *e = json_pack("{s:s,s:s,s:s,s:f,s:i,s:s}", "id", j->dead_id, "queue", j->queue, "error", why, "died_at",
	                      clock_now(), "attempt", 0, "node", s->cfg.node_id);
	json_object_set_new(e, "type", type[0] ? json_string(type) : json_null());
	if (named[0])
		json_object_set_new(e, "message_id", json_string(named));
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
	struct store_attempt a = {.job_id = j->dead_id,
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

/* Writes the id hopperd gave a message without one into the message itself (j->admitted): from admission on,
 * every path (finish, schedule, requeue, reap, retry) sees the same job. 0, or -1 if it cannot be re-encoded. */
static int
stamp_id(struct job *j)
{
	json_t *root = json_loadb(j->payload, j->payload_len, 0, NULL);
	if (root == NULL)
		return -1;
	json_object_set_new(root, "id", json_string(j->spec.id));
	j->admitted = jsonx_dump(root);
	json_decref(root);
	if (j->admitted == NULL)
		return -1;
	j->admitted_len = strlen(j->admitted);
	return 0;
}

/* Another live job of this id and queue held here already: this message is a second copy of it. */
static struct job *
held_twin(struct server *s, const struct job *j)
{
	for (struct job *o = s->jobs; o != NULL; o = o->next)
		if (o != j && !o->dead && o->op != OP_ACK && o->op != OP_BURY && strcmp(o->spec.id, j->spec.id) == 0 &&
		    strcmp(o->queue, j->queue) == 0)
			return o;
	return NULL;
}

/* A message fetched from queue: parsed and validated here, by the one parser (common/job.c), then claimed
 * (admitted first if new) or buried. */
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
	if (j->spec.id[0] == '\0') {
		if (job_new_id(j->spec.id) < 0 || stamp_id(j) < 0) {
			job_bury(s, j, "no id given and none could be given to it");
			return;
		}
	}
	if (held_twin(s, j) != NULL) {
		log_info("job %s: a second copy of its message arrived while this node holds it: dropped", j->spec.id);
		job_op_start(s, j, OP_ACK);
		return;
	}
	j->phase = PHASE_CLAIMING;
	job_op_start(s, j, OP_CLAIM);
}

/* The stored message carries the id now (claim replaced the inflight entry): later writes use it. */
static void
adopt_admitted(struct job *j)
{
	if (j->admitted == NULL)
		return;
	free(j->payload);
	j->payload = j->admitted;
	j->payload_len = j->admitted_len;
	j->admitted = NULL;
}

/* Acts on claim's verdict (see 01_claim.lua). */
static void
claim_verdict(struct server *s, struct job *j, const char *v, const char *detail, long long fence, double created_at)
{
	if (v != NULL && strcmp(v, "ok") == 0) {
		adopt_admitted(j);
		j->op = OP_NONE;
		j->superseded = 0; /* a claim made now holds the job, whatever happened before it */
		j->attempt = atoi(detail ? detail : "1");
		j->fence = fence;
		j->created_at = created_at;
		if (j->cancelled) {
			j->outcome = JOB_CANCELLED;
			job_op_start(s, j, OP_FINISH);
			return;
		}
		if (s->shutting_down) {
			job_op_start(s, j, OP_REQUEUE);
			return;
		}
		if (workflows_claimed(s, j))
			return;
		job_ready_push(s, j);
		pool_dispatch(s);
		return;
	}
	if (v != NULL && strcmp(v, "limited") == 0) {
		log_debug("job %s: waits for a slot of concurrency key %s", j->spec.id, detail ? detail : "?");
		job_done(s, j);
		return;
	}
	if (v != NULL && (strcmp(v, "paused") == 0 || strcmp(v, "scheduled") == 0)) {
		if (v[0] == 'p')
			for (int i = 0; i < s->cfg.nqueues; i++)
				if (strcmp(s->cfg.queues[i].name, j->queue) == 0)
					s->paused[i] = 1;
		log_debug("job %s: %s", j->spec.id,
		          v[0] == 'p' ? "its queue is paused; returned to it"
		                      : "delayed: waits in its queue's scheduled set");
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
		                          .created_at = j->spec.created_at > 0 ? j->spec.created_at : clock_now(),
		                          .started_at = clock_now(),
		                          .owner = j->spec.owner};
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
	const struct redis_reply *arg = rr_elem(r, 1), *f = rr_elem(r, 2), *ca = rr_elem(r, 3);
	char detail[32];
	const char *d = NULL;
	if (arg != NULL && rr_type(arg) == RR_INTEGER) {
		snprintf(detail, sizeof(detail), "%lld", rr_int(arg));
		d = detail;
	} else if (arg != NULL)
		d = rr_str(arg, NULL);
	const char *cas = ca != NULL ? rr_str(ca, NULL) : NULL;
	claim_verdict(s, j, verdict_of(r), d, f != NULL ? rr_int(f) : 0, cas != NULL ? strtod(cas, NULL) : 0);
}

/* --- running --- */

/*
 * This attempt lost its fencing token (a later claim owns the job) or this node was reaped: it stops, its
 * row is marked superseded, and nothing of its outcome reaches Redis. A job not yet on a worker is dropped
 * (its inflight copy acknowledged); a running one is killed like a cancel and ends in jobs_attempt_done.
 */
void
jobs_supersede(struct server *s, struct job *j, const char *why)
{
	if (j->dead || j->superseded)
		return;
	j->superseded = 1;
	log_warn("job %s: attempt %d (fence %lld) superseded: %s; stopping it", j->spec.id, j->attempt,
	         (long long)j->fence, why);
	if (j->phase == PHASE_RUNNING) {
		pool_cancel_job(s, j);
		return;
	}
	if (j->phase == PHASE_READY)
		job_ready_remove(s, j);
	if (j->phase == PHASE_FINISHING || j->redis_busy)
		return; /* its finish (or claim) reply decides */
	j->phase = PHASE_FETCHED;
	job_op_start(s, j, OP_ACK);
}

void
jobs_supersede_all(struct server *s, const char *why)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->fence > 0)
			jobs_supersede(s, j, why);
}

/* A run/progress reply: 'terminal' stops the attempt as cancelled, 'superseded' supersedes it. The job is
 * found by id and fence (it may be gone by the time the reply comes). */
struct fenced_ref {
	char id[JOB_ID_MAX + 1];
	char queue[QUEUE_NAME_MAX + 1];
	int64_t fence;
};

static void
run_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct fenced_ref *ref = priv;
	const char *v = r != NULL && rr_type(r) != RR_ERROR ? verdict_of(r) : NULL;
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("redis: run/progress of job %s: %s", ref->id, rr_str(r, NULL));
	if (v != NULL && (strcmp(v, "terminal") == 0 || strcmp(v, "superseded") == 0)) {
		for (struct job *j = s->jobs; j != NULL; j = j->next) {
			if (j->dead || j->fence != ref->fence || strcmp(j->spec.id, ref->id) != 0 ||
			    strcmp(j->queue, ref->queue) != 0)
				continue;
			if (v[0] == 's')
				jobs_supersede(s, j, "Redis holds another fencing token");
			else
				jobs_cancel(s, j->spec.id);
		}
	}
	free(ref);
}

static struct fenced_ref *
fref(const struct job *j)
{
	struct fenced_ref *ref = xcalloc(1, sizeof(*ref));
	snprintf(ref->id, sizeof(ref->id), "%s", j->spec.id);
	snprintf(ref->queue, sizeof(ref->queue), "%s", j->queue);
	ref->fence = j->fence;
	return ref;
}

/* Writes "running" for a job a worker took (hopper_run). Its reply may stop the attempt (see run_reply). */
static void
send_run(struct server *s, struct job *j)
{
	j->run_pending = 0;
	struct rcall *c = job_call(s, j, RF_RUN);
	rcall_arg(c, "id", j->spec.id, -1);
	rcall_int(c, "fence", j->fence);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_int(c, "pid", j->worker_pid);
	rcall_int(c, "attempt", j->attempt);
	rcall_int(c, "max_attempts", j->spec.max_attempts);
	common_args(s, c);
	struct fenced_ref *ref = fref(j);
	if (rcall_batch(s, c, run_reply, ref) != 0)
		free(ref);
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
	j->started_mono = mono();
	struct store_attempt a = {.job_id = j->spec.id,
	                          .type = j->spec.type,
	                          .queue = j->queue,
	                          .node = s->cfg.node_id,
	                          .attempt = j->attempt,
	                          .worker_pid = (int)j->worker_pid,
	                          .fence = j->fence,
	                          .created_at = j->created_at,
	                          .started_at = j->started_at,
	                          .owner = j->spec.owner};
	j->row = store_attempt_start(s->store, &a);
	if (j->row > 0) { /* Redis hears of the attempt only once its row is committed (F4) */
		j->run_await = 1;
		s->nawait_commit++;
	}
	celery_events_job(s, j); /* task-started */
}

void
jobs_flush_runs(struct server *s)
{
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (j->run_pending && !j->run_await && !j->dead && j->phase == PHASE_RUNNING)
			send_run(s, j);
}

void
jobs_progress(struct server *s, struct job *j, int progress, const char *stage, const char *message)
{
	if (j->superseded)
		return;
	if (j->run_await) { /* the row first: commit now, or keep the progress for the log alone */
		if (store_flush(s->store) == 1) {
			if (j->row > 0)
				store_event(s->store, j->row, clock_now(), "progress", NULL, progress, stage, message);
			return;
		}
		jobs_release_finishes(s);
	}
	if (j->run_pending)
		send_run(s, j); /* progress is written only onto a running job */
	struct rcall *c = job_call(s, j, RF_PROGRESS);
	rcall_arg(c, "id", j->spec.id, -1);
	rcall_int(c, "fence", j->fence);
	rcall_int(c, "attempt", j->attempt);
	rcall_int(c, "progress", progress);
	rcall_arg(c, "stage", stage ? stage : "", -1);
	rcall_arg(c, "message", message ? message : "", -1);
	common_args(s, c);
	struct fenced_ref *ref = fref(j);
	if (rcall_batch(s, c, run_reply, ref) != 0)
		free(ref);
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
	double took = mono() - j->started_mono;
	j->ran_s = took;
	s->avg_job_s = s->avg_job_s > 0 ? s->avg_job_s + (took - s->avg_job_s) / 16 : took;
	j->run_pending = 0; /* finish (or requeue) records the start too */
	if (j->run_await) { /* the finish waits for the commit instead */
		j->run_await = 0;
		if (s->nawait_commit > 0)
			s->nawait_commit--;
	}
	if (j->superseded) {
		metrics_attempt(s, j->queue, j->spec.type, "superseded", took);
		if (j->row > 0)
			store_attempt_finish(s->store, j->row, "superseded", now,
			                     "superseded: another claim took the job over", NULL);
		job_op_start(s, j, OP_ACK);
		return;
	}
	if (j->timed_out) {
		char *e = xasprintf("timed out after %g s%s%s", j->spec.timeout_s, j->error ? ": " : "",
		                    j->error ? j->error : "");
		free(j->error);
		j->error = e;
		j->ok = 0;
		j->retryable = !celery_timeout_final(s, j); /* Celery's SoftTimeLimitExceeded is not retried */
	}
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
	if (j->parked && !j->timed_out) {
		jobs_park(s, j, took);
		return;
	}
	j->outcome = job_outcome(j->ok, j->retryable, j->attempt, j->spec.max_attempts);
	metrics_attempt(s, j->queue, j->spec.type, job_state_name(j->outcome), took);
	if (j->outcome == JOB_RETRYING) {
		double base = j->spec.backoff_base_s, max = j->spec.backoff_max_s;
		j->retry_delay = job_backoff_s(j->attempt, base, max, drand48());
	}
	if (j->outcome != JOB_SUCCEEDED)
		log_info("job %s (%s) attempt %d/%d: %s -> %s", j->spec.id, j->spec.type, j->attempt,
		         j->spec.max_attempts, j->error ? j->error : "", job_state_name(j->outcome));
	if (j->row > 0)
		store_attempt_finish(s->store, j->row, job_state_name(j->outcome), now, j->error, j->result);
	celery_events_job(s, j); /* task-succeeded / -failed / -retried */
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
		if (j->dead || j->cancelled || j->superseded || strcmp(j->spec.id, id) != 0)
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

/* --- after every resubscribe: the held jobs' states, read in one call per queue --- */

struct held_check {
	char queue[QUEUE_NAME_MAX + 1];
	size_t n;
	struct fenced_ref *refs;
};

static void
held_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct held_check *h = priv;
	for (size_t i = 0; r != NULL && rr_type(r) == RR_ARRAY && i < h->n && 2 * i + 1 < rr_count(r); i++) {
		const char *st = rr_str(rr_elem(r, 2 * i), NULL), *fence = rr_str(rr_elem(r, 2 * i + 1), NULL);
		if (st == NULL || fence == NULL)
			continue;
		for (struct job *j = s->jobs; j != NULL; j = j->next) {
			if (j->dead || j->fence != h->refs[i].fence || strcmp(j->spec.id, h->refs[i].id) != 0 ||
			    strcmp(j->queue, h->queue) != 0)
				continue;
			if (strtoll(fence, NULL, 10) != j->fence)
				jobs_supersede(s, j, "Redis holds another fencing token");
			else if (strcmp(st, "cancelled") == 0)
				jobs_cancel(s, j->spec.id);
		}
	}
	free(h->refs);
	free(h);
}

void
jobs_recheck_held(struct server *s)
{
	for (int q = 0; q < s->cfg.nqueues; q++) {
		const char *queue = s->cfg.queues[q].name;
		struct rctx ctx = {.queue = queue};
		struct rcall *c = NULL;
		struct held_check *h = NULL;
		size_t cap = 0;
		for (struct job *j = s->jobs; j != NULL; j = j->next) {
			if (j->dead || j->fence <= 0 || strcmp(j->queue, queue) != 0)
				continue;
			if (c == NULL) {
				c = rcall_new(s, RF_HELD, &ctx);
				h = xcalloc(1, sizeof(*h));
				snprintf(h->queue, sizeof(h->queue), "%s", queue);
			}
			if (h->n == cap) {
				cap = cap ? cap * 2 : 16;
				h->refs = xrealloc(h->refs, cap * sizeof(*h->refs));
			}
			struct fenced_ref *ref = fref(j);
			h->refs[h->n++] = *ref;
			free(ref);
			struct rctx jc = {.queue = queue, .id = j->spec.id};
			rcall_key(c, RK_JOB, &jc);
		}
		if (c != NULL && rcall_send(s, c, held_reply, h) != 0) {
			free(h->refs);
			free(h);
		}
	}
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
	double now = mono();
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead && j->op != OP_NONE && !j->redis_busy && j->op_retry_at > 0 && j->op_retry_at <= now)
			op_send(s, j);
}

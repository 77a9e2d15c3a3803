/*
 * workflows: hopperd's side of workflow.run (the engine itself runs in the worker, worker/workflow/).
 *
 *   - Before a claimed workflow.run job goes to a worker, its stored workflow (args.workflow) is resolved from
 *     SQLite and the step records of earlier attempts are loaded from Redis (P job:ID:steps); both travel in
 *     the JOB frame (args.definition, "resume").
 *   - STEP frames: each step execution becomes a workflow_steps row; a final outcome is also written to
 *     P job:ID:steps, and the worker's REPLY goes out only once Redis has confirmed that write, so the worker
 *     never starts the next step before the previous one's outcome is durable.
 *   - ENQUEUE and QUERY frames: an enqueue step submits a child job and asks after it.
 *   - Stored workflows: put/get/list/rm over json_t, for the control socket's ops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl_proto.h"
#include "hopperd.h"
#include "job_ns.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "workflow.h"
#include "xmalloc.h"

/* Step outputs in workflow_steps rows are excerpts: the full (masked) output is in Redis until it expires. */
#define STEP_EXCERPT_MAX  2048
#define WORKFLOW_NAME_MAX 128

/* Who a delayed REPLY goes to: the worker is found again by pid and job id (it may be gone by then). */
struct pending_reply {
	pid_t pid;
	char job_id[JOB_ID_MAX + 1];
	char child[JOB_ID_MAX + 1];
};

static struct pending_reply *
pending_new(const struct worker *w, const char *child)
{
	struct pending_reply *p = xcalloc(1, sizeof(*p));
	p->pid = w->pid;
	snprintf(p->job_id, sizeof(p->job_id), "%s", w->job ? w->job->spec.id : "");
	snprintf(p->child, sizeof(p->child), "%s", child ? child : "");
	return p;
}

/* Sends a REPLY to the worker still running job_id, if there is one. Takes ownership of reply. */
static void
reply_to(struct server *s, pid_t pid, const char *job_id, json_t *reply)
{
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (w->pid != pid || w->fd < 0 || w->job == NULL || strcmp(w->job->spec.id, job_id) != 0)
			continue;
		char *text = jsonx_dump(reply);
		if (pool_send(w, FRAME_REPLY, text, strlen(text)) < 0)
			log_warn("worker %d: cannot send it a reply", (int)pid);
		free(text);
		break;
	}
	json_decref(reply);
}

static json_t *
refusal(const char *why)
{
	return json_pack("{s:b,s:s}", "ok", 0, "error", why);
}

/* --- before dispatch: stored definition and resume records --- */

/*
 * args with "definition" from the stored workflow, or with "resolve_error". New reference. A job submitted
 * through the control socket carries its definition already (ctl_workflow_resolve checked the owner then);
 * one that reaches here by name with an owner may use only that owner's workflow (the same rule,
 * ctl_owner_allows, without admin): another owner's answers "does not exist", like a missing one.
 */
static json_t *
resolve_stored(struct server *s, json_t *args, const char *name, const char *job_owner)
{
	json_t *out = json_deep_copy(args);
	struct store_workflow w;
	int found = store_workflow_get(s->store, name, &w);
	if (found == 1 && job_owner != NULL && job_owner[0] != '\0' && !ctl_owner_allows(0, job_owner, w.owner)) {
		store_workflow_free(&w);
		found = 0;
	}
	json_t *def = found == 1 ? json_loads(w.definition, 0, NULL) : NULL;
	if (found == 1 && w.active && json_is_object(def))
		json_object_set_new(out, "definition", def);
	else {
		json_decref(def);
		char *why = xasprintf("stored workflow %s %s", name,
		                      found < 0    ? "could not be read"
		                      : found == 0 ? "does not exist"
		                      : !w.active  ? "is not active"
		                                   : "has a definition that is not a JSON object");
		json_object_set_new(out, "resolve_error", json_string(why));
		free(why);
	}
	if (found == 1)
		store_workflow_free(&w);
	return out;
}

static void
resume_loaded(struct server *s, const struct redis_reply *r, void *priv)
{
	struct job *j = priv;
	j->wf_loading = 0;
	if (r == NULL || rr_type(r) != RR_ARRAY || s->shutting_down) {
		/* No records means the run would repeat steps: it goes back to its queue until Redis answers. */
		log_warn("job %s: cannot load its workflow step records; back to its queue", j->spec.id);
		job_op_start(s, j, OP_REQUEUE);
		return;
	}
	json_t *resume = json_object();
	for (size_t i = 0; i + 1 < rr_count(r); i += 2) {
		const char *step = rr_str(rr_elem(r, i), NULL);
		size_t len = 0;
		const char *rec = rr_str(rr_elem(r, i + 1), &len);
		json_t *v = rec ? json_loadb(rec, len, 0, NULL) : NULL;
		if (step != NULL && v != NULL)
			json_object_set_new(resume, step, v);
		else
			json_decref(v);
	}
	if (json_object_size(resume) > 0) {
		log_info("job %s: attempt %d resumes after %zu recorded steps", j->spec.id, j->attempt,
		         json_object_size(resume));
		j->wf_resume = resume;
	} else
		json_decref(resume);
	job_ready_push(s, j);
	pool_dispatch(s);
}

int
workflows_claimed(struct server *s, struct job *j)
{
	if (strcmp(j->spec.type, "workflow.run") != 0)
		return 0;
	const char *name = json_string_value(json_object_get(j->spec.args, "workflow"));
	if (name != NULL && json_object_get(j->spec.args, "definition") == NULL)
		j->wf_args = resolve_stored(s, j->spec.args, name, j->spec.owner);
	struct rctx ctx = {.queue = j->queue, .id = j->spec.id};
	char *key = rkey_name(s, RK_STEPS, &ctx);
	const char *argv[] = {"HGETALL", key};
	j->wf_loading = 1;
	int rc = redis_command(s->redis, 2, argv, NULL, resume_loaded, j);
	free(key);
	if (rc < 0) {
		j->wf_loading = 0;
		job_op_start(s, j, OP_REQUEUE);
	}
	return 1;
}

/* --- STEP --- */

static void
step_saved(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending_reply *p = priv;
	if (r == NULL || rr_type(r) == RR_ERROR)
		reply_to(s, p->pid, p->job_id, refusal(r ? rr_str(r, NULL) : "Redis connection lost"));
	else if (rr_type(r) == RR_STRING && strcmp(rr_str(r, NULL), "superseded") == 0) {
		reply_to(s, p->pid, p->job_id, refusal("this attempt was superseded"));
		for (struct job *j = s->jobs; j != NULL; j = j->next)
			if (!j->dead && j->worker != NULL && j->worker->pid == p->pid)
				jobs_supersede(s, j, "its step record was refused: Redis holds another fencing token");
	} else
		reply_to(s, p->pid, p->job_id, json_pack("{s:b}", "ok", 1));
	free(p);
}

/* A record's "after" (the step ids it depends on, which workflow.restart reads in Redis): an array of at most
 * WF_STEPS_MAX step ids. Anything else is left out of the record, which a restart then treats as depending
 * on every step (it re-runs rather than keeps). */
static int
after_valid(const json_t *after)
{
	if (!json_is_array(after) || json_array_size(after) > WF_STEPS_MAX)
		return 0;
	size_t i;
	json_t *v;
	json_array_foreach(after, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > WF_ID_MAX)
			return 0;
	}
	return 1;
}

static void
step_frame(struct server *s, struct worker *w, struct job *j, json_t *o)
{
	char why[128];
	const char *step = NULL, *type = NULL, *state = NULL, *error = NULL;
	long long attempt = 0;
	double started = 0, finished = 0;
	int resume = 0;
	jsonx_string(o, "step", 64, &step, why, sizeof(why));
	jsonx_string(o, "type", 64, &type, why, sizeof(why));
	jsonx_string(o, "state", 32, &state, why, sizeof(why));
	jsonx_string(o, "error", 64 * 1024, &error, why, sizeof(why));
	jsonx_int(o, "attempt", 0, 1000, &attempt, why, sizeof(why));
	jsonx_number(o, "started_at", 0, 1e11, &started, why, sizeof(why));
	jsonx_number(o, "finished_at", 0, 1e11, &finished, why, sizeof(why));
	jsonx_bool(o, "resume", &resume, why, sizeof(why));
	if (step == NULL || state == NULL) {
		reply_to(s, w->pid, j->spec.id, refusal("a step record needs step and state"));
		return;
	}
	json_t *output = json_object_get(o, "output");
	char *out_text = output ? jsonx_dump(output) : NULL;
	if (out_text != NULL && strlen(out_text) > STEP_EXCERPT_MAX)
		memcpy(out_text + STEP_EXCERPT_MAX - 3, "...", 4);
	struct store_step row = {.attempt_row = j->row,
	                         .job_id = j->spec.id,
	                         .step_id = step,
	                         .type = type,
	                         .state = state,
	                         .step_attempt = (int)attempt,
	                         .run_attempt = j->attempt,
	                         .started_at = started,
	                         .finished_at = finished,
	                         .output = out_text,
	                         .error = error};
	store_step(s->store, &row);
	free(out_text);
	/* A stopped step (shutdown, a lost record) resumes from what it left before, e.g. a parked wait's record.
	 * A failure that a later attempt must not take over still replaces that record, so that a retried run
	 * starts the step afresh (a wait gets a new window, not the old one's past deadline). */
	if (!resume && strcmp(state, "failed") != 0) {
		reply_to(s, w->pid, j->spec.id, json_pack("{s:b}", "ok", 1));
		return;
	}
	json_t *rec = json_pack("{s:s,s:I,s:I,s:f}", "state", resume ? state : "abandoned", "attempt",
	                        (json_int_t)attempt, "run_attempt", (json_int_t)j->attempt, "finished_at", finished);
	if (output != NULL)
		json_object_set(rec, "output", output);
	json_t *after = json_object_get(o, "after");
	if (after_valid(after))
		json_object_set(rec, "after", after);
	char *text = jsonx_dump(rec);
	json_decref(rec);
	struct rctx ctx = {.queue = j->queue, .id = j->spec.id};
	struct rcall *c = rcall_new(s, RF_STEP_SAVE, &ctx);
	rcall_int(c, "fence", j->fence);
	rcall_arg(c, "step", step, -1);
	rcall_arg(c, "record", text, -1);
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	struct pending_reply *p = pending_new(w, NULL);
	if (rcall_batch(s, c, step_saved, p) < 0) {
		free(p);
		reply_to(s, w->pid, j->spec.id, refusal("Redis is unreachable"));
	}
	free(text);
}

/* --- ENQUEUE and QUERY --- */

/*
 * A child job belongs to its parent's owner (whatever the step says). What the step learns about a job of
 * the child's id follows the rule of schema/control-protocol.md ("Job ids and other owners"): a job of
 * another owner answers exactly like a free id - the enqueue "succeeds" with existed false, and its queries
 * say queued, with no result or error - and is left untouched.
 */
struct pending_child {
	struct pending_reply r;
	char owner[JOB_OWNER_MAX + 1]; /* the parent's; "" for none */
};

static struct pending_child *
pending_child_new(const struct worker *w, const struct job *j, const char *child)
{
	struct pending_child *p = xcalloc(1, sizeof(*p));
	struct pending_reply *r = pending_new(w, child);
	p->r = *r;
	free(r);
	snprintf(p->owner, sizeof(p->owner), "%s", j->spec.owner ? j->spec.owner : "");
	return p;
}

/* 1 if the parent (owner, "" for none) may learn about a job whose hash says owner job_owner (NULL: none). */
static int
child_visible(const char *owner, const char *job_owner)
{
	return strcmp(owner, job_owner != NULL ? job_owner : "") == 0;
}

static void
enqueued(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending_child *p = priv;
	if (r == NULL || rr_type(r) != RR_ARRAY)
		reply_to(s, p->r.pid, p->r.job_id, refusal(r ? rr_str(r, NULL) : "Redis connection lost"));
	else {
		const char *verdict = rr_str(rr_elem(r, 0), NULL), *holder = rr_str(rr_elem(r, 1), NULL);
		int dup = verdict != NULL && strcmp(verdict, "duplicate") == 0;
		if (dup && (holder == NULL || strcmp(holder, p->r.job_id) == 0))
			/* the run itself holds the child's key: waiting on it would wait on itself */
			reply_to(s, p->r.pid, p->r.job_id,
			         refusal(holder == NULL ? "the child's key is held by a job hopperd cannot name"
			                                : "the child's unique key is held by this run itself"));
		else if (dup) /* the key is the owner's: its own job */
			reply_to(s, p->r.pid, p->r.job_id,
			         json_pack("{s:b,s:s,s:b,s:s}", "ok", 1, "job_id", p->r.child, "existed", 1,
			                   "duplicate_of", holder));
		else {
			int existed = verdict != NULL && strcmp(verdict, "exists") == 0 &&
			              child_visible(p->owner, rr_str(rr_elem(r, 2), NULL));
			reply_to(s, p->r.pid, p->r.job_id,
			         json_pack("{s:b,s:s,s:b}", "ok", 1, "job_id", p->r.child, "existed", existed));
		}
	}
	free(p);
}

static void
enqueue_frame(struct server *s, struct worker *w, struct job *j, json_t *o)
{
	const char *queue = json_string_value(json_object_get(o, "queue"));
	json_t *child = json_object_get(o, "job");
	if (queue == NULL || !job_name_valid(queue, QUEUE_NAME_MAX) || !json_is_object(child)) {
		reply_to(s, w->pid, j->spec.id, refusal("enqueue needs a valid queue and a job object"));
		return;
	}
	json_object_set_new(child, "created_at", json_real(clock_now()));
	if (j->spec.owner != NULL)
		json_object_set_new(child, "owner", json_string(j->spec.owner)); /* the parent's, never the step's */
	else
		json_object_del(child, "owner");
	/* A child the step waits for names its parent, whose run parks until the child's end wakes it
	 * (jobs_park.c); the daemon says who the parent is, never the step. */
	if (json_is_true(json_object_get(o, "wait")))
		json_object_set_new(child, "parent", json_pack("{s:s,s:s}", "id", j->spec.id, "queue", j->queue));
	else
		json_object_del(child, "parent");
	char *text = jsonx_dump(child);
	struct job_spec spec;
	char err[512];
	int bad = job_parse(text, strlen(text), queue, &s->defaults, &spec, err, sizeof(err)) < 0;
	/* A child takes its parent's id namespace (common/job_ns.h): a prefixed parent's child id must carry
	 * the same prefix, so a step never reaches an id of another owner. */
	int foreign = !bad && job_ns_reserved(j->spec.id) && strncmp(spec.id, j->spec.id, JOB_NS_PREFIX_LEN) != 0;
	if (bad || spec.id[0] == '\0' || foreign) {
		reply_to(s, w->pid, j->spec.id,
		         refusal(bad       ? err
		                 : foreign ? "the child id must be in the parent's id namespace"
		                           : "the child job needs an id"));
		if (!bad)
			job_spec_free(&spec);
		free(text);
		return;
	}
	struct rctx ctx = {.queue = queue,
	                   .id = spec.id,
	                   .idem = spec.idempotency_key,
	                   .owner = spec.owner,
	                   .flow = spec.flow.lock};
	struct rcall *c = rcall_new(s, RF_ENQUEUE, &ctx);
	rcall_arg(c, "id", spec.id, -1);
	rcall_arg(c, "type", spec.type, -1);
	rcall_int(c, "max_attempts", spec.max_attempts);
	rcall_num(c, "created_at", spec.created_at);
	rcall_arg(c, "owner", spec.owner ? spec.owner : "", -1);
	rcall_arg(c, "idem", spec.idempotency_key ? spec.idempotency_key : "", -1);
	rcall_arg(c, "payload", text, -1);
	char flow[JOB_FLOW_ARG_MAX];
	job_flow_arg(&spec.flow, flow, sizeof(flow));
	rcall_arg(c, "flow", flow, -1);
	rcall_num(c, "run_at", spec.run_at);
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	rcall_int(c, "max_events", s->cfg.events_max);
	ctl_known_queue(s, queue);
	struct pending_child *p = pending_child_new(w, j, spec.id);
	if (rcall_batch(s, c, enqueued, p) < 0) {
		free(p);
		reply_to(s, w->pid, j->spec.id, refusal("Redis is unreachable"));
	}
	job_spec_free(&spec);
	free(text);
}

static void
queried(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending_child *p = priv;
	if (r == NULL || rr_type(r) != RR_ARRAY)
		reply_to(s, p->r.pid, p->r.job_id, refusal(r ? rr_str(r, NULL) : "Redis connection lost"));
	else if (rr_str(rr_elem(r, 0), NULL) != NULL && !child_visible(p->owner, rr_str(rr_elem(r, 3), NULL)))
		/* another owner's job: what a free id just enqueued would say while it waits in its queue */
		reply_to(s, p->r.pid, p->r.job_id, json_pack("{s:b,s:s,s:n}", "ok", 1, "state", "queued", "result"));
	else {
		const char *state = rr_str(rr_elem(r, 0), NULL), *error = rr_str(rr_elem(r, 2), NULL);
		size_t len = 0;
		const char *result = rr_str(rr_elem(r, 1), &len);
		json_t *rep = json_pack("{s:b,s:s}", "ok", 1, "state", state ? state : "unknown");
		json_t *res = result ? json_loadb(result, len, JSON_DECODE_ANY, NULL) : NULL;
		json_object_set_new(rep, "result", res ? res : json_null());
		if (error != NULL)
			json_object_set_new(rep, "error", json_string(error));
		reply_to(s, p->r.pid, p->r.job_id, rep);
	}
	free(p);
}

/* --- QUERY of an event key (a wait_event step; daemon/lua/20_events.lua) --- */

static void
event_queried(struct server *s, const struct redis_reply *r, void *priv)
{
	struct pending_reply *p = priv;
	const char *verdict = r != NULL && rr_type(r) == RR_ARRAY ? rr_str(rr_elem(r, 0), NULL) : NULL;
	if (verdict == NULL)
		reply_to(s, p->pid, p->job_id,
		         refusal(r != NULL && rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "Redis connection lost"));
	else if (strcmp(verdict, "event") == 0) {
		size_t len = 0;
		const char *id = rr_str(rr_elem(r, 1), NULL), *data = rr_str(rr_elem(r, 2), &len);
		json_t *d = data != NULL ? json_loadb(data, len, 0, NULL) : NULL;
		reply_to(s, p->pid, p->job_id,
		         json_pack("{s:b,s:s,s:s,s:o}", "ok", 1, "verdict", verdict, "event", id ? id : "", "data",
		                   d != NULL ? d : json_object()));
	} else /* waiting, timeout, full */
		reply_to(s, p->pid, p->job_id, json_pack("{s:b,s:s}", "ok", 1, "verdict", verdict));
	free(p);
}

/* {"key", "since_ms", "deadline_ms"}: the run's owner's key; the run waits as "QUEUE<TAB>ID". */
static void
event_query(struct server *s, struct worker *w, struct job *j, json_t *ev)
{
	const char *key = json_string_value(json_object_get(ev, "key"));
	json_t *since = json_object_get(ev, "since_ms"), *deadline = json_object_get(ev, "deadline_ms");
	if (key == NULL || !job_name_valid(key, CTL_EVENT_KEY_MAX) || !json_is_integer(since) ||
	    !json_is_integer(deadline)) {
		reply_to(s, w->pid, j->spec.id, refusal("an event query needs key, since_ms and deadline_ms"));
		return;
	}
	/* First the hash notes the key (a cancel then takes the run off the waiters); fire and forget: a note
	 * lost leaves the waiter to its deadline, as before. */
	struct rctx jctx = {.queue = j->queue, .id = j->spec.id};
	struct rcall *note = rcall_new(s, RF_WAIT_NOTE, &jctx);
	rcall_int(note, "fence", j->fence);
	rcall_arg(note, "key", key, -1);
	rcall_batch(s, note, NULL, NULL);
	char member[QUEUE_NAME_MAX + JOB_ID_MAX + 2];
	snprintf(member, sizeof(member), "%s\t%s", j->queue, j->spec.id);
	struct rctx ctx = {.ev = key, .owner = j->spec.owner};
	struct rcall *c = rcall_new(s, RF_EVENT_WAIT, &ctx);
	rcall_int(c, "since_ms", json_integer_value(since));
	rcall_arg(c, "member", member, -1);
	rcall_int(c, "deadline_ms", json_integer_value(deadline));
	rcall_int(c, "max_waiters", s->cfg.event_max_waiters);
	struct pending_reply *p = pending_new(w, NULL);
	if (rcall_batch(s, c, event_queried, p) < 0) {
		free(p);
		reply_to(s, w->pid, j->spec.id, refusal("Redis is unreachable"));
	}
}

static void
query_frame(struct server *s, struct worker *w, struct job *j, json_t *o)
{
	json_t *ev = json_object_get(o, "event");
	if (ev != NULL) {
		event_query(s, w, j, ev);
		return;
	}
	const char *child = json_string_value(json_object_get(o, "job_id"));
	if (child == NULL || !job_name_valid(child, JOB_ID_MAX)) {
		reply_to(s, w->pid, j->spec.id, refusal("query needs a valid job_id"));
		return;
	}
	const char *queue = json_string_value(json_object_get(o, "queue"));
	if (queue == NULL || !job_name_valid(queue, QUEUE_NAME_MAX))
		queue = "default";
	struct rctx ctx = {.queue = queue, .id = child};
	char *key = rkey_name(s, RK_JOB, &ctx);
	const char *argv[] = {"HMGET", key, "state", "result", "error", "owner"};
	struct pending_child *p = pending_child_new(w, j, child);
	if (redis_command(s->redis, 6, argv, NULL, queried, p) < 0) {
		free(p);
		reply_to(s, w->pid, j->spec.id, refusal("Redis is unreachable"));
	}
	free(key);
}

int
workflows_frame(struct server *s, struct worker *w, int type, json_t *o)
{
	struct job *j = w->job;
	switch (type) {
	case FRAME_STEP: step_frame(s, w, j, o); return 0;
	case FRAME_ENQUEUE: enqueue_frame(s, w, j, o); return 0;
	case FRAME_QUERY: query_frame(s, w, j, o); return 0;
	default: return -1;
	}
}

/* --- stored workflows, for the control socket's ops --- */

static json_t *
workflow_json(const struct store_workflow *w, int with_definition)
{
	json_t *o = json_pack("{s:s,s:b,s:f,s:f}", "name", w->name, "active", w->active, "created_at", w->created_at,
	                      "updated_at", w->updated_at);
	if (w->description != NULL)
		json_object_set_new(o, "description", json_string(w->description));
	if (w->owner != NULL)
		json_object_set_new(o, "owner", json_string(w->owner));
	if (with_definition) {
		json_t *d = json_loads(w->definition, 0, NULL);
		json_object_set_new(o, "definition", d ? d : json_string(w->definition));
	}
	return o;
}

/*
 * A definition's shape: an object with a non-empty "steps" (or AutomateOS "nodes") array of objects, each
 * with a string "id" and "type". 0, or -1 with *cause (caller frees) naming the first offender.
 */
static int
shape_check(json_t *def, char **cause)
{
	json_t *steps = json_object_get(def, "steps");
	const char *what = "steps";
	if (steps == NULL) {
		steps = json_object_get(def, "nodes");
		what = "nodes";
	}
	if (!json_is_object(def) || !json_is_array(steps) || json_array_size(steps) == 0) {
		*cause = xstrdup("invalid workflow: a definition is an object with a non-empty \"steps\" array (or "
		                 "AutomateOS \"nodes\")");
		return -1;
	}
	size_t i;
	json_t *st;
	json_array_foreach(steps, i, st)
	{
		if (!json_is_object(st) || !json_is_string(json_object_get(st, "id")) ||
		    !json_is_string(json_object_get(st, "type"))) {
			*cause = xasprintf("invalid workflow: %s[%zu] needs a string \"id\" and \"type\"", what, i);
			return -1;
		}
	}
	return 0;
}

int
workflows_check(json_t *req, struct store_workflow *w, char **cause)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	json_t *def = json_object_get(req, "definition"), *active = json_object_get(req, "active");
	if (name == NULL)
		name = json_string_value(json_object_get(def, "name"));
	if (name == NULL || !job_name_valid(name, WORKFLOW_NAME_MAX)) {
		*cause = xstrdup("invalid workflow: it needs a name (--name or the definition's \"name\") of letters, "
		                 "digits and . _ : -");
		return -1;
	}
	/* The shape only: the worker validates steps in full when it runs (it holds the step table, whose http
	 * and exec entries need libcurl and the worker's allowlists). */
	if (shape_check(def, cause) < 0)
		return -1;
	const char *desc = json_string_value(json_object_get(req, "description"));
	const char *owner = json_string_value(json_object_get(req, "owner"));
	*w = (struct store_workflow){.name = xstrdup(name),
	                             .description = desc != NULL ? xstrdup(desc) : NULL,
	                             .definition = jsonx_dump(def),
	                             .owner = owner != NULL ? xstrdup(owner) : NULL,
	                             .active = active == NULL || json_is_true(active)};
	return 0;
}

json_t *
workflows_get(struct server *s, const char *name)
{
	struct store_workflow w;
	if (store_workflow_get(s->store, name, &w) != 1)
		return NULL;
	json_t *o = workflow_json(&w, 1);
	store_workflow_free(&w);
	return o;
}

static void
list_one(const struct store_workflow *w, void *arg)
{
	json_array_append_new(arg, workflow_json(w, 0));
}

json_t *
workflows_list(struct server *s)
{
	json_t *a = json_array();
	store_workflow_list(s->store, list_one, a);
	return a;
}

int
workflows_rm(struct server *s, const char *name)
{
	return store_workflow_rm(s->store, name);
}

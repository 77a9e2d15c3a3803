/*
 * celery: hopperd consumes Celery tasks (protocol v2 on kombu's Redis transport) and turns each into an
 * ordinary hopper job whose id is the Celery task id.
 *
 * The path of a message, every step atomic in Redis:
 *   1. celery_take (Lua) moves it from a Celery priority list into P celery:inflight:NODE ("queue\nmsg"),
 *      bucket-major across the consumed queues as kombu's BRPOP does, and only while the hopper queue it
 *      feeds is short (so Celery's priorities decide what runs next);
 *   2. here it is parsed and validated (common/celery_msg.c: pure) and converted: the hopper job JSON, and
 *      the messages its chain, callbacks and errbacks will publish, prepared in Celery's format;
 *   3. celery_enqueue (Lua) writes the job hash (marked Celery-sourced), pushes the job onto its hopper
 *      queue or, with an ETA ahead, into the scheduled set, and removes the raw entry; celery_refuse does the
 *      same for a message that will not run (pickle and other content types, unknown task, expired).
 * A hopperd killed between 1 and 3 leaves the message in its inflight list: a restart (or any other node,
 * once this one's heartbeat expired) converts it again; enqueue is a no-op for an entry already handled
 * and for a task id hopper already knows, so a redelivery runs nothing twice.
 * From there the core runs the job; the Lua run/progress/finish/claim operations write the Celery result
 * (STARTED, PROGRESS, SUCCESS/FAILURE/RETRY/REVOKED) and publish the next messages, in the same step as the
 * hopper state they report (daemon/lua/12_celery.lua).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery_msg.h"
#include "celery_opts.h"
#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "xmalloc.h"

#define CELERY_POLL_S    0.05  /* an idle poll costs one small FCALL: 20 per second */
#define CELERY_RECOVER_S 5.0   /* how often our own inflight entries are looked at again (lost replies) */
#define CELERY_BACKLOG_S 0.005 /* the next look when messages wait behind a full window */
/* Converted jobs a hopper queue may hold before taking more waits: enough to keep the workers busy between
 * looks, few enough that a later high-priority Celery message does not queue behind many low ones. */
#define CELERY_WINDOW_MIN      32
#define CELERY_WINDOW_PER_WORK 8

struct celery {
	ev_timer timer;
	struct celery_map map;
	struct celery_opts opts; /* celery_routes, celery_types */
	const char *queues[MAX_QUEUES];
	char *queue_buf;
	int nqueues;
	int taking;
	double last_recover;
};

static void take(struct server *s);
static json_t *chord_side(const struct server *s, const struct celery_task *t);

static void
ignore_errors(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_warn("celery: %s: %s", (const char *)priv, rr_str(r, NULL));
}

/* Where a task's result lives: the result backend's key, under kombu's global_keyprefix. Caller frees. */
static char *
result_key(const struct server *s, const char *id)
{
	return xasprintf("%scelery-task-meta-%s", s->cfg.celery_prefix, id);
}

/*
 * A message that will not run leaves the inflight list; with an id it ends as a hopper job in `state`
 * (dead or cancelled) and its Celery result says `status` with exception exc_type from exc_module.
 */
static void
refuse(struct server *s, const char *entry, size_t elen, const char *queue, const struct celery_task *t,
       const char *state, const char *status, const char *exc_type, const char *exc_module, const char *reason)
{
	char msgid[41], why[512];
	/* A parser's reason may quote the message's bytes: keep it printable ASCII, so always valid JSON text. */
	size_t k = 0;
	for (; reason[k] != '\0' && k + 1 < sizeof(why); k++)
		why[k] = reason[k] >= 0x20 && reason[k] < 0x7f ? reason[k] : '?';
	why[k] = '\0';
	const char *id = t->id;
	if (id[0] == '\0') {
		memcpy(msgid, "msg-", 4);
		if (job_new_id(msgid + 4) < 0)
			snprintf(msgid + 4, sizeof(msgid) - 4, "%d", getpid());
	}
	const char *raw = strchr(entry, '\n') + 1;
	size_t rawlen = elen - (size_t)(raw - entry);
	json_t *dead = json_pack("{s:s, s:s, s:s?, s:s, s:f, s:i, s:s}", "id", id[0] ? id : msgid, "queue", queue,
	                         "type", job_name_valid(t->task, JOB_TYPE_MAX) ? t->task : NULL, "error", why,
	                         "died_at", clock_now(), "attempt", 0, "node", s->cfg.node_id);
	json_t *payload = json_stringn(raw, rawlen); /* NULL unless valid UTF-8: then the schema's payload_b64 */
	if (payload != NULL)
		json_object_set_new(dead, "payload", payload);
	else {
		char *b64 = celery_b64_encode((const unsigned char *)raw, rawlen);
		json_object_set_new(dead, "payload_b64", json_string(b64));
		free(b64);
	}
	char *dead_entry = jsonx_dump(dead), *exc = celery_exc_encode(exc_type, exc_module, why);
	char *key = result_key(s, id);
	/* A refused chord member still counts in its chord (the body then reports the failure). */
	json_t *chord = t->embed != NULL ? chord_side(s, t) : NULL;
	char *side = NULL;
	if (chord != NULL) {
		json_t *o = json_pack("{s:s, s:s, s:o}", "bp", s->cfg.celery_prefix, "rp", s->cfg.celery_prefix,
		                      "chord", chord);
		side = jsonx_dump(o);
		json_decref(o);
	}
	struct rctx ctx = {.queue = queue, .id = id};
	struct rcall *c = rcall_new(s, RF_CELERY_REFUSE, &ctx);
	rcall_arg(c, "entry", entry, (long)elen);
	rcall_arg(c, "id", id, -1);
	rcall_arg(c, "task", job_name_valid(t->task, JOB_TYPE_MAX) ? t->task : "celery", -1); /* the hash's type */
	rcall_arg(c, "state", state, -1);
	rcall_arg(c, "error", why, -1);
	rcall_arg(c, "result_key", key, -1);
	rcall_int(c, "result_expires", s->cfg.celery_result_expires);
	rcall_arg(c, "status", status, -1);
	rcall_arg(c, "result", exc, -1);
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	rcall_int(c, "max_events", s->cfg.events_max);
	rcall_arg(c, "entry_id", id[0] ? id : msgid, -1);
	rcall_arg(c, "dead_entry", dead_entry, -1);
	rcall_int(c, "dead_max", s->cfg.dead_max);
	rcall_int(c, "dead_age", (long long)s->cfg.dead_max_age_days * 86400);
	rcall_arg(c, "payload", raw, (long)rawlen);
	rcall_arg(c, "side", side ? side : "", -1);
	log_warn("celery: task %s (%s) from queue %s: %s -> %s", id[0] ? id : "(no id)", t->task[0] ? t->task : "?",
	         queue, why, status);
	rcall_batch(s, c, ignore_errors, (void *)"refuse");
	free(side);
	free(key);
	free(exc);
	free(dead_entry);
	json_decref(dead);
}

/* A link's queue when its signature names none: the first celery_routes match, else celery_default_queue. */
static const char *
route_queue(const struct server *s, const char *task)
{
	const char *q = celery_route_queue(&s->celery->opts, task);
	return q != NULL ? q : s->cfg.celery_default_queue;
}

/* A task whose soft time limit ends it at once (SoftTimeLimitExceeded) unless celery_types says soft_retry. */
static int
soft_final(const struct server *s, const struct celery_task *t)
{
	const struct celery_type_rule *rule = celery_type_find(&s->celery->opts, t->task);
	return t->soft_time_limit > 0 && (rule == NULL || !rule->soft_retry);
}

/*
 * One signature of the task's embed, prepared for publishing: {k, ep, es, bp, bs, ins, c} (see
 * celery_encoded). chain_rest is the rest of a chain it carries on; prepend_id (errbacks) becomes its first
 * argument. Returns a new reference, or NULL for a signature hopperd cannot publish (logged).
 */
static json_t *
sig_encode(const struct server *s, const struct celery_task *t, json_t *sig, json_t *chain_rest, int insert,
           const char *prepend_id)
{
	json_t *opts = json_object_get(sig, "options"), *args = json_object_get(sig, "args");
	json_t *kwargs = json_object_get(sig, "kwargs"), *sub = json_object_get(sig, "subtask_type");
	const char *task = json_string_value(json_object_get(sig, "task"));
	if (task == NULL || (sub != NULL && !json_is_null(sub)) || (args != NULL && !json_is_array(args)) ||
	    (kwargs != NULL && !json_is_object(kwargs))) {
		log_warn("celery: task %s: a %s in its embed is not a plain task signature; not supported, skipped",
		         t->id, sub && json_is_string(sub) ? json_string_value(sub) : "signature");
		return NULL;
	}
	const char *queue = json_string_value(json_object_get(opts, "queue"));
	json_t *prio = json_object_get(opts, "priority");
	json_t *a = args ? json_copy(args) : json_array();
	if (prepend_id != NULL)
		json_array_insert_new(a, 0, json_string(prepend_id));
	char origin[300];
	snprintf(origin, sizeof(origin), "%d@%s", getpid(), s->cfg.node_id);
	struct celery_send m = {
	        .task = task,
	        .id = json_string_value(json_object_get(opts, "task_id")),
	        .queue = queue && job_name_valid(queue, CELERY_QUEUE_MAX) ? queue : route_queue(s, task),
	        .priority = json_is_integer(prio) && json_integer_value(prio) >= 0 && json_integer_value(prio) <= 9
	                            ? (int)json_integer_value(prio)
	                            : 0,
	        .args = a,
	        .kwargs = kwargs,
	        .chain = chain_rest,
	        .root_id = t->root_id[0] ? t->root_id : t->id,
	        .parent_id = t->id,
	        .origin = origin,
	        .reply_to = json_string_value(json_object_get(opts, "reply_to")),
	        .insert_result = insert && !json_is_true(json_object_get(sig, "immutable")),
	};
	struct celery_encoded e;
	char err[256];
	json_t *out = NULL;
	if (celery_encode_task(&m, &e, err, sizeof(err)) == 0) {
		out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "k", e.key, "ep", e.env_pre, "es", e.env_post,
		                "bp", e.body_pre, "bs", e.body_post, "ins", m.insert_result, "c", e.comma);
		celery_encoded_free(&e);
	} else
		log_warn("celery: task %s: cannot encode its %s link: %s", t->id, task, err);
	json_decref(a);
	return out;
}

/* Appends the prepared form of each signature in list to dst (callbacks or errbacks). */
static void
sigs_encode(const struct server *s, const struct celery_task *t, json_t *list, json_t *dst, int insert,
            const char *prepend_id)
{
	size_t i;
	json_t *sig, *e;
	if (!json_is_array(list))
		return;
	json_array_foreach(list, i, sig)
	{
		if (i < CELERY_SIGS_MAX && json_is_object(sig) && (e = sig_encode(s, t, sig, NULL, insert, prepend_id)))
			json_array_append_new(dst, e);
	}
}

/*
 * A chord header member's part of the side field: {gid, gidx, bid, body} where body is the prepared
 * message of the chord's body (the header's results go in as its first argument), or {gid, gidx, bid,
 * unsupported} when hopperd cannot publish that body: the body's result then says so (ChordError) once the
 * header completes, instead of a silent hang. NULL when the task is not in a chord. Lua: CELERY.chord_part.
 */
static json_t *
chord_side(const struct server *s, const struct celery_task *t)
{
	json_t *chord = json_object_get(t->embed, "chord");
	if (chord == NULL || json_is_null(chord))
		return NULL;
	const char *bid = json_string_value(json_object_get(json_object_get(chord, "options"), "task_id"));
	if (t->group[0] == '\0' || bid == NULL || !job_name_valid(bid, JOB_ID_MAX)) {
		log_warn("celery: task %s names a chord without a group or a body task id; ignored", t->id);
		return NULL;
	}
	json_t *sub = json_object_get(chord, "subtask_type");
	json_t *body = sub == NULL || json_is_null(sub) ? sig_encode(s, t, chord, NULL, 1, NULL) : NULL;
	json_t *c = json_pack("{s:s, s:I, s:s}", "gid", t->group, "gidx", (json_int_t)t->group_index, "bid", bid);
	/* A group as the body: its members' results are what the caller waits on; they get the error too. */
	json_t *members = json_object_get(json_object_get(chord, "kwargs"), "tasks"), *m, *more = json_array();
	size_t i;
	json_array_foreach(members, i, m)
	{
		json_t *mid = json_object_get(json_object_get(m, "options"), "task_id");
		if (i < CELERY_SIGS_MAX && json_is_string(mid) && job_name_valid(json_string_value(mid), JOB_ID_MAX))
			json_array_append(more, mid);
	}
	json_object_set_new(c, "more", more);
	if (body != NULL)
		json_object_set_new(c, "body", body);
	else
		json_object_set_new(
		        c, "unsupported",
		        json_string("hopperd cannot publish this chord's body (a group, chain or chord as the "
		                    "body is not supported)"));
	return c;
}

/*
 * The hash field `celery` of a converted job: the broker/result prefixes, the messages to publish on
 * success ("ok": the chain's next link, callbacks) and on failure ("err": errbacks, called with the task
 * id as Celery does for signatures it cannot call locally), and the chain's task ids (marked FAILURE too
 * when this task fails). Caller frees.
 */
static char *
side_json(const struct server *s, const struct celery_task *t)
{
	json_t *ok = json_array(), *err = json_array(), *ids = json_array();
	json_t *chain = json_object_get(t->embed, "chain");
	size_t n = json_is_array(chain) ? json_array_size(chain) : 0;
	if (n > 0 && n <= CELERY_SIGS_MAX) {
		json_t *next = json_array_get(chain, n - 1), *rest = json_array(), *e;
		for (size_t i = 0; i + 1 < n; i++)
			json_array_append(rest, json_array_get(chain, i));
		if (json_is_object(next) && (e = sig_encode(s, t, next, rest, 1, NULL)))
			json_array_append_new(ok, e);
		json_decref(rest);
		for (size_t i = 0; i < n; i++) {
			json_t *tid = json_object_get(json_object_get(json_array_get(chain, i), "options"), "task_id");
			if (json_is_string(tid) && job_name_valid(json_string_value(tid), JOB_ID_MAX))
				json_array_append(ids, tid);
		}
	}
	sigs_encode(s, t, json_object_get(t->embed, "callbacks"), ok, 1, NULL);
	sigs_encode(s, t, json_object_get(t->embed, "errbacks"), err, 0, t->id);
	json_t *side = json_pack("{s:s, s:s, s:o, s:o, s:o}", "bp", s->cfg.celery_prefix, "rp", s->cfg.celery_prefix,
	                         "ok", ok, "err", err, "chain_ids", ids);
	json_t *chord = chord_side(s, t);
	if (chord != NULL)
		json_object_set_new(side, "chord", chord);
	/* Celery v2: how a failure is reported (celery_types exc rules; a soft time limit). */
	const struct celery_type_rule *rule = celery_type_find(&s->celery->opts, t->task);
	if (rule != NULL && json_array_size(rule->excs) > 0)
		json_object_set(side, "excs", rule->excs);
	if (soft_final(s, t))
		json_object_set_new(side, "soft", json_integer(1));
	char *text = jsonx_dump(side);
	json_decref(side);
	return text;
}

static void
enqueue(struct server *s, const char *entry, size_t elen, const char *queue, const struct celery_task *t,
        const struct celery_route *route)
{
	char err[512], expires[32] = "";
	double tnow = clock_now();
	char *job = celery_job_json(t, route, queue, s->cfg.max_attempts, tnow, err, sizeof(err));
	if (job == NULL) {
		refuse(s, entry, elen, queue, t, "dead", "FAILURE", "ValueError", "builtins", err);
		return;
	}
	if (strlen(job) > (size_t)s->cfg.max_message_bytes) {
		snprintf(err, sizeof(err),
		         "the task's arguments make a job of %zu bytes, over hopperd's %d-byte limit "
		         "(max_message_bytes)",
		         strlen(job), s->cfg.max_message_bytes);
		free(job);
		refuse(s, entry, elen, queue, t, "dead", "FAILURE", "HopperMessageError", "hopper", err);
		return;
	}
	if (soft_final(s, t)) { /* read back by celery_timeout_final when the attempt times out */
		json_t *o = json_loads(job, 0, NULL);
		json_object_set_new(o, "celery_soft_final", json_true());
		free(job);
		job = jsonx_dump(o);
		json_decref(o);
	}
	const struct celery_type_rule *rule = celery_type_find(&s->celery->opts, t->task);
	char *side = side_json(s, t), *key = result_key(s, t->id);
	int attempts = s->cfg.max_attempts - t->retries;
	if (t->expires > 0)
		FMT_NUM(expires, t->expires);
	struct rctx ctx = {.queue = queue, .id = t->id};
	struct rcall *c = rcall_new(s, RF_CELERY_ENQUEUE, &ctx);
	rcall_arg(c, "entry", entry, (long)elen);
	rcall_arg(c, "id", t->id, -1);
	rcall_arg(c, "type", route->type, -1);
	rcall_int(c, "max_attempts", attempts < 1 ? 1 : attempts);
	rcall_arg(c, "payload", job, -1);
	rcall_num(c, "run_at", t->eta > tnow ? t->eta : 0);
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	rcall_int(c, "max_events", s->cfg.events_max);
	rcall_arg(c, "result_key", key, -1);
	rcall_int(c, "result_expires", s->cfg.celery_result_expires);
	rcall_arg(c, "track_started", s->cfg.celery_track_started ? "1" : "0", -1);
	rcall_arg(c, "expires", expires, -1);
	rcall_arg(c, "side", side, -1);
	rcall_arg(c, "progress", rule && rule->progress ? rule->progress : "", -1);
	log_debug("celery: task %s (%s) -> job type %s on queue %s", t->id, t->task, route->type, queue);
	rcall_batch(s, c, ignore_errors, (void *)"enqueue");
	celery_events_received(s, t);
	free(job);
	free(side);
	free(key);
}

/* Converts one inflight entry ("queue\nmessage"): enqueued as a hopper job, or refused. */
static void
convert(struct server *s, const char *entry, size_t elen)
{
	const char *nl = memchr(entry, '\n', elen);
	char queue[QUEUE_NAME_MAX + 1], err[512];
	if (nl == NULL || (size_t)(nl - entry) > QUEUE_NAME_MAX) {
		log_error("celery: inflight entry without a queue name; left in place");
		return;
	}
	memcpy(queue, entry, (size_t)(nl - entry));
	queue[nl - entry] = '\0';
	struct celery_task t;
	size_t rawlen = elen - (size_t)(nl + 1 - entry);
	int v = celery_parse(nl + 1, rawlen, CELERY_ENVELOPE_MAX((size_t)s->cfg.max_message_bytes), &t, err,
	                     sizeof(err));
	if (v == CELERY_REFUSED) {
		refuse(s, entry, elen, queue, &t, "dead", "FAILURE", "ContentDisallowed", "kombu.exceptions", err);
		return;
	}
	if (v != CELERY_OK) {
		refuse(s, entry, elen, queue, &t, "dead", "FAILURE", "HopperMessageError", "hopper", err);
		return;
	}
	const struct celery_route *route = celery_map_find(&s->celery->map, t.task);
	if (route == NULL) {
		snprintf(err, sizeof(err), "Task of kind '%s' is not mapped to a hopper job type (celery_tasks)",
		         t.task);
		refuse(s, entry, elen, queue, &t, "dead", "FAILURE", "NotRegistered", "celery.exceptions", err);
	} else if (t.expires > 0 && t.expires <= clock_now())
		refuse(s, entry, elen, queue, &t, "cancelled", "REVOKED", "TaskRevokedError", "celery.exceptions",
		       "expired");
	else
		enqueue(s, entry, elen, queue, &t, route);
	celery_task_free(&t);
}

static void
take_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct celery *c = s->celery;
	c->taking = 0;
	if (r == NULL)
		return;
	if (rr_type(r) != RR_ARRAY) {
		log_error("celery: take failed: %s", rr_type(r) == RR_ERROR ? rr_str(r, NULL) : "unexpected reply");
		return;
	}
	for (size_t i = 1; i < rr_count(r); i++) {
		size_t len;
		const char *entry = rr_str(rr_elem(r, i), &len);
		if (entry != NULL)
			convert(s, entry, len);
	}
	if (rr_count(r) > 1)
		take(s); /* there may be more: take again with the next batch rather than after a poll */
	else if (rr_count(r) == 1 && rr_int(rr_elem(r, 0)) == 1) {
		/* A backlog waits behind full windows: look again as soon as the workers have drained some. */
		ev_timer_stop(s->loop, &c->timer);
		ev_timer_set(&c->timer, CELERY_BACKLOG_S, CELERY_POLL_S);
		ev_timer_start(s->loop, &c->timer);
	}
}

static void
take(struct server *s)
{
	struct celery *c = s->celery;
	if (c->taking || !s->registered || s->shutting_down || !redis_ready(s->redis))
		return;
	double now = clock_now();
	int recover = now - c->last_recover >= CELERY_RECOVER_S;
	int window = s->cfg.workers * CELERY_WINDOW_PER_WORK;
	if (window < CELERY_WINDOW_MIN)
		window = CELERY_WINDOW_MIN;
	struct rctx ctx = {0};
	struct rcall *rc = rcall_new(s, RF_CELERY_TAKE, &ctx);
	rcall_arg(rc, "prefix", s->cfg.key_prefix, -1);
	rcall_arg(rc, "node", s->cfg.node_id, -1);
	rcall_int(rc, "window", window);
	rcall_arg(rc, "recover", recover ? "1" : "0", -1);
	rcall_arg(rc, "celery_prefix", s->cfg.celery_prefix, -1);
	rcall_int(rc, "lease_ms", (long long)(s->cfg.lease_s * 1000));
	for (int i = 0; i < c->nqueues; i++)
		rcall_more(rc, c->queues[i], -1);
	if (rcall_batch(s, rc, take_reply, NULL) == 0) {
		c->taking = 1;
		if (recover)
			c->last_recover = now;
	}
}

static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	take(w->data);
}

void
celery_start(struct server *s)
{
	if (s->cfg.celery_queues[0] == '\0')
		return;
	struct celery *c = s->celery = xcalloc(1, sizeof(*c));
	char *cause = NULL, *save = NULL;
	if (celery_map_parse(s->cfg.celery_tasks, &c->map, &cause) < 0 ||
	    celery_opts_parse(s->cfg.celery_routes, s->cfg.celery_types, &c->opts, &cause) < 0)
		fatal("%s", cause); /* config_finish checked it already */
	c->queue_buf = xstrdup(s->cfg.celery_queues);
	for (char *q = strtok_r(c->queue_buf, ", ", &save); q != NULL && c->nqueues < MAX_QUEUES;
	     q = strtok_r(NULL, ", ", &save))
		c->queues[c->nqueues++] = q;
	ev_timer_init(&c->timer, poll_cb, CELERY_POLL_S, CELERY_POLL_S);
	c->timer.data = s;
	ev_timer_start(s->loop, &c->timer);
	log_info("celery: consuming Celery queues %s (%zu tasks mapped)", s->cfg.celery_queues, c->map.n);
	celery_pidbox_start(s);
	celery_events_start(s);
}

const struct celery_map *
celery_task_map(const struct server *s)
{
	return s->celery ? &s->celery->map : NULL;
}

int
celery_consumes(const struct server *s, const char *queue)
{
	for (int i = 0; s->celery != NULL && i < s->celery->nqueues; i++)
		if (strcmp(s->celery->queues[i], queue) == 0)
			return 1;
	return 0;
}

void
celery_free(struct server *s)
{
	struct celery *c = s->celery;
	if (c == NULL)
		return;
	ev_timer_stop(s->loop, &c->timer);
	celery_map_free(&c->map);
	celery_opts_free(&c->opts);
	free(c->queue_buf);
	free(c);
	s->celery = NULL;
}

int
celery_timeout_final(const struct server *s, const struct job *j)
{
	if (!celery_consumes(s, j->queue))
		return 0;
	json_t *o = json_loadb(j->payload, j->payload_len, 0, NULL);
	int final = json_is_true(json_object_get(o, "celery_soft_final"));
	json_decref(o);
	return final;
}

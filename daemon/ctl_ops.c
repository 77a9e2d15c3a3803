/*
 * ctl_ops: the control socket's job and queue operations. Each validates its whole request first (check,
 * then proceed: a batch with one bad job writes nothing), then makes one Redis call - a Lua function of
 * daemon/lua/12_ctl.lua in the loop turn's batch for writes and multi-key reads, a plain command for one
 * hash - and answers from the reply. Owner rules: without admin a job of another owner answers not_found,
 * exactly like a missing one, so job ids cannot be probed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "store.h"
#include "xmalloc.h"

#define DEFAULT_QUEUE "default"
#define LIST_DEFAULT  100
#define LOGS_DEFAULT  1000
#define ID_BUF        (JOB_ID_MAX + 1)
/* The job index cursor: "<score>|<id>". */
#define CURSOR_SEP '|'

int
ctl_may_see(const struct ctl_conn *c, const char *job_owner)
{
	return ctl_owner_allows(c->cred.scopes, c->cred.owner, job_owner);
}

static int
is_admin(const struct ctl_conn *c)
{
	return (c->cred.scopes & CTL_SCOPE_ADMIN) != 0;
}

/* Joins a Lua call to the turn's batch for an async reply. Answers unavailable itself when Redis is down. */
static void
call_lua(struct ctl_conn *c, json_t *id, const char *fn, int argc, const char **argv, redis_cb *cb, void *data)
{
	struct ctl_pending *p = ctl_pending_new(c, id);
	p->data = data;
	if (redis_batch(c->ctl->s->redis, fn, argc, argv, NULL, cb, p) != 0) {
		ctl_reply_err(c, id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(p->data);
		ctl_pending_end(p);
	}
}

/*
 * The common head of a callback: 1 if the reply should be used. Otherwise it answered (Redis lost,
 * script error) or the client is gone, and ended the pending request (after freeing p->data).
 */
static int
reply_usable(struct ctl_pending *p, const struct redis_reply *r, const char *what)
{
	if (p->c->dead) {
		free(p->data);
		ctl_pending_end(p);
		return 0;
	}
	if (r == NULL || rr_type(r) == RR_ERROR) {
		if (r != NULL)
			log_error("ctl: %s: Redis: %s", what, rr_str(r, NULL));
		ctl_reply_err(p->c, p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; the request may or may not have been applied"
		                        : "Redis refused the operation (see the daemon's log)");
		free(p->data);
		ctl_pending_end(p);
		return 0;
	}
	return 1;
}

static const char *
elem_str(const struct redis_reply *r, size_t i)
{
	const struct redis_reply *e = rr_elem(r, i);
	return e != NULL ? rr_str(e, NULL) : NULL;
}

/* --- ping --- */

void
ctl_op_ping(struct ctl_conn *c, struct ctl_request *req)
{
	ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:b, s:f}", "pong", 1, "time", clock_now())));
}

/* --- submit --- */

/* The strings one submit passes to Lua; freed after the call is queued (redis_batch copies). */
struct strs {
	char **v;
	size_t n, cap;
};

static const char *
strs_add(struct strs *s, char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	return s->v[s->n++] = str;
}

static void
strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

struct submit_data {
	json_t *result; /* sent on success */
};

/*
 * A job whose idempotency_key an existing run holds was not written: the reply names that run instead
 * ({"id": existing, "state": its state, "duplicate": true}, or its id in the batch's "ids" and its index
 * in "duplicates"). r is hopper_ctl_submit's {'ok', index, id, state, ...}.
 */
static void
submit_apply_duplicates(json_t *result, const struct redis_reply *r)
{
	json_t *ids = json_object_get(result, "ids"), *dups = NULL;
	for (size_t k = 1; k + 2 < rr_count(r); k += 3) {
		size_t index = strtoul(elem_str(r, k), NULL, 10);
		const char *holder = elem_str(r, k + 1), *state = elem_str(r, k + 2);
		if (holder == NULL || state == NULL)
			continue;
		if (ids == NULL) {
			json_object_set_new(result, "id", json_string(holder));
			json_object_set_new(result, "state", json_string(state));
			json_object_set_new(result, "duplicate", json_true());
			continue;
		}
		if (index >= json_array_size(ids))
			continue;
		json_array_set_new(ids, index, json_string(holder));
		if (dups == NULL)
			json_object_set_new(result, "duplicates", dups = json_array());
		json_array_append_new(dups, json_integer((json_int_t)index));
	}
}

static void
submit_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct submit_data *d = p->data;
	json_t *result = d->result;
	d->result = NULL;
	if (!reply_usable(p, r, "submit")) {
		json_decref(result);
		return;
	}
	const char *v = elem_str(r, 0);
	if (v != NULL && strcmp(v, "ok") == 0) {
		submit_apply_duplicates(result, r);
		ctl_send(p->c, ctl_reply_ok(p->id, result));
	} else if (v != NULL && strcmp(v, "idem_conflict") == 0) {
		json_decref(result);
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT,
		              "idempotency_key %s is held by another owner's job; nothing was submitted",
		              elem_str(r, 1) ? elem_str(r, 1) : "?");
	} else {
		json_decref(result);
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "job %s exists already; nothing was submitted",
		              elem_str(r, 1) ? elem_str(r, 1) : "?");
	}
	free(d);
	ctl_pending_end(p);
}

/*
 * Completes one job object for the caller: owner (the credential's; another only for admin), an id, the
 * creation time and the queue; then validates it with the daemon's own parser. Returns the payload (caller
 * frees) with *spec filled, or NULL with err.
 */
static char *
submit_prepare(struct ctl_conn *c, json_t *in, struct job_spec *spec, char *err, size_t errlen)
{
	struct server *s = c->ctl->s;
	json_t *job = json_deep_copy(in);
	json_t *owner = json_object_get(job, "owner");
	char *payload = NULL;
	if (owner != NULL && !json_is_null(owner)) {
		if (!json_is_string(owner) || (!is_admin(c) && strcmp(json_string_value(owner), c->cred.owner) != 0)) {
			snprintf(err, errlen, "only admin may submit for another owner");
			json_decref(job);
			return NULL;
		}
	} else
		json_object_set_new(job, "owner", json_string(c->cred.owner));
	json_t *id = json_object_get(job, "id");
	if (id == NULL || json_is_null(id)) {
		char uuid[37];
		if (job_new_id(uuid) != 0) {
			snprintf(err, errlen, "no randomness for a job id");
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, "id", json_string(uuid));
	}
	if (json_object_get(job, "created_at") == NULL)
		json_object_set_new(job, "created_at", json_real(clock_now()));
	json_t *q = json_object_get(job, "queue");
	const char *queue = json_is_string(q) ? json_string_value(q) : DEFAULT_QUEUE;
	if (q == NULL)
		json_object_set_new(job, "queue", json_string(queue));
	payload = jsonx_dump(job);
	char qcopy[QUEUE_NAME_MAX + 1];
	snprintf(qcopy, sizeof(qcopy), "%s", queue);
	json_decref(job);
	if (!job_name_valid(qcopy, QUEUE_NAME_MAX)) {
		snprintf(err, errlen, "field 'queue' may hold only letters, digits and . _ : -");
		free(payload);
		return NULL;
	}
	if (job_parse(payload, strlen(payload), qcopy, &s->defaults, spec, err, errlen) != 0) {
		free(payload);
		return NULL;
	}
	return payload;
}

/* Adds one validated job's nine Lua arguments. Takes ownership of payload. */
static void
submit_args(struct strs *st, const char **argv, const struct job_spec *spec, char *payload, double now)
{
	argv[0] = strs_add(st, xstrdup(spec->id));
	argv[1] = strs_add(st, xstrdup(spec->queue));
	argv[2] = strs_add(st, xstrdup(spec->type));
	argv[3] = strs_add(st, xasprintf("%d", spec->max_attempts));
	argv[4] = strs_add(st, xasprintf("%.3f", spec->created_at > 0 ? spec->created_at : now));
	argv[5] = strs_add(st, xstrdup(spec->owner ? spec->owner : ""));
	argv[6] = strs_add(st, xstrdup(spec->idempotency_key ? spec->idempotency_key : ""));
	argv[7] = strs_add(st, xasprintf("%.3f", spec->run_at));
	argv[8] = strs_add(st, payload);
}

void
ctl_op_submit(struct ctl_conn *c, struct ctl_request *req)
{
	ctl_submit(c, req->id, json_object_get(req->root, "job"), json_object_get(req->root, "jobs"));
}

void
ctl_submit(struct ctl_conn *c, json_t *rid, json_t *one, json_t *many)
{
	ctl_submit_with(c, rid, one, many, NULL);
}

void
ctl_submit_with(struct ctl_conn *c, json_t *rid, json_t *one, json_t *many, json_t *extra)
{
	struct server *s = c->ctl->s;
	size_t n = one != NULL ? 1 : json_array_size(many);
	const char **argv = xcalloc(5 + 9 * n, sizeof(*argv));
	struct strs st = {0};
	json_t *seen = json_object(), *ids = json_array();
	char err[512], ttl[24], evmax[24], nbuf[24], now_s[32];
	double now = clock_now();
	argv[0] = s->cfg.key_prefix;
	argv[1] = FMT_NUM(now_s, now);
	argv[2] = FMT_INT(ttl, s->cfg.result_ttl_s);
	argv[3] = FMT_INT(evmax, s->cfg.events_max);
	argv[4] = FMT_INT(nbuf, n);
	struct job_spec spec = {0};
	size_t i;
	for (i = 0; i < n; i++) {
		char *payload = submit_prepare(c, one != NULL ? one : json_array_get(many, i), &spec, err, sizeof(err));
		if (payload == NULL)
			break;
		if (json_object_get(seen, spec.id) != NULL) {
			snprintf(err, sizeof(err), "id %s appears twice in the batch", spec.id);
			free(payload);
			job_spec_free(&spec);
			break;
		}
		json_object_set_new(seen, spec.id, json_true());
		json_array_append_new(ids, json_string(spec.id));
		submit_args(&st, argv + 5 + 9 * i, &spec, payload, now);
		job_spec_free(&spec);
	}
	if (i < n) {
		enum ctl_err code = strstr(err, "only admin") != NULL ? CTL_E_FORBIDDEN : CTL_E_BAD_REQUEST;
		if (one != NULL)
			ctl_reply_err(c, rid, code, "job: %s", err);
		else
			ctl_reply_err(c, rid, code, "jobs[%zu]: %s", i, err);
		json_decref(ids);
	} else {
		struct submit_data *d = xcalloc(1, sizeof(*d));
		if (one != NULL) {
			d->result = json_pack("{s:O, s:s, s:s}", "id", json_array_get(ids, 0), "queue", argv[5 + 1],
			                      "state", "queued");
			json_decref(ids);
		} else
			d->result = json_pack("{s:o}", "ids", ids);
		if (extra != NULL)
			json_object_update(d->result, extra);
		/* redis_batch copies the arguments; on failure call_lua answers and frees d (not its result). */
		json_t *result = d->result;
		struct ctl_pending *p = ctl_pending_new(c, rid);
		p->data = d;
		if (redis_batch(s->redis, "ctl_submit", (int)(5 + 9 * n), argv, NULL, submit_reply, p) != 0) {
			ctl_reply_err(c, rid, CTL_E_UNAVAILABLE, "Redis is unreachable; nothing was submitted");
			json_decref(result);
			free(d);
			ctl_pending_end(p);
		}
	}
	json_decref(seen);
	strs_free(&st);
	free(argv);
}

/* --- status --- */

static const char *const int_fields[] = {"attempt", "max_attempts", "progress", "worker_pid", "stalls", NULL};
static const char *const time_fields[] = {"created_at", "enqueued_at", "started_at", "finished_at",
                                          "updated_at", "run_at",      NULL};

static int
in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* One hash field as the view types it. New reference, or NULL to leave it out. */
static json_t *
view_value(const char *k, const char *v, size_t len)
{
	if (len == 0 || strcmp(k, "payload") == 0)
		return NULL;
	if (in_list(int_fields, k))
		return json_integer(strtoll(v, NULL, 10));
	if (in_list(time_fields, k))
		return json_real(strtod(v, NULL));
	if (strcmp(k, "result") == 0) {
		json_t *j = json_loadb(v, len, JSON_DECODE_ANY, NULL);
		if (j != NULL)
			return j;
	}
	json_t *str = json_stringn(v, len);
	return str != NULL ? str : json_string("(not UTF-8)");
}

json_t *
ctl_job_view(const struct redis_reply *r)
{
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < rr_count(r); i += 2) {
		size_t len = 0;
		const char *k = elem_str(r, i), *v = rr_str(rr_elem(r, i + 1), &len);
		if (k == NULL || v == NULL)
			continue;
		json_t *val = view_value(k, v, len);
		if (val != NULL)
			json_object_set_new(o, k, val);
	}
	return o;
}

static void
status_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	char *job = p->data;
	if (!reply_usable(p, r, "status"))
		return;
	json_t *view = rr_count(r) > 0 ? ctl_job_view(r) : NULL;
	if (view == NULL || !ctl_may_see(p->c, json_string_value(json_object_get(view, "owner")))) {
		json_decref(view);
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", job);
	} else
		ctl_send(p->c, ctl_reply_ok(p->id, view));
	free(job);
	ctl_pending_end(p);
}

void
ctl_op_status(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *job = json_string_value(json_object_get(req->root, "job"));
	char *key = xasprintf("%sjob:%s", s->cfg.key_prefix, job);
	const char *argv[] = {"HGETALL", key};
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = xstrdup(job);
	if (redis_command(s->redis, 2, argv, NULL, status_reply, p) != 0) {
		ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(p->data);
		ctl_pending_end(p);
	}
	free(key);
}

/* --- cancel and retry --- */

struct job_call {
	int retry;
	char job[ID_BUF];
};

static void
cancel_retry_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct job_call *d = p->data;
	if (!reply_usable(p, r, d->retry ? "retry" : "cancel"))
		return;
	const char *v = elem_str(r, 0), *arg = elem_str(r, 1);
	if (v != NULL && strcmp(v, "ok") == 0) {
		log_info("ctl: %s: %s job %s%s%s", p->c->peer, d->retry ? "retried" : "cancelled", d->job,
		         d->retry ? "" : ", was ", d->retry ? "" : (arg ? arg : "?"));
		json_t *res = d->retry ? json_pack("{s:s, s:s, s:s}", "id", d->job, "queue", arg ? arg : "", "state",
		                                   "queued")
		                       : json_pack("{s:s, s:s, s:s}", "id", d->job, "state", "cancelled", "was",
		                                   arg ? arg : "queued");
		ctl_send(p->c, ctl_reply_ok(p->id, res));
		if (!d->retry)
			jobs_cancel(s, d->job); /* this daemon may hold it: no need to wait for the message */
	} else if (v != NULL && strcmp(v, "conflict") == 0)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "job %s is %s: %s", d->job, arg ? arg : "?",
		              d->retry ? "only failed or dead jobs can be retried" : "it has ended already");
	else
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", d->job);
	free(d);
	ctl_pending_end(p);
}

static void
cancel_or_retry(struct ctl_conn *c, struct ctl_request *req, int retry)
{
	struct server *s = c->ctl->s;
	struct job_call *d = xcalloc(1, sizeof(*d));
	char now[32], ttl[16], evmax[16];
	d->retry = retry;
	snprintf(d->job, sizeof(d->job), "%s", json_string_value(json_object_get(req->root, "job")));
	const char *argv[] = {s->cfg.key_prefix,
	                      d->job,
	                      FMT_NUM(now, clock_now()),
	                      c->cred.owner,
	                      is_admin(c) ? "1" : "0",
	                      FMT_INT(ttl, s->cfg.result_ttl_s),
	                      FMT_INT(evmax, s->cfg.events_max)};
	call_lua(c, req->id, retry ? "ctl_retry" : "ctl_cancel", 7, argv, cancel_retry_reply, d);
}

void
ctl_op_cancel(struct ctl_conn *c, struct ctl_request *req)
{
	cancel_or_retry(c, req, 0);
}

void
ctl_op_retry(struct ctl_conn *c, struct ctl_request *req)
{
	cancel_or_retry(c, req, 1);
}

/* --- list --- */

/* A summary from Lua (an object of the hash's strings), typed like the job view. New reference. */
static json_t *
summary(json_t *raw)
{
	json_t *o = json_object(), *v;
	const char *k;
	json_object_foreach(raw, k, v)
	{
		json_t *val = json_is_string(v) ? view_value(k, json_string_value(v), json_string_length(v)) : NULL;
		if (val != NULL)
			json_object_set_new(o, k, val);
	}
	return o;
}

static void
list_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	if (!reply_usable(p, r, "list"))
		return;
	size_t len = 0;
	const char *text = rr_count(r) == 3 ? rr_str(rr_elem(r, 2), &len) : NULL;
	json_t *raw = text != NULL ? json_loadb(text, len, 0, NULL) : NULL, *e;
	size_t i;
	json_t *jobs = json_array();
	json_array_foreach(raw, i, e) json_array_append_new(jobs, summary(e));
	json_decref(raw);
	const char *score = elem_str(r, 0), *id = elem_str(r, 1);
	json_t *cursor = json_null();
	if (score != NULL && score[0] != '\0' && id != NULL) {
		char *cs = xasprintf("%s%c%s", score, CURSOR_SEP, id);
		cursor = json_string(cs);
		free(cs);
	}
	ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:o, s:o}", "jobs", jobs, "cursor", cursor)));
	ctl_pending_end(p);
}

static const char *
opt_str(json_t *req, const char *key)
{
	const char *v = json_string_value(json_object_get(req, key));
	return v != NULL ? v : "";
}

void
ctl_op_list(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *owner = opt_str(req->root, "owner");
	if (!is_admin(c)) {
		if (owner[0] != '\0' && strcmp(owner, c->cred.owner) != 0) {
			/* Someone else's jobs: the same empty page as for an owner with none. */
			ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:[], s:n}", "jobs", "cursor")));
			return;
		}
		owner = c->cred.owner;
	}
	char score[40] = "", id[ID_BUF] = "", limit_s[24], scan_s[24], bytes_s[24];
	const char *cursor = opt_str(req->root, "cursor");
	if (cursor[0] != '\0') {
		const char *sep = strchr(cursor, CURSOR_SEP);
		char *end = NULL;
		if (sep == NULL || (size_t)(sep - cursor) >= sizeof(score) || !job_name_valid(sep + 1, JOB_ID_MAX)) {
			ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "cursor is not one this server gave");
			return;
		}
		memcpy(score, cursor, (size_t)(sep - cursor));
		score[sep - cursor] = '\0';
		strtod(score, &end);
		if (end == score || *end != '\0') {
			ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "cursor is not one this server gave");
			return;
		}
		snprintf(id, sizeof(id), "%s", sep + 1);
	}
	json_int_t limit = json_integer_value(json_object_get(req->root, "limit"));
	if (limit <= 0)
		limit = LIST_DEFAULT;
	const char *argv[] = {s->cfg.key_prefix, score, id, FMT_INT(limit_s, limit), opt_str(req->root, "state"),
	                      opt_str(req->root, "queue"), opt_str(req->root, "type"), owner,
	                      FMT_INT(scan_s, limit * CTL_LIST_SCAN_FACTOR),
	                      /* the summaries are retyped (numbers lose their quotes): half a frame is ample */
	                      FMT_INT(bytes_s, s->cfg.ctl_max_frame / 2)};
	call_lua(c, req->id, "ctl_list", 10, argv, list_reply, NULL);
}

/* --- logs --- */

struct logs_data {
	char job[ID_BUF];
	int limit;
};

static void
logs_send(struct ctl_conn *c, json_t *id, const struct logs_data *d)
{
	struct server *s = c->ctl->s;
	json_t *log = store_job_log(s->store, d->job, d->limit, (size_t)s->cfg.ctl_max_frame / 2);
	json_object_set_new(log, "job", json_string(d->job));
	json_object_set_new(log, "node", json_string(s->cfg.node_id));
	ctl_send(c, ctl_reply_ok(id, log));
}

static void
logs_owner_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct logs_data *d = p->data;
	if (!reply_usable(p, r, "logs"))
		return;
	const char *owner = rr_type(r) == RR_STRING ? rr_str(r, NULL) : NULL;
	if (!ctl_may_see(p->c, owner))
		ctl_reply_err(p->c, p->id, CTL_E_NOT_FOUND, "no job %s", d->job);
	else
		logs_send(p->c, p->id, d);
	free(d);
	ctl_pending_end(p);
}

/* Admin reads the execution log directly (also while Redis is down); others prove ownership first. */
void
ctl_op_logs(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct logs_data *d = xcalloc(1, sizeof(*d));
	snprintf(d->job, sizeof(d->job), "%s", json_string_value(json_object_get(req->root, "job")));
	json_int_t limit = json_integer_value(json_object_get(req->root, "limit"));
	d->limit = limit > 0 ? (int)limit : LOGS_DEFAULT;
	if (is_admin(c)) {
		logs_send(c, req->id, d);
		free(d);
		return;
	}
	char *key = xasprintf("%sjob:%s", s->cfg.key_prefix, d->job);
	const char *argv[] = {"HGET", key, "owner"};
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = d;
	if (redis_command(s->redis, 3, argv, NULL, logs_owner_reply, p) != 0) {
		ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(d);
		ctl_pending_end(p);
	}
	free(key);
}

/* --- queues, stats, pause --- */

static void
queues_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	if (!reply_usable(p, r, "queues"))
		return;
	json_t *qs = json_array();
	for (size_t i = 0; i + 4 < rr_count(r); i += 5) {
		const char *name = elem_str(r, i);
		json_array_append_new(qs, json_pack("{s:s, s:I, s:I, s:I, s:b}", "name", name ? name : "?", "length",
		                                    (json_int_t)rr_int(rr_elem(r, i + 1)), "scheduled",
		                                    (json_int_t)rr_int(rr_elem(r, i + 2)), "inflight",
		                                    (json_int_t)rr_int(rr_elem(r, i + 3)), "paused",
		                                    rr_int(rr_elem(r, i + 4)) != 0));
	}
	ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:o}", "queues", qs)));
	ctl_pending_end(p);
}

void
ctl_op_queues(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *argv[1 + MAX_QUEUES];
	argv[0] = s->cfg.key_prefix;
	for (int i = 0; i < s->cfg.nqueues; i++)
		argv[1 + i] = s->cfg.queues[i].name;
	call_lua(c, req->id, "ctl_queues", 1 + s->cfg.nqueues, argv, queues_reply, NULL);
}

/* A flat field/value array as an object of strings (the heartbeat and stats hashes as stored). */
static json_t *
flat_strings(const struct redis_reply *r, int as_int)
{
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < rr_count(r); i += 2) {
		const char *k = elem_str(r, i), *v = elem_str(r, i + 1);
		if (k == NULL || v == NULL)
			continue;
		json_object_set_new(o, k, as_int ? json_integer(strtoll(v, NULL, 10)) : json_string(v));
	}
	return o;
}

static void
stats_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct ctl *ctl = p->c->ctl;
	if (!reply_usable(p, r, "stats"))
		return;
	json_t *nodes = json_array();
	long long running = 0;
	for (size_t i = 1; i < rr_count(r); i++) {
		json_t *hb = flat_strings(rr_elem(r, i), 0);
		running += strtoll(json_string_value(json_object_get(hb, "running")) != NULL
		                           ? json_string_value(json_object_get(hb, "running"))
		                           : "0",
		                   NULL, 10);
		json_array_append_new(nodes, hb);
	}
	/* Throughput: jobs this daemon finished over the samples the tick took (up to a minute). */
	unsigned oldest = ctl->ring_filled < 60 ? 0 : ctl->ring_pos;
	double span = ev_now(s->loop) - ctl->ring_t[oldest];
	uint64_t done = s->stats_succeeded + s->stats_failed - ctl->done_ring[oldest];
	json_t *tp = json_pack("{s:f, s:I, s:f}", "per_s_1m", span > 0 && ctl->ring_filled ? done / span : 0.0,
	                       "finished_1m", (json_int_t)(ctl->ring_filled ? done : 0), "window_s",
	                       ctl->ring_filled ? span : 0.0);
	json_t *pool = json_pack("{s:i, s:i, s:i, s:i}", "workers", s->cfg.workers, "live", s->nworkers, "busy",
	                         s->nrunning, "idle", pool_idle(s));
	json_t *res =
	        json_pack("{s:o, s:I, s:o, s:o, s:o, s:s}", "counters", flat_strings(rr_elem(r, 0), 1), "running",
	                  (json_int_t)running, "throughput", tp, "pool", pool, "nodes", nodes, "node", s->cfg.node_id);
	json_object_set_new(res, "local", metrics_json(s, ctl->nconns));
	ctl_send(p->c, ctl_reply_ok(p->id, res));
	ctl_pending_end(p);
}

void
ctl_op_stats(struct ctl_conn *c, struct ctl_request *req)
{
	const char *argv[] = {c->ctl->s->cfg.key_prefix};
	call_lua(c, req->id, "ctl_stats", 1, argv, stats_reply, NULL);
}

static void
pause_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	char *d = p->data; /* "1queue" or "0queue" */
	if (!reply_usable(p, r, "pause"))
		return;
	log_info("ctl: %s: queue %s %s", p->c->peer, d + 1, d[0] == '1' ? "paused" : "resumed");
	ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:b}", "queue", d + 1, "paused", d[0] == '1')));
	ctl_refresh_paused(s);
	free(d);
	ctl_pending_end(p);
}

static void
pause_or_resume(struct ctl_conn *c, struct ctl_request *req, int on)
{
	const char *q = json_string_value(json_object_get(req->root, "queue"));
	const char *argv[] = {c->ctl->s->cfg.key_prefix, q, on ? "1" : "0"};
	call_lua(c, req->id, "ctl_pause", 3, argv, pause_reply, xasprintf("%d%s", on, q));
}

void
ctl_op_pause(struct ctl_conn *c, struct ctl_request *req)
{
	pause_or_resume(c, req, 1);
}

void
ctl_op_resume(struct ctl_conn *c, struct ctl_request *req)
{
	pause_or_resume(c, req, 0);
}

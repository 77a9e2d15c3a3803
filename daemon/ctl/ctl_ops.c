/*
 * ctl_ops: the control socket's job and queue operations. Each validates its whole request first (check,
 * then proceed: a batch with one bad job writes nothing), then makes one Redis call - a Lua function of
 * daemon/lua/12_ctl.lua in the loop turn's batch for writes and multi-key reads, a plain command for one
 * hash - and answers from the reply. Owner rules: without admin a job of another owner answers not_found,
 * exactly like a missing one, so job ids cannot be probed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "job_ns.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

#define DEFAULT_QUEUE "default"
#define LIST_DEFAULT  100
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

/* The common head of a callback: 1 if the reply should be used; otherwise (ctl_rf_usable answered, or the
 * client is gone) it ended the pending request, after freeing p->data. */
static int
reply_usable(struct ctl_pending *p, const struct redis_reply *r, const char *what)
{
	if (ctl_rf_usable(p, r, what))
		return 1;
	free(p->data);
	ctl_pending_end(p);
	return 0;
}

/* --- ping --- */

void
ctl_op_ping(struct ctl_conn *c, struct ctl_request *req)
{
	ctl_send(c, ctl_reply_ok(req->id, json_pack("{s:b, s:f}", "pong", 1, "time", clock_now())));
}

/* --- submit --- */

/*
 * A submit sends one ctl_submit per queue its jobs name (a queue's keys share one hash tag), all in the same
 * turn: each queue's part is all or nothing. The reply waits for every part.
 */
struct submit_data {
	struct ctl_pending *p;
	json_t *result; /* sent on success */
	int left;       /* parts outstanding */
	int lost;       /* a part's connection failed */
	char *error;    /* the first part that refused: conflict text */
	/* The owner whose id namespace the jobs took when it is not the connection's own (webhook.trigger's
	 * workflow owner): the reply shows the ids as that owner names them. */
	char *on_behalf;
};

struct submit_part {
	struct submit_data *d;
	size_t n;
	size_t *index; /* part-local index -> index in the request */
};

/*
 * A job whose idempotency_key or unique lock an existing run holds was not written: the reply names that
 * run instead ({"id": existing, "state": its state, "duplicate": true, and "unique_of": existing for a
 * unique lock}, or its id in the batch's "ids" and its index in "duplicates", and in "unique" for a unique
 * lock). r is hopper_ctl_submit's {'ok', index, id, state, why, ...}.
 */
static void
submit_apply_duplicates(json_t *result, const struct redis_reply *r, const struct submit_part *part)
{
	json_t *ids = json_object_get(result, "ids"), *dups = json_object_get(result, "duplicates");
	json_t *uniq = json_object_get(result, "unique");
	for (size_t k = 1; k + 3 < rr_count(r); k += 4) {
		size_t local = strtoul(ctl_rf_elem(r, k), NULL, 10);
		const char *holder = ctl_rf_elem(r, k + 1), *state = ctl_rf_elem(r, k + 2),
		           *why = ctl_rf_elem(r, k + 3);
		if (holder == NULL || state == NULL || local >= part->n)
			continue;
		int unique = why != NULL && strcmp(why, "unique") == 0;
		size_t index = part->index[local];
		if (ids == NULL) {
			json_object_set_new(result, "id", json_string(holder));
			json_object_set_new(result, "state", json_string(state));
			json_object_set_new(result, "duplicate", json_true());
			if (unique)
				json_object_set_new(result, "unique_of", json_string(holder));
			continue;
		}
		if (index >= json_array_size(ids))
			continue;
		json_array_set_new(ids, index, json_string(holder));
		if (dups == NULL)
			json_object_set_new(result, "duplicates", dups = json_array());
		json_array_append_new(dups, json_integer((json_int_t)index));
		if (unique && uniq == NULL)
			json_object_set_new(result, "unique", uniq = json_array());
		if (unique)
			json_array_append_new(uniq, json_integer((json_int_t)index));
	}
}

static void submit_release(struct submit_data *d);

static void
submit_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct submit_part *part = priv;
	struct submit_data *d = part->d;
	if (r == NULL)
		d->lost = 1;
	else if (rr_type(r) == RR_ERROR) {
		log_error("ctl: submit: Redis: %s", rr_str(r, NULL));
		d->lost = 1;
	} else {
		const char *v = ctl_rf_elem(r, 0);
		if (v != NULL && strcmp(v, "ok") == 0)
			submit_apply_duplicates(d->result, r, part);
		else if (d->error == NULL)
			d->error = xstrdup(ctl_rf_elem(r, 1) ? ctl_rf_elem(r, 1) : "?");
	}
	free(part->index);
	free(part);
	submit_release(d);
}

/* One part (or the hold) is done; the last answers. */
static void
submit_release(struct submit_data *d)
{
	if (--d->left > 0)
		return;
	struct ctl_pending *p = d->p;
	if (p->c->dead)
		;
	else if (d->lost)
		ctl_reply_err(p->c, p->id, CTL_E_UNAVAILABLE,
		              "Redis connection lost; the request may or may not have been applied");
	else if (d->error != NULL)
		ctl_reply_err(p->c, p->id, CTL_E_CONFLICT, "job %s exists already; nothing was submitted to its queue",
		              d->error);
	else {
		if (d->on_behalf != NULL)
			ctl_ns_strip_owner(d->result, d->on_behalf);
		ctl_send(p->c, ctl_reply_ok(p->id, d->result));
		d->result = NULL;
	}
	json_decref(d->result);
	free(d->error);
	free(d->on_behalf);
	free(d);
	ctl_pending_end(p);
}

/*
 * A workflow.run job that names a stored workflow (args.workflow, no args.definition) gets its definition
 * now, under the same owner rule as the workflow.run op (ctl_workflow_resolve): without it, the lookup at
 * claim time would run another owner's private workflow. 0, or -1 with *code and err.
 */
static int
submit_resolve_workflow(struct ctl_conn *c, json_t *job, enum ctl_err *code, char *err, size_t errlen)
{
	json_t *args = json_object_get(job, "args");
	const char *type = json_string_value(json_object_get(job, "type"));
	json_t *name = json_object_get(args, "workflow");
	if (type == NULL || strcmp(type, "workflow.run") != 0 || !json_is_string(name) ||
	    json_object_get(args, "definition") != NULL)
		return 0;
	json_t *def = ctl_workflow_resolve(c, json_string_value(name), code, err, errlen);
	if (def == NULL)
		return -1;
	json_object_set_new(args, "definition", def);
	return 0;
}

/*
 * Completes one job object for the caller: owner (the credential's; another only for admin), an id, the
 * creation time and the queue; then validates it with the daemon's own parser. Returns the payload (caller
 * frees) with *spec filled, or NULL with err.
 */
static char *
submit_prepare(struct ctl_conn *c, json_t *in, struct job_spec *spec, enum ctl_err *code, char *err, size_t errlen)
{
	struct server *s = c->ctl->s;
	json_t *job = json_deep_copy(in);
	json_t *owner = json_object_get(job, "owner");
	char *payload = NULL;
	*code = CTL_E_BAD_REQUEST;
	if (owner != NULL && !json_is_null(owner)) {
		if (!json_is_string(owner) || (!is_admin(c) && strcmp(json_string_value(owner), c->cred.owner) != 0)) {
			*code = CTL_E_FORBIDDEN;
			snprintf(err, errlen, "only admin may submit for another owner");
			json_decref(job);
			return NULL;
		}
	} else
		json_object_set_new(job, "owner", json_string(c->cred.owner));
	if (submit_resolve_workflow(c, job, code, err, errlen) != 0) {
		json_decref(job);
		return NULL;
	}
	json_t *id = json_object_get(job, "id");
	if (id == NULL || json_is_null(id)) {
		/* In the namespace of the job's owner, as a named id is (ctl_ns.c): admin's own jobs have none. */
		const char *ns = !is_admin(c) ? c->cred.owner : json_string_value(owner);
		char uuid[37], stored[JOB_ID_MAX + 1];
		if (job_new_id(uuid) != 0 || (ns != NULL ? job_ns_make(ns, uuid, stored, sizeof(stored), err, errlen)
		                                         : snprintf(stored, sizeof(stored), "%s", uuid) < 0) != 0) {
			snprintf(err, errlen, "no randomness for a job id");
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, "id", json_string(stored)); /* in the owner's namespace (ctl_ns.c) */
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

/* One validated job of the request, waiting to be sent with the others of its queue. */
struct submit_job {
	struct job_spec spec;
	char *payload;
};

/* Sends one queue's jobs (every job whose queue is jobs[first]'s) as one ctl_submit. */
static int
submit_queue(struct server *s, struct submit_data *d, struct submit_job *jobs, size_t n, size_t first,
             unsigned char *sent)
{
	const char *queue = jobs[first].spec.queue;
	struct rctx ctx = {.queue = queue};
	struct rcall *rc = rcall_new(s, RF_CTL_SUBMIT, &ctx);
	struct submit_part *part = xcalloc(1, sizeof(*part));
	part->d = d;
	part->index = xcalloc(n, sizeof(*part->index));
	for (size_t i = first; i < n; i++) {
		struct job_spec *sp = &jobs[i].spec;
		if (sent[i] || strcmp(sp->queue, queue) != 0)
			continue;
		sent[i] = 1;
		part->index[part->n++] = i;
		rcall_submit_job(rc, queue, sp, jobs[i].payload);
	}
	rcall_int(rc, "ttl", s->cfg.result_ttl_s);
	rcall_int(rc, "max_events", s->cfg.events_max);
	rcall_int(rc, "n", (long long)part->n);
	ctl_known_queue(s, queue);
	d->left++;
	if (rcall_batch(s, rc, submit_reply, part) != 0) {
		d->left--;
		free(part->index);
		free(part);
		return -1;
	}
	return 0;
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
	struct submit_job *jobs = xcalloc(n ? n : 1, sizeof(*jobs));
	json_t *seen = json_object(), *ids = json_array();
	char err[512];
	enum ctl_err code = CTL_E_BAD_REQUEST;
	size_t i;
	for (i = 0; i < n; i++) {
		struct submit_job *sj = &jobs[i];
		sj->payload = submit_prepare(c, one != NULL ? one : json_array_get(many, i), &sj->spec, &code, err,
		                             sizeof(err));
		if (sj->payload == NULL)
			break;
		/* ids are unique per queue */
		char *qid = xasprintf("%s\n%s", sj->spec.queue, sj->spec.id);
		int dup = json_object_get(seen, qid) != NULL;
		json_object_set_new(seen, qid, json_true());
		free(qid);
		if (dup) {
			code = CTL_E_BAD_REQUEST;
			snprintf(err, sizeof(err), "id %s appears twice in the batch", sj->spec.id);
			free(sj->payload);
			sj->payload = NULL;
			job_spec_free(&sj->spec);
			break;
		}
		json_array_append_new(ids, json_string(sj->spec.id));
	}
	if (i < n) {
		if (one != NULL)
			ctl_reply_err(c, rid, code, "job: %s", err);
		else
			ctl_reply_err(c, rid, code, "jobs[%zu]: %s", i, err);
		json_decref(ids);
	} else {
		struct submit_data *d = xcalloc(1, sizeof(*d));
		if (one != NULL) {
			d->result = json_pack("{s:O, s:s, s:s}", "id", json_array_get(ids, 0), "queue",
			                      jobs[0].spec.queue, "state", "queued");
			json_decref(ids);
		} else
			d->result = json_pack("{s:o}", "ids", ids);
		if (extra != NULL)
			json_object_update(d->result, extra);
		d->p = ctl_pending_new(c, rid);
		d->left = 1; /* held until every part went out */
		if (extra != NULL && ctl_ns_active(c))
			d->on_behalf = xstrdup(c->cred.owner);
		unsigned char *sent = xcalloc(n ? n : 1, 1);
		int failed = 0;
		for (size_t k = 0; k < n && !failed; k++)
			if (!sent[k])
				failed = submit_queue(s, d, jobs, n, k, sent) != 0;
		free(sent);
		if (failed)
			d->lost = 1;
		submit_release(d); /* drops the hold */
	}
	for (size_t k = 0; k < i; k++) {
		free(jobs[k].payload);
		job_spec_free(&jobs[k].spec);
	}
	free(jobs);
	json_decref(seen);
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
		const char *k = ctl_rf_elem(r, i), *v = rr_str(rr_elem(r, i + 1), &len);
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

static void
status_located(struct ctl_conn *c, json_t *rid, const char *queue, void *data)
{
	struct server *s = c->ctl->s;
	char *job = data;
	struct rctx ctx = {.queue = queue, .id = job};
	char *key = rkey_name(s, RK_JOB, &ctx);
	const char *argv[] = {"HGETALL", key};
	struct ctl_pending *p = ctl_pending_new(c, rid);
	p->data = job;
	if (redis_command(s->redis, 2, argv, NULL, status_reply, p) != 0) {
		ctl_reply_err(c, rid, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(p->data);
		ctl_pending_end(p);
	}
	free(key);
}

void
ctl_op_status(struct ctl_conn *c, struct ctl_request *req)
{
	const char *job = json_string_value(json_object_get(req->root, "job"));
	ctl_locate(c, req->id, job, json_string_value(json_object_get(req->root, "queue")), status_located,
	           xstrdup(job));
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

/*
 * list: one ctl_list per queue (the request's queue, or every known one), merged newest first. Every part
 * starts after the same cursor; a part that stopped early (page full, scan limit) says where, and the merged
 * page takes only jobs above the highest such point, so the next page (from the merged cursor) skips none.
 */
struct list_item {
	double score;
	char *id;
	json_t *summary;
};

struct list_data {
	struct ctl_pending *p;
	int left, failed;
	size_t limit;
	struct list_item *items;
	size_t n, cap;
	int bounded; /* a part stopped early: only items above (bound_score, bound_id) are certain */
	double bound_score;
	char bound_id[ID_BUF];
};

/* 1 if (s1, id1) comes before (is newer than) (s2, id2) in the index's newest-first order. */
static int
list_before(double s1, const char *id1, double s2, const char *id2)
{
	return s1 > s2 || (s1 == s2 && strcmp(id1, id2) > 0);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	return list_before(x->score, x->id, y->score, y->id) ? -1 : list_before(y->score, y->id, x->score, x->id);
}

static void
list_finish(struct server *s, struct list_data *d)
{
	struct ctl_pending *p = d->p;
	if (!p->c->dead && d->failed)
		ctl_reply_err(p->c, p->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
	else if (!p->c->dead) {
		if (d->n > 1)
			qsort(d->items, d->n, sizeof(*d->items), item_cmp);
		json_t *jobs = json_array(), *cursor = json_null();
		size_t taken = 0;
		for (size_t i = 0; i < d->n && taken < d->limit; i++) {
			struct list_item *it = &d->items[i];
			if (d->bounded && !list_before(it->score, it->id, d->bound_score, d->bound_id) &&
			    !(it->score == d->bound_score && strcmp(it->id, d->bound_id) == 0))
				break;
			json_array_append(jobs, it->summary);
			taken++;
			if (taken == d->limit || i + 1 == d->n) {
				char *cs = xasprintf("%.3f%c%s", it->score, CURSOR_SEP, it->id);
				json_decref(cursor);
				cursor = json_string(cs);
				free(cs);
			}
		}
		if (d->bounded && (taken < d->limit)) {
			char *cs = xasprintf("%.3f%c%s", d->bound_score, CURSOR_SEP, d->bound_id);
			json_decref(cursor);
			cursor = json_string(cs);
			free(cs);
		} else if (!d->bounded && taken < d->limit) {
			json_decref(cursor);
			cursor = json_null(); /* every part ended: no more pages */
		}
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:o, s:o}", "jobs", jobs, "cursor", cursor)));
	}
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].id);
		json_decref(d->items[i].summary);
	}
	free(d->items);
	free(d);
	ctl_pending_end(p);
}

static void
list_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct list_data *d = priv;
	if (r == NULL || rr_type(r) != RR_ARRAY || rr_count(r) != 4) {
		if (r != NULL && rr_type(r) == RR_ERROR)
			log_error("ctl: list: Redis: %s", rr_str(r, NULL));
		d->failed = 1;
	} else {
		size_t len = 0;
		const char *text = rr_str(rr_elem(r, 2), &len);
		json_t *raw = text != NULL ? json_loadb(text, len, 0, NULL) : NULL, *e;
		size_t i;
		json_array_foreach(raw, i, e)
		{
			if (d->n == d->cap) {
				d->cap = d->cap ? d->cap * 2 : 64;
				d->items = xrealloc(d->items, d->cap * sizeof(*d->items));
			}
			struct list_item *it = &d->items[d->n++];
			it->score = strtod(json_string_value(json_object_get(e, "_score")) ?: "0", NULL);
			json_object_del(e, "_score");
			it->id = xstrdup(json_string_value(json_object_get(e, "id")) ?: "");
			it->summary = summary(e);
		}
		json_decref(raw);
		const char *score = ctl_rf_elem(r, 0), *id = ctl_rf_elem(r, 1);
		int ended = rr_int(rr_elem(r, 3)) == 1;
		if (!ended && score != NULL && score[0] != '\0' && id != NULL) {
			double sc = strtod(score, NULL);
			if (!d->bounded || list_before(sc, id, d->bound_score, d->bound_id)) {
				d->bounded = 1;
				d->bound_score = sc;
				snprintf(d->bound_id, sizeof(d->bound_id), "%s", id);
			}
		}
	}
	if (--d->left == 0)
		list_finish(s, d);
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
	char score[40] = "", id[ID_BUF] = "";
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
	const char *fq = opt_str(req->root, "queue");
	int nq;
	const char **qs = fq[0] ? NULL : ctl_all_queues(s, &nq);
	if (fq[0])
		nq = 1;
	struct list_data *d = xcalloc(1, sizeof(*d));
	d->p = ctl_pending_new(c, req->id);
	d->limit = (size_t)limit;
	d->left = 1; /* held until every part went out */
	for (int i = 0; i < nq; i++) {
		const char *queue = fq[0] ? fq : qs[i];
		struct rctx ctx = {.queue = queue, .id = ""};
		struct rcall *rc = rcall_new(s, RF_CTL_LIST, &ctx);
		char *tag = rkey_name(s, RK_JOB, &ctx); /* "P{Q}:job:" */
		rcall_arg(rc, "tag", tag, -1);
		free(tag);
		rcall_arg(rc, "score", score, -1);
		rcall_arg(rc, "cursor_id", id, -1);
		rcall_int(rc, "limit", limit);
		rcall_arg(rc, "state", opt_str(req->root, "state"), -1);
		rcall_arg(rc, "type", opt_str(req->root, "type"), -1);
		rcall_arg(rc, "owner", owner, -1);
		rcall_int(rc, "scan_max", limit * CTL_LIST_SCAN_FACTOR);
		/* the summaries are retyped (numbers lose their quotes): half a frame is ample */
		rcall_int(rc, "max_bytes", s->cfg.ctl_max_frame / 2 / (nq > 0 ? nq : 1) + 1024);
		d->left++;
		if (rcall_send(s, rc, list_reply, d) != 0) {
			d->left--;
			d->failed = 1;
		}
	}
	free(qs);
	if (--d->left == 0)
		list_finish(s, d);
}

/* --- queues, stats, pause: one read-only call per queue (and one for the nodes), gathered --- */

struct gather {
	struct ctl_pending *p;
	int left, failed;
	json_t *acc; /* what the parts add up to */
	int on;      /* pause: 1 pause, 0 resume */
	char queue[QUEUE_NAME_MAX + 1];
	void (*done)(struct server *s, struct gather *g);
};

static struct gather *
gather_new(struct ctl_conn *c, json_t *id, json_t *acc, void (*done)(struct server *, struct gather *))
{
	struct gather *g = xcalloc(1, sizeof(*g));
	g->p = ctl_pending_new(c, id);
	g->acc = acc;
	g->done = done;
	g->left = 1;
	return g;
}

static void
gather_release(struct server *s, struct gather *g)
{
	if (--g->left > 0)
		return;
	if (g->p->c->dead)
		;
	else if (g->failed)
		ctl_reply_err(g->p->c, g->p->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
	else
		g->done(s, g);
	json_decref(g->acc);
	ctl_pending_end(g->p);
	free(g);
}

static void
gather_send(struct server *s, struct gather *g, struct rcall *rc, redis_cb *cb, int ro)
{
	g->left++;
	if ((ro ? rcall_send(s, rc, cb, g) : rcall_batch(s, rc, cb, g)) != 0) {
		g->left--;
		g->failed = 1;
	}
}

static int
gather_usable(struct gather *g, const struct redis_reply *r, const char *what)
{
	if (r != NULL && rr_type(r) != RR_ERROR)
		return 1;
	if (r != NULL)
		log_error("ctl: %s: Redis: %s", what, rr_str(r, NULL));
	g->failed = 1;
	return 0;
}

struct queue_part {
	struct gather *g;
	char name[QUEUE_NAME_MAX + 1];
};

static void
queues_done(struct server *s, struct gather *g)
{
	ctl_send(g->p->c, ctl_reply_ok(g->p->id, json_pack("{s:O}", "queues", g->acc)));
}

static void
queue_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct queue_part *qp = priv;
	struct gather *g = qp->g;
	if (gather_usable(g, r, "queues") && rr_count(r) == 8) {
		json_t *q =
		        json_pack("{s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:I}", "name", qp->name, "length",
		                  (json_int_t)rr_int(rr_elem(r, 0)), "scheduled", (json_int_t)rr_int(rr_elem(r, 1)),
		                  "inflight", (json_int_t)rr_int(rr_elem(r, 2)), "paused", rr_int(rr_elem(r, 3)) != 0,
		                  "dead", (json_int_t)rr_int(rr_elem(r, 5)), "concurrency_waiting",
		                  (json_int_t)rr_int(rr_elem(r, 6)), "rate_limited", (json_int_t)rr_int(rr_elem(r, 7)));
		const char *age = ctl_rf_elem(r, 4); /* '' when the queue is empty or its oldest has no created_at */
		double v = age != NULL && *age != '\0' ? strtod(age, NULL) : -1;
		if (v >= 0 && isfinite(v))
			json_object_set_new(q, "oldest_age_s", json_real(v));
		json_array_append_new(g->acc, q);
	}
	free(qp);
	gather_release(s, g);
}

void
ctl_op_queues(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct gather *g = gather_new(c, req->id, json_array(), queues_done);
	int nq;
	const char **qs = ctl_all_queues(s, &nq);
	for (int i = 0; i < nq; i++) {
		struct rctx ctx = {.queue = qs[i]};
		struct rcall *rc = rcall_new(s, RF_CTL_QUEUES, &ctx);
		for (int k = 0; k < s->nknown_nodes; k++) {
			struct rctx nc = {.queue = qs[i], .node = s->known_nodes[k]};
			rcall_key(rc, RK_INFLIGHT, &nc);
		}
		if (s->nknown_nodes == 0)
			rcall_key(rc, RK_INFLIGHT, &ctx); /* this node's, before the first refresh */
		struct queue_part *qp = xcalloc(1, sizeof(*qp));
		qp->g = g;
		snprintf(qp->name, sizeof(qp->name), "%s", qs[i]);
		g->left++;
		if (rcall_send(s, rc, queue_reply, qp) != 0) {
			g->left--;
			g->failed = 1;
			free(qp);
		}
	}
	free(qs);
	gather_release(s, g);
}

/* A flat field/value array as an object of strings (the heartbeat and stats hashes as stored). */
static json_t *
flat_strings(const struct redis_reply *r, int as_int)
{
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < rr_count(r); i += 2) {
		const char *k = ctl_rf_elem(r, i), *v = ctl_rf_elem(r, i + 1);
		if (k == NULL || v == NULL)
			continue;
		json_object_set_new(o, k, as_int ? json_integer(strtoll(v, NULL, 10)) : json_string(v));
	}
	return o;
}

static void
stats_done(struct server *s, struct gather *g)
{
	struct ctl *ctl = g->p->c->ctl;
	json_t *nodes = json_object_get(g->acc, "nodes");
	long long running = 0;
	size_t i;
	json_t *hb;
	json_array_foreach(nodes, i, hb) running += json_integer_value(json_object_get(hb, "running"));
	/* Throughput: jobs this daemon finished over the samples the tick took (up to a minute). */
	unsigned oldest = ctl->ring_filled < 60 ? 0 : ctl->ring_pos;
	double span = clock_mono() - ctl->ring_t[oldest];
	uint64_t done = s->stats_succeeded + s->stats_failed - ctl->done_ring[oldest];
	json_t *tp = json_pack("{s:f, s:I, s:f}", "per_s_1m", span > 0 && ctl->ring_filled ? done / span : 0.0,
	                       "finished_1m", (json_int_t)(ctl->ring_filled ? done : 0), "window_s",
	                       ctl->ring_filled ? span : 0.0);
	json_t *pool = json_pack("{s:i, s:i, s:i, s:i}", "workers", s->cfg.workers, "live", s->nworkers, "busy",
	                         s->nrunning, "idle", pool_idle(s));
	json_t *res = json_pack("{s:O, s:I, s:o, s:o, s:O, s:s, s:O}", "counters", json_object_get(g->acc, "counters"),
	                        "running", (json_int_t)running, "throughput", tp, "pool", pool, "nodes", nodes, "node",
	                        s->cfg.node_id, "dead_entries", json_object_get(g->acc, "dead_entries"));
	json_object_set_new(res, "local", metrics_json(s, ctl->nconns));
	/* This daemon's execution log: rows written / dropped, commits, errors by kind, prune progress. */
	if (s->store != NULL)
		json_object_set_new(res, "store", store_counters_json(s->store));
	ctl_send(g->p->c, ctl_reply_ok(g->p->id, res));
}

static void
counters_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct gather *g = priv;
	if (gather_usable(g, r, "stats") && rr_count(r) == 2) {
		json_t *sum = json_object_get(g->acc, "counters"), *part = flat_strings(rr_elem(r, 0), 1), *v;
		const char *k;
		json_object_foreach(part, k, v)
		{
			json_int_t old = json_integer_value(json_object_get(sum, k));
			json_object_set_new(sum, k, json_integer(old + json_integer_value(v)));
		}
		json_decref(part);
		json_t *dead = json_object_get(g->acc, "dead_entries");
		json_integer_set(dead, json_integer_value(dead) + (json_int_t)rr_int(rr_elem(r, 1)));
	}
	gather_release(s, g);
}

static void
nodes_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct gather *g = priv;
	if (gather_usable(g, r, "stats"))
		for (size_t i = 0; i < rr_count(r); i++) {
			size_t len = 0;
			const char *t = rr_str(rr_elem(r, i), &len);
			json_t *hb = t != NULL ? json_loadb(t, len, 0, NULL) : NULL;
			if (hb != NULL)
				json_array_append_new(json_object_get(g->acc, "nodes"), hb);
		}
	gather_release(s, g);
}

void
ctl_op_stats(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	json_t *acc = json_pack("{s:o, s:o, s:o}", "counters", json_object(), "nodes", json_array(), "dead_entries",
	                        json_integer(0));
	struct gather *g = gather_new(c, req->id, acc, stats_done);
	struct rctx gc = {0};
	struct rcall *rc = rcall_new(s, RF_CTL_NODES, &gc);
	rcall_int(rc, "lease_ms", (long long)(s->cfg.lease_s * 1000));
	gather_send(s, g, rc, nodes_reply, 1);
	int nq;
	const char **qs = ctl_all_queues(s, &nq);
	for (int i = 0; i < nq; i++) {
		struct rctx ctx = {.queue = qs[i]};
		gather_send(s, g, rcall_new(s, RF_CTL_COUNTERS, &ctx), counters_reply, 1);
	}
	free(qs);
	gather_release(s, g);
}

static void
pause_done(struct server *s, struct gather *g)
{
	log_info("ctl: %s: queue %s %s", g->p->c->peer, g->queue, g->on ? "paused" : "resumed");
	ctl_send(g->p->c, ctl_reply_ok(g->p->id, json_pack("{s:s, s:b}", "queue", g->queue, "paused", g->on)));
	ctl_refresh_paused(s);
}

static void
pause_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct gather *g = priv;
	gather_usable(g, r, "pause");
	gather_release(s, g);
}

/* The queue's own flag (its fetch and claim read it), then the deployment-wide list and the notice. */
static void
pause_or_resume(struct ctl_conn *c, struct ctl_request *req, int on)
{
	struct server *s = c->ctl->s;
	const char *q = json_string_value(json_object_get(req->root, "queue"));
	struct gather *g = gather_new(c, req->id, NULL, pause_done);
	g->on = on;
	snprintf(g->queue, sizeof(g->queue), "%s", q);
	struct rctx ctx = {.queue = q};
	struct rcall *rc = rcall_new(s, RF_CTL_PAUSE, &ctx);
	rcall_arg(rc, "on", on ? "1" : "0", -1);
	gather_send(s, g, rc, pause_reply, 0);
	struct rctx gc = {0};
	rc = rcall_new(s, RF_CTL_PAUSE_G, &gc);
	rcall_arg(rc, "queue", q, -1);
	rcall_arg(rc, "on", on ? "1" : "0", -1);
	char *ch = rchan_control(s);
	rcall_arg(rc, "channel", ch, -1);
	free(ch);
	gather_send(s, g, rc, pause_reply, 0);
	ctl_known_queue(s, q);
	gather_release(s, g);
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

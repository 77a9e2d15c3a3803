/*
 * ctl_locate: what the control ops need to know about the layout. Job ids are unique per queue (every key of
 * a job carries its queue's hash tag), so an op given only an id finds the job's queue first: one EXISTS per
 * known queue, pipelined (one round trip). An id found in several queues is answered "ambiguous: give the
 * queue" (the ops take an optional queue field). Also here: the once-a-tick refresh of the paused and known
 * queues and the node ids (ctl_state), and registering a queue a submit names for the first time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "xmalloc.h"

static void
strv_set(char ***v, int *n, const struct redis_reply *r)
{
	for (int i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*n = 0;
	*v = xcalloc(rr_count(r) + 1, sizeof(**v));
	for (size_t i = 0; i < rr_count(r); i++) {
		const char *q = rr_str(rr_elem(r, i), NULL);
		if (q != NULL)
			(*v)[(*n)++] = xstrdup(q);
	}
}

static void
state_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	if (r == NULL || rr_type(r) != RR_ARRAY || rr_count(r) != 3)
		return;
	const struct redis_reply *paused = rr_elem(r, 0);
	int was_paused = 0;
	for (int i = 0; i < s->cfg.nqueues; i++) {
		was_paused |= s->paused[i];
		s->paused[i] = 0;
		for (size_t k = 0; k < rr_count(paused); k++) {
			const char *q = rr_str(rr_elem(paused, k), NULL);
			if (q != NULL && strcmp(q, s->cfg.queues[i].name) == 0)
				s->paused[i] = 1;
		}
	}
	strv_set(&s->known_queues, &s->nknown_queues, rr_elem(r, 1));
	strv_set(&s->known_nodes, &s->nknown_nodes, rr_elem(r, 2));
	if (was_paused)
		fetch_more(s); /* a queue may have been resumed */
}

void
ctl_refresh_paused(struct server *s)
{
	struct rctx ctx = {0};
	rcall_send(s, rcall_new(s, RF_CTL_STATE, &ctx), state_reply, NULL);
}

void
ctl_state_free(struct server *s)
{
	for (int i = 0; i < s->nknown_queues; i++)
		free(s->known_queues[i]);
	for (int i = 0; i < s->nknown_nodes; i++)
		free(s->known_nodes[i]);
	free(s->known_queues);
	free(s->known_nodes);
	s->known_queues = s->known_nodes = NULL;
	s->nknown_queues = s->nknown_nodes = 0;
}

static int
known(const struct server *s, const char *q)
{
	for (int i = 0; i < s->nknown_queues; i++)
		if (strcmp(s->known_queues[i], q) == 0)
			return 1;
	return 0;
}

void
ctl_known_queue(struct server *s, const char *queue)
{
	if (known(s, queue))
		return;
	struct rctx ctx = {0};
	char *key = rkey_name(s, RK_G_QUEUES, &ctx);
	const char *argv[] = {"SADD", key, queue};
	if (redis_command(s->redis, 3, argv, NULL, NULL, NULL) == 0) {
		s->known_queues = xrealloc(s->known_queues, (size_t)(s->nknown_queues + 2) * sizeof(char *));
		s->known_queues[s->nknown_queues++] = xstrdup(queue);
		s->known_queues[s->nknown_queues] = NULL;
	}
	free(key);
}

/* Every queue a job may be in: this daemon's, and every one known deployment-wide. NULL-terminated; caller
 * frees the array (not the strings). */
const char **
ctl_all_queues(const struct server *s, int *n)
{
	const char **v = xcalloc((size_t)(s->cfg.nqueues + s->nknown_queues + 1), sizeof(*v));
	*n = 0;
	for (int i = 0; i < s->cfg.nqueues; i++)
		v[(*n)++] = s->cfg.queues[i].name;
	for (int i = 0; i < s->nknown_queues; i++) {
		int dup = 0;
		for (int k = 0; k < s->cfg.nqueues && !dup; k++)
			dup = strcmp(s->cfg.queues[k].name, s->known_queues[i]) == 0;
		if (!dup)
			v[(*n)++] = s->known_queues[i];
	}
	return v;
}

struct locate {
	struct ctl_pending *p;
	char id[JOB_ID_MAX + 1];
	int left;
	int failed;
	int nfound;
	char found[QUEUE_NAME_MAX + 1];
	ctl_located_fn *fn;
	void *data;
};

/* One probe (or the hold) is done; the last one answers. */
static void
locate_release(struct locate *l)
{
	if (--l->left > 0)
		return;
	struct ctl_pending *lp = l->p;
	if (lp->c->dead) {
		free(l->data);
	} else if (l->failed) {
		ctl_reply_err(lp->c, lp->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		free(l->data);
	} else if (l->nfound == 0) {
		ctl_reply_err(lp->c, lp->id, CTL_E_NOT_FOUND, "no job %s", l->id);
		free(l->data);
	} else if (l->nfound > 1) {
		ctl_reply_err(lp->c, lp->id, CTL_E_BAD_REQUEST,
		              "ambiguous id: job %s exists in %d queues; give the queue (field queue)", l->id,
		              l->nfound);
		free(l->data);
	} else
		l->fn(lp->c, lp->id, l->found, l->data);
	ctl_pending_end(lp);
	free(l);
}

struct exists_probe {
	struct locate *l;
	char queue[QUEUE_NAME_MAX + 1];
};

static void
exists_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct exists_probe *e = priv;
	struct locate *l = e->l;
	if (r == NULL || rr_type(r) == RR_ERROR)
		l->failed = 1;
	else if (rr_type(r) == RR_INTEGER && rr_int(r) == 1 && l->nfound++ == 0)
		snprintf(l->found, sizeof(l->found), "%s", e->queue);
	free(e);
	locate_release(l);
}

void
ctl_locate(struct ctl_conn *c, json_t *rid, const char *id, const char *queue, ctl_located_fn *fn, void *data)
{
	struct server *s = c->ctl->s;
	if (queue != NULL && queue[0] != '\0') {
		fn(c, rid, queue, data);
		return;
	}
	struct locate *l = xcalloc(1, sizeof(*l));
	l->p = ctl_pending_new(c, rid);
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->fn = fn;
	l->data = data;
	l->left = 1; /* held until every probe went out */
	int n;
	const char **qs = ctl_all_queues(s, &n);
	for (int i = 0; i < n; i++) {
		struct rctx ctx = {.queue = qs[i], .id = id};
		char *key = rkey_name(s, RK_JOB, &ctx);
		const char *argv[] = {"EXISTS", key};
		struct exists_probe *e = xcalloc(1, sizeof(*e));
		e->l = l;
		snprintf(e->queue, sizeof(e->queue), "%s", qs[i]);
		if (redis_command(s->redis, 2, argv, NULL, exists_reply, e) == 0)
			l->left++;
		else {
			free(e);
			l->failed = 1;
		}
		free(key);
	}
	free(qs);
	locate_release(l); /* drops the hold */
}

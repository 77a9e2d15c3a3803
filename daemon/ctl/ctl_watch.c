/*
 * ctl_watch: watch streams and the pub/sub connection's traffic.
 *
 * A watch: read the job hash (exists? visible to the caller? ended already?), subscribe to the job's channel
 * P job:ID (one subscription per job, shared by its watchers, refcounted), and only once Redis confirmed the
 * subscription read the events list P job:ID:events. Everything published after the confirmation arrives
 * live; everything before it is in the list. Live messages published between the confirmation and the list
 * read are in both: they are the list's tail and the live stream's head, so the first live message is looked
 * up in the list and as many live messages as the list holds after it are skipped (the events are
 * byte-identical in both places). The stream ends with the terminal event, then the job view ("done").
 *
 * The control channel P control carries cancels of running jobs to the daemon running them and pause
 * notices; every daemon subscribes to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "xmalloc.h"

enum watch_phase { W_HASH, W_SUB, W_LIST, W_LIVE, W_END, W_DONE };

/*
 * A subscribed channel. When its last watcher goes it is unsubscribed but kept ("leaving") until Redis
 * confirms: hiredis keeps one callback per channel, and a SUBSCRIBE sent before the UNSUBSCRIBE's reply
 * would lose its callback to that reply. A watcher that comes meanwhile waits, and the channel is
 * subscribed again once the UNSUBSCRIBE is through.
 */
struct ctl_chan {
	struct ctl_chan *next;
	char *name; /* owned */
	int refs;
	int confirmed;
	int leaving;
};

struct ctl_watch {
	struct ctl_watch *next; /* c->watches */
	struct ctl_conn *c;
	json_t *id; /* owned */
	char job[JOB_ID_MAX + 1];
	char queue[QUEUE_NAME_MAX + 1]; /* found by ctl_locate */
	struct ctl_chan *chan;
	enum watch_phase phase;
	char **backlog; /* live messages that came while the list read was out (owned) */
	size_t nbacklog;
	char **list; /* the list as read, kept until the first live message settled the overlap (owned) */
	size_t nlist;
	int overlap_done;
	size_t skip; /* live messages still to skip as duplicates of the list */
	int pending; /* a Redis call of this watch is out */
};

static void watch_end(struct ctl_watch *w);
static void watch_read_list(struct ctl_watch *w);

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* --- channels --- */

static char *
job_channel(const struct server *s, const char *queue, const char *job)
{
	return rchan_job(s, queue, job);
}

static struct ctl_chan *
chan_find(struct ctl *ctl, const char *name)
{
	for (struct ctl_chan *ch = ctl->chans; ch != NULL; ch = ch->next)
		if (strcmp(ch->name, name) == 0)
			return ch;
	return NULL;
}

/* Takes a reference on the job's channel, subscribing if it is new. NULL when the connection is down. */
static struct ctl_chan *
chan_ref(struct ctl *ctl, const char *queue, const char *job)
{
	char *name = job_channel(ctl->s, queue, job);
	struct ctl_chan *ch = chan_find(ctl, name);
	if (ch != NULL) {
		free(name);
		ch->refs++;
		return ch;
	}
	if (redis_subscribe(ctl->s->redis, name) != 0) {
		free(name);
		return NULL;
	}
	ch = xcalloc(1, sizeof(*ch));
	ch->name = name;
	ch->refs = 1;
	ch->next = ctl->chans;
	ctl->chans = ch;
	return ch;
}

static void
chan_free(struct ctl *ctl, struct ctl_chan *ch)
{
	for (struct ctl_chan **pp = &ctl->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	free(ch->name);
	free(ch);
}

static void
chan_unref(struct ctl *ctl, struct ctl_chan *ch)
{
	if (--ch->refs > 0)
		return;
	ch->confirmed = 0;
	if (!ch->leaving && redis_unsubscribe(ctl->s->redis, ch->name) != 0) {
		chan_free(ctl, ch); /* the connection is down: the subscription went with it */
		return;
	}
	ch->leaving = 1;
}

/* --- a watch's way --- */

/* Sends one event (JSON text as stored and published). Returns 1 if it was terminal. */
static int
watch_event(struct ctl_watch *w, const char *text, size_t len)
{
	json_t *ev = json_loadb(text, len, 0, NULL);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return 0;
	}
	const char *st = json_string_value(json_object_get(ev, "state"));
	int terminal =
	        st != NULL && job_state_parse(st) >= 0 && job_state_terminal((enum job_state)job_state_parse(st));
	ctl_send(w->c, ctl_reply_event(w->id, ev));
	return terminal;
}

static void
done_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_watch *w = priv;
	struct ctl_conn *c = w->c;
	w->pending = 0;
	c->refs--;
	if (w->phase == W_DONE || c->dead)
		return;
	if (r == NULL || rr_type(r) != RR_ARRAY || rr_count(r) == 0)
		ctl_reply_err(c, w->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_NOT_FOUND, "job %s: %s", w->job,
		              r == NULL ? "Redis connection lost" : "its record expired");
	else
		ctl_send(c, ctl_reply_done(w->id, ctl_job_view(r)));
	watch_end(w);
}

/* The terminal event went out: the final frame carries the job view. */
/*
 * Sends one Redis command for the watch; its reply goes to cb, and the connection is held until then. If
 * Redis is unreachable the client gets "unavailable" and the watch ends. argv is copied by redis.c.
 */
static void
watch_command(struct ctl_watch *w, int argc, const char **argv, redis_cb *cb)
{
	struct server *s = w->c->ctl->s;
	if (redis_command(s->redis, argc, argv, NULL, cb, w) == 0) {
		w->pending = 1;
		w->c->refs++;
	} else {
		ctl_reply_err(w->c, w->id, CTL_E_UNAVAILABLE, "Redis is unreachable");
		watch_end(w);
	}
}

static void
watch_finish(struct ctl_watch *w)
{
	struct server *s = w->c->ctl->s;
	w->phase = W_END;
	struct rctx ctx = {.queue = w->queue, .id = w->job};
	char *key = rkey_name(s, RK_JOB, &ctx);
	const char *argv[] = {"HGETALL", key};
	watch_command(w, 2, argv, done_reply);
	free(key);
}

/* A live message, after the list was sent: skips what the list already gave, sends the rest. */
static void
watch_live(struct ctl_watch *w, const char *msg, size_t len)
{
	if (!w->overlap_done) {
		/* The first live message: if the list holds it, it and the list's entries after it were sent. */
		w->overlap_done = 1;
		for (size_t i = w->nlist; i-- > 0;)
			if (strlen(w->list[i]) == len && memcmp(w->list[i], msg, len) == 0) {
				w->skip = w->nlist - i;
				break;
			}
		strv_free(w->list, w->nlist);
		w->list = NULL;
		w->nlist = 0;
	}
	if (w->skip > 0) {
		w->skip--;
		return;
	}
	if (watch_event(w, msg, len))
		watch_finish(w);
}

/*
 * The common start of a watch's Redis reply: the request is no longer pending; returns 1 when r is an array
 * the watch should go on with, 0 when the watch already ended, its connection died, or Redis was lost (the
 * client then gets "unavailable" and the watch ends).
 */
static int
watch_array_reply(struct ctl_watch *w, const struct redis_reply *r)
{
	struct ctl_conn *c = w->c;
	w->pending = 0;
	c->refs--;
	if (w->phase == W_DONE || c->dead)
		return 0;
	if (r == NULL || rr_type(r) != RR_ARRAY) {
		ctl_reply_err(c, w->id, CTL_E_UNAVAILABLE, "Redis connection lost");
		watch_end(w);
		return 0;
	}
	return 1;
}

static void
list_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_watch *w = priv;
	struct ctl_conn *c = w->c;
	if (!watch_array_reply(w, r))
		return;
	size_t n = rr_count(r);
	w->list = xcalloc(n + 1, sizeof(char *));
	/*
	 * The whole list is the story so far: a retried job's list holds its earlier terminal event followed by
	 * the new run's, so only a terminal event that is the list's last says the job has ended.
	 */
	int last_terminal = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		const char *e = rr_str(rr_elem(r, i), &len);
		if (e == NULL)
			continue;
		w->list[w->nlist++] = xstrndup(e, len);
		last_terminal = watch_event(w, e, len);
		if (c->dead)
			return;
	}
	if (w->chan == NULL || last_terminal) {
		/* The job had ended (when the watch began, or since): the list told its story; the view ends it. */
		watch_finish(w);
		return;
	}
	w->phase = W_LIVE;
	char **backlog = w->backlog;
	size_t nb = w->nbacklog;
	w->backlog = NULL;
	w->nbacklog = 0;
	for (size_t i = 0; i < nb && w->phase == W_LIVE && !c->dead; i++)
		watch_live(w, backlog[i], strlen(backlog[i]));
	strv_free(backlog, nb);
}

static void
watch_read_list(struct ctl_watch *w)
{
	struct server *s = w->c->ctl->s;
	w->phase = W_LIST;
	struct rctx ctx = {.queue = w->queue, .id = w->job};
	char *key = rkey_name(s, RK_EVENTS, &ctx);
	const char *argv[] = {"LRANGE", key, "0", "-1"};
	watch_command(w, 4, argv, list_reply);
	free(key);
}

static void
hash_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_watch *w = priv;
	struct ctl_conn *c = w->c;
	if (!watch_array_reply(w, r))
		return;
	json_t *view = rr_count(r) > 0 ? ctl_job_view(r) : NULL;
	if (view == NULL || !ctl_may_see(c, json_string_value(json_object_get(view, "owner")))) {
		json_decref(view);
		ctl_reply_err(c, w->id, CTL_E_NOT_FOUND, "no job %s", w->job);
		watch_end(w);
		return;
	}
	const char *st = json_string_value(json_object_get(view, "state"));
	int ended = st != NULL && job_state_parse(st) >= 0 && job_state_terminal((enum job_state)job_state_parse(st));
	json_decref(view);
	if (ended) { /* no subscription needed: the list holds the whole story */
		watch_read_list(w);
		return;
	}
	w->chan = chan_ref(c->ctl, w->queue, w->job);
	if (w->chan == NULL) {
		ctl_reply_err(c, w->id, CTL_E_UNAVAILABLE, "Redis pub/sub connection is down");
		watch_end(w);
		return;
	}
	if (w->chan->confirmed)
		watch_read_list(w);
	else
		w->phase = W_SUB;
}

/* The watch is over (done, error, or its connection closed): it lets go of its channel. */
static void
watch_end(struct ctl_watch *w)
{
	if (w->phase == W_DONE)
		return;
	w->phase = W_DONE;
	w->c->nwatches--;
	if (w->chan != NULL)
		chan_unref(w->c->ctl, w->chan);
	w->chan = NULL;
	strv_free(w->backlog, w->nbacklog);
	strv_free(w->list, w->nlist);
	w->backlog = w->list = NULL;
	w->nbacklog = w->nlist = 0;
}

static void
watch_located(struct ctl_conn *c, json_t *rid, const char *queue, void *data)
{
	struct server *s = c->ctl->s;
	char *job = data;
	if (c->nwatches >= CTL_WATCHES_MAX) {
		ctl_reply_err(c, rid, CTL_E_LIMIT, "more than %d watches on one connection", CTL_WATCHES_MAX);
		free(job);
		return;
	}
	struct ctl_watch *w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->id = rid != NULL ? json_incref(rid) : NULL;
	snprintf(w->job, sizeof(w->job), "%s", job);
	snprintf(w->queue, sizeof(w->queue), "%s", queue);
	free(job);
	w->next = c->watches;
	c->watches = w;
	c->nwatches++;
	struct rctx ctx = {.queue = w->queue, .id = w->job};
	char *key = rkey_name(s, RK_JOB, &ctx);
	const char *argv[] = {"HGETALL", key};
	if (redis_command(s->redis, 2, argv, NULL, hash_reply, w) == 0) {
		w->pending = 1;
		c->refs++;
	} else {
		ctl_reply_err(c, rid, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		watch_end(w);
	}
	free(key);
}

void
ctl_op_watch(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	if (c->nwatches >= CTL_WATCHES_MAX) {
		ctl_reply_err(c, req->id, CTL_E_LIMIT, "more than %d watches on one connection", CTL_WATCHES_MAX);
		return;
	}
	if (!redis_sub_ready(s->redis)) {
		ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE, "Redis pub/sub connection is down; try again");
		return;
	}
	const char *job = json_string_value(json_object_get(req->root, "job"));
	ctl_locate(c, req->id, job, json_string_value(json_object_get(req->root, "queue")), watch_located,
	           xstrdup(job));
}

void
ctl_watch_conn_closed(struct ctl_conn *c)
{
	for (struct ctl_watch *w = c->watches; w != NULL; w = w->next)
		watch_end(w);
}

void
ctl_watch_free_all(struct ctl_conn *c)
{
	for (struct ctl_watch *w = c->watches, *next; w != NULL; w = next) {
		next = w->next;
		watch_end(w);
		json_decref(w->id);
		free(w);
	}
	c->watches = NULL;
}

void
ctl_watch_free_chans(struct ctl *ctl)
{
	while (ctl->chans != NULL)
		chan_free(ctl, ctl->chans);
}

/* --- the pub/sub connection --- */

void
ctl_sub_connected(struct server *s)
{
	if (s->ctl == NULL)
		return;
	char *name = rchan_control(s);
	if (redis_subscribe(s->redis, name) == 0)
		s->ctl->control_subscribed = 1;
	free(name);
}

/* Messages were lost with the connection: every watch ends (its client may watch again). */
void
ctl_sub_lost(struct server *s)
{
	struct ctl *ctl = s->ctl;
	if (ctl == NULL)
		return;
	ctl->control_subscribed = 0;
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		for (struct ctl_watch *w = c->watches; w != NULL; w = w->next) {
			if (w->phase == W_DONE || c->dead)
				continue;
			ctl_reply_err(c, w->id, CTL_E_UNAVAILABLE, "Redis pub/sub connection lost; watch again");
			watch_end(w);
		}
	/* Whatever subscriptions remain died with the connection. */
	ctl_watch_free_chans(ctl);
}

void
ctl_sub_unsubscribed(struct server *s, const char *channel)
{
	struct ctl *ctl = s->ctl;
	struct ctl_chan *ch = ctl ? chan_find(ctl, channel) : NULL;
	if (ch == NULL || !ch->leaving)
		return;
	ch->leaving = 0;
	if (ch->refs == 0) {
		chan_free(ctl, ch);
		return;
	}
	if (redis_subscribe(s->redis, ch->name) == 0)
		return;
	/* Down again: ctl_sub_lost ends the waiting watches. */
}

void
ctl_sub_confirmed(struct server *s, const char *channel)
{
	struct ctl *ctl = s->ctl;
	struct ctl_chan *ch = ctl ? chan_find(ctl, channel) : NULL;
	if (ch == NULL || ch->confirmed || ch->leaving)
		return;
	ch->confirmed = 1;
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		for (struct ctl_watch *w = c->watches; w != NULL; w = w->next)
			if (w->chan == ch && w->phase == W_SUB && !c->dead)
				watch_read_list(w);
}

/* {"op":"cancel","job":ID} stops the job here if this daemon holds it; {"op":"pause"} rereads the set. */
static void
control_message(struct server *s, const char *msg, size_t len)
{
	json_t *m = json_loadb(msg, len, 0, NULL);
	const char *op = json_string_value(json_object_get(m, "op"));
	const char *job = json_string_value(json_object_get(m, "job"));
	if (op != NULL && strcmp(op, "cancel") == 0 && job != NULL)
		jobs_cancel(s, job);
	else if (op != NULL && strcmp(op, "pause") == 0)
		ctl_refresh_paused(s);
	json_decref(m);
}

void
ctl_sub_message(struct server *s, const char *channel, const char *msg, size_t len)
{
	struct ctl *ctl = s->ctl;
	if (ctl == NULL)
		return;
	char *control = rchan_control(s);
	int is_control = strcmp(channel, control) == 0;
	free(control);
	if (is_control) {
		control_message(s, msg, len);
		return;
	}
	struct ctl_chan *ch = chan_find(ctl, channel);
	if (ch == NULL)
		return;
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		for (struct ctl_watch *w = c->watches; w != NULL && !c->dead; w = w->next) {
			if (w->chan != ch)
				continue;
			if (w->phase == W_LIST) {
				if (w->nbacklog >= CTL_BACKLOG_MAX) {
					ctl_reply_err(c, w->id, CTL_E_LIMIT,
					              "too many events while starting the watch");
					watch_end(w);
					continue;
				}
				w->backlog = xrealloc(w->backlog, (w->nbacklog + 1) * sizeof(char *));
				w->backlog[w->nbacklog++] = xstrndup(msg, len);
			} else if (w->phase == W_LIVE)
				watch_live(w, msg, len);
		}
}

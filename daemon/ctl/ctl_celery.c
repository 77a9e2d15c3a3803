/*
 * ctl_celery: the control op celery.send - publish a task in Celery's own format (task protocol v2 on kombu's
 * Redis transport) so that a stock Celery worker, or a hopperd consuming that queue, runs it. This is what
 * lets libhopper, hopper.py and hopperctl hand work to Celery without a Redis client of their own.
 *
 * Check, then proceed: the request was validated by the catalogue (common/ctl_proto.c); the message is
 * built by common/celery_msg.c (the encoder hopperd uses for chain links), then one LPUSH on the command
 * connection publishes it to the queue's kombu priority list, under the daemon's celery_prefix (kombu's
 * global_keyprefix). The reply is {"task_id", "queue", "key"}; the result appears in the Celery result
 * backend as celery-task-meta-TASK_ID, written by whoever runs the task.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery_msg.h"
#include "clock.h"
#include "ctl.h"
#include "log.h"
#include "redis.h"
#include "xmalloc.h"

#define CELERY_DEFAULT_QUEUE "celery" /* Celery's task_default_queue */

/* What the reply needs once Redis answered. Owned by the pending request, freed by send_reply. */
struct send_data {
	char *task_id, *queue, *key;
};

static void
send_data_free(struct send_data *d)
{
	free(d->task_id);
	free(d->queue);
	free(d->key);
	free(d);
}

static void
send_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	struct send_data *d = p->data;
	(void)s;
	if (p->c->dead)
		; /* the client is gone: the task was (or was not) published all the same */
	else if (r == NULL)
		ctl_reply_err(p->c, p->id, CTL_E_UNAVAILABLE,
		              "Redis connection lost; the task may or may not have been published");
	else if (rr_type(r) == RR_ERROR) {
		log_error("ctl: celery.send: Redis: %s", rr_str(r, NULL));
		ctl_reply_err(p->c, p->id, CTL_E_INTERNAL, "Redis refused the LPUSH (see the daemon's log)");
	} else
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:s, s:s}", "task_id", d->task_id, "queue",
		                                             d->queue, "key", d->key)));
	send_data_free(d);
	ctl_pending_end(p);
}

/* An optional integer field of the (validated) request, or def. */
static long long
int_field(const json_t *req, const char *name, long long def)
{
	json_t *v = json_object_get(req, name);
	return json_is_integer(v) ? json_integer_value(v) : def;
}

/* A field of the request, NULL when absent or null (the catalogue's rule: null counts as absent). Borrowed. */
static json_t *
field(json_t *req, const char *name)
{
	json_t *v = json_object_get(req, name);
	return json_is_null(v) ? NULL : v;
}

/* The message for the request (validated by the catalogue). 0, or -1 with err. Caller frees out. */
static int
encode(struct server *s, json_t *req, struct celery_encoded *out, char *err, size_t errlen)
{
	char origin[300];
	snprintf(origin, sizeof(origin), "%d@%s", (int)getpid(), s->cfg.node_id);
	json_t *q = json_object_get(req, "queue");
	double now = clock_now();
	long long countdown = int_field(req, "countdown_s", 0), eta = int_field(req, "eta", 0);
	long long expires = int_field(req, "expires_s", 0);
	struct celery_send m = {
	        .task = json_string_value(json_object_get(req, "task")),
	        .id = json_string_value(json_object_get(req, "task_id")), /* NULL: a new UUID */
	        .queue = json_is_string(q) ? json_string_value(q) : CELERY_DEFAULT_QUEUE,
	        .priority = (int)int_field(req, "priority", 0),
	        .args = field(req, "args"),
	        .kwargs = field(req, "kwargs"),
	        .eta = eta > 0         ? (double)eta
	               : countdown > 0 ? now + (double)countdown
	                               : 0,
	        .expires = expires > 0 ? now + (double)expires : 0,
	        .origin = origin,
	};
	return celery_encode_task(&m, out, err, errlen);
}

void
ctl_op_celery_send(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	struct celery_encoded e;
	char err[256];
	if (encode(s, req->root, &e, err, sizeof(err)) < 0) {
		ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "%s", err);
		return;
	}
	json_t *q = json_object_get(req->root, "queue");
	struct send_data *d = xcalloc(1, sizeof(*d));
	d->task_id = xstrdup(e.id);
	d->queue = xstrdup(json_is_string(q) ? json_string_value(q) : CELERY_DEFAULT_QUEUE);
	d->key = xasprintf("%s%s", s->cfg.celery_prefix, e.key);
	char *env = celery_encoded_join(&e, NULL);
	celery_encoded_free(&e);
	const char *argv[] = {"LPUSH", d->key, env};
	struct ctl_pending *p = ctl_pending_new(c, req->id);
	p->data = d;
	if (redis_command(s->redis, 3, argv, NULL, send_reply, p) != 0) {
		ctl_reply_err(c, req->id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
		send_data_free(d);
		ctl_pending_end(p);
	}
	free(env);
}

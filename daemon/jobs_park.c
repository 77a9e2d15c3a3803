/*
 * jobs_park: durable waits (README "Durable waits"). A worker may end an attempt with a park ("wait until T,
 * or until job C ends") instead of a result; the job then waits in its queue's scheduled set and holds no
 * worker. The job's phase still moves only in jobs.c: this file parses the park, ends the attempt's row,
 * builds the hopper_park call (OP_PARK, sent and resent by jobs.c like every op) and sends the wake when a
 * child a parent waits for has ended.
 *
 * A wake is best effort: a daemon killed between a child's finish and its wake, or a wake refused, leaves the
 * parent parked until the fallback time its worker chose, when it asks after the child again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

/* What a park says it waits for ends up in the job hash's message and the attempt row's error. */
#define PARK_REASON_MAX 256

int
jobs_park_take(struct job *j, json_t *park)
{
	char why[128] = "";
	const char *reason = NULL, *wake = NULL, *wake_queue = NULL;
	double until = 0;
	json_t *w = json_object_get(park, "wake");
	int bad = !json_is_object(park) || jsonx_number(park, "until", 0, 1e11, &until, why, sizeof(why)) <= 0 ||
	          jsonx_string(park, "reason", PARK_REASON_MAX, &reason, why, sizeof(why)) < 0;
	if (!bad && w != NULL)
		bad = !json_is_object(w) || jsonx_string(w, "job", JOB_ID_MAX, &wake, why, sizeof(why)) <= 0 ||
		      jsonx_string(w, "queue", QUEUE_NAME_MAX, &wake_queue, why, sizeof(why)) < 0 ||
		      !job_name_valid(wake, JOB_ID_MAX) ||
		      (wake_queue != NULL && !job_name_valid(wake_queue, QUEUE_NAME_MAX));
	if (bad) {
		free(j->error);
		j->error = xasprintf("the worker's park is not valid%s%s", why[0] ? ": " : "", why);
		j->ok = 0;
		return -1;
	}
	j->parked = 1;
	j->park_until = until;
	free(j->park_reason);
	j->park_reason = xstrdup(reason != NULL ? reason : "a durable wait");
	snprintf(j->park_wake, sizeof(j->park_wake), "%s", wake != NULL ? wake : "");
	snprintf(j->park_wake_queue, sizeof(j->park_wake_queue), "%s", wake_queue != NULL ? wake_queue : "");
	return 0;
}

void
jobs_park(struct server *s, struct job *j, double took)
{
	double now = clock_now();
	metrics_attempt(s, j->queue, j->spec.type, "parked", took);
	log_info("job %s (%s) attempt %d parks until %.3f: %s", j->spec.id, j->spec.type, j->attempt, j->park_until,
	         j->park_reason);
	char *why = xasprintf("parked: %s", j->park_reason);
	if (j->row > 0)
		store_attempt_finish(s->store, j->row, "parked", now, why, NULL);
	free(why);
	job_op_start(s, j, OP_PARK);
	fetch_more(s);
}

struct rcall *
jobs_park_call(struct server *s, struct job *j)
{
	struct rctx ctx = {.queue = j->queue, .id = j->spec.id};
	struct rcall *c = rcall_new(s, RF_PARK, &ctx);
	rcall_arg(c, "payload", j->payload, (long)j->payload_len);
	rcall_arg(c, "id", j->spec.id, -1);
	rcall_int(c, "fence", j->fence);
	rcall_arg(c, "node", s->cfg.node_id, -1);
	rcall_int(c, "attempt", j->attempt);
	rcall_num(c, "until", j->park_until);
	rcall_arg(c, "reason", j->park_reason, -1);
	rcall_arg(c, "wake", j->park_wake, -1);
	rcall_num(c, "ran", j->ran_s);
	rcall_int(c, "pid", j->worker_pid);
	rcall_int(c, "ttl", s->cfg.result_ttl_s);
	rcall_int(c, "max_events", s->cfg.events_max);
	return c;
}

struct wake_ref {
	char parent[JOB_ID_MAX + 1];
	char child[JOB_ID_MAX + 1];
};

static void
woke(struct server *s, const struct redis_reply *r, void *priv)
{
	struct wake_ref *w = priv;
	(void)s;
	if (r == NULL || rr_type(r) == RR_ERROR)
		log_warn("job %s: the wake of its parent %s was lost (%s); the parent asks again at its fallback time",
		         w->child, w->parent, r != NULL ? rr_str(r, NULL) : "Redis connection lost");
	else
		log_debug("job %s: wake of parent %s: %s", w->child, w->parent, rr_str(r, NULL));
	free(w);
}

void
jobs_park_child_ended(struct server *s, const struct job *j)
{
	if (j->spec.parent_id[0] == '\0' || j->spec.parent_queue[0] == '\0')
		return;
	struct rctx ctx = {.queue = j->spec.parent_queue, .id = j->spec.parent_id};
	struct rcall *c = rcall_new(s, RF_WAKE, &ctx);
	rcall_arg(c, "child", j->spec.id, -1);
	rcall_arg(c, "owner", j->spec.owner ? j->spec.owner : "", -1);
	struct wake_ref *w = xcalloc(1, sizeof(*w));
	snprintf(w->parent, sizeof(w->parent), "%s", j->spec.parent_id);
	snprintf(w->child, sizeof(w->child), "%s", j->spec.id);
	if (rcall_batch(s, c, woke, w) < 0) {
		log_warn("job %s: Redis is down: its parent %s waits for its fallback time", j->spec.id,
		         j->spec.parent_id);
		free(w);
	}
}

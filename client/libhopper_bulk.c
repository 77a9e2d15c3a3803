/*
 * libhopper_bulk: the workflow-restart calls of libhopper (client/hopper.h): one run, and every run a filter
 * matches, which is a walk over the list op's pages with one workflow.restart per run. The walk is on the
 * client because the daemon's list already pages every queue newest first with a stable cursor (the jobs
 * index's score is the run's creation time, which a restart does not change).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "hopper.h"
#include "libhopper_int.h"
#include "xmalloc.h"

int
hopper_workflow_restart(struct hopper *h, const char *job, const char *queue, const char *from, json_t **result)
{
	if (job == NULL || from == NULL)
		return libhopper_usage(h, "workflow.restart needs a run id and a step");
	json_t *f = json_pack("{s:s, s:s}", "job", job, "from", from);
	if (queue != NULL && queue[0] != '\0')
		json_object_set_new(f, "queue", json_string(queue));
	int r = hopper_call(h, "workflow.restart", f, result);
	json_decref(f);
	return r;
}

/* One run of a page: restarts it and counts the outcome. HOPPER_OK to go on, else the error that stops the
 * walk. */
static int
restart_one(struct hopper *h, const json_t *job, const char *from, hopper_restart_cb cb, void *ud,
            struct hopper_restart_counts *n)
{
	const char *id = json_string_value(json_object_get(job, "id"));
	const char *queue = json_string_value(json_object_get(job, "queue"));
	if (id == NULL)
		return HOPPER_OK;
	json_t *res = NULL;
	int r = hopper_workflow_restart(h, id, queue, from, &res);
	if (r == HOPPER_OK)
		n->restarted++;
	else if (r == HOPPER_E_BAD_REQUEST) /* the list filtered on type, so: no record of the step */
		n->no_step++;
	else if (r == HOPPER_E_CONFLICT || r == HOPPER_E_NOT_FOUND)
		n->changed++;
	else
		return r;
	if (cb != NULL)
		cb(h, id, r, res, ud);
	json_decref(res);
	return HOPPER_OK;
}

int
hopper_workflow_restart_all(struct hopper *h, const struct hopper_restart_filter *f, hopper_restart_cb cb, void *ud,
                            struct hopper_restart_counts *counts)
{
	struct hopper_restart_counts n = {0};
	if (f == NULL || f->from == NULL || f->state == NULL) {
		if (counts != NULL)
			*counts = n;
		return libhopper_usage(h, "a bulk workflow restart needs from and state");
	}
	char *cursor = NULL;
	int r;
	do {
		struct hopper_list_filter lf = {.state = f->state,
		                                .queue = f->queue,
		                                .type = "workflow.run",
		                                .owner = f->owner,
		                                .limit = CTL_LIST_MAX,
		                                .cursor = cursor};
		json_t *page = NULL, *job;
		size_t i;
		r = hopper_list(h, &lf, &page);
		free(cursor);
		cursor = NULL;
		if (r != HOPPER_OK)
			break;
		json_array_foreach(json_object_get(page, "jobs"), i, job)
		{
			if ((r = restart_one(h, job, f->from, cb, ud, &n)) != HOPPER_OK)
				break;
		}
		const char *c = json_string_value(json_object_get(page, "cursor"));
		if (r == HOPPER_OK && c != NULL)
			cursor = xstrdup(c);
		json_decref(page);
	} while (cursor != NULL);
	if (counts != NULL)
		*counts = n;
	return r;
}

/*
 * events: wakes the workflow runs an event.send found waiting (daemon/lua/20_events.lua hands back their
 * members, "QUEUE<TAB>ID"). Each wake is a call on the run's own queue (its hash tag): a run that is still
 * parked on a wait moves to the head of the scheduled set; one that is running or already woken is left
 * alone (its next look at the event stream finds the event).
 */
#include <stdio.h>
#include <string.h>

#include "ctl_proto.h"
#include "hopperd.h"
#include "job.h"
#include "log.h"

int
event_wake_member(struct server *s, const char *member, const char *key)
{
	const char *tab = member != NULL ? strchr(member, '\t') : NULL;
	if (tab == NULL || (size_t)(tab - member) > QUEUE_NAME_MAX || !job_name_valid(tab + 1, JOB_ID_MAX)) {
		log_warn("events: ignoring a malformed waiter of %s", key);
		return -1;
	}
	char queue[QUEUE_NAME_MAX + 1];
	memcpy(queue, member, (size_t)(tab - member));
	queue[tab - member] = '\0';
	if (!job_name_valid(queue, QUEUE_NAME_MAX))
		return -1;
	char why[64 + CTL_EVENT_KEY_MAX];
	snprintf(why, sizeof(why), "event %s", key);
	(void)s;
	(void)why; /* WIP: jobs_wake from the park branch */
	return -1;
}

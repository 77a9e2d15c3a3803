/*
 * events: wakes the workflow runs an event.send found waiting (daemon/lua/20_events.lua hands back their
 * members, "QUEUE<TAB>ID"). Each wake is a call on the run's own queue (its hash tag): a run that is still
 * parked on this key (its park's wake is "evt:KEY", EVENT_WAKE_PREFIX) is due at once; one still running
 * (its park on the way) is marked so that the park makes it due at once; anything else is left alone. The
 * woken run's next look at the key's events finds the event (daemon/lua/18_park.lua, hopper_wake).
 */
#include <stdio.h>
#include <string.h>

#include "ctl_proto.h"
#include "hopperd.h"
#include "job.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"

static void
woken(struct server *s, const struct redis_reply *r, void *priv)
{
	(void)s;
	(void)priv;
	/* A lost wake only delays the run until its park's fallback time, when it looks at the events again. */
	if (r == NULL || rr_type(r) == RR_ERROR)
		log_warn("events: a wake was lost (%s); the run looks again at its fallback time",
		         r != NULL ? rr_str(r, NULL) : "Redis connection lost");
}

int
event_wake_member(struct server *s, const char *member, const char *key, const char *owner)
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
	char why[EVENT_WAKE_PREFIX_LEN + CTL_EVENT_KEY_MAX + 1];
	snprintf(why, sizeof(why), "%s%s", EVENT_WAKE_PREFIX, key);
	struct rctx ctx = {.queue = queue, .id = tab + 1};
	struct rcall *c = rcall_new(s, RF_WAKE, &ctx);
	rcall_arg(c, "child", why, -1);
	rcall_arg(c, "owner", owner ? owner : "", -1);
	return rcall_batch(s, c, woken, NULL);
}

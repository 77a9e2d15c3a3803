/*
 * ctl_rf: what control ops that call one Redis function share: sending the call for an async reply, the
 * check that a reply may be used (answering the client when it may not), and reading reply elements.
 */
#include "ctl.h"
#include "log.h"
#include "rfunc.h"

int
ctl_rf_send(struct ctl_conn *c, json_t *id, struct rcall *rc, int ro, redis_cb *cb, void *data)
{
	struct ctl_pending *p = ctl_pending_new(c, id);
	p->data = data;
	struct server *s = c->ctl->s;
	if ((ro ? rcall_send(s, rc, cb, p) : rcall_batch(s, rc, cb, p)) == 0)
		return 0;
	ctl_reply_err(c, id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
	ctl_pending_end(p);
	return -1;
}

int
ctl_rf_usable(struct ctl_pending *p, const struct redis_reply *r, const char *what)
{
	if (!p->c->dead && r != NULL && rr_type(r) != RR_ERROR)
		return 1;
	if (r != NULL && rr_type(r) == RR_ERROR)
		log_error("ctl: %s: Redis: %s", what, rr_str(r, NULL));
	if (!p->c->dead)
		ctl_reply_err(p->c, p->id, r == NULL ? CTL_E_UNAVAILABLE : CTL_E_INTERNAL, "%s",
		              r == NULL ? "Redis connection lost; the request may or may not have been applied"
		                        : "Redis refused the operation (see the daemon's log)");
	return 0;
}

const char *
ctl_rf_elem(const struct redis_reply *r, size_t i)
{
	const struct redis_reply *e = rr_elem(r, i);
	return e != NULL ? rr_str(e, NULL) : NULL;
}

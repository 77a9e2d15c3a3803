/*
 * ctl_event: the control socket's event ops (event.send, event.list). An event is a key and a JSON object;
 * the workflow runs waiting for its key (a wait_event step, parked in Redis) are woken on their own queues,
 * and the event stays readable for event_keep_s so that a wait that begins after it (within its lookback)
 * still sees it. Keys are the owner's, like idempotency keys: a client sends to and lists its own owner's
 * keys only, admin names an owner with "owner" (none: the keys of runs without an owner). The keys'
 * layout and bounds are daemon/lua/20_events.lua's (schema/redis-keys.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "rfunc.h"
#include "xmalloc.h"

#define LIST_DEFAULT 100

/* The owner whose key a request names: the credential's, or for admin the "owner" field (NULL: none). NULL
 * with *err set when a client without admin names another owner. */
static const char *
req_owner(struct ctl_conn *c, struct ctl_request *req, const char **err)
{
	const char *o = json_string_value(json_object_get(req->root, "owner"));
	*err = NULL;
	if ((c->cred.scopes & CTL_SCOPE_ADMIN) != 0)
		return o;
	if (o != NULL && strcmp(o, c->cred.owner) != 0)
		*err = "only admin may name another owner";
	return c->cred.owner;
}

/* An event's stream id "MS-SEQ" as Unix seconds. */
static double
id_time(const char *id)
{
	return id != NULL ? strtod(id, NULL) / 1000.0 : 0;
}

/* --- send --- */

/* The pending send's data: the key, then NUL, then its owner ("" for none). */
static void
send_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	struct ctl_pending *p = priv;
	char *key = p->data;
	const char *owner = key + strlen(key) + 1;
	/* The waiters left the key in the same step that stored the event: wake them whether or not the client
	 * is still there to hear the answer. */
	int woken = 0;
	if (r != NULL && rr_type(r) == RR_ARRAY)
		for (size_t i = 2; i < rr_count(r); i++)
			if (event_wake_member(s, ctl_rf_elem(r, i), key, owner[0] ? owner : NULL) == 0)
				woken++;
	if (ctl_rf_usable(p, r, "event.send")) {
		const char *id = ctl_rf_elem(r, 0);
		ctl_send(p->c, ctl_reply_ok(p->id, json_pack("{s:s, s:s, s:f, s:i}", "key", key, "event", id ? id : "",
		                                             "at", id_time(id), "woken", woken)));
	}
	free(key);
	ctl_pending_end(p);
}

/* The owner check and the call both ops make (f: RF_EVENT_SEND or RF_EVENT_LIST), or NULL after answering. */
static struct rcall *
event_call(struct ctl_conn *c, struct ctl_request *req, enum rf f, const char **owner)
{
	const char *why;
	*owner = req_owner(c, req, &why);
	if (why != NULL) {
		ctl_reply_err(c, req->id, CTL_E_FORBIDDEN, "%s", why);
		return NULL;
	}
	struct rctx ctx = {.ev = json_string_value(json_object_get(req->root, "key")), .owner = *owner};
	return rcall_new(c->ctl->s, f, &ctx);
}

void
ctl_op_event_send(struct ctl_conn *c, struct ctl_request *req)
{
	struct server *s = c->ctl->s;
	const char *key = json_string_value(json_object_get(req->root, "key"));
	json_t *data = json_object_get(req->root, "data");
	char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : xstrdup("{}");
	if (strlen(text) > CTL_EVENT_DATA_MAX) {
		ctl_reply_err(c, req->id, CTL_E_BAD_REQUEST, "an event's data may be at most %d bytes of JSON",
		              CTL_EVENT_DATA_MAX);
		free(text);
		return;
	}
	const char *owner;
	struct rcall *rc = event_call(c, req, RF_EVENT_SEND, &owner);
	if (rc == NULL) {
		free(text);
		return;
	}
	rcall_arg(rc, "data", text, -1);
	rcall_int(rc, "keep_ms", (long long)s->cfg.event_keep_s * 1000);
	rcall_int(rc, "max", s->cfg.event_max_per_key);
	free(text);
	char *k = xasprintf("%s%c%s", key, '\0', owner ? owner : "");
	if (ctl_rf_send(c, req->id, rc, 0, send_reply, k) != 0)
		free(k);
}

/* --- list --- */

static void
list_reply(struct server *s, const struct redis_reply *r, void *priv)
{
	(void)s;
	struct ctl_pending *p = priv;
	char *key = p->data;
	if (ctl_rf_usable(p, r, "event.list")) {
		json_t *events = json_array();
		size_t n = rr_count(r);
		const struct redis_reply *w = rr_elem(r, 0);
		for (size_t i = 1; i + 1 < n; i += 2) {
			const char *id = ctl_rf_elem(r, i), *text = ctl_rf_elem(r, i + 1);
			json_t *d = text != NULL ? json_loads(text, 0, NULL) : NULL;
			json_array_append_new(events, json_pack("{s:s, s:f, s:o}", "id", id ? id : "", "at",
			                                        id_time(id), "data", d != NULL ? d : json_null()));
		}
		ctl_send(p->c,
		         ctl_reply_ok(p->id, json_pack("{s:s, s:I, s:o}", "key", key, "waiters",
		                                       (json_int_t)(w != NULL ? rr_int(w) : 0), "events", events)));
	}
	free(key);
	ctl_pending_end(p);
}

void
ctl_op_event_list(struct ctl_conn *c, struct ctl_request *req)
{
	const char *owner;
	struct rcall *rc = event_call(c, req, RF_EVENT_LIST, &owner);
	if (rc == NULL)
		return;
	const char *key = json_string_value(json_object_get(req->root, "key"));
	json_t *since = json_object_get(req->root, "since_s"), *count = json_object_get(req->root, "count");
	if (since != NULL) {
		/* Redis's clock decides what is kept; the daemon's is close enough to choose where a listing starts. */
		long long ms = (long long)(clock_now() * 1000) - json_integer_value(since) * 1000;
		rcall_int(rc, "since_ms", ms > 0 ? ms : 0);
	} else
		rcall_arg(rc, "since_ms", "-", 1);
	rcall_int(rc, "count", count != NULL ? json_integer_value(count) : LIST_DEFAULT);
	char *k = xstrdup(key);
	if (ctl_rf_send(c, req->id, rc, 1, list_reply, k) != 0)
		free(k);
}

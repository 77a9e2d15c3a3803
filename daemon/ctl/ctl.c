/*
 * ctl: the control socket's connections. One non-blocking connection per client with a bounded input buffer
 * (one frame) and a bounded output buffer (ctl_out_max: a client that does not read its replies is cut off
 * as a slow consumer), deadlines (hello + auth, idle), framing and sealing, and the dispatch table keyed by
 * the ops catalogue (common/ctl_proto.c). Listening and accepting are ctl_listen.c. The
 * checks every op shares (hello first, auth, scope, requests in flight, Redis up) happen here, once, before
 * a handler runs. See schema/control-protocol.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "jsonx.h"
#include "log.h"
#include "redis.h"
#include "xmalloc.h"

/* A connection's input buffer starts here and grows to the frame it reads, never beyond one frame. */
#define IN_INITIAL 4096

static ctl_handler *const handlers[CTL_OP_COUNT] = {
        [CTL_OP_HELLO] = NULL, /* before dispatch: ctl_hello */
        [CTL_OP_AUTH] = ctl_op_auth,
        [CTL_OP_PING] = ctl_op_ping,
        [CTL_OP_SUBMIT] = ctl_op_submit,
        [CTL_OP_STATUS] = ctl_op_status,
        [CTL_OP_WATCH] = ctl_op_watch,
        [CTL_OP_CANCEL] = ctl_op_cancel,
        [CTL_OP_RETRY] = ctl_op_retry,
        [CTL_OP_LIST] = ctl_op_list,
        [CTL_OP_LOGS] = ctl_op_logs,
        [CTL_OP_QUEUES] = ctl_op_queues,
        [CTL_OP_STATS] = ctl_op_stats,
        [CTL_OP_PAUSE] = ctl_op_pause,
        [CTL_OP_RESUME] = ctl_op_resume,
        [CTL_OP_TOKEN_CREATE] = ctl_op_token_create,
        [CTL_OP_TOKEN_LIST] = ctl_op_token_list,
        [CTL_OP_TOKEN_REVOKE] = ctl_op_token_revoke,
        [CTL_OP_WORKFLOW_PUT] = ctl_op_workflow_put,
        [CTL_OP_WORKFLOW_LIST] = ctl_op_workflow_list,
        [CTL_OP_WORKFLOW_SHOW] = ctl_op_workflow_show,
        [CTL_OP_WORKFLOW_RM] = ctl_op_workflow_rm,
        [CTL_OP_WORKFLOW_RUN] = ctl_op_workflow_run,
        [CTL_OP_CELERY_SEND] = ctl_op_celery_send,
        [CTL_OP_WORKFLOW_WEBHOOK] = ctl_op_workflow_webhook,
        [CTL_OP_WEBHOOK_TRIGGER] = ctl_op_webhook_trigger,
        [CTL_OP_DEAD_RETRY] = ctl_op_dead_retry,
        [CTL_OP_SCHEDULE_PUT] = ctl_op_schedule_put,
        [CTL_OP_SCHEDULE_LIST] = ctl_op_schedule_list,
        [CTL_OP_SCHEDULE_SHOW] = ctl_op_schedule_show,
        [CTL_OP_SCHEDULE_RM] = ctl_op_schedule_rm,
        [CTL_OP_SCHEDULE_PAUSE] = ctl_op_schedule_pause,
        [CTL_OP_SCHEDULE_RESUME] = ctl_op_schedule_pause,
        [CTL_OP_EVENT_SEND] = ctl_op_event_send,
        [CTL_OP_EVENT_LIST] = ctl_op_event_list,
        [CTL_OP_WORKFLOW_RESTART] = ctl_op_workflow_restart,
};

static void conn_process(struct ctl_conn *c);

/* --- output --- */

static size_t
out_pending(const struct ctl_conn *c)
{
	return c->out_len - c->out_off;
}

/* Writes what it can. Returns -1 if the connection broke (closed here). */
static int
out_flush(struct ctl_conn *c)
{
	struct ev_loop *loop = c->ctl->s->loop;
	while (out_pending(c) > 0) {
		ssize_t n = write(c->fd, c->out + c->out_off, out_pending(c));
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ev_is_active(&c->wio))
				ev_io_start(loop, &c->wio);
			return 0;
		}
		ctl_close(c, n < 0 ? strerror(errno) : "write returned 0");
		return -1;
	}
	c->out_off = c->out_len = 0;
	ev_io_stop(loop, &c->wio);
	if (c->closing)
		ctl_close(c, "closed after its last reply");
	else if (c->throttled) {
		c->throttled = 0;
		if (!c->reading_paused)
			ctl_resume(c);
	}
	return 0;
}

/*
 * Queues bytes for the client. A client that lets more than ctl_out_max pile up is not reading (a watch
 * of a fast job it never consumes): it is cut off, so its backlog costs no one else memory. A single frame
 * into an empty buffer always fits, whatever its size, so a large reply is never refused for its size alone.
 */
static void
out_append(struct ctl_conn *c, const unsigned char *data, size_t n)
{
	if (c->dead)
		return;
	size_t pending = out_pending(c);
	if (pending > 0 && pending + n > (size_t)c->ctl->s->cfg.ctl_out_max) {
		log_warn("ctl: %s: slow consumer: %zu bytes unread (ctl_out_max %d); disconnecting", c->peer, pending,
		         c->ctl->s->cfg.ctl_out_max);
		ctl_close(c, "slow consumer");
		return;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_off > c->out_cap / 2) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_off = 0;
		c->out_len = pending;
	}
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + n)
			cap *= 2;
		c->out = xrealloc(c->out, cap);
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
	if (pending == 0 && out_flush(c) < 0)
		return;
	/*
	 * Backpressure: a client whose replies pile up gets no more requests read until it takes them, so its
	 * pipeline waits in the kernel's buffers, not in ours. What is already in flight may still push it over
	 * ctl_out_max (then it is cut off above); a watch's events can too.
	 */
	if (!c->throttled && !c->dead && out_pending(c) > (size_t)c->ctl->s->cfg.ctl_out_max / 2) {
		c->throttled = 1;
		ev_io_stop(c->ctl->s->loop, &c->rio);
	}
}

static size_t
reply_max(const struct ctl_conn *c)
{
	return (size_t)c->ctl->s->cfg.ctl_max_frame + CTL_REPLY_SLACK;
}

/* Frames msg (sealed when encrypted and seal is set) and queues it. Takes ownership of msg. */
static void
send_msg(struct ctl_conn *c, json_t *msg, int seal)
{
	if (c->dead) {
		json_decref(msg);
		return;
	}
	char *text = jsonx_dump(msg);
	size_t n = strlen(text);
	if (n > reply_max(c)) {
		log_error("ctl: %s: reply of %zu bytes over the frame limit; sending an error instead", c->peer, n);
		json_t *err = ctl_reply_error(json_object_get(msg, "id"), CTL_E_INTERNAL,
		                              "reply of %zu bytes is over the frame limit", n);
		free(text);
		text = jsonx_dump(err);
		n = strlen(text);
		json_decref(err);
	}
	json_decref(msg);
	unsigned char *frame = xmalloc(CTL_FRAME_HEADER_LEN + n + CTL_SEAL_OVERHEAD);
	size_t len;
	if (seal && c->encrypted) {
		len = ctl_seal(&c->sess, (const unsigned char *)text, n, frame);
	} else {
		ctl_frame_header(frame, n, reply_max(c));
		memcpy(frame + CTL_FRAME_HEADER_LEN, text, n);
		len = CTL_FRAME_HEADER_LEN + n;
	}
	free(text);
	if (len == 0)
		ctl_close(c, "cannot seal a frame (nonce counter exhausted)");
	else
		out_append(c, frame, len);
	free(frame);
}

void
ctl_send(struct ctl_conn *c, json_t *msg)
{
	ctl_ns_reply(c, msg);
	send_msg(c, msg, 1);
}

void
ctl_reply_err(struct ctl_conn *c, json_t *id, enum ctl_err code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("ctl: %s: %s: %s", c->peer, ctl_err_name(code), msg);
	ctl_send(c, ctl_reply_error(id, code, "%s", msg));
}

/* --- connection life --- */

void
ctl_close(struct ctl_conn *c, const char *why)
{
	if (c->dead)
		return;
	struct ev_loop *loop = c->ctl->s->loop;
	log_info("ctl: %s: closed: %s", c->peer, why);
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->delay);
	close(c->fd);
	c->fd = -1;
	c->dead = 1;
	c->ctl->nconns--;
	ctl_watch_conn_closed(c);
	ctl_session_wipe(&c->sess);
	if (c->noise != NULL) {
		ctl_noise_wipe(c->noise);
		free(c->noise);
		c->noise = NULL;
	}
}

void
ctl_close_after_flush(struct ctl_conn *c, const char *why)
{
	if (c->dead || c->closing)
		return;
	log_info("ctl: %s: closing: %s", c->peer, why);
	c->closing = 1;
	c->closing_at = clock_mono();
	ev_io_stop(c->ctl->s->loop, &c->rio);
	if (out_pending(c) == 0)
		ctl_close(c, "closed after its last reply");
}

static void
conn_free(struct ctl *ctl, struct ctl_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl_watch_free_all(c);
	json_decref(c->delayed_reply);
	free(c->in);
	free(c->out);
	free(c);
}

void
ctl_reap(struct server *s)
{
	struct ctl *ctl = s->ctl;
	if (ctl == NULL)
		return;
	for (struct ctl_conn *c = ctl->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->dead && c->refs == 0)
			conn_free(ctl, c);
	}
}

struct ctl_pending *
ctl_pending_new(struct ctl_conn *c, json_t *id)
{
	struct ctl_pending *p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->id = id != NULL ? json_incref(id) : NULL;
	c->refs++;
	c->inflight++;
	return p;
}

void
ctl_pending_end(struct ctl_pending *p)
{
	p->c->refs--;
	p->c->inflight--;
	json_decref(p->id);
	free(p);
}

int
ctl_close_token(struct ctl *ctl, const char *token_id, struct ctl_conn *except)
{
	int n = 0;
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		if (c != except && !c->dead && !c->closing && c->authed && c->cred.method == CTL_AUTH_TOKEN &&
		    strcmp(c->cred.token_id, token_id) == 0) {
			ctl_close(c, "its token was revoked");
			n++;
		}
	return n;
}

/* --- input --- */

/* The largest payload this connection accepts: the limit, plus the tag once frames are sealed. */
static size_t
in_max(const struct ctl_conn *c)
{
	return (size_t)c->ctl->s->cfg.ctl_max_frame + (c->encrypted ? CTL_SEAL_OVERHEAD : 0);
}

/* Checks, in order, what every op needs; then runs the op's handler. */
static void
dispatch(struct ctl_conn *c, const unsigned char *p, size_t n)
{
	struct server *s = c->ctl->s;
	struct ctl_request req;
	char err[256];
	enum ctl_err e = ctl_request_parse(p, n, &req, err, sizeof(err));
	if (!c->hello) {
		if (e == CTL_OK && req.op->id == CTL_OP_HELLO)
			ctl_hello(c, &req, p, n);
		else {
			ctl_reply_err(c, req.id, e != CTL_OK ? e : CTL_E_VERSION, "%s",
			              e != CTL_OK ? err : "the first request must be hello");
			ctl_close_after_flush(c, "no hello");
		}
		ctl_request_free(&req);
		return;
	}
	if (c->tcp && !c->authed && (e != CTL_OK || req.op->id != CTL_OP_AUTH)) {
		ctl_auth_failed(c, req.id, "first encrypted request is not auth");
		ctl_request_free(&req);
		return;
	}
	const struct ctl_op *op = req.op;
	if (e != CTL_OK)
		ctl_reply_err(c, req.id, e, "%s", err);
	else if (op->id == CTL_OP_HELLO) {
		ctl_reply_err(c, req.id, CTL_E_VERSION, "hello was already done");
		ctl_close_after_flush(c, "second hello");
	} else if (!c->authed && !(op->flags & CTL_F_PREAUTH))
		ctl_reply_err(c, req.id, CTL_E_UNAUTHENTICATED, "authenticate (auth) first");
	else if (!ctl_scope_allows(c->cred.scopes, op->scope)) {
		char need[64];
		ctl_reply_err(c, req.id, CTL_E_FORBIDDEN, "%s needs scope %s", op->name,
		              ctl_scopes_format(op->scope, need, sizeof(need)));
	} else if (c->inflight >= CTL_INFLIGHT_MAX)
		ctl_reply_err(c, req.id, CTL_E_LIMIT, "more than %d requests in flight", CTL_INFLIGHT_MAX);
	else if (!(op->flags & CTL_F_NOREDIS) && !redis_ready(s->redis))
		ctl_reply_err(c, req.id, CTL_E_UNAVAILABLE, "Redis is unreachable; try again");
	else if (ctl_ns_request(c, &req, err, sizeof(err)) != 0)
		ctl_reply_err(c, req.id, CTL_E_BAD_REQUEST, "%s", err);
	else
		handlers[op->id](c, &req);
	ctl_request_free(&req);
}

/* One whole frame's payload: opened first when the connection is encrypted. */
static void
frame_in(struct ctl_conn *c, const unsigned char *p, size_t n)
{
	c->last_frame_at = clock_mono();
	if (!c->encrypted && c->noise == NULL) {
		dispatch(c, p, n);
		return;
	}
	unsigned char *plain = xmalloc(n);
	size_t plen = 0;
	if (c->noise != NULL) { /* TCP: handshake message 3, whose payload is the auth request */
		if (ctl_handshake_finish(c, p, n, plain, &plen) == 0)
			dispatch(c, plain, plen);
	} else if (ctl_open(&c->sess, p, n, plain, &plen) < 0) {
		log_warn("ctl: %s: an encrypted frame does not open (forged, replayed or reordered)", c->peer);
		ctl_close(c, "frame failed to open");
	} else
		dispatch(c, plain, plen);
	free(plain);
}

/* Handles every whole frame in the input buffer, then keeps the partial rest. */
static void
conn_process(struct ctl_conn *c)
{
	size_t off = 0;
	while (!c->dead && !c->closing && !c->reading_paused && !c->throttled) {
		const unsigned char *p;
		size_t plen = 0, used = 0;
		enum ctl_frame_status st = ctl_frame_decode(c->in + off, c->in_len - off, in_max(c), &p, &plen, &used);
		if (st == CTL_FRAME_NEED_MORE)
			break;
		if (st == CTL_FRAME_TOO_LARGE || st == CTL_FRAME_EMPTY) {
			int big = st == CTL_FRAME_TOO_LARGE;
			log_warn("ctl: %s: %s frame", c->peer, big ? "oversized" : "empty");
			/* In clear before the handshake finished; sealed after. */
			ctl_reply_err(c, NULL, big ? CTL_E_TOO_LARGE : CTL_E_BAD_REQUEST, "%s",
			              big ? "frame over the size limit" : "empty frame");
			ctl_close_after_flush(c, big ? "oversized frame" : "empty frame");
			break;
		}
		frame_in(c, p, plen);
		off += used;
	}
	if (c->dead)
		return;
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

/* Room for the frame being read: the buffer grows to what its header announces, never beyond one frame. */
static void
in_reserve(struct ctl_conn *c)
{
	size_t want = IN_INITIAL;
	if (c->in_len >= CTL_FRAME_HEADER_LEN) {
		size_t n = ((size_t)c->in[0] << 24) | ((size_t)c->in[1] << 16) | ((size_t)c->in[2] << 8) | c->in[3];
		want = CTL_FRAME_HEADER_LEN + (n <= in_max(c) ? n : 0);
	}
	if (want < c->in_len + 1)
		want = c->in_len + 1; /* never: whole frames were consumed */
	if (want > c->in_cap) {
		c->in = xrealloc(c->in, want);
		c->in_cap = want;
	}
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *c = w->data;
	for (int rounds = 0; rounds < 16 && !c->dead && !c->closing && !c->reading_paused && !c->throttled; rounds++) {
		in_reserve(c);
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == 0) {
			ctl_close(c, "client closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				ctl_close(c, strerror(errno));
			return;
		}
		c->in_len += (size_t)n;
		conn_process(c);
	}
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	out_flush(w->data);
}

void
ctl_resume(struct ctl_conn *c)
{
	if (c->dead || c->closing)
		return;
	c->reading_paused = 0;
	if (c->throttled)
		return; /* out_flush resumes it once the output drained */
	ev_io_start(c->ctl->s->loop, &c->rio);
	conn_process(c);
}

void
ctl_conn_start(struct ctl_conn *c)
{
	ev_io_init(&c->rio, read_cb, c->fd, EV_READ);
	ev_io_init(&c->wio, write_cb, c->fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = c->ctl->conns;
	if (c->ctl->conns)
		c->ctl->conns->prev = c;
	c->ctl->conns = c;
	c->ctl->nconns++;
	ev_io_start(c->ctl->s->loop, &c->rio);
	log_debug("ctl: %s: connected (%s)", c->peer, c->tcp ? "tcp" : "unix");
}

void
ctl_check_handlers(void)
{
	for (int i = 0; i < CTL_OP_COUNT; i++)
		if (i != CTL_OP_HELLO && handlers[i] == NULL)
			fatal("ctl: op %s has no handler", ctl_ops[i].name);
}

void
ctl_conns_free(struct ctl *ctl)
{
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		ctl_close(c, "daemon exiting");
	for (struct ctl_conn *c = ctl->conns, *next; c != NULL; c = next) {
		next = c->next;
		conn_free(ctl, c); /* Redis is gone by now: no callback still points here */
	}
	ctl_watch_free_chans(ctl);
	ctl_logs_free(ctl);
}

/* Deadlines, counted in whole frames: a client trickling a byte a second gains nothing. */
static void
conn_deadlines(struct ctl *ctl, double now)
{
	const struct config *cfg = &ctl->s->cfg;
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		if (c->closing && now - c->closing_at > CTL_CLOSE_FLUSH_S)
			ctl_close(c, "did not take its last reply");
		else if (!c->authed && now - c->opened_at > cfg->ctl_auth_timeout_s) {
			log_warn("ctl: %s: no hello and auth within %g s", c->peer, cfg->ctl_auth_timeout_s);
			ctl_close(c, "authentication timeout");
		} else if (c->authed && c->nwatches == 0 && c->inflight == 0 &&
		           now - c->last_frame_at > cfg->ctl_idle_timeout_s)
			ctl_close(c, "idle timeout");
	}
}

/* Which configured queues are paused (the fetch script checks too; this steers the blocking fetch). */
void
ctl_tick(struct server *s)
{
	struct ctl *ctl = s->ctl;
	if (ctl == NULL)
		return;
	conn_deadlines(ctl, clock_mono());
	ctl->done_ring[ctl->ring_pos] = s->stats_succeeded + s->stats_failed;
	ctl->ring_t[ctl->ring_pos] = clock_mono();
	ctl->ring_pos = (ctl->ring_pos + 1) % 60;
	if (ctl->ring_filled < 60)
		ctl->ring_filled++;
	if (redis_ready(s->redis))
		ctl_refresh_paused(s);
}

/*
 * sse: GET /v1/jobs/ID/events as Server-Sent Events. One hub thread owns every control connection used for
 * streams and multiplexes them with poll(): a connection carries up to HUB_WATCHES watches of one token (the
 * daemon's CTL_WATCHES_MAX), so 1,000 open streams cost about 63 control connections, not 1,000 (the daemon
 * caps them at ctl_max_conns). Each HTTP stream thread (libmicrohttpd's thread per connection) waits on its
 * stream's condition variable for bytes the hub formatted.
 *
 * Event ids are the events' own (evid.c: "<at_ms>-<hash>"), the same on every stream of the job. A client
 * reconnecting with Last-Event-ID gets a new watch whose events up to that one are dropped; when that event
 * is no longer in the job's event list (the daemon keeps its last events_max), the stream first sends event
 * "lost" (the range that may be missing and the job's view when the stream opened), then what it has.
 * The stream ends after the job's terminal state with an "end" event, or an "error" event.
 *
 * A stream whose HTTP client went away keeps its watch slot until the job ends (the protocol cannot end one
 * watch and keep the others of a connection); its events are dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "jsonx.h"
#include "web.h"
#include "xmalloc.h"

#define HUB_WATCHES 16
/* Events at the resumed event's millisecond held until it is found: more than this at one millisecond is
 * reported as lost rather than held without bound (a job emits a few per ms at most). */
#define HELD_MAX 256
/* Bytes a stream buffers for a slow HTTP client before it is cut off (events are small: ~200 bytes). */
#define STREAM_BUF_MAX (1024 * 1024)
/* A comment line keeps idle streams alive through proxies (and within hopper-web's own conn_timeout, which
 * would otherwise close a quiet stream) and notices clients that left: every KEEPALIVE_S, or half of
 * conn_timeout_s when that is shorter. */
#define KEEPALIVE_S 15

struct stream {
	struct stream *next; /* pending list */
	pthread_cond_t cv;
	char token[WEB_TOKEN_MAX + 1];
	char job[JOB_ID_MAX + 1];
	int seeking;                   /* resuming: the event of Last-Event-ID not met yet */
	int want_ok;                   /* that id parsed */
	struct evid want;              /* ... as parsed */
	char want_text[EVID_TEXT_MAX]; /* ... as given (printable ASCII, cut), for the lost event */
	json_t *held;                  /* events at want's time while seeking (array, owned) */
	json_t *view;                  /* the job's status when the stream opened (owned) */
	char *buf;
	size_t len, off;
	int done;      /* the hub wrote its last bytes */
	int abandoned; /* the HTTP side is gone: the hub frees it when the watch ends */
	int refs;      /* hub + HTTP side */
};

struct wconn {
	struct hopper *h;
	char token[WEB_TOKEN_MAX + 1];
	long long req[HUB_WATCHES];
	struct stream *st[HUB_WATCHES];
	int n;
	double idle_since;
};

static struct {
	pthread_mutex_t mu;
	const struct web_config *cfg;
	pthread_t thread;
	int running;
	int wake[2];
	struct stream *pending;
	struct wconn *conns;
	int nconns_max;
	int streams; /* open HTTP streams */
	int keepalive_s;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Under H.mu: drops a reference; the last one frees. */
static void
stream_unref(struct stream *s)
{
	if (--s->refs > 0)
		return;
	pthread_cond_destroy(&s->cv);
	json_decref(s->held);
	json_decref(s->view);
	free(s->buf);
	free(s);
}

/* Under H.mu: appends text (copied) for the HTTP side; a client that stopped reading is cut off. */
static void
stream_put(struct stream *s, const char *text, size_t n)
{
	if (s->abandoned || s->done)
		return;
	if (s->len - s->off + n > STREAM_BUF_MAX) {
		s->done = 1; /* the HTTP side ends the response */
		pthread_cond_signal(&s->cv);
		return;
	}
	if (s->off > 0 && s->off == s->len)
		s->off = s->len = 0;
	s->buf = xrealloc(s->buf, s->len + n);
	memcpy(s->buf + s->len, text, n);
	s->len += n;
	pthread_cond_signal(&s->cv);
}

/* Under H.mu: one SSE message; id NULL for none (lost, end, error). */
static void
stream_event(struct stream *s, const char *id, const char *name, const json_t *data)
{
	char *d = jsonx_dump(data);
	char *text = id != NULL ? xasprintf("id: %s\nevent: %s\ndata: %s\n\n", id, name, d)
	                        : xasprintf("event: %s\ndata: %s\n\n", name, d);
	stream_put(s, text, strlen(text));
	free(text);
	free(d);
}

/* Under H.mu: a job event, named by its kind, with its own id. */
static void
stream_job_event(struct stream *s, const json_t *ev, const struct evid *id)
{
	char text[EVID_TEXT_MAX];
	evid_format(id, text);
	const char *kind = json_string_value(json_object_get(ev, "event"));
	stream_event(s, text, kind != NULL ? kind : "event", ev);
}

/*
 * Under H.mu: the resumed event was not found (why): event "lost" with what may be missing (after the
 * resumed event's time, before the first event still held, next, if any: the count is not known) and the
 * job's view when the stream opened, then the events held back. The search is over.
 */
static void
stream_lost(struct stream *s, const char *why, const struct evid *next)
{
	struct evid first;
	if (json_array_size(s->held) > 0)
		evid_of(json_array_get(s->held, 0), &first);
	else if (next != NULL)
		first = *next;
	json_t *d = json_pack("{s:s, s:s, s:n, s:n, s:n, s:O*}", "last_event_id", s->want_text, "reason", why,
	                      "missing_after", "missing_before", "next_id", "job", s->view);
	if (s->want_ok)
		json_object_set_new(d, "missing_after", json_real(s->want.at_ms / 1000.0));
	if (json_array_size(s->held) > 0 || next != NULL) {
		char text[EVID_TEXT_MAX];
		evid_format(&first, text);
		json_object_set_new(d, "missing_before", json_real(first.at_ms / 1000.0));
		json_object_set_new(d, "next_id", json_string(text));
	}
	stream_event(s, NULL, "lost", d);
	json_decref(d);
	size_t i;
	json_t *ev;
	json_array_foreach(s->held, i, ev)
	{
		struct evid id;
		evid_of(ev, &id);
		stream_job_event(s, ev, &id);
	}
	json_array_clear(s->held);
	s->seeking = 0;
}

/* Under H.mu: the next event of the watch: sent, or dropped / held while a resume looks for its event. */
static void
stream_next(struct stream *s, json_t *ev)
{
	struct evid id;
	evid_of(ev, &id);
	if (s->seeking) {
		enum evid_step step = evid_resume_step(&s->want, s->want_ok, &id);
		if (step == EVID_SKIP)
			return;
		if (step == EVID_FOUND) {
			json_array_clear(s->held);
			s->seeking = 0;
			return;
		}
		if (step == EVID_HOLD && json_array_size(s->held) < HELD_MAX) {
			json_array_append(s->held, ev);
			return;
		}
		stream_lost(s, !s->want_ok ? "unknown_id" : step == EVID_HOLD ? "ambiguous" : "trimmed", &id);
	}
	stream_job_event(s, ev, &id);
}

/* Under H.mu: the watch of slot i ended (final frame, error, or connection lost). */
static void
slot_end(struct wconn *w, int i, const char *name, const json_t *data)
{
	struct stream *s = w->st[i];
	if (s->seeking && strcmp(name, "end") == 0)
		stream_lost(s, s->want_ok ? "not_found" : "unknown_id", NULL);
	stream_event(s, NULL, name, data);
	s->done = 1;
	pthread_cond_signal(&s->cv);
	stream_unref(s);
	w->st[i] = NULL;
	w->req[i] = -1;
	if (--w->n == 0)
		w->idle_since = mono();
}

static void
conn_drop(struct wconn *w, const char *why)
{
	json_t *err = json_pack("{s:s, s:s}", "code", "unavailable", "message", why);
	for (int i = 0; i < HUB_WATCHES; i++)
		if (w->st[i] != NULL)
			slot_end(w, i, "error", err);
	json_decref(err);
	hopper_close(w->h);
	w->h = NULL;
	w->n = 0;
}

/* Under H.mu: routes one frame of connection w. */
static void
route_frame(struct wconn *w, json_t *frame)
{
	json_t *fid = json_object_get(frame, "id");
	if (!json_is_integer(fid)) { /* an error the daemon could not tie to a request: the connection is done */
		conn_drop(w, "the daemon closed the stream connection");
		return;
	}
	int i;
	for (i = 0; i < HUB_WATCHES; i++)
		if (w->st[i] != NULL && w->req[i] == json_integer_value(fid))
			break;
	if (i == HUB_WATCHES)
		return;
	struct stream *s = w->st[i];
	json_t *ev = json_object_get(frame, "event");
	if (ev != NULL) {
		stream_next(s, ev);
		return;
	}
	if (json_is_true(json_object_get(frame, "ok")))
		slot_end(w, i, "end", json_object_get(frame, "result"));
	else
		slot_end(w, i, "error", json_object_get(frame, "error"));
}

/* Hub thread, H.mu not held: a new stream gets a slot on a connection of its token (opening one if need be). */
static void
start_stream(struct stream *s)
{
	pthread_mutex_lock(&H.mu);
	struct wconn *w = NULL, *empty = NULL;
	for (int i = 0; i < H.nconns_max; i++) {
		struct wconn *c = &H.conns[i];
		if (c->h != NULL && c->n < HUB_WATCHES && strcmp(c->token, s->token) == 0) {
			w = c;
			break;
		}
		if (empty == NULL && (c->h == NULL || c->n == 0))
			empty = c;
	}
	pthread_mutex_unlock(&H.mu);
	if (w == NULL && empty != NULL) {
		if (empty->h != NULL)
			hopper_close(empty->h);
		char msg[256];
		int code = 0;
		struct hopper_opts o = {.socket = H.cfg->socket,
		                        .token = s->token,
		                        .timeout_ms = H.cfg->timeout_ms,
		                        .client = "hopper-web/" WEB_VERSION " events"};
		empty->h = hopper_connect(&o, &code, msg, sizeof(msg));
		empty->n = 0;
		snprintf(empty->token, sizeof(empty->token), "%s", s->token);
		for (int i = 0; i < HUB_WATCHES; i++)
			empty->req[i] = -1;
		if (empty->h != NULL)
			w = empty;
	}
	long long id = -1;
	json_t *f = json_pack("{s:s}", "job", s->job);
	int r = w != NULL ? hopper_send(w->h, "watch", f, &id) : -1;
	json_decref(f);
	pthread_mutex_lock(&H.mu);
	if (r != HOPPER_OK) {
		json_t *err = json_pack("{s:s, s:s}", "code", w == NULL ? "limit" : "unavailable", "message",
		                        w == NULL ? "no stream connection available" : hopper_errmsg(w->h));
		stream_event(s, NULL, "error", err);
		json_decref(err);
		s->done = 1;
		pthread_cond_signal(&s->cv);
		stream_unref(s);
		if (w != NULL && w->n == 0) {
			hopper_close(w->h);
			w->h = NULL;
		}
	} else {
		for (int i = 0; i < HUB_WATCHES; i++)
			if (w->st[i] == NULL) {
				w->st[i] = s;
				w->req[i] = id;
				w->n++;
				break;
			}
	}
	pthread_mutex_unlock(&H.mu);
}

static void *
hub_main(void *arg)
{
	struct pollfd *pfd = xcalloc((size_t)H.nconns_max + 1, sizeof(*pfd));
	int *map = xcalloc((size_t)H.nconns_max + 1, sizeof(*map));
	for (;;) {
		pthread_mutex_lock(&H.mu);
		if (!H.running) {
			pthread_mutex_unlock(&H.mu);
			break;
		}
		struct stream *todo = H.pending;
		H.pending = NULL;
		pthread_mutex_unlock(&H.mu);
		while (todo != NULL) {
			struct stream *next = todo->next;
			start_stream(todo);
			todo = next;
		}
		int n = 0;
		pfd[n].fd = H.wake[0];
		pfd[n++].events = POLLIN;
		double now = mono();
		for (int i = 0; i < H.nconns_max; i++) {
			struct wconn *w = &H.conns[i];
			if (w->h != NULL && w->n == 0 && now - w->idle_since > 30) {
				hopper_close(w->h);
				w->h = NULL;
			}
			if (w->h == NULL)
				continue;
			pfd[n].fd = hopper_fd(w->h);
			pfd[n].events = POLLIN;
			map[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			char b[64];
			while (read(H.wake[0], b, sizeof(b)) > 0)
				;
		}
		for (int k = 1; k < n; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct wconn *w = &H.conns[map[k]];
			for (;;) {
				json_t *frame = NULL;
				int r = hopper_recv(w->h, 0, &frame);
				if (r == HOPPER_E_TIMEOUT)
					break;
				pthread_mutex_lock(&H.mu);
				if (r != HOPPER_OK)
					conn_drop(w, "the connection to the daemon was lost");
				else
					route_frame(w, frame);
				pthread_mutex_unlock(&H.mu);
				json_decref(frame);
				if (r != HOPPER_OK || w->h == NULL)
					break;
			}
		}
	}
	free(pfd);
	free(map);
	return NULL;
}

void
sse_init(const struct web_config *cfg)
{
	H.cfg = cfg;
	H.keepalive_s = cfg->conn_timeout_s / 2 < KEEPALIVE_S ? cfg->conn_timeout_s / 2 : KEEPALIVE_S;
	if (H.keepalive_s < 1)
		H.keepalive_s = 1;
	H.nconns_max = cfg->watch_conns_max;
	H.conns = xcalloc((size_t)H.nconns_max, sizeof(*H.conns));
	if (pipe2(H.wake, O_NONBLOCK | O_CLOEXEC) != 0)
		abort();
	H.running = 1;
	pthread_create(&H.thread, NULL, hub_main, NULL);
}

void
sse_shutdown(void)
{
	pthread_mutex_lock(&H.mu);
	H.running = 0;
	pthread_mutex_unlock(&H.mu);
	if (write(H.wake[1], "x", 1) < 0) {
	}
	pthread_join(H.thread, NULL);
	for (int i = 0; i < H.nconns_max; i++)
		if (H.conns[i].h != NULL)
			hopper_close(H.conns[i].h);
}

/* libmicrohttpd's content reader, on the HTTP connection's own thread: blocks until the hub has bytes. */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	pthread_mutex_lock(&H.mu);
	while (s->off == s->len && !s->done) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += H.keepalive_s;
		if (pthread_cond_timedwait(&s->cv, &H.mu, &until) == ETIMEDOUT && s->off == s->len && !s->done) {
			pthread_mutex_unlock(&H.mu);
			static const char ka[] = ": keep-alive\n\n";
			memcpy(buf, ka, sizeof(ka) - 1);
			return (ssize_t)(sizeof(ka) - 1);
		}
	}
	if (s->off == s->len) {
		pthread_mutex_unlock(&H.mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	pthread_mutex_unlock(&H.mu);
	return (ssize_t)n;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;
	pthread_mutex_lock(&H.mu);
	s->abandoned = 1;
	H.streams--;
	stream_unref(s);
	pthread_mutex_unlock(&H.mu);
}

struct MHD_Response *
sse_response(const char *token, const char *job, const char *last_id, const json_t *view)
{
	pthread_mutex_lock(&H.mu);
	if (H.streams >= H.cfg->sse_max) {
		pthread_mutex_unlock(&H.mu);
		return NULL;
	}
	H.streams++;
	struct stream *s = xcalloc(1, sizeof(*s));
	pthread_cond_init(&s->cv, NULL);
	snprintf(s->token, sizeof(s->token), "%s", token);
	snprintf(s->job, sizeof(s->job), "%s", job);
	if (last_id != NULL && *last_id != '\0') {
		s->seeking = 1;
		s->want_ok = evid_parse(last_id, &s->want) == 0;
		size_t n = 0;
		for (const char *p = last_id; *p != '\0' && n + 1 < sizeof(s->want_text); p++)
			if (*p > ' ' && *p < 0x7f)
				s->want_text[n++] = *p;
	}
	s->held = json_array();
	s->view = view != NULL ? json_deep_copy(view) : NULL;
	s->refs = 2;
	/* The first bytes: a retry hint for EventSource, sent at once so the client sees the stream open. */
	stream_put(s, "retry: 2000\n\n", 13);
	s->next = H.pending;
	H.pending = s;
	pthread_mutex_unlock(&H.mu);
	if (write(H.wake[1], "x", 1) < 0) {
	}
	return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
}

void
sse_figures(int *streams, int *conns)
{
	pthread_mutex_lock(&H.mu);
	*streams = H.streams;
	*conns = 0;
	for (int i = 0; i < H.nconns_max; i++)
		*conns += H.conns[i].h != NULL;
	pthread_mutex_unlock(&H.mu);
}

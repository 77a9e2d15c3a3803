/*
 * watch: follows jobs until each reaches a terminal state (`hopperctl watch`, `submit --wait`).
 *
 * Pub/sub alone is not enough: a message published before SUBSCRIBE took effect, or dropped with a broken
 * connection, is gone. So the order is: replay the events list, read the hash, subscribe, read the hash again
 * (anything that happened in between shows there), then wait for messages with a short timeout and re-read
 * the hashes every WATCH_POLL_MS whatever arrives. The hash is the truth; events only make it live.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "jsonx.h"
#include "xmalloc.h"

#define WATCH_POLL_MS  1000 /* a lost message costs at most this much delay */
#define WATCH_TEXT_MAX 4096 /* longest stage or error kept for display; events may carry more */
#define BAR_WIDTH      20

#define STATE_UNKNOWN (-1) /* before anything is known, or after the hash vanished */

/* What we know of one job; strings owned. */
struct wjob {
	char *id;
	char *key; /* "P job:ID", both the hash and the channel */
	int state; /* enum job_state or STATE_UNKNOWN */
	int attempt, progress;
	char *stage, *message, *error;
	int done;
	int code; /* its CTL_EXIT_* once done */
};

struct watch {
	struct ctl *ctl;
	struct conn *sub; /* the subscribed connection, ours to close */
	struct wjob *jobs;
	int n;
	enum watch_mode mode;
	int colour;
	int drawn; /* bar lines on screen, to move the cursor back over */
	int dirty; /* something shown in the bars changed since they were drawn */
};

/* The fields read by every hash poll, in HMGET order. */
static const char *const poll_fields[] = {"state", "attempt", "progress", "stage", "message", "error", "updated_at"};
enum { PF_STATE, PF_ATTEMPT, PF_PROGRESS, PF_STAGE, PF_MESSAGE, PF_ERROR, PF_UPDATED, PF_COUNT };

/* Replaces the owned string *dst with a bounded copy of src (or NULL). */
static void
set_text(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? xstrndup(src, strnlen(src, WATCH_TEXT_MAX)) : NULL; /* xstrndup copies n bytes */
}

/* Marks the job ended once its state is terminal (or it vanished). */
static void
wjob_settle(struct wjob *j, int vanished)
{
	if (vanished) {
		j->state = STATE_UNKNOWN;
		j->done = 1;
		j->code = CTL_EXIT_UNKNOWN_JOB;
	} else if (j->state >= 0 && job_state_terminal((enum job_state)j->state)) {
		j->done = 1;
		j->code = j->state == JOB_SUCCEEDED ? CTL_EXIT_OK : CTL_EXIT_JOB_FAILED;
	}
}

/*
 * Updates j from one event object; unknown or ill-typed fields are ignored, as events are informational.
 * settle is 0 for replayed events: a job requeued from dead keeps its old "dead" event in the list, so only
 * the hash may end a job at start-up.
 */
static void
wjob_apply_event(struct wjob *j, json_t *ev, int settle)
{
	char err[128];
	const char *s = NULL;
	long long n;
	if (jsonx_string(ev, "state", 32, &s, err, sizeof(err)) == 1 && job_state_parse(s) >= 0)
		j->state = job_state_parse(s);
	if (jsonx_int(ev, "attempt", 0, 1000000, &n, err, sizeof(err)) == 1)
		j->attempt = (int)n;
	if (jsonx_int(ev, "progress", 0, 100, &n, err, sizeof(err)) == 1)
		j->progress = (int)n;
	if (jsonx_string(ev, "stage", 1 << 20, &s, err, sizeof(err)) == 1)
		set_text(&j->stage, s);
	if (jsonx_string(ev, "message", 1 << 20, &s, err, sizeof(err)) == 1)
		set_text(&j->message, s);
	if (jsonx_string(ev, "error", 1 << 20, &s, err, sizeof(err)) == 1)
		set_text(&j->error, s);
	if (settle)
		wjob_settle(j, 0);
}

/* An event object describing what the hash says, for --json output when no event told us. New reference. */
static json_t *
wjob_event(const struct wjob *j, const char *kind, double at)
{
	json_t *ev = json_object();
	json_object_set_new(ev, "job", text_json_string(j->id, strlen(j->id))); /* argv: not necessarily UTF-8 */
	json_object_set_new(ev, "event", json_string(kind));
	json_object_set_new(ev, "state", json_string(job_state_name((enum job_state)j->state)));
	json_object_set_new(ev, "attempt", json_integer(j->attempt));
	json_object_set_new(ev, "progress", json_integer(j->progress));
	json_object_set_new(ev, "at", json_real(at));
	if (j->stage != NULL)
		json_object_set_new(ev, "stage", text_json_string(j->stage, strlen(j->stage)));
	if (j->message != NULL)
		json_object_set_new(ev, "message", text_json_string(j->message, strlen(j->message)));
	if (j->error != NULL)
		json_object_set_new(ev, "error", text_json_string(j->error, strlen(j->error)));
	return ev;
}

static void
print_event(json_t *ev)
{
	char *s = text_json_dump(ev);
	printf("%s\n", s);
	free(s);
	fflush(stdout);
}

/*
 * Updates j from an HMGET of poll_fields. In line mode a change the events did not show (a lost message, or
 * one published before we subscribed) is printed as a synthesized event built from the hash.
 */
static void
wjob_apply_hash(struct watch *w, struct wjob *j, const struct conn_reply *r)
{
	const char *f[PF_COUNT] = {0};
	for (size_t i = 0; r->type == CONN_ARRAY && i < r->n && i < PF_COUNT; i++)
		f[i] = r->elem[i]->type == CONN_STRING ? r->elem[i]->str : NULL;
	if (f[PF_STATE] == NULL) {
		wjob_settle(j, 1);
		w->dirty = 1;
		if (w->mode != WATCH_BARS || w->drawn == 0) /* never between bars: it would break the redraw */
			ctl_warn("unknown job %s", j->id);
		return;
	}
	long long n;
	int old_state = j->state, old_progress = j->progress;
	char *old_stage = j->stage != NULL ? xstrdup(j->stage) : NULL;
	j->state = job_state_parse(f[PF_STATE]);
	if (f[PF_ATTEMPT] != NULL && text_int(f[PF_ATTEMPT], 0, 1000000, &n) == 0)
		j->attempt = (int)n;
	if (f[PF_PROGRESS] != NULL && text_int(f[PF_PROGRESS], 0, 100, &n) == 0)
		j->progress = (int)n;
	set_text(&j->stage, f[PF_STAGE]);
	set_text(&j->message, f[PF_MESSAGE]);
	set_text(&j->error, f[PF_ERROR]);
	wjob_settle(j, 0);
	w->dirty |= j->state != old_state || j->progress != old_progress || (old_stage == NULL) != (j->stage == NULL) ||
	            (old_stage != NULL && j->stage != NULL && strcmp(old_stage, j->stage) != 0);
	free(old_stage);
	if (w->mode == WATCH_LINES && j->state >= 0 && (j->state != old_state || j->progress != old_progress)) {
		double at = clock_now();
		if (f[PF_UPDATED] != NULL)
			text_double(f[PF_UPDATED], 0, 1e11, &at);
		json_t *ev = wjob_event(j, j->state != old_state ? "state" : "progress", at);
		print_event(ev);
		json_decref(ev);
	}
}

static const char *
state_colour(int state)
{
	switch (state) {
	case JOB_SUCCEEDED: return "\033[32m";
	case JOB_FAILED:
	case JOB_DEAD:
	case STATE_UNKNOWN: return "\033[31m";
	case JOB_RETRYING: return "\033[33m";
	case JOB_RUNNING: return "\033[36m";
	case JOB_CANCELLED: return "\033[35m";
	default: return "";
	}
}

/* Terminal columns of UTF-8 text, counting each character as one (good enough for stage names). */
static int
text_cols(const char *s)
{
	int cols = 0;
	for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++)
		cols += (*p & 0xc0) != 0x80;
	return cols;
}

/* Copies s into dst, masking control characters and stopping before width columns. Returns the columns. */
static int
clip_text(char *dst, size_t size, const char *s, int width)
{
	size_t o = 0;
	int cols = 0;
	for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		int lead = (*p & 0xc0) != 0x80;
		if (lead && cols == width)
			break;
		if (o + 2 > size)
			break;
		dst[o++] = (char)(*p < 0x20 || *p == 0x7f ? '?' : *p);
		cols += lead;
	}
	dst[o] = '\0';
	return cols;
}

/* One bar line: "id-prefix [#####.....]  42% stage  state", never wider than the terminal (a wrapped line
 * would break the cursor arithmetic of the redraw). */
static void
draw_line(const struct watch *w, const struct wjob *j, int stage_w)
{
	char bar[BAR_WIDTH + 1], stage[WATCH_TEXT_MAX + 1];
	int progress = j->state == JOB_SUCCEEDED ? 100 : j->progress;
	int filled = progress * BAR_WIDTH / 100;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	int pad = stage_w - clip_text(stage, sizeof(stage), j->stage, stage_w);
	const char *name = j->state >= 0 ? job_state_name((enum job_state)j->state) : "unknown";
	const char *on = w->colour ? state_colour(j->state) : "", *off = on[0] != '\0' ? "\033[0m" : "";
	printf("\r\033[2K%-8.8s [%s] %3d%% %s%*s  %s%s%s\n", j->id, bar, progress, stage, pad, "", on, name, off);
}

static void
draw(struct watch *w)
{
	if (w->mode != WATCH_BARS || (!w->dirty && w->drawn > 0))
		return;
	w->dirty = 0;
	/* what is left for the stage once "id-prefix [bar] 100% " and "  succeeded" are on the line */
	int term = ctl_term_cols() > 0 ? ctl_term_cols() : 80;
	int avail = term - 1 - (8 + 1 + BAR_WIDTH + 2 + 1 + 4 + 1) - 2 - 9;
	int stage_w = 0;
	for (int i = 0; i < w->n; i++) {
		int cols = text_cols(w->jobs[i].stage);
		stage_w = cols > stage_w ? cols : stage_w;
	}
	stage_w = stage_w > avail ? (avail > 0 ? avail : 0) : stage_w;
	if (w->drawn > 0)
		printf("\033[%dA", w->drawn);
	for (int i = 0; i < w->n; i++)
		draw_line(w, &w->jobs[i], stage_w);
	w->drawn = w->n;
	fflush(stdout);
}

/* Handles one pub/sub message ["message", channel, payload]. */
static void
watch_message(struct watch *w, const struct conn_reply *m)
{
	if (m->type != CONN_ARRAY || m->n != 3 || m->elem[0]->type != CONN_STRING || m->elem[1]->type != CONN_STRING ||
	    m->elem[2]->type != CONN_STRING || strcmp(m->elem[0]->str, "message") != 0)
		return;
	struct wjob *j = NULL;
	for (int i = 0; i < w->n && j == NULL; i++)
		if (strcmp(w->jobs[i].key, m->elem[1]->str) == 0)
			j = &w->jobs[i];
	if (j == NULL || j->done)
		return; /* a late message for a job that already ended says nothing new */
	json_t *ev = json_loadb(m->elem[2]->str, m->elem[2]->len, 0, NULL);
	if (json_is_object(ev)) {
		wjob_apply_event(j, ev, 1);
		w->dirty = 1;
		if (w->mode == WATCH_LINES)
			print_event(ev);
		draw(w);
	}
	json_decref(ev);
}

/* HMGETs every job still running and applies it. -1 with the error printed. */
static int
watch_poll(struct watch *w, struct conn *c)
{
	struct conn_cmd **cmds = xcalloc((size_t)w->n, sizeof(*cmds));
	struct conn_reply **r = xcalloc((size_t)w->n, sizeof(*r));
	int *idx = xcalloc((size_t)w->n, sizeof(*idx)), m = 0;
	for (int i = 0; i < w->n; i++) {
		if (w->jobs[i].done)
			continue;
		cmds[m] = conn_cmd_new("HMGET");
		conn_arg(cmds[m], w->jobs[i].key);
		for (int f = 0; f < PF_COUNT; f++)
			conn_arg(cmds[m], poll_fields[f]);
		idx[m++] = i;
	}
	char *cause = NULL;
	int rv = conn_pipeline(c, cmds, (size_t)m, r, &cause);
	for (int k = 0; k < m; k++) {
		if (rv == 0)
			wjob_apply_hash(w, &w->jobs[idx[k]], r[k]);
		conn_reply_free(r[k]);
		conn_cmd_free(cmds[k]);
	}
	if (rv < 0) {
		ctl_warn("%s", cause);
		free(cause);
	}
	free(cmds);
	free(r);
	free(idx);
	draw(w);
	return rv;
}

/* Replays each job's events list, then reads the hashes. -1 with the error printed. */
static int
watch_replay(struct watch *w, struct conn *c)
{
	struct conn_cmd **cmds = xcalloc((size_t)w->n, sizeof(*cmds));
	struct conn_reply **r = xcalloc((size_t)w->n, sizeof(*r));
	for (int i = 0; i < w->n; i++) {
		char *key = ctl_key(w->ctl, "job:%s:events", w->jobs[i].id);
		cmds[i] = conn_cmd_new("LRANGE");
		conn_arg(cmds[i], key);
		free(key);
		conn_arg(cmds[i], "0");
		conn_arg(cmds[i], "-1");
	}
	char *cause = NULL;
	int rv = conn_pipeline(c, cmds, (size_t)w->n, r, &cause);
	for (int i = 0; i < w->n; i++) {
		for (size_t e = 0; rv == 0 && r[i]->type == CONN_ARRAY && e < r[i]->n; e++) {
			json_t *ev = json_loadb(r[i]->elem[e]->str, r[i]->elem[e]->len, 0, NULL);
			if (json_is_object(ev)) {
				wjob_apply_event(&w->jobs[i], ev, 0);
				if (w->mode == WATCH_LINES)
					print_event(ev);
			}
			json_decref(ev);
		}
		conn_reply_free(r[i]);
		conn_cmd_free(cmds[i]);
	}
	free(cmds);
	free(r);
	if (rv < 0) {
		ctl_warn("%s", cause);
		free(cause);
		return -1;
	}
	return watch_poll(w, c);
}

/* Subscribes to the channels of the jobs still running on a connection of its own. -1 with the error printed. */
static int
watch_subscribe(struct watch *w)
{
	w->sub = ctl_conn_new(w->ctl);
	if (w->sub == NULL)
		return -1;
	char **channels = xcalloc((size_t)w->n, sizeof(*channels));
	size_t m = 0;
	for (int i = 0; i < w->n; i++)
		if (!w->jobs[i].done)
			channels[m++] = w->jobs[i].key;
	char *cause = NULL;
	int rv = conn_subscribe(w->sub, channels, m, &cause);
	free(channels);
	if (rv < 0) {
		ctl_warn("%s", cause);
		free(cause);
	}
	return rv;
}

static int
pending(const struct watch *w)
{
	for (int i = 0; i < w->n; i++)
		if (!w->jobs[i].done)
			return 1;
	return 0;
}

/* Waits for messages, re-reading the hashes every WATCH_POLL_MS. 0 when all ended, 1 at the deadline (0: none),
 * -1 on a Redis error (printed). */
static int
watch_loop(struct watch *w, struct conn *c, double deadline)
{
	double last_poll = clock_monotonic_ms();
	while (pending(w)) {
		double now = clock_monotonic_ms();
		if (deadline > 0 && now >= deadline)
			return 1;
		double wait = WATCH_POLL_MS - (now - last_poll);
		if (deadline > 0 && deadline - now < wait)
			wait = deadline - now;
		struct conn_reply *m = NULL;
		char *cause = NULL;
		int rv = conn_wait(w->sub, wait > 0 ? (int)wait : 0, &m, &cause);
		if (rv < 0) {
			ctl_warn("%s", cause);
			free(cause);
			return -1;
		}
		if (rv == 1)
			watch_message(w, m);
		conn_reply_free(m);
		if (clock_monotonic_ms() - last_poll >= WATCH_POLL_MS) {
			if (watch_poll(w, c) < 0)
				return -1;
			last_poll = clock_monotonic_ms();
		}
	}
	return 0;
}

/* Under the bars, the errors of the jobs that failed: the bar line has no room for them. */
static void
print_errors(const struct watch *w)
{
	for (int i = 0; w->mode == WATCH_BARS && i < w->n; i++) {
		const struct wjob *j = &w->jobs[i];
		if (j->code != CTL_EXIT_JOB_FAILED || j->error == NULL)
			continue;
		char text[WATCH_TEXT_MAX + 1];
		clip_text(text, sizeof(text), j->error, WATCH_TEXT_MAX);
		printf("%s: %s\n", j->id, text);
	}
}

/* The worst outcome: a job that did not end by the deadline counts as a timeout. */
static int
watch_code(const struct watch *w, int loop_rv)
{
	if (loop_rv < 0)
		return CTL_EXIT_REDIS;
	int code = CTL_EXIT_OK;
	for (int i = 0; i < w->n; i++) {
		int c = w->jobs[i].done ? w->jobs[i].code : CTL_EXIT_TIMEOUT;
		code = c > code ? c : code;
	}
	return code;
}

int
watch_jobs(struct ctl *ctl, char *const *ids, int n, enum watch_mode mode, double timeout_s)
{
	double deadline = timeout_s > 0 ? clock_monotonic_ms() + timeout_s * 1e3 : 0;
	struct conn *c = ctl_conn(ctl);
	if (c == NULL)
		return CTL_EXIT_REDIS;
	struct watch w = {.ctl = ctl, .n = n, .mode = mode};
	w.colour = mode == WATCH_BARS && getenv("NO_COLOR") == NULL;
	w.jobs = xcalloc((size_t)n, sizeof(*w.jobs));
	for (int i = 0; i < n; i++) {
		w.jobs[i].id = xstrdup(ids[i]);
		w.jobs[i].key = ctl_key(ctl, "job:%s", ids[i]);
		w.jobs[i].state = STATE_UNKNOWN;
	}
	int rv = watch_replay(&w, c);
	if (rv == 0 && pending(&w))
		rv = watch_subscribe(&w) < 0 ? -1 : watch_poll(&w, c);
	if (rv == 0)
		rv = watch_loop(&w, c, deadline);
	print_errors(&w);
	if (rv == 1)
		ctl_warn("timed out after %g s", timeout_s);
	int code = watch_code(&w, rv);
	for (int i = 0; i < n; i++) {
		free(w.jobs[i].id);
		free(w.jobs[i].key);
		free(w.jobs[i].stage);
		free(w.jobs[i].message);
		free(w.jobs[i].error);
	}
	free(w.jobs);
	conn_close(w.sub);
	return code;
}

int
watch_cmd(struct ctl *ctl, struct cmd_args *args)
{
	double timeout = 0;
	if (args->opt[OPT_TIMEOUT] != NULL && text_double(args->opt[OPT_TIMEOUT], 0.001, 1e9, &timeout) < 0) {
		ctl_warn("watch: bad --timeout '%s'", args->opt[OPT_TIMEOUT]);
		return ctl_usage("watch");
	}
	enum watch_mode mode = ctl->json || !isatty(STDOUT_FILENO) ? WATCH_LINES : WATCH_BARS;
	return watch_jobs(ctl, args->argv, args->argc, mode, timeout);
}

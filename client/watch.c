/*
 * watch: `hopperctl watch ID... [--timeout S]` and the waiting half of `submit --wait`, over the watch op.
 * One connection carries every job's stream (pipelined watch requests, frames told apart by request id):
 * the daemon replays each job's stored events, then streams live ones, each once and in order, and ends a
 * stream with the job view when the job is terminal. On a terminal the events drive one progress bar per
 * job, redrawn in place; otherwise (or with --json) each event is printed as one JSON line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hopperctl.h"
#include "xmalloc.h"

#define BAR_WIDTH 24
/* The daemon serves 16 watches per connection (schema/control-protocol.md, limits). */
#define WATCH_MAX 16

struct watch_job {
	const char *id;
	long long req;
	int done;
	int code;     /* exit code once done */
	json_t *view; /* the final job view (owned) */
};

struct watch_set {
	struct ctl *ctl;
	struct watch_job *jobs;
	int n;
	int bar;   /* progress bars (else JSON lines, unless quiet) */
	int quiet; /* print no events */
	int drawn; /* the bar lines are on screen */
};

/* One bar line for job w from an event or a view: "ID [#####.....]  45% running  stage: message". */
static void
bar_line(struct watch_set *s, const struct watch_job *w, const json_t *ev)
{
	int cols = ctl_term_cols();
	json_int_t pct = json_integer_value(json_object_get(ev, "progress"));
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *stage = json_string_value(json_object_get(ev, "stage"));
	const char *msg = json_string_value(json_object_get(ev, "message"));
	const char *err = json_string_value(json_object_get(ev, "error"));
	pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
	char bar[BAR_WIDTH + 1];
	int fill = (int)(pct * BAR_WIDTH / 100);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	char tail[512];
	const char *text = err != NULL ? err : msg != NULL ? msg : "";
	snprintf(tail, sizeof(tail), "%s%s%s", stage != NULL ? stage : "", stage != NULL && text[0] ? ": " : "", text);
	/* On a narrow terminal a long id (a UUID is 36) is cut so the stage still shows: 80 columns would
	 * otherwise leave one character for it. The full id was printed before the bars. */
	int idw = cols - BAR_WIDTH - 40;
	idw = idw < 8 ? 8 : idw > 36 ? 36 : idw;
	char head[160];
	int n = snprintf(head, sizeof(head), "%.*s [%s] %3d%% ", idw, w->id, bar, (int)pct);
	int room = cols - n - (state != NULL ? (int)strlen(state) : 0) - 3;
	printf("\r\033[K%s%s%s%s", head, ops_state_color(s->ctl, state), state != NULL ? state : "",
	       ops_color_reset(s->ctl));
	if (room > 0 && tail[0] != '\0') {
		if ((int)strlen(tail) > room)
			tail[room] = '\0';
		fputs("  ", stdout);
		text_put_safe(stdout, tail, 0);
	}
}

/* Redraws job i's line among the n bar lines (the cursor rests below the last one). */
static void
draw(struct watch_set *s, int i, const json_t *ev)
{
	if (!s->drawn) {
		for (int k = 0; k < s->n; k++)
			printf("%.36s [waiting]\n", s->jobs[k].id);
		s->drawn = 1;
	}
	int up = s->n - i;
	printf("\033[%dA", up);
	bar_line(s, &s->jobs[i], ev);
	printf("\033[%dB\r", up);
	fflush(stdout);
}

static void
show_event(struct watch_set *s, int i, const json_t *ev)
{
	if (s->quiet)
		return;
	if (s->bar) {
		draw(s, i, ev);
		return;
	}
	char *t = text_json_dump(ev);
	printf("%s\n", t);
	free(t);
	fflush(stdout);
}

/* 0 for a job that succeeded, 1 for any other ending. */
static int
outcome(const json_t *view)
{
	const char *state = json_string_value(json_object_get(view, "state"));
	return state != NULL && strcmp(state, "succeeded") == 0 ? CTL_EXIT_OK : CTL_EXIT_JOB_FAILED;
}

/* Handles one frame (owned). Returns 1 when it ended a job's stream. */
static int
take_frame(struct watch_set *s, json_t *frame)
{
	json_t *fid = json_object_get(frame, "id");
	int i;
	for (i = 0; i < s->n; i++)
		if (json_is_integer(fid) && json_integer_value(fid) == s->jobs[i].req)
			break;
	if (i == s->n || s->jobs[i].done) {
		json_decref(frame);
		return 0;
	}
	struct watch_job *w = &s->jobs[i];
	json_t *ev = json_object_get(frame, "event");
	if (ev != NULL) {
		show_event(s, i, ev);
		json_decref(frame);
		return 0;
	}
	w->done = 1;
	if (json_is_true(json_object_get(frame, "ok"))) {
		w->view = json_incref(json_object_get(frame, "result"));
		w->code = outcome(w->view);
		if (s->bar && !s->quiet && json_object_get(w->view, "progress") != NULL)
			draw(s, i, w->view);
	} else {
		json_t *e = json_object_get(frame, "error");
		enum hopper_err code = hopper_err_parse(json_string_value(json_object_get(e, "code")) ?: "internal");
		ctl_warn("%s: %s: %s", w->id, hopper_err_name(code),
		         json_string_value(json_object_get(e, "message")) ?: "");
		w->code = hopper_exit_code(code);
	}
	json_decref(frame);
	return 1;
}

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
watch_jobs(struct ctl *ctl, char *const *ids, int n, int quiet, double timeout_s, json_t **finals)
{
	int code = 0;
	if (n > WATCH_MAX) {
		ctl_warn("watch: at most %d jobs at once", WATCH_MAX);
		return CTL_EXIT_USAGE;
	}
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h == NULL)
		return code;
	struct watch_job jobs[WATCH_MAX];
	struct watch_set s = {.ctl = ctl, .jobs = jobs, .n = n, .quiet = quiet};
	s.bar = !ctl->json && ctl_term_cols() > 0;
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < n; i++) {
		jobs[i].id = ids[i];
		json_t *f = json_pack("{s:s}", "job", ids[i]);
		int r = hopper_send(h, "watch", f, &jobs[i].req);
		json_decref(f);
		if (r != HOPPER_OK)
			return ctl_fail(ctl);
	}
	long long deadline = timeout_s > 0 ? mono_ms() + (long long)(timeout_s * 1000) : -1;
	int left = n, worst = CTL_EXIT_OK;
	while (left > 0) {
		long long wait = deadline < 0 ? HOPPER_WAIT_FOREVER : deadline - mono_ms();
		json_t *frame = NULL;
		int r = hopper_recv(h, wait > 0 ? (int)(wait > HOPPER_WAIT_FOREVER ? HOPPER_WAIT_FOREVER : wait) : 0,
		                    &frame);
		if (r == HOPPER_E_TIMEOUT && deadline < 0)
			continue;
		if (r == HOPPER_E_TIMEOUT) {
			ctl_warn("%d of %d jobs still not ended after %g s", left, n, timeout_s);
			worst = CTL_EXIT_TIMEOUT;
			break;
		}
		if (r != HOPPER_OK) {
			worst = ctl_fail(ctl);
			break;
		}
		left -= take_frame(&s, frame);
	}
	for (int i = 0; i < n; i++) {
		if (jobs[i].done && jobs[i].code > worst)
			worst = jobs[i].code;
		if (finals != NULL)
			finals[i] = jobs[i].view;
		else
			json_decref(jobs[i].view);
	}
	return worst;
}

int
watch_cmd(struct ctl *ctl, struct cmd_args *args)
{
	double timeout_s = 0;
	if (args->opt[OPT_TIMEOUT] != NULL && text_double(args->opt[OPT_TIMEOUT], 0.001, 1e9, &timeout_s) < 0) {
		ctl_warn("watch: bad --timeout '%s'", args->opt[OPT_TIMEOUT]);
		return ctl_usage("watch");
	}
	return watch_jobs(ctl, args->argv, args->argc, 0, timeout_s, NULL);
}

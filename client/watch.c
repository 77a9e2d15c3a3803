/*
 * watch: `hopperctl watch ID [--timeout S]` and the waiting half of `submit --wait`, over the watch op: the
 * daemon replays the job's stored events, then streams live ones, each once and in order, and ends the
 * stream with the job view when the job is terminal. On a terminal the events drive one progress bar,
 * redrawn in place; otherwise (or with --json) each event is printed as one JSON line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hopperctl.h"
#include "xmalloc.h"

#define BAR_WIDTH 24

struct watch_view {
	struct ctl *ctl;
	const char *id;
	int bar;   /* draw a progress bar (else JSON lines, unless quiet) */
	int quiet; /* print no events */
	int drawn; /* a bar line is on screen */
};

/* Draws the bar line for an event: "ID [#####.....]  45% running  stage: message", cut to the terminal. */
static void
draw_bar(struct watch_view *w, const json_t *ev)
{
	int cols = ctl_term_cols();
	json_int_t pct = json_integer_value(json_object_get(ev, "progress"));
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *stage = json_string_value(json_object_get(ev, "stage"));
	const char *msg = json_string_value(json_object_get(ev, "message"));
	const char *err = json_string_value(json_object_get(ev, "error"));
	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	char bar[BAR_WIDTH + 1];
	int fill = (int)(pct * BAR_WIDTH / 100);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	char tail[512];
	snprintf(tail, sizeof(tail), "%s%s%s%s", stage != NULL ? stage : "", stage != NULL && (msg || err) ? ": " : "",
	         err != NULL   ? err
	         : msg != NULL ? msg
	                       : "",
	         "");
	char head[160];
	int n = snprintf(head, sizeof(head), "%.36s [%s] %3d%% ", w->id, bar, (int)pct);
	int room = cols - n - (state != NULL ? (int)strlen(state) : 0) - 3;
	printf("\r\033[K%s%s%s%s", head, ops_state_color(w->ctl, state), state != NULL ? state : "",
	       ops_color_reset(w->ctl));
	if (room > 0 && tail[0] != '\0') {
		if ((int)strlen(tail) > room)
			tail[room] = '\0';
		fputs("  ", stdout);
		text_put_safe(stdout, tail, 0);
	}
	fflush(stdout);
	w->drawn = 1;
}

static int
on_event(const json_t *ev, void *ud)
{
	struct watch_view *w = ud;
	if (w->quiet)
		return 0;
	if (w->bar) {
		draw_bar(w, ev);
		return 0;
	}
	char *s = text_json_dump(ev);
	printf("%s\n", s);
	free(s);
	fflush(stdout);
	return 0;
}

/* 0 for a job that succeeded, 1 for any other ending. */
static int
outcome(const json_t *view)
{
	const char *state = json_string_value(json_object_get(view, "state"));
	return state != NULL && strcmp(state, "succeeded") == 0 ? CTL_EXIT_OK : CTL_EXIT_JOB_FAILED;
}

int
watch_job(struct ctl *ctl, const char *id, int quiet, double timeout_s, json_t **final)
{
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (final != NULL)
		*final = NULL;
	if (h == NULL)
		return code;
	struct watch_view w = {.ctl = ctl, .id = id, .quiet = quiet, .bar = !ctl->json && ctl_term_cols() > 0};
	json_t *view = NULL;
	int r = hopper_watch(h, id, on_event, &w, timeout_s > 0 ? (int)(timeout_s > 2e6 ? 2e9 : timeout_s * 1000) : 0,
	                     &view);
	if (w.drawn) {
		if (view != NULL && json_object_get(view, "progress") != NULL)
			draw_bar(&w, view);
		putchar('\n');
		fflush(stdout);
	}
	if (r == HOPPER_E_TIMEOUT) {
		ctl_warn("%s: still not ended after %g s", id, timeout_s);
		return CTL_EXIT_TIMEOUT;
	}
	if (r != HOPPER_OK)
		return ctl_fail(ctl);
	code = outcome(view);
	if (final != NULL)
		*final = view;
	else
		json_decref(view);
	return code;
}

int
watch_cmd(struct ctl *ctl, struct cmd_args *args)
{
	double timeout_s = 0;
	if (args->opt[OPT_TIMEOUT] != NULL && text_double(args->opt[OPT_TIMEOUT], 0.001, 1e9, &timeout_s) < 0) {
		ctl_warn("watch: bad --timeout '%s'", args->opt[OPT_TIMEOUT]);
		return ctl_usage("watch");
	}
	return watch_job(ctl, args->argv[0], 0, timeout_s, NULL);
}

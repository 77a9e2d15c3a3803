/* sched_def: schedule definitions (refusals name the field) and each claim's plan: on-time fires, the
 * misfire policies skip / once / all, the window, jitter, long runs of misses. */
#include <jansson.h>
#include <stdint.h>

#include "sched_def.h"
#include "t.h"

#define S 1000LL

static int
parse(const char *json, struct sched_def *d)
{
	char err[256];
	json_t *v = json_loads(json, 0, NULL);
	int r = sched_def_parse(v, d, err, sizeof(err));
	json_decref(v);
	return r;
}

/* 1 if json is refused with a reason containing want. */
static int
refused(const char *json, const char *want)
{
	struct sched_def d;
	char err[256] = "";
	json_t *v = json_loads(json, 0, NULL);
	int r = sched_def_parse(v, &d, err, sizeof(err));
	json_decref(v);
	if (r == 0)
		sched_def_free(&d);
	if (r == 0 || strstr(err, want) == NULL)
		printf("# %s -> %s\n", json, err);
	return r == -1 && strstr(err, want) != NULL;
}

/* Plans a claim of schedule json at now with stored next; returns the new next, fills fires. */
static int64_t
plan(const char *json, int64_t next, int64_t now, int64_t *fires, size_t *n, uint64_t *missed)
{
	struct sched_def d;
	if (parse(json, &d) != 0)
		return -99;
	int64_t r = sched_def_plan(&d, next, now, fires, SCHED_PLAN_MAX, n, missed);
	sched_def_free(&d);
	return r;
}

int
main(void)
{
	struct sched_def d;
	T_CHECK("a minimal definition parses",
	        parse("{\"name\":\"a\",\"cron\":\"@hourly\",\"job\":{\"type\":\"noop\"}}", &d) == 0 &&
	                d.misfire == SCHED_MISFIRE_ONCE && d.grace_ms == SCHED_GRACE_DEFAULT * S && d.zone == NULL &&
	                strcmp(d.tz, "UTC") == 0 && d.misfire_max == 10);
	sched_def_free(&d);
	T_CHECK("refused: no name", refused("{\"cron\":\"@hourly\",\"job\":{\"type\":\"noop\"}}", "'name'"));
	T_CHECK("refused: a name with a colon",
	        refused("{\"name\":\"a:b\",\"cron\":\"@hourly\",\"job\":{}}", "'name'"));
	T_CHECK("refused: a 49-byte name", refused("{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	                                           "\"cron\":\"@hourly\",\"job\":{}}",
	                                           "name"));
	T_CHECK("refused: no cron", refused("{\"name\":\"a\",\"job\":{\"type\":\"noop\"}}", "'cron'"));
	T_CHECK("refused: bad cron", refused("{\"name\":\"a\",\"cron\":\"* * *\",\"job\":{}}", "'cron'"));
	T_CHECK("refused: no job", refused("{\"name\":\"a\",\"cron\":\"@hourly\"}", "'job'"));
	T_CHECK("refused: job with an id",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"job\":{\"id\":\"x\"}}", "job.id"));
	T_CHECK("refused: job with run_at",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"job\":{\"run_at\":5}}", "job.run_at"));
	T_CHECK("refused: unknown misfire",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"misfire\":\"x\",\"job\":{}}", "'misfire'"));
	T_CHECK("refused: misfire_max 0",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"misfire_max\":0,\"job\":{}}", "misfire_max"));
	T_CHECK("refused: end before start",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"start\":100,\"end\":50,\"job\":{}}", "'end'"));
	T_CHECK("refused: unknown zone",
	        refused("{\"name\":\"a\",\"cron\":\"@hourly\",\"tz\":\"No/Such\",\"job\":{}}", "'tz'"));
	T_CHECK("refused: not an object", refused("[1]", "object"));

	int64_t f[SCHED_PLAN_MAX];
	size_t n;
	uint64_t missed;
	const char *every = "{\"name\":\"e\",\"cron\":\"@every 10s\",\"misfire_grace_s\":5,\"job\":{}}";
	int64_t t = 1000000 * S; /* a multiple of 10 s */
	int64_t nx = plan(every, t, t + 200, f, &n, &missed);
	T_CHECK("on time: one fire, next is +10 s", n == 1 && f[0] == t && nx == t + 10 * S && missed == 0);
	nx = plan(every, t, t + 12 * S, f, &n, &missed);
	T_CHECK("12 s late, grace 5 s: t missed (once: run), t+10 on time",
	        n == 2 && f[0] == t && f[1] == t + 10 * S && nx == t + 20 * S && missed == 0);
	/* Daemons down for 100 s: fires t .. t+100 s; those before now-5s are missed. */
	const char *skip =
	        "{\"name\":\"e\",\"cron\":\"@every 10s\",\"misfire_grace_s\":5,\"misfire\":\"skip\",\"job\":{}}";
	nx = plan(skip, t, t + 100 * S + 1, f, &n, &missed);
	T_CHECK("skip: only the on-time fire (t+100), 10 missed",
	        n == 1 && f[0] == t + 100 * S && missed == 10 && nx == t + 110 * S);
	nx = plan(every, t, t + 100 * S + 1, f, &n, &missed);
	T_CHECK("once: the first missed + the on-time one, 9 passed over",
	        n == 2 && f[0] == t && f[1] == t + 100 * S && missed == 9 && nx == t + 110 * S);
	const char *all =
	        "{\"name\":\"e\",\"cron\":\"@every 10s\",\"misfire_grace_s\":5,\"misfire\":\"all\",\"misfire_max\":4,"
	        "\"job\":{}}";
	nx = plan(all, t, t + 100 * S + 1, f, &n, &missed);
	T_CHECK("all (max 4): the 4 oldest missed + the on-time one, 6 passed over",
	        n == 5 && f[0] == t && f[3] == t + 30 * S && f[4] == t + 100 * S && missed == 6 && nx == t + 110 * S);
	/* A week of @every 1s missed: the walk jumps, the plan stays bounded. */
	const char *sec = "{\"name\":\"s\",\"cron\":\"@every 1s\",\"misfire_grace_s\":0,\"job\":{}}";
	nx = plan(sec, t, t + 7 * 86400 * S, f, &n, &missed);
	T_CHECK("a week missed: once = the first missed + now's, next just after now",
	        n == 2 && f[0] == t && f[1] == t + 7 * 86400 * S && nx == t + 7 * 86400 * S + S && missed > 0);
	/* Window: no fire after end. */
	char win[256];
	snprintf(win, sizeof(win), "{\"name\":\"w\",\"cron\":\"@every 10s\",\"start\":%lld,\"end\":%lld,\"job\":{}}",
	         (long long)(t / S + 30), (long long)(t / S + 50));
	T_CHECK("window: next before start is start", parse(win, &d) == 0 && sched_def_next(&d, t) == t + 30 * S &&
	                                                      sched_def_next(&d, t + 40 * S) == t + 50 * S &&
	                                                      sched_def_next(&d, t + 50 * S) == -1);
	sched_def_free(&d);
	nx = plan(win, t + 50 * S, t + 50 * S, f, &n, &missed);
	T_CHECK("window: the last fire, then none", n == 1 && f[0] == t + 50 * S && nx == -1);
	/* Jitter: due = fire + a fixed offset < jitter_s; not due before it. */
	const char *jit = "{\"name\":\"j\",\"cron\":\"@every 60s\",\"jitter_s\":30,\"job\":{}}";
	int64_t base = 1000020 * S; /* a multiple of 60 s */
	T_CHECK("jitter: due within [fire, fire + 30 s)",
	        parse(jit, &d) == 0 && sched_def_due(&d, base) >= base && sched_def_due(&d, base) < base + 30 * S);
	int64_t due = sched_def_due(&d, base);
	sched_def_free(&d);
	nx = plan(jit, base, due - 1, f, &n, &missed);
	T_CHECK("jitter: nothing before its due time", n == 0 && nx == base);
	nx = plan(jit, base, due, f, &n, &missed);
	T_CHECK("jitter: fires at its due time", n == 1 && f[0] == base);
	/* A cron spec, not an interval. */
	nx = plan("{\"name\":\"c\",\"cron\":\"0 9 * * *\",\"job\":{}}", 86400 * S * 20000 + 9 * 3600 * S,
	          86400 * S * 20000 + 9 * 3600 * S + 100, f, &n, &missed);
	T_CHECK("cron: next day 09:00", n == 1 && nx == 86400 * S * 20001 + 9 * 3600 * S);
	/* misfire all, misfire_max 100, a week of @every 1s missed: one claim submits the 100 oldest and the
	 * on-time ones, and the next claim starts no second budget for the same run. */
	const char *all100 =
	        "{\"name\":\"w\",\"cron\":\"@every 1s\",\"misfire\":\"all\",\"misfire_max\":100,\"job\":{}}";
	int64_t wk = t + 7 * 86400 * S;
	nx = plan(all100, t, wk, f, &n, &missed);
	size_t late = 0;
	for (size_t i = 0; i < n; i++)
		late += f[i] < wk - SCHED_GRACE_DEFAULT * S;
	T_CHECK("all 100 after a week: the 100 oldest missed, then only on-time ones",
	        late == 100 && f[99] == t + 99 * S && nx > wk - SCHED_GRACE_DEFAULT * S);
	size_t n2 = 0;
	nx = plan(all100, nx, wk + 250, f, &n2, &missed);
	T_CHECK("... and the next claim submits no second hundred", n2 <= 2 && nx > wk);
	/* A jitter longer than the period: fires stay due in their order, before the next fire time. */
	const char *jl = "{\"name\":\"jl\",\"cron\":\"@every 60s\",\"jitter_s\":300,\"job\":{}}";
	int ordered = 1;
	T_CHECK("jitter over the period parses", parse(jl, &d) == 0);
	for (int64_t ft = base, k = 0; k < 500; k++, ft += 60 * S)
		ordered &= sched_def_due(&d, ft) >= ft && sched_def_due(&d, ft) < ft + 60 * S;
	sched_def_free(&d);
	T_CHECK("... each fire due before the next fire time", ordered);
	/* The window ended during a year-long outage: the claim ends the schedule at once. */
	char ended[256];
	snprintf(ended, sizeof(ended),
	         "{\"name\":\"x\",\"cron\":\"@every 1s\",\"misfire\":\"skip\",\"end\":%lld,\"job\":{}}",
	         (long long)(t / S + 365LL * 86400 - 86400));
	nx = plan(ended, t, t + 365LL * 86400 * S, f, &n, &missed);
	T_CHECK("a window that ended in an outage: no fire left, no job, bounded walk",
	        nx == -1 && n == 0 && missed <= 2001);
	char id[SCHED_NAME_MAX + 32];
	sched_job_id("nightly", 1796256000000LL, id, sizeof(id));
	T_STREQ("job id", id, "sched-nightly-1796256000000");
	T_DONE();
}

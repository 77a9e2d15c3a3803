/*
 * handlers: the built-in job types, one table entry each. noop, sleep, fail and crash exist for tests,
 * demos and benchmarks; the audio and workflow handlers join this table.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio/audio.h"
#include "jsonx.h"
#include "worker.h"

static int
run_noop(struct job_ctx *ctx, json_t **result)
{
	*result = json_object();
	return 0;
}

/* Sleeps args.ms milliseconds in small steps, reporting progress, and stops early when asked to. */
static int
run_sleep(struct job_ctx *ctx, json_t **result)
{
	long long ms = 1000;
	int ignore_term = 0; /* for tests: a handler stuck past its soft timeout, so SIGKILL must end it */
	if (jsonx_int(ctx->args, "ms", 0, 7LL * 86400 * 1000, &ms, ctx->error, sizeof(ctx->error)) < 0 ||
	    jsonx_bool(ctx->args, "ignore_term", &ignore_term, ctx->error, sizeof(ctx->error)) < 0) {
		ctx->retryable = 0;
		return -1;
	}
	/* At most 50 progress reports, and at least one every 100 ms of sleep. */
	long long step = ms / 50 > 100 ? 100 : (ms / 50 > 0 ? ms / 50 : 1);
	long long slept = 0;
	int last = -1;
	worker_progress(ctx, 0, "sleeping", NULL);
	while (slept < ms) {
		if (worker_should_stop() && !ignore_term) {
			snprintf(ctx->error, sizeof(ctx->error), "stopped after %lld of %lld ms", slept, ms);
			return -1;
		}
		long long chunk = ms - slept < step ? ms - slept : step;
		struct timespec ts = {chunk / 1000, (chunk % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		slept += chunk;
		int pct = (int)(slept * 100 / (ms ? ms : 1));
		if (pct != last && pct < 100) {
			char msg[64];
			snprintf(msg, sizeof(msg), "%lld/%lld ms", slept, ms);
			worker_progress(ctx, pct, "sleeping", msg);
			last = pct;
		}
	}
	*result = json_pack("{s:I}", "slept_ms", (json_int_t)ms);
	return 0;
}

static int
run_fail(struct job_ctx *ctx, json_t **result)
{
	const char *msg = "failed on purpose";
	int retry = 1;
	if (jsonx_string(ctx->args, "message", 1000, &msg, ctx->error, sizeof(ctx->error)) < 0 ||
	    jsonx_bool(ctx->args, "retry", &retry, ctx->error, sizeof(ctx->error)) < 0) {
		ctx->retryable = 0;
		return -1;
	}
	worker_log(ctx, "info", "failing as asked: %s", msg);
	snprintf(ctx->error, sizeof(ctx->error), "%s", msg);
	ctx->retryable = retry;
	return -1;
}

/* Dies by SIGSEGV, with the default action restored first so a sanitizer's handler cannot turn it into exit 1. */
static int
run_crash(struct job_ctx *ctx, json_t **result)
{
	worker_log(ctx, "warn", "crashing on purpose");
	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	snprintf(ctx->error, sizeof(ctx->error), "survived SIGSEGV");
	return -1;
}

static void
audio_progress(void *arg, int pct, const char *stage)
{
	worker_progress(arg, pct, stage, NULL);
}

static int
audio_cancelled(void *arg)
{
	return worker_should_stop();
}

/* audio.analyze {path, features?}: the engine in worker/audio; the path policy comes from hopperd's
 * audio_roots and audio_max_bytes through HOPPER_AUDIO_ROOTS and HOPPER_AUDIO_MAX_BYTES (daemon/pool.c). */
static int
run_audio_analyze(struct job_ctx *ctx, json_t **result)
{
	const char *path = NULL;
	struct audio_opts o = {.progress = audio_progress, .cancelled = audio_cancelled, .arg = ctx};
	ctx->retryable = 0;
	if (jsonx_string(ctx->args, "path", 4096, &path, ctx->error, sizeof(ctx->error)) < 0)
		return -1;
	if (path == NULL) {
		snprintf(ctx->error, sizeof(ctx->error), "args.path is required");
		return -1;
	}
	if (audio_args_parse(ctx->args, &o, ctx->error, sizeof(ctx->error)) < 0)
		return -1;
	const char *roots = getenv("HOPPER_AUDIO_ROOTS"), *max = getenv("HOPPER_AUDIO_MAX_BYTES");
	if (roots == NULL || *roots == '\0') {
		snprintf(ctx->error, sizeof(ctx->error), "no audio roots configured (hopperd audio_roots)");
		return -1;
	}
	o.roots = roots;
	o.max_bytes = max ? strtoll(max, NULL, 10) : 0;
	worker_progress(ctx, 0, "opening", NULL);
	int rc = audio_analyze_file(path, &o, result, ctx->error, sizeof(ctx->error));
	if (rc == AUDIO_OK) {
		worker_progress(ctx, 100, "done", NULL);
		return 0;
	}
	/* a bad path or file stays bad; an I/O error or a stop request may not recur */
	ctx->retryable = rc == AUDIO_EIO || rc == AUDIO_ECANCEL;
	return -1;
}

const struct handler_entry handler_table[] = {
        {"noop", run_noop, "does nothing and succeeds (benchmarks)"},
        {"sleep", run_sleep, "sleeps args.ms milliseconds, reporting progress (args.ignore_term: ignore SIGTERM)"},
        {"fail", run_fail, "fails with args.message; args.retry=false makes the failure permanent"},
        {"crash", run_crash, "kills its worker with SIGSEGV"},
        {"workflow.run", workflow_run,
         "runs a workflow: args.definition (or args.workflow, a stored one) and args.input"},
        {"audio.analyze", run_audio_analyze, "analyses the audio file args.path (args.features: a subset)"},
        {NULL, NULL, NULL},
};

const struct handler_entry *
handler_find(const char *name)
{
	for (const struct handler_entry *h = handler_table; h->name != NULL; h++)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

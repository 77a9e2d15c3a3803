/*
 * worker.h: hopper-worker, the process that runs jobs. hopperd starts N of them; each reads JOB frames
 * from its socketpair (fd 3), runs one job at a time through the handler table, and sends back PROGRESS,
 * LOG and RESULT frames (schema/worker-frames.md). It never talks to Redis or SQLite. A worker that dies
 * mid-job (a crash, a kill) costs that job one attempt and nothing else.
 */
#ifndef HOPPER_WORKER_H
#define HOPPER_WORKER_H

#include <jansson.h>
#include <signal.h>

/* What a handler sees of its job and of the worker. */
struct job_ctx {
	const char *id;
	const char *type;
	json_t *args; /* borrowed: valid until the handler returns */
	int attempt;
	double timeout_s;
	json_t *resume;  /* borrowed: workflow.run only, the step records of earlier attempts (or NULL) */
	json_t *secrets; /* borrowed, or NULL: values masked out of its log lines and progress (a workflow's,
	                  * also for the handlers it runs as steps) */
	/* set by the handler on failure: */
	char error[1024];
	int retryable; /* 1 (default): a later attempt may succeed; 0: fail for good */
	/* set by a handler that ends its attempt with a durable wait instead of a result (workflow.run,
	 * README "Durable waits"): {"until": epoch s, "reason": text, "wake"?: {"job", "queue"}}. The worker
	 * takes ownership and sends it in the RESULT frame; the handler's return value is then ignored. */
	json_t *park;
};

/* A handler returns 0 with *result set (a new reference the worker takes over), or -1 with ctx->error set. */
typedef int job_handler(struct job_ctx *ctx, json_t **result);

struct handler_entry {
	const char *name;
	job_handler *run;
	const char *summary;
};

/* handlers.c */
extern const struct handler_entry handler_table[];
const struct handler_entry *handler_find(const char *name);

/* worker.c: what handlers call. */
/* Reports progress 0-100 with an optional stage and message (NULL for none). */
void worker_progress(struct job_ctx *ctx, int progress, const char *stage, const char *message);
void worker_log(struct job_ctx *ctx, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 once the daemon asked this worker to stop (SIGTERM: soft timeout, cancel, shutdown). */
int worker_should_stop(void);
/*
 * Sends a request frame (FRAME_STEP, FRAME_ENQUEUE, FRAME_QUERY) and waits for the daemon's FRAME_REPLY.
 * Takes ownership of payload. Returns the reply object (caller decrefs) if it says "ok": true, or NULL with
 * err set (the daemon's error, or no reply within the limit).
 */
json_t *worker_request(struct job_ctx *ctx, int type, json_t *payload, char *err, size_t errlen);
/*
 * While a hook is set, worker_progress calls it instead of sending a frame: a workflow rescales the progress
 * of a handler it runs as a step into its own. NULL removes it.
 */
typedef void worker_progress_hook(void *arg, int progress, const char *stage, const char *message);
void worker_set_progress_hook(worker_progress_hook *fn, void *arg);

/* workflow/wf_run.c: the workflow.run handler */
int workflow_run(struct job_ctx *ctx, json_t **result);

#endif

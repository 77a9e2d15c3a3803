/*
 * workflow.h: the workflow engine behind the "workflow.run" job type (issue #5). One header for the module.
 *
 *   wf_def.c       parse + validate a definition (hopper shape or AutomateOS nodes/connections) into a DAG
 *   wf_template.c  {{...}} templates and references: checking, resolving, rendering (pure)
 *   wf_expr.c      the filter expression language: recursive descent parser and evaluator (pure, never eval)
 *   wf_mask.c      secret masking of everything stored or published (pure)
 *   wf_steps.c     the step type table {name, validate, run}: webhook, delay, filter, audio.analyze, enqueue
 *   wf_http.c      the http step (libcurl; the only file that includes curl.h)
 *   wf_net.c       where an http step may connect: host:port allowlist, hopperd's own addresses, resolution
 *   wf_exec.c      the exec step (fork/exec in its own process group, no shell)
 *   wf_run.c       the workflow.run handler: order, retries, progress, step records, resume
 *
 * Parsing, templates, expressions and masking are pure functions over jansson values (fuzzed: fuzz/); they
 * never touch the worker. Steps reach the worker only through struct wf_host, so the pure part links alone.
 * jansson's reference rule is the one stated in common/jsonx.h.
 */
#ifndef HOPPER_WORKFLOW_H
#define HOPPER_WORKFLOW_H

#include <jansson.h>
#include <stddef.h>

/* A definition may hold at most this many steps: a run is one job, and its step records travel in one frame
 * each; hundreds of steps belong in several workflows chained by enqueue steps. */
#define WF_STEPS_MAX 256
#define WF_ID_MAX    64
/* Every error is listed, but a definition broken in thousands of ways needs only the first hundred. */
#define WF_ERRORS_MAX 100
/* Expressions and templates: longer text is a sign of a generated attack, not a condition. */
#define WF_EXPR_MAX       4096
#define WF_EXPR_DEPTH_MAX 64
#define WF_EXPR_NODES_MAX 512
#define WF_PATH_MAX       512
/* A rendered string parameter may grow to this (templates can repeat large values). */
#define WF_RENDER_MAX (1024 * 1024)
/* Step output excerpts kept in SQLite rows. */
#define WF_EXCERPT_MAX 2048
#define WF_RETRIES_MAX 20

/* Limits and allowlists, from hopperd's configuration (passed to workers as HOPPER_WF_* variables). */
struct wf_config {
	int exec_enabled;
	const char *exec_programs;  /* comma-separated absolute paths an exec step may run */
	const char *http_schemes;   /* comma-separated, default "http,https" */
	const char *http_hosts;     /* comma-separated host names; "" allows any host */
	const char *env_allow;      /* comma-separated variable names {{env.NAME}} may read */
	const char *deny_addrs;     /* "host:port,..." of hopperd's own Redis and control listener (wf_net.c) */
	const char *exec_env_allow; /* names (or PREFIX*) an exec step's env may set (wf_exec_env_name_ok) */
	const char *mask_names;     /* extra header/parameter names masked besides authorization and cookie */
	size_t max_response;        /* http response body bytes */
	size_t max_output;          /* exec stdout and stderr bytes, each */
};
/* 1 if an exec step may set this variable: listed in exec_env_allow (exactly, or by a PREFIX* entry unless
 * the name is a loader/shell/interpreter hook such as LD_*, BASH_FUNC_*, PATH, IFS, ENV, BASH_ENV). */
int wf_exec_env_name_ok(const struct wf_config *cfg, const char *name);
/* Fills c from the environment (HOPPER_WF_*); strings point into the environment. */
void wf_config_from_env(struct wf_config *c);
/* 1 if name is an element of the comma-separated list (case-sensitive unless nocase). */
int wf_list_has(const char *list, const char *name, int nocase);

enum wf_on_failure { WF_STOP, WF_CONTINUE };

struct wf_step_type;

struct wf_step {
	const char *id; /* borrowed from the definition's document */
	const struct wf_step_type *type;
	json_t *params;   /* borrowed */
	double timeout_s; /* 0: none but the job's */
	int retries;      /* extra attempts after the first */
	double backoff_s, backoff_max_s;
	enum wf_on_failure on_failure;
	size_t *deps; /* indexes of the steps it depends on; owned */
	size_t ndeps;
};

struct wf_def {
	json_t *doc; /* the normalized (hopper-shape) definition; owned reference */
	const char *name;
	int automateos; /* came as nodes + connections: bare {{node.path}} references are allowed */
	struct wf_step *steps;
	size_t nsteps;
	size_t *order;      /* topological order, ties broken by position in the definition */
	unsigned char *anc; /* anc[i * nsteps + j]: step j precedes step i (a transitive dependency) */
};

/*
 * Parses and validates a definition: either {"id"?, "name"?, "steps": [...]} or {"nodes": [...],
 * "connections": [...]}. Returns the definition (free with wf_def_free), or NULL with *errors set to a new
 * array of {"step": id-or-null, "error": text} listing every problem found (caller decrefs).
 */
struct wf_def *wf_def_parse(json_t *doc, const struct wf_config *cfg, json_t **errors);
void wf_def_free(struct wf_def *def);
/* Index of the step with this id, or -1. len may be shorter than the string (a path segment). */
long wf_def_find(const struct wf_def *def, const char *id, size_t len);
/* "N errors: step a: ...; step b: ..." from an error array, for a job's error text. Caller frees. */
char *wf_errors_text(json_t *errors);

/* --- templates and references (wf_template.c) --- */
/*
 * A reference is a dotted path: input.P, steps.ID.output.P, env.NAME, or (AutomateOS) ID.P. Checks that it
 * is well formed and, for step references, that the step precedes step `self` (-1: no step context).
 * Returns 0, or -1 with err set.
 */
int wf_ref_check(const struct wf_def *def, long self, const struct wf_config *cfg, const char *path, size_t len,
                 char *err, size_t errlen);
/*
 * Looks a reference up in the run context {"input", "steps": {ID: {"output"}}, "env"}. Returns a borrowed
 * value, or NULL if there is none at that path.
 */
json_t *wf_ref_resolve(const struct wf_def *def, json_t *ctx, const char *path, size_t len);
/* Checks every {{...}} in s. Returns the number of errors; the first is written to err. */
int wf_template_check(const struct wf_def *def, long self, const struct wf_config *cfg, const char *s, char *err,
                      size_t errlen);
/*
 * Renders one string: a string that is exactly one {{ref}} becomes the referenced value itself (any JSON
 * type); otherwise references are interpolated (strings raw, other values as compact JSON) and "\{{" stands
 * for a literal "{{". Returns a new reference, or NULL with err set (missing value, result too large).
 */
json_t *wf_template_render(const struct wf_def *def, json_t *ctx, const char *s, char *err, size_t errlen);
/* Renders every string inside v (object values, array elements), recursively. New reference or NULL. */
json_t *wf_template_render_all(const struct wf_def *def, json_t *ctx, json_t *v, char *err, size_t errlen);

/* --- filter expressions (wf_expr.c) --- */
struct wf_expr;
/* Parses an expression. Returns it (free with wf_expr_free), or NULL with err set ("col N: why"). */
struct wf_expr *wf_expr_parse(const char *text, char *err, size_t errlen);
void wf_expr_free(struct wf_expr *e);
/*
 * Calls fn on every reference (is_template 0: a path of len bytes) and every string literal holding "{{"
 * (is_template 1: the literal's text, rendered as a template at evaluation); stops at the first nonzero return.
 */
int wf_expr_refs(const struct wf_expr *e, int (*fn)(int is_template, const char *s, size_t len, void *arg), void *arg);
/* Evaluates e against a run context: 1 true, 0 false. Missing references are null. */
int wf_expr_eval(const struct wf_expr *e, const struct wf_def *def, json_t *ctx);

/* --- masking (wf_mask.c) --- */
/* 1 if a header or parameter of this name is a secret (authorization, cookie, set-cookie, proxy-authorization,
 * or listed in mask_names; case-insensitive). */
int wf_mask_name(const struct wf_config *cfg, const char *name);
/*
 * A copy of v with the values of secret-named keys replaced by "***" and every occurrence of a known secret
 * value (secrets: array of strings, may be NULL) in any string replaced by "***". New reference.
 */
json_t *wf_mask_json(const struct wf_config *cfg, json_t *v, json_t *secrets);
/* The same for a string. Caller frees. */
char *wf_mask_text(const char *s, json_t *secrets);

/* --- step types (wf_steps.c) --- */
/* WF_PARKED: the step waits durably (wf_wait.c); host->park says until when, and the run's attempt ends. */
enum wf_status { WF_OK = 0, WF_FAIL = -1, WF_FATAL = -2, WF_FILTERED = -3, WF_STOPPED = -4, WF_PARKED = -5 };

/* What steps need from the worker; wf_run.c fills it with the real functions. */
struct wf_host {
	void *ctx; /* the worker's struct job_ctx */
	int (*should_stop)(void);
	/* pct 0-100 of the current step; rescaled into the job's progress */
	void (*step_progress)(void *ctx, int pct, const char *message);
	/* Runs a registered job handler (audio.analyze) with args; 0 with *result, or -1 with err. */
	int (*run_handler)(void *ctx, const char *name, json_t *args, json_t **result, char *err, size_t errlen);
	int (*have_handler)(const char *name);
	/* Asks the daemon (frames ENQUEUE/QUERY): returns the reply object or NULL with err. */
	json_t *(*request)(void *ctx, int frame_type, json_t *payload, char *err, size_t errlen);
	const char *job_id;
	double deadline; /* monotonic ms by which the step must end (0: none) */
	json_t *secrets; /* rendered values of masked headers/params, collected for masking */
	/* durable waits (wf_wait.c, README "Durable waits") */
	int can_park;        /* 1: a step may end the attempt with a park (the run resumes from its records) */
	double step_started; /* Unix seconds this step attempt started (the first start, across parks) */
	int step_parks;      /* how often this step attempt parked before */
	json_t *park;        /* a step returning WF_PARKED sets it: {"until","reason","wake"?}; owned by the run */
};

struct wf_step_call {
	const struct wf_def *def;
	const struct wf_step *step;
	const struct wf_config *cfg;
	struct wf_host *host;
	json_t *ctx;    /* the run context (borrowed) */
	json_t *params; /* rendered parameters (borrowed) */
};

struct wf_step_type {
	const char *name;
	/* Checks params (types, required fields, allowlists) before anything runs. 0, or -1 with err. */
	int (*validate)(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
	                size_t errlen);
	/* Runs one attempt of the step. WF_OK with *output (a new reference), or another status with err. */
	enum wf_status (*run)(struct wf_step_call *call, json_t **output, char *err, size_t errlen);
	int raw_params; /* 1: parameters are not rendered as templates (filter reads its condition itself) */
};

extern const struct wf_step_type wf_step_types[];
const struct wf_step_type *wf_step_type_find(const char *name);
/* Sleeps ms in slices, returning early (-1) when host->should_stop says so. */
int wf_sleep_ms(struct wf_host *host, double ms);

/* wf_wait.c: delay, sleep_until and enqueue's wait, which park the run instead of holding the worker */
int wf_delay_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                      size_t errlen);
enum wf_status wf_delay_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen);
int wf_sleep_until_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                            size_t errlen);
enum wf_status wf_sleep_until_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen);
/* Waits for child job (queue) to end: WF_OK with its result, WF_FAIL, WF_STOPPED or WF_PARKED. */
enum wf_status wf_wait_child(struct wf_step_call *call, const char *child, const char *queue, json_t **output,
                             char *err, size_t errlen);
/* Parses an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)) into Unix seconds. 0 or -1. */
int wf_iso_time(const char *s, double *out);

/* wf_http.c, wf_exec.c */
int wf_http_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                     size_t errlen);
enum wf_status wf_http_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen);
int wf_exec_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                     size_t errlen);
enum wf_status wf_exec_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen);

#endif

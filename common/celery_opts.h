/*
 * celery_opts: hopperd's per-task Celery options, as pure parsers (no I/O, unit-tested):
 * - celery_routes "PATTERN=QUEUE ..." (Celery's task_routes with glob patterns, first match wins): the
 *   queue of a chain link, callback, errback or chord body hopperd publishes without an explicit queue;
 * - celery_types "TASK:KEY=VALUE; ..." with keys exc (MODULE.TYPE a failure is reported as), exc[PREFIX]
 *   (the same for errors starting with PREFIX), progress (the PROGRESS meta as a JSON template over the
 *   bare names progress, stage and message) and soft_retry (1: a soft time limit is retried like any
 *   timeout; default 0: SoftTimeLimitExceeded, once).
 */
#ifndef HOPPER_CELERY_OPTS_H
#define HOPPER_CELERY_OPTS_H

#include <jansson.h>
#include <stddef.h>

#include "celery_msg.h"

#define CELERY_ROUTES_MAX 256
#define CELERY_TYPES_MAX  256
#define CELERY_EXCS_MAX   16   /* exc rules of one task */
#define CELERY_TMPL_MAX   1024 /* a progress template */

struct celery_route_rule {
	char pattern[CELERY_TASK_NAME_MAX + 1];
	char queue[CELERY_QUEUE_MAX + 1];
};

struct celery_type_rule {
	char task[CELERY_TASK_NAME_MAX + 1];
	json_t *excs;   /* [[prefix, type, module], ...] ("" prefix: the default); owned */
	char *progress; /* the compiled template (celery_progress_compile) or NULL; owned */
	int soft_retry;
};

struct celery_opts {
	struct celery_route_rule *routes; /* owned */
	size_t nroutes;
	struct celery_type_rule *types; /* owned */
	size_t ntypes;
};

/* Parses both options. Returns 0, or -1 with *cause (caller frees); free o with celery_opts_free either way. */
int celery_opts_parse(const char *routes, const char *types, struct celery_opts *o, char **cause);
void celery_opts_free(struct celery_opts *o);
/* The queue of the first route whose pattern matches task (fnmatch), or NULL. */
const char *celery_route_queue(const struct celery_opts *o, const char *task);
const struct celery_type_rule *celery_type_find(const struct celery_opts *o, const char *task);
/*
 * A PROGRESS template ({"current": progress, "total": 100, "status": stage}) -> the same text with each
 * bare name progress, stage or message (outside strings) replaced by \x01NAME\x01 for the Lua side to fill
 * in; the result with sample values must be JSON. Returns a new string (caller frees) or NULL with err.
 */
char *celery_progress_compile(const char *tmpl, char *err, size_t errlen);

#endif

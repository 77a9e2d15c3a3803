/*
 * celery: `hopperctl celery send TASK ...` publishes a task in Celery's own format (task protocol v2 on
 * kombu's Redis transport) so that a stock Celery worker -- or a hopperd consuming that queue -- runs it.
 * Two ways, the same message:
 * - by default through the daemon: the celery.send op (libhopper's hopper_celery_send), which encodes the
 *   message and pushes it under the daemon's celery_prefix; needs the submit scope;
 * - with a --redis-* option (or HOPPER_REDIS_* variable): directly into that Redis, for a broker hopperd
 *   does not use. Check, then proceed: the message is built and encoded by common/celery_msg.c (the
 *   encoder hopperd uses) before the one LPUSH that publishes it.
 * Prints the task id; its result appears in the Celery result backend as celery-task-meta-ID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery_msg.h"
#include "clock.h"
#include "hopper.h"
#include "hopperctl.h"
#include "xmalloc.h"

/* Parses --args/--kwargs: JSON of the given type (1 array, 0 object). NULL with the error printed. */
static json_t *
json_opt(const char *text, int array, const char *name)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);
	if (v == NULL || (array ? !json_is_array(v) : !json_is_object(v))) {
		ctl_warn("celery send: --%s must be a JSON %s", name, array ? "array" : "object");
		json_decref(v);
		return NULL;
	}
	return v;
}

/* Fills m from the command line. 0, or an exit code with the error printed. The caller decrefs args, kwargs. */
static int
send_build(const struct cmd_args *a, struct celery_send *m, json_t **args, json_t **kwargs)
{
	long long prio = 0;
	double countdown = 0, eta = 0, expires = 0;
	*args = json_opt(a->opt[OPT_ARGS] ? a->opt[OPT_ARGS] : "[]", 1, "args");
	*kwargs = json_opt(a->opt[OPT_KWARGS] ? a->opt[OPT_KWARGS] : "{}", 0, "kwargs");
	if (*args == NULL || *kwargs == NULL)
		return CTL_EXIT_USAGE;
	if (a->opt[OPT_PRIORITY] != NULL && text_int(a->opt[OPT_PRIORITY], 0, 9, &prio) < 0) {
		ctl_warn("celery send: --priority must be 0-9");
		return CTL_EXIT_USAGE;
	}
	if (a->opt[OPT_COUNTDOWN] != NULL &&
	    text_double(a->opt[OPT_COUNTDOWN], 0, JOB_TIMEOUT_LIMIT_S, &countdown) < 0) {
		ctl_warn("celery send: --countdown must be seconds");
		return CTL_EXIT_USAGE;
	}
	if (a->opt[OPT_ETA] != NULL && text_double(a->opt[OPT_ETA], 1, 253402300799.0, &eta) < 0) {
		ctl_warn("celery send: --eta must be a Unix time");
		return CTL_EXIT_USAGE;
	}
	if (a->opt[OPT_EXPIRES] != NULL && text_double(a->opt[OPT_EXPIRES], 1, JOB_TIMEOUT_LIMIT_S, &expires) < 0) {
		ctl_warn("celery send: --expires must be seconds (at least 1)");
		return CTL_EXIT_USAGE;
	}
	if (countdown > 0 && eta > 0) {
		ctl_warn("celery send: give at most one of --countdown and --eta");
		return CTL_EXIT_USAGE;
	}
	m->task = a->argv[0];
	m->id = a->opt[OPT_ID];
	m->queue = a->opt[OPT_QUEUE] ? a->opt[OPT_QUEUE] : "celery";
	m->priority = (int)prio;
	m->args = *args;
	m->kwargs = *kwargs;
	m->eta = eta > 0 ? eta : countdown > 0 ? clock_now() + countdown : 0;
	m->expires = expires > 0 ? clock_now() + expires : 0;
	if (m->id != NULL && !job_name_valid(m->id, JOB_ID_MAX)) {
		ctl_warn("celery send: --id may hold only letters, digits and ._:-");
		return CTL_EXIT_USAGE;
	}
	return 0;
}

/* The daemon's way: the same fields as the celery.send op, through libhopper. Prints the task id. */
static int
send_via_daemon(struct ctl *ctl, const struct celery_send *m)
{
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h == NULL)
		return code;
	double now = clock_now();
	struct hopper_celery_task t = {
	        .task = m->task,
	        .args = m->args,
	        .kwargs = m->kwargs,
	        .queue = m->queue,
	        .priority = m->priority,
	        /* whole seconds on the wire: a countdown is rounded up so the task never runs early */
	        .eta = m->eta > 0 ? (long long)(m->eta + 0.999) : 0,
	        .expires_s = m->expires > 0 ? (int)(m->expires - now + 0.5) : 0,
	        .id = m->id,
	};
	if (t.expires_s < 1 && m->expires > 0)
		t.expires_s = 1;
	char *id = NULL;
	if (hopper_celery_send(h, &t, &id) != HOPPER_OK)
		return ctl_fail(ctl);
	printf("%s\n", id);
	free(id);
	return 0;
}

int
celery_cmd(struct ctl *ctl, struct cmd_args *a)
{
	if (!ctl->redis_given) {
		struct celery_send m = {0};
		json_t *args = NULL, *kwargs = NULL;
		int rc = send_build(a, &m, &args, &kwargs);
		if (rc == 0 && a->opt[OPT_CPREFIX] != NULL) {
			ctl_warn("celery send: --celery-prefix goes with --redis-*; the daemon uses its celery_prefix");
			rc = CTL_EXIT_USAGE;
		}
		if (rc == 0)
			rc = send_via_daemon(ctl, &m);
		json_decref(args);
		json_decref(kwargs);
		return rc;
	}
	char origin[300], host[256] = "localhost", err[256];
	gethostname(host, sizeof(host) - 1);
	snprintf(origin, sizeof(origin), "%d@%s", (int)getpid(), host);
	struct celery_send m = {.origin = origin};
	json_t *args = NULL, *kwargs = NULL;
	struct celery_encoded e = {0};
	int rc = send_build(a, &m, &args, &kwargs);
	if (rc == 0 && celery_encode_task(&m, &e, err, sizeof(err)) < 0) {
		ctl_warn("celery send: %s", err);
		rc = CTL_EXIT_USAGE;
	}
	struct conn *c = rc == 0 ? ctl_conn(ctl) : NULL;
	if (rc == 0 && c == NULL)
		rc = CTL_EXIT_REDIS;
	if (rc == 0) {
		char *env = celery_encoded_join(&e, NULL), *cause = NULL;
		struct conn_cmd *cmd = conn_cmd_new("LPUSH");
		conn_argf(cmd, "%s%s", a->opt[OPT_CPREFIX] ? a->opt[OPT_CPREFIX] : "", e.key);
		conn_arg(cmd, env);
		if (conn_run(c, cmd, &cause) < 0) {
			ctl_warn("celery send: %s", cause);
			free(cause);
			rc = CTL_EXIT_REDIS;
		} else
			printf("%s\n", e.id);
		free(env);
	}
	celery_encoded_free(&e);
	json_decref(args);
	json_decref(kwargs);
	return rc;
}

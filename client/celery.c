/*
 * celery: `hopperctl celery send TASK ...` publishes a task in Celery's own format (task protocol v2 on
 * kombu's Redis transport) so that a stock Celery worker -- or a hopperd consuming that queue -- runs it.
 * Check, then proceed: the message is built and encoded by common/celery_msg.c (the encoder hopperd uses
 * for chain links) before the one LPUSH that publishes it. Prints the task id; its result appears in the
 * Celery result backend as celery-task-meta-ID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery_msg.h"
#include "clock.h"
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
	double countdown = 0;
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
	m->task = a->argv[1];
	m->id = a->opt[OPT_ID];
	m->queue = a->opt[OPT_QUEUE] ? a->opt[OPT_QUEUE] : "celery";
	m->priority = (int)prio;
	m->args = *args;
	m->kwargs = *kwargs;
	m->eta = countdown > 0 ? clock_now() + countdown : 0;
	if (m->id != NULL && !job_name_valid(m->id, JOB_ID_MAX)) {
		ctl_warn("celery send: --id may hold only letters, digits and ._:-");
		return CTL_EXIT_USAGE;
	}
	return 0;
}

int
celery_cmd(struct ctl *ctl, struct cmd_args *a)
{
	if (strcmp(a->argv[0], "send") != 0)
		return ctl_usage("celery");
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

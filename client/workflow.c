/*
 * workflow: the stored-workflow commands that need more than the catalogue's generated options:
 * `hopperctl workflow put FILE` (the definition comes from a file) and `workflow run NAME --input JSON
 * [--wait]` (follows the run like submit --wait), `workflow webhook NAME` (prints the webhook's URL) and
 * `workflow restart RUN --from STEP | --all ...` (one run, or every run a filter matches). list, show and rm
 * run generically (ops.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hopperctl.h"
#include "xmalloc.h"

static void
set_string(json_t *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, key, text_json_string(v, strlen(v)));
}

/* Runs op with fields, prints its result. Takes ownership of fields. *res gets the result when res is not
 * NULL (caller decrefs). Returns the exit code. */
static int
call_print(struct ctl *ctl, const char *opname, json_t *fields, json_t **res, int print)
{
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	json_t *result = NULL;
	if (h != NULL)
		code = hopper_call(h, opname, fields, &result) == HOPPER_OK ? CTL_EXIT_OK : ctl_fail(ctl);
	json_decref(fields);
	if (code == CTL_EXIT_OK && print)
		ops_print(ctl, ctl_op_find(opname), result);
	if (res != NULL)
		*res = result;
	else
		json_decref(result);
	return code;
}

int
workflow_put_cmd(struct ctl *ctl, struct cmd_args *a)
{
	json_error_t jerr;
	json_t *def = json_load_file(a->argv[0], JSON_REJECT_DUPLICATES, &jerr);
	if (def == NULL) {
		ctl_warn("workflow put: %s: %s (line %d)", a->argv[0], jerr.text, jerr.line);
		return CTL_EXIT_USAGE;
	}
	if (!json_is_object(def)) {
		ctl_warn("workflow put: %s: not a JSON object (a workflow definition)", a->argv[0]);
		json_decref(def);
		return CTL_EXIT_USAGE;
	}
	json_t *fields = json_pack("{s:o}", "definition", def);
	set_string(fields, "name", a->opt[OPT_NAME]);
	set_string(fields, "description", a->opt[OPT_DESCRIPTION]);
	set_string(fields, "owner", a->opt[OPT_OWNER]);
	if (a->opt[OPT_INACTIVE] != NULL)
		json_object_set_new(fields, "active", json_false());
	return call_print(ctl, "workflow.put", fields, NULL, 1);
}

int
workflow_run_cmd(struct ctl *ctl, struct cmd_args *a)
{
	double wait_timeout = 0;
	if (a->opt[OPT_WAIT_TIMEOUT] != NULL &&
	    (a->opt[OPT_WAIT] == NULL || text_double(a->opt[OPT_WAIT_TIMEOUT], 0.001, 1e9, &wait_timeout) < 0)) {
		ctl_warn("workflow run: --wait-timeout needs --wait and a number of seconds");
		return ctl_usage("workflow.run");
	}
	json_t *fields = json_pack("{s:s}", "name", a->argv[0]);
	if (a->opt[OPT_INPUT] != NULL) {
		json_error_t jerr;
		json_t *input = json_loads(a->opt[OPT_INPUT], JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(input)) {
			ctl_warn("workflow run: --input must be a JSON object%s%s", input == NULL ? ": " : "",
			         input == NULL ? jerr.text : "");
			json_decref(input);
			json_decref(fields);
			return CTL_EXIT_USAGE;
		}
		json_object_set_new(fields, "input", input);
	}
	set_string(fields, "queue", a->opt[OPT_QUEUE]);
	set_string(fields, "idempotency_key", a->opt[OPT_IDEM_KEY]);
	set_string(fields, "job_id", a->opt[OPT_ID]);
	json_t *res = NULL;
	int code = call_print(ctl, "workflow.run", fields, &res, 0);
	if (code != CTL_EXIT_OK)
		return code;
	const char *id = json_string_value(json_object_get(res, "id"));
	if (ctl->json) {
		char *s = text_json_dump(res);
		printf("%s\n", s);
		free(s);
	} else
		printf("%s\n", id != NULL ? id : "?");
	fflush(stdout);
	if (a->opt[OPT_WAIT] != NULL && id != NULL) {
		char *ids[] = {(char *)id};
		json_t *final = NULL;
		code = watch_jobs(ctl, ids, 1, ctl->json || !isatty(STDOUT_FILENO), wait_timeout, &final);
		if (final != NULL)
			status_print(ctl, final);
		json_decref(final);
	}
	json_decref(res);
	return code;
}

int
workflow_webhook_cmd(struct ctl *ctl, struct cmd_args *a)
{
	int actions = (a->opt[OPT_CREATE] != NULL) + (a->opt[OPT_ROTATE] != NULL) + (a->opt[OPT_REVOKE] != NULL);
	if (actions > 1) {
		ctl_warn("workflow webhook: at most one of --create, --rotate, --revoke");
		return ctl_usage("workflow.webhook");
	}
	if (a->opt[OPT_SECRET] != NULL && a->opt[OPT_SECRET_FILE] != NULL) {
		ctl_warn("workflow webhook: --secret or --secret-file, not both");
		return ctl_usage("workflow.webhook");
	}
	char *secret = NULL;
	if (a->opt[OPT_SECRET_FILE] != NULL && (secret = secret_read(a->opt[OPT_SECRET_FILE], "--secret-file")) == NULL)
		return CTL_EXIT_USAGE;
	json_t *fields = json_pack("{s:s}", "name", a->argv[0]);
	const char *action = a->opt[OPT_CREATE]   ? "create"
	                     : a->opt[OPT_ROTATE] ? "rotate"
	                     : a->opt[OPT_REVOKE] ? "revoke"
	                                          : NULL;
	set_string(fields, "action", action);
	set_string(fields, "signature", a->opt[OPT_SIGNATURE]);
	set_string(fields, "secret", secret != NULL ? secret : a->opt[OPT_SECRET]);
	secret_free(secret);
	json_t *res = NULL;
	int code = call_print(ctl, "workflow.webhook", fields, &res, 0);
	if (code != CTL_EXIT_OK)
		return code;
	const char *base = a->opt[OPT_BASE_URL] ? a->opt[OPT_BASE_URL] : getenv("HOPPER_WEB_URL");
	if (base == NULL || *base == '\0')
		base = "http://127.0.0.1:8080";
	const char *path = json_string_value(json_object_get(res, "path"));
	if (ctl->json) {
		if (path != NULL) {
			char *url = xasprintf("%s%s", base, path);
			json_object_set_new(res, "url", json_string(url));
			free(url);
		}
		char *s = text_json_dump(res);
		printf("%s\n", s);
		free(s);
	} else if (path != NULL)
		printf("%s%s\n", base, path);
	else
		printf("webhook of %s revoked\n", a->argv[0]);
	json_decref(res);
	return CTL_EXIT_OK;
}

/* One line per restarted run of a bulk restart; the others are only counted. */
static void
restart_printed(struct hopper *h, const char *job, int code, const json_t *res, void *ud)
{
	struct ctl *ctl = ud;
	if (code != HOPPER_OK)
		return;
	if (ctl->json) {
		char *s = text_json_dump(res);
		printf("%s\n", s);
		free(s);
	} else
		printf("%s restarted\n", job);
	fflush(stdout);
}

/* --all: hopper_workflow_restart_all over the filter; prints the runs restarted, then the counts. */
static int
workflow_restart_all(struct ctl *ctl, struct cmd_args *a)
{
	const char *state = a->opt[OPT_STATE];
	if (state == NULL ||
	    (strcmp(state, "succeeded") != 0 && strcmp(state, "failed") != 0 && strcmp(state, "dead") != 0)) {
		ctl_warn("workflow restart: --all needs --state succeeded, failed or dead");
		return ctl_usage("workflow.restart");
	}
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h == NULL)
		return code;
	struct hopper_restart_filter f = {
	        .from = a->opt[OPT_FROM], .state = state, .queue = a->opt[OPT_QUEUE], .owner = a->opt[OPT_OWNER]};
	struct hopper_restart_counts n;
	int r = hopper_workflow_restart_all(h, &f, restart_printed, ctl, &n);
	code = r == HOPPER_OK ? CTL_EXIT_OK : ctl_fail(ctl);
	if (ctl->json)
		printf("{\"restarted\":%lld,\"no_step\":%lld,\"changed\":%lld}\n", n.restarted, n.no_step, n.changed);
	else
		printf("restarted %lld run%s from %s; %lld without a record of it, %lld changed meanwhile\n",
		       n.restarted, n.restarted == 1 ? "" : "s", f.from, n.no_step, n.changed);
	return code;
}

int
workflow_restart_cmd(struct ctl *ctl, struct cmd_args *a)
{
	int all = a->opt[OPT_ALL] != NULL;
	if (a->opt[OPT_FROM] == NULL) {
		ctl_warn("workflow restart: --from STEP is required");
		return ctl_usage("workflow.restart");
	}
	if (all != (a->argc == 0)) {
		ctl_warn("workflow restart: give a run id or --all");
		return ctl_usage("workflow.restart");
	}
	if (all)
		return workflow_restart_all(ctl, a);
	if (a->opt[OPT_STATE] != NULL || a->opt[OPT_OWNER] != NULL) {
		ctl_warn("workflow restart: --state and --owner go with --all");
		return ctl_usage("workflow.restart");
	}
	json_t *fields = json_pack("{s:s}", "job", a->argv[0]);
	set_string(fields, "from", a->opt[OPT_FROM]);
	set_string(fields, "queue", a->opt[OPT_QUEUE]);
	return call_print(ctl, "workflow.restart", fields, NULL, 1);
}

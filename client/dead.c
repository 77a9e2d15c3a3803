/*
 * dead: `hopperctl dead [list] | retry ID... | retry --all [filters]`, a convenience over catalogue ops: the
 * list is `list --state dead` (every page), a retry is the retry op per job (requeue is accepted as its old
 * name), and --all is the dead_retry op called chunk by chunk on its cursor (hopper_dead_retry_all).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopperctl.h"
#include "xmalloc.h"

/* Every dead job visible to the credential, newest first, across all pages. NULL with the error printed
 * (*code set). Caller decrefs. */
static json_t *
dead_all(struct ctl *ctl, struct hopper *h, int *code)
{
	json_t *all = json_array();
	char *cursor = NULL;
	for (;;) {
		struct hopper_list_filter f = {.state = "dead", .limit = CTL_LIST_MAX, .cursor = cursor};
		json_t *page = NULL;
		int r = hopper_list(h, &f, &page);
		free(cursor);
		cursor = NULL;
		if (r != HOPPER_OK) {
			*code = ctl_fail(ctl);
			json_decref(all);
			return NULL;
		}
		json_array_extend(all, json_object_get(page, "jobs"));
		const char *c = json_string_value(json_object_get(page, "cursor"));
		if (c != NULL)
			cursor = xstrdup(c);
		json_decref(page);
		if (cursor == NULL)
			return all;
	}
}

static int
dead_list(struct ctl *ctl, struct hopper *h)
{
	int code = 0;
	json_t *jobs = dead_all(ctl, h, &code);
	if (jobs == NULL)
		return code;
	json_t *res = json_pack("{s:o, s:n}", "jobs", jobs, "cursor");
	ops_print(ctl, &ctl_ops[CTL_OP_LIST], res);
	json_decref(res);
	return CTL_EXIT_OK;
}

/* Retries each id; the worst exit code. */
static int
dead_retry(struct ctl *ctl, struct hopper *h, json_t *ids)
{
	int worst = CTL_EXIT_OK;
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v)
	{
		json_t *res = NULL;
		if (hopper_retry(h, json_string_value(v), &res) != HOPPER_OK) {
			int c = ctl_fail(ctl);
			worst = c > worst ? c : worst;
			continue;
		}
		if (ctl->json)
			ops_print(ctl, &ctl_ops[CTL_OP_RETRY], res);
		else
			printf("%s retried on queue %s\n", json_string_value(v),
			       json_string_value(json_object_get(res, "queue")) ?: "?");
		json_decref(res);
	}
	return worst;
}

/* --all: the daemon walks the dead sets in chunks; prints how many it retried. */
static int
dead_retry_all(struct ctl *ctl, struct hopper *h, struct cmd_args *args)
{
	struct hopper_dead_filter f = {
	        .queue = args->opt[OPT_QUEUE], .type = args->opt[OPT_TYPE], .error = args->opt[OPT_ERROR]};
	long long v;
	if (args->opt[OPT_OLDER_THAN] != NULL) {
		if (text_int(args->opt[OPT_OLDER_THAN], 0, 10LL * 365 * 86400, &v) < 0) {
			ctl_warn("dead: --older-than takes whole seconds");
			return ctl_usage("dead");
		}
		f.older_than_s = v;
	}
	if (args->opt[OPT_CHUNK] != NULL) {
		if (text_int(args->opt[OPT_CHUNK], 1, CTL_DEAD_CHUNK_MAX, &v) < 0) {
			ctl_warn("dead: --chunk takes 1-%d", CTL_DEAD_CHUNK_MAX);
			return ctl_usage("dead");
		}
		f.chunk = (int)v;
	}
	long long n = 0;
	int r = hopper_dead_retry_all(h, &f, &n);
	if (ctl->json)
		printf("{\"retried\":%lld}\n", n);
	else
		printf("retried %lld dead job%s\n", n, n == 1 ? "" : "s");
	return r == HOPPER_OK ? CTL_EXIT_OK : ctl_fail(ctl);
}

int
dead_cmd(struct ctl *ctl, struct cmd_args *args)
{
	const char *sub = args->argc > 0 ? args->argv[0] : "list";
	int retry = strcmp(sub, "retry") == 0 || strcmp(sub, "requeue") == 0;
	if (!retry && strcmp(sub, "list") != 0) {
		ctl_warn("dead: unknown action '%s'", sub);
		return ctl_usage("dead");
	}
	int filters = args->opt[OPT_QUEUE] || args->opt[OPT_TYPE] || args->opt[OPT_ERROR] ||
	              args->opt[OPT_OLDER_THAN] || args->opt[OPT_CHUNK];
	if (filters && args->opt[OPT_ALL] == NULL) {
		ctl_warn("dead: --queue, --type, --error, --older-than and --chunk go with retry --all");
		return ctl_usage("dead");
	}
	if ((!retry && (args->argc > 1 || args->opt[OPT_ALL] != NULL)) ||
	    (retry && (args->argc > 1) == (args->opt[OPT_ALL] != NULL))) {
		ctl_warn("dead: %s", retry ? "give job ids or --all" : "list takes no arguments");
		return ctl_usage("dead");
	}
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h == NULL)
		return code;
	if (!retry)
		return dead_list(ctl, h);
	if (args->opt[OPT_ALL] != NULL)
		return dead_retry_all(ctl, h, args);
	json_t *ids = json_array();
	for (int i = 1; i < args->argc; i++)
		json_array_append_new(ids, json_string(args->argv[i]));
	code = dead_retry(ctl, h, ids);
	json_decref(ids);
	return code;
}

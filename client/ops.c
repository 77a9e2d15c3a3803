/*
 * ops: runs any catalogue op from the command line. The request's fields come from the op's argument spec
 * (ctl_ops[].args: each field is an option --name, the first name-typed one also the positional argument),
 * converted by the spec's type; the result is printed as one JSON line with --json, else by the op's printer
 * (a table for lists, "key value" lines for the rest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hopperctl.h"
#include "xmalloc.h"

#define ANSI_RESET "\033[0m"
/* A step's error or output in the logs table: the last column, so it may be wider than the others. */
#define EXCERPT_COLS 100

const char *
ops_state_color(const struct ctl *ctl, const char *state)
{
	static const struct {
		const char *state, *color;
	} colors[] = {{"succeeded", "\033[32m"}, {"failed", "\033[31m"},  {"dead", "\033[31;1m"},
	              {"cancelled", "\033[33m"}, {"running", "\033[36m"}, {"retrying", "\033[33m"},
	              {"queued", "\033[0m"}};
	if (!ctl->color || state == NULL)
		return "";
	for (size_t i = 0; i < sizeof(colors) / sizeof(colors[0]); i++)
		if (strcmp(colors[i].state, state) == 0)
			return colors[i].color;
	return "";
}

const char *
ops_color_reset(const struct ctl *ctl)
{
	return ctl->color ? ANSI_RESET : "";
}

/* Converts one command-line value to the field's JSON type. NULL with the error printed. New reference. */
static json_t *
field_value(const struct ctl_arg *a, const char *s)
{
	long long n;
	json_error_t jerr;
	json_t *v;
	switch (a->type) {
	case CTL_ARG_INT:
		if (text_int(s, a->min, a->max, &n) < 0) {
			ctl_warn("--%s: '%s' is not a whole number in %lld..%lld", a->name, s, a->min, a->max);
			return NULL;
		}
		return json_integer(n);
	case CTL_ARG_BOOL: return json_true();
	case CTL_ARG_OBJECT:
	case CTL_ARG_ARRAY:
	case CTL_ARG_LIST:
		v = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL)
			ctl_warn("--%s is not JSON: %s", a->name, jerr.text);
		return v;
	case CTL_ARG_STRINGS: {
		json_t *arr = json_array();
		const char *p = s;
		for (;;) {
			size_t len = strcspn(p, ",");
			if (len > 0)
				json_array_append_new(arr, text_json_string(p, len));
			if (p[len] == '\0')
				break;
			p += len + 1;
		}
		return arr;
	}
	default: return text_json_string(s, strlen(s));
	}
}

/* The request fields from the command line. NULL with the error printed. Caller decrefs. */
static json_t *
build_fields(const struct ctl_op *op, const struct cmd_args *args)
{
	json_t *fields = json_object();
	int pos = -1;
	for (int i = 0; op->args[i].name != NULL && i < CMD_FIELDS_MAX; i++) {
		if (pos < 0 && op->args[i].type == CTL_ARG_NAME && op->usage[0] >= 'A' && op->usage[0] <= 'Z')
			pos = i;
		const char *s = args->field[i];
		if (i == pos && args->argc > 0) {
			if (s != NULL) {
				ctl_warn("%s: give the %s once", op->name, op->args[i].name);
				json_decref(fields);
				return NULL;
			}
			s = args->argv[0];
		}
		if (s == NULL)
			continue;
		json_t *v = field_value(&op->args[i], s);
		if (v == NULL) {
			json_decref(fields);
			return NULL;
		}
		json_object_set_new(fields, op->args[i].name, v);
	}
	return fields;
}

int
ops_cmd(struct ctl *ctl, struct cmd_args *args)
{
	const struct ctl_op *op = args->op;
	json_t *fields = build_fields(op, args);
	if (fields == NULL)
		return ctl_usage(op->name);
	int code = 0;
	struct hopper *h = ctl_hopper(ctl, &code);
	if (h == NULL) {
		json_decref(fields);
		return code;
	}
	json_t *result = NULL;
	int r = hopper_call(h, op->name, fields, &result);
	json_decref(fields);
	if (r != HOPPER_OK)
		return ctl_fail(ctl);
	ops_print(ctl, op, result);
	json_decref(result);
	return CTL_EXIT_OK;
}

/* --- printers --- */

/* 1 when key names a time: "at", "..._at", or a schedule's next_fire / next_due (Unix seconds, as a number
 * or, from a Redis hash, a string). */
static int
is_time_key(const char *key)
{
	size_t klen = strlen(key);
	return strcmp(key, "at") == 0 || (klen > 3 && strcmp(key + klen - 3, "_at") == 0) ||
	       strcmp(key, "next_fire") == 0 || strcmp(key, "next_due") == 0;
}

/* A JSON value as short text into buf: strings bare, times as local times, durations in whole ms, others
 * as compact JSON. Returns buf or a string borrowed from v. */
static const char *
cell(json_t *v, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	double t;
	if (v == NULL || json_is_null(v))
		return "-";
	if (is_time_key(key) && json_is_number(v))
		return text_local_time(json_number_value(v), buf, len);
	if (is_time_key(key) && json_is_string(v) && text_double(json_string_value(v), 0, 1e11, &t) == 0)
		return text_local_time(t, buf, len);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_real(v)) {
		snprintf(buf, len, klen > 3 && strcmp(key + klen - 3, "_ms") == 0 ? "%.0f" : "%.3g",
		         json_real_value(v));
		return buf;
	}
	if (json_is_true(v))
		return "yes";
	if (json_is_false(v))
		return "no";
	char *s = text_json_dump(v);
	snprintf(buf, len, "%s", s);
	free(s);
	return buf;
}

/* Prints rows (an array of objects) as a table of the given columns, widths fitted to the content. */
static void
print_table(struct ctl *ctl, json_t *rows, const char *const *cols, size_t ncols)
{
	size_t w[16] = {0}, i;
	char buf[128];
	json_t *row;
	for (size_t c = 0; c < ncols; c++)
		w[c] = strlen(cols[c]);
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncols; c++) {
			size_t n = strlen(cell(json_object_get(row, cols[c]), cols[c], buf, sizeof(buf)));
			if (n > w[c])
				w[c] = n > 60 ? 60 : n;
		}
	}
	for (size_t c = 0; c < ncols; c++) {
		char up[64];
		size_t k;
		for (k = 0; cols[c][k] != '\0' && k < sizeof(up) - 1; k++)
			up[k] = (char)(cols[c][k] == '_'                        ? ' '
			               : cols[c][k] >= 'a' && cols[c][k] <= 'z' ? cols[c][k] - 32
			                                                        : cols[c][k]);
		up[k] = '\0';
		printf("%-*s%s", c + 1 < ncols ? (int)w[c] : 0, up, c + 1 < ncols ? "  " : "\n");
	}
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncols; c++) {
			json_t *v = json_object_get(row, cols[c]);
			const char *s = cell(v, cols[c], buf, sizeof(buf));
			int is_state = strcmp(cols[c], "state") == 0;
			if (is_state)
				fputs(ops_state_color(ctl, s), stdout);
			text_put_safe(stdout, s, c + 1 < ncols ? (int)w[c] : 0);
			if (is_state)
				fputs(ops_color_reset(ctl), stdout);
			fputs(c + 1 < ncols ? "  " : "\n", stdout);
		}
	}
}

/* "key  value" for each member, nested objects indented. */
static void
print_kv(json_t *obj, int indent)
{
	const char *key;
	json_t *v;
	char buf[128];
	json_object_foreach(obj, key, v)
	{
		if (json_is_object(v) && json_object_size(v) > 0) {
			printf("%*s%s:\n", indent, "", key);
			print_kv(v, indent + 2);
			continue;
		}
		printf("%*s%-*s ", indent, "", 14 - indent > 4 ? 14 - indent : 4, key);
		text_put_safe(stdout, cell(v, key, buf, sizeof(buf)), 0);
		putchar('\n');
	}
}

static void
print_status(struct ctl *ctl, json_t *r)
{
	status_print(ctl, r);
}

static void
print_list(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"id",       "type",  "queue",      "state", "attempt",
	                                   "progress", "owner", "updated_at", "error"};
	json_t *jobs = json_object_get(r, "jobs");
	print_table(ctl, jobs, cols, sizeof(cols) / sizeof(cols[0]));
	const char *cursor = json_string_value(json_object_get(r, "cursor"));
	if (cursor != NULL)
		fprintf(stderr, "more: hopperctl list --cursor %s (with the same filters)\n", cursor);
}

static void
print_queues(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"name",   "length", "scheduled",           "inflight",
	                                   "paused", "dead",   "concurrency_waiting", "rate_limited"};
	print_table(ctl, json_object_get(r, "queues"), cols, sizeof(cols) / sizeof(cols[0]));
}

static void
print_stats(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"node",   "host",    "pid",        "running",
	                                   "queues", "version", "started_at", "updated_at"};
	json_t *nodes = json_object_get(r, "nodes");
	json_t *rest = json_deep_copy(r);
	json_object_del(rest, "nodes");
	print_kv(rest, 0);
	json_decref(rest);
	if (json_is_array(nodes) && json_array_size(nodes) > 0) {
		printf("nodes:\n");
		print_table(ctl, nodes, cols, sizeof(cols) / sizeof(cols[0]));
	} else if (json_is_object(nodes))
		print_kv(nodes, 0);
}

/* s cut to at most max bytes on a UTF-8 boundary, "..." appended when cut. New JSON string. */
static json_t *
excerpt(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return json_string(s);
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	char *cut = xasprintf("%.*s...", (int)max, s);
	json_t *v = text_json_string(cut, strlen(cut));
	free(cut);
	return v;
}

/* The logs op's step rows as table rows: step | type | run | try | state | duration | error or output (the
 * error when the step has one), cut to an excerpt. New reference. */
static json_t *
step_rows(json_t *steps)
{
	json_t *rows = json_array(), *st;
	size_t i;
	json_array_foreach(steps, i, st)
	{
		char dur[32] = "-";
		json_t *ms = json_object_get(st, "duration_ms");
		if (json_is_number(ms) && json_number_value(ms) < 1000)
			snprintf(dur, sizeof(dur), "%.1f ms", json_number_value(ms));
		else if (json_is_number(ms))
			text_duration(json_number_value(ms) / 1000.0, dur, sizeof(dur));
		const char *err = json_string_value(json_object_get(st, "error"));
		const char *out = json_string_value(json_object_get(st, "output"));
		json_t *row = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:s}", "step", json_object_get(st, "step"),
		                        "type", json_object_get(st, "type"), "run", json_object_get(st, "run_attempt"),
		                        "try", json_object_get(st, "step_attempt"), "state",
		                        json_object_get(st, "state"), "duration", dur);
		json_object_set_new(row, "error_or_output",
		                    err != NULL   ? excerpt(err, EXCERPT_COLS)
		                    : out != NULL ? excerpt(out, EXCERPT_COLS)
		                                  : json_null());
		json_array_append_new(rows, row);
	}
	return rows;
}

/* Whose rows these are: on stderr, like the truncation note, so the tables stay parseable. */
static void
print_logs_nodes(json_t *r)
{
	const char *scope = json_string_value(json_object_get(r, "scope"));
	json_t *missing = json_object_get(r, "nodes_missing");
	if (scope != NULL && strcmp(scope, "local") == 0)
		fprintf(stderr, "(Redis unreachable: this daemon's rows only)\n");
	if (json_array_size(missing) == 0)
		return;
	fprintf(stderr, "(did not answer in time, their rows are missing:");
	json_t *n;
	size_t i;
	json_array_foreach(missing, i, n)
	{
		fprintf(stderr, " %s", json_string_value(n) ?: "?");
	}
	fprintf(stderr, ")\n");
}

static void
print_logs(struct ctl *ctl, json_t *r)
{
	static const char *const acols[] = {"attempt",    "state",       "node", "worker_pid",
	                                    "started_at", "duration_ms", "error"};
	static const char *const lcols[] = {"attempt", "at", "kind", "level", "progress", "stage", "message"};
	printf("attempts (node %s):\n", json_string_value(json_object_get(r, "node")) ?: "?");
	print_table(ctl, json_object_get(r, "attempts"), acols, sizeof(acols) / sizeof(acols[0]));
	printf("lines:\n");
	print_table(ctl, json_object_get(r, "lines"), lcols, sizeof(lcols) / sizeof(lcols[0]));
	json_t *steps = json_object_get(r, "steps");
	if (json_array_size(steps) > 0) {
		static const char *const scols[] = {"step",     "type",           "run", "try", "state",
		                                    "duration", "error_or_output"};
		json_t *rows = step_rows(steps);
		printf("steps:\n");
		print_table(ctl, rows, scols, sizeof(scols) / sizeof(scols[0]));
		json_decref(rows);
	}
	if (json_is_true(json_object_get(r, "truncated")))
		fprintf(stderr, "(cut to fit one reply: ask for fewer with --limit N)\n");
	print_logs_nodes(r);
}

static void
print_token_create(struct ctl *ctl, json_t *r)
{
	/* The secret alone on stdout (for `> file`), everything else on stderr. */
	printf("%s\n", json_string_value(json_object_get(r, "token")) ?: "");
	char scopes[64] = "";
	json_t *s;
	size_t i;
	json_array_foreach(json_object_get(r, "scopes"), i, s)
	{
		size_t n = strlen(scopes);
		snprintf(scopes + n, sizeof(scopes) - n, "%s%s", n ? "," : "", json_string_value(s));
	}
	fprintf(stderr,
	        "token '%s' (id %s, owner %s, scopes %s) created. This is the only time its secret is shown:\n"
	        "store it now, e.g. in ~/" HOPPERCTL_TOKEN_FILE " with mode 0600.\n",
	        json_string_value(json_object_get(r, "name")) ?: "?",
	        json_string_value(json_object_get(r, "token_id")) ?: "?",
	        json_string_value(json_object_get(r, "owner")) ?: "?", scopes);
}

static void
print_token_list(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"name",       "token_id",     "owner",     "scopes",
	                                   "created_at", "last_used_at", "revoked_at"};
	print_table(ctl, json_object_get(r, "tokens"), cols, sizeof(cols) / sizeof(cols[0]));
}

static void
print_workflow_list(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"name", "owner", "active", "updated_at", "description"};
	print_table(ctl, json_object_get(r, "workflows"), cols, sizeof(cols) / sizeof(cols[0]));
}

/* The fields, then the definition as indented JSON (it is what the user put, to read or to edit). */
static void
print_workflow_show(struct ctl *ctl, json_t *r)
{
	json_t *rest = json_deep_copy(r);
	json_object_del(rest, "definition");
	print_kv(rest, 0);
	json_decref(rest);
	char *def = json_dumps(json_object_get(r, "definition"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("definition:\n");
	/* json_dumps escapes control characters inside strings: only its own newlines remain. */
	for (const char *line = def != NULL ? def : "null"; *line != '\0';) {
		size_t n = strcspn(line, "\n");
		printf("  %.*s\n", (int)n, line);
		line += n + (line[n] == '\n');
	}
	free(def);
}

static void
print_schedule_list(struct ctl *ctl, json_t *r)
{
	static const char *const cols[] = {"queue",  "name",  "cron",   "tz",       "next_fire",
	                                   "paused", "fires", "missed", "last_job", "error"};
	print_table(ctl, json_object_get(r, "schedules"), cols, sizeof(cols) / sizeof(cols[0]));
}

/* The fields, the definition (show) as indented JSON, and the next fire times one a line, in local time. */
static void
print_schedule_show(struct ctl *ctl, json_t *r)
{
	json_t *rest = json_deep_copy(r);
	json_object_del(rest, "upcoming");
	if (json_object_get(rest, "definition") != NULL)
		print_workflow_show(ctl, rest);
	else
		print_kv(rest, 0);
	json_decref(rest);
	size_t i;
	json_t *t;
	char buf[64];
	printf("upcoming:\n");
	json_array_foreach(json_object_get(r, "upcoming"), i, t)
	        printf("  %s\n", json_is_number(t) ? text_local_time(json_number_value(t), buf, sizeof(buf)) : "?");
}

static void
print_generic(struct ctl *ctl, json_t *r)
{
	print_kv(r, 0);
}

static const struct {
	enum ctl_op_id op;
	void (*print)(struct ctl *ctl, json_t *result);
} printers[] = {{CTL_OP_STATUS, print_status},
                {CTL_OP_LIST, print_list},
                {CTL_OP_QUEUES, print_queues},
                {CTL_OP_STATS, print_stats},
                {CTL_OP_LOGS, print_logs},
                {CTL_OP_TOKEN_CREATE, print_token_create},
                {CTL_OP_TOKEN_LIST, print_token_list},
                {CTL_OP_WORKFLOW_LIST, print_workflow_list},
                {CTL_OP_WORKFLOW_SHOW, print_workflow_show},
                {CTL_OP_SCHEDULE_LIST, print_schedule_list},
                {CTL_OP_SCHEDULE_SHOW, print_schedule_show},
                {CTL_OP_SCHEDULE_PUT, print_schedule_show}};

void
ops_print(struct ctl *ctl, const struct ctl_op *op, json_t *result)
{
	if (ctl->json) {
		char *s = text_json_dump(result);
		printf("%s\n", s);
		free(s);
		return;
	}
	for (size_t i = 0; i < sizeof(printers) / sizeof(printers[0]); i++)
		if (printers[i].op == op->id) {
			printers[i].print(ctl, result);
			return;
		}
	print_generic(ctl, result);
}

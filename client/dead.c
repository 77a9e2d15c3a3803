/*
 * dead: `hopperctl dead [list] | requeue | purge`, over the list `P dead` (entries as in dead-entry.schema.json,
 * newest on the left).
 *
 * Changes are MULTI/EXEC transactions under WATCH of `P dead`: the entries are read, the plan is made, and if
 * anyone (a daemon adding a new dead job, another hopperctl) touched the list meanwhile, EXEC does nothing and
 * we start over. Without it two concurrent requeues could both push the job, since LREM of a missing element
 * is not an error. Entries are removed by their exact bytes (LREM 1), never by position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "hopperctl.h"
#include "job.h"
#include "jsonx.h"
#include "xmalloc.h"

/* Each retry means the list changed under us; daemons add entries rarely, so this many only fail on a storm. */
#define DEAD_WATCH_TRIES 20
#define DEAD_ERROR_COLS  60 /* error column of the table when stdout is not a terminal */

/* One entry the transaction will touch. */
struct plan {
	const struct conn_reply *raw; /* the entry's bytes, borrowed from the LRANGE reply */
	json_t *obj;                  /* the parsed entry, owned */
	const char *id, *queue;       /* borrowed from obj; NULL when absent */
	char *payload;                /* bytes to push back (owned); NULL: only remove the entry */
	size_t len;
	int exists; /* the job hash exists */
};

struct cmdvec {
	struct conn_cmd **v;
	size_t n, cap;
};

/* Appends a new command to cv, which owns it; the caller adds its arguments. */
static struct conn_cmd *
cmdvec_add(struct cmdvec *cv, const char *name)
{
	if (cv->n == cv->cap) {
		cv->cap = cv->cap == 0 ? 16 : cv->cap * 2;
		cv->v = xrealloc(cv->v, cv->cap * sizeof(*cv->v));
	}
	return cv->v[cv->n++] = conn_cmd_new(name);
}

static void
cmdvec_free(struct cmdvec *cv)
{
	for (size_t i = 0; i < cv->n; i++)
		conn_cmd_free(cv->v[i]);
	free(cv->v);
}

/* A string field of an entry, or NULL. Borrowed from obj. */
static const char *
entry_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* LRANGE of the whole list, after WATCHing it when watch is set. 0 with *out (caller frees), -1 with *cause. */
static int
dead_read(struct ctl *ctl, struct conn *c, int watch, struct conn_reply **out, char **cause)
{
	char *key = ctl_key(ctl, "dead");
	struct conn_cmd *cmd;
	int rv = 0;
	if (watch) {
		cmd = conn_cmd_new("WATCH");
		conn_arg(cmd, key);
		rv = conn_run(c, cmd, cause);
	}
	if (rv == 0) {
		cmd = conn_cmd_new("LRANGE");
		conn_arg(cmd, key);
		conn_arg(cmd, "0");
		conn_arg(cmd, "-1");
		rv = conn_call(c, cmd, out, cause);
		conn_cmd_free(cmd);
	}
	free(key);
	return rv;
}

/* The table row of one entry, its id padded to id_w. */
static void
list_row(const struct conn_reply *raw, int id_w, int error_cols)
{
	json_t *e = json_loadb(raw->str, raw->len, 0, NULL);
	const char *id = entry_str(e, "id"), *queue = entry_str(e, "queue"), *type = entry_str(e, "type");
	const char *error = entry_str(e, "error");
	char died[64] = "-", err[1024];
	double t = 0;
	if (jsonx_number(e, "died_at", 0, 1e11, &t, err, sizeof(err)) == 1)
		text_local_time(t, died, sizeof(died));
	snprintf(err, sizeof(err), "%s", e == NULL ? "(not a JSON entry)" : error != NULL ? error : "");
	for (char *p = err; *p != '\0'; p++)
		*p = (unsigned char)*p < 0x20 ? ' ' : *p; /* one line per entry */
	if ((int)strlen(err) > error_cols && error_cols > 3) {
		int cut = error_cols - 3;
		while (cut > 0 && (err[cut] & 0xc0) == 0x80)
			cut--; /* not inside a UTF-8 character */
		snprintf(err + cut, 4, "...");
	}
	printf("%-*s  %-16.64s  %-12.64s  %-19s  %s\n", id_w, id != NULL ? id : "?", queue != NULL ? queue : "?",
	       type != NULL ? type : "?", died, err);
	json_decref(e);
}

/* Width of the id column: a UUID's, or more for the daemon's "msg-UUID" and long client-chosen ids. */
static int
id_width(const struct conn_reply *list)
{
	int w = 36;
	for (size_t i = 0; i < list->n; i++) {
		json_t *e = json_loadb(list->elem[i]->str, list->elem[i]->len, 0, NULL);
		const char *id = entry_str(e, "id");
		if (id != NULL && (int)strlen(id) > w)
			w = strlen(id) > JOB_ID_MAX ? JOB_ID_MAX : (int)strlen(id);
		json_decref(e);
	}
	return w;
}

static int
dead_list(struct ctl *ctl, struct conn *c, struct cmd_args *args)
{
	struct conn_reply *list = NULL;
	char *cause = NULL;
	if (dead_read(ctl, c, 0, &list, &cause) < 0) {
		ctl_warn("%s", cause);
		free(cause);
		return CTL_EXIT_REDIS;
	}
	int id_w = id_width(list);
	int cols = ctl_term_cols() > 0 ? ctl_term_cols() - (id_w + 16 + 12 + 19 + 8) - 1 : DEAD_ERROR_COLS;
	if (!ctl->json && list->n > 0)
		printf("%-*s  %-16s  %-12s  %-19s  %s\n", id_w, "ID", "QUEUE", "TYPE", "DIED", "ERROR");
	else if (!ctl->json)
		printf("no dead jobs\n");
	for (size_t i = 0; i < list->n; i++) {
		if (!ctl->json) {
			list_row(list->elem[i], id_w, cols < 20 ? 20 : cols);
			continue;
		}
		json_t *e = json_loadb(list->elem[i]->str, list->elem[i]->len, 0, NULL);
		if (e == NULL)
			ctl_warn("skipping a dead entry that is not JSON");
		char *s = e != NULL ? text_json_dump(e) : NULL;
		if (s != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(e);
	}
	conn_reply_free(list);
	return CTL_EXIT_OK;
}

/* The bytes to push back: the payload text, or payload_b64 decoded. 0 with *buf (caller frees), -1 when the
 * entry has neither (or bad base64). */
static int
entry_payload(json_t *e, char **buf, size_t *len)
{
	json_t *p = json_object_get(e, "payload");
	const char *b64 = entry_str(e, "payload_b64");
	if (json_is_string(p)) {
		*len = json_string_length(p);
		*buf = xmalloc(*len + 1);
		memcpy(*buf, json_string_value(p), *len + 1);
		return 0;
	}
	if (json_is_object(p)) { /* tolerated: a daemon that embeds the job rather than its text */
		*buf = text_json_dump(p);
		*len = strlen(*buf);
		return 0;
	}
	return b64 != NULL ? text_b64_decode(b64, strlen(b64), buf, len) : -1;
}

/* Index of id among the ids on the command line (argv[1..]), 0 for any entry with --all, else -1. */
static int
wanted(const struct cmd_args *a, const char *id)
{
	if (a->opt[OPT_ALL] != NULL)
		return 0;
	for (int i = 1; id != NULL && i < a->argc; i++)
		if (strcmp(a->argv[i], id) == 0)
			return i;
	return -1;
}

/* Fills p->payload (owned by p) for a requeue and records its id in seen; 0, or -1 (warned) when the entry
 * cannot be pushed back and must stay. */
static int
plan_requeue(struct plan *p, json_t *seen)
{
	if (p->id != NULL && json_object_get(seen, p->id) != NULL)
		return 0; /* an older entry of a job already being requeued: one job, one requeue; just remove it */
	if (p->obj == NULL) {
		ctl_warn("a dead entry is not JSON; left in place (dead purge --all removes it)");
		return -1;
	}
	if (p->queue == NULL || !job_name_valid(p->queue, QUEUE_NAME_MAX)) {
		ctl_warn("dead entry %s has no valid queue; left in place", p->id != NULL ? p->id : "(no id)");
		return -1;
	}
	if (entry_payload(p->obj, &p->payload, &p->len) < 0) {
		ctl_warn("dead entry %s has no usable payload; left in place", p->id != NULL ? p->id : "(no id)");
		return -1;
	}
	if (p->id != NULL)
		json_object_set_new(seen, p->id, json_true());
	return 0;
}

/* Frees n plans and the array. */
static void
plans_free(struct plan *plans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(plans[i].obj);
		free(plans[i].payload);
	}
	free(plans);
}

/* The entries to touch, newest first; found[k] is set for each command-line id seen. Caller frees with
 * plans_free. Entries are borrowed from list. */
static struct plan *
dead_plan(const struct conn_reply *list, const struct cmd_args *a, int requeue, int *found, size_t *np)
{
	struct plan *plans = xcalloc(list->n, sizeof(*plans));
	json_t *seen = json_object();
	size_t n = 0;
	for (size_t i = 0; i < list->n; i++) {
		struct plan *p = &plans[n];
		p->raw = list->elem[i];
		p->obj = json_loadb(p->raw->str, p->raw->len, 0, NULL);
		p->id = entry_str(p->obj, "id");
		p->queue = entry_str(p->obj, "queue");
		int k = wanted(a, p->id);
		if (k > 0)
			found[k] = 1;
		if (k < 0 || (requeue && plan_requeue(p, seen) < 0)) {
			json_decref(p->obj);
			memset(p, 0, sizeof(*p));
			continue;
		}
		n++;
	}
	json_decref(seen);
	*np = n;
	return plans;
}

/* WATCHes the hashes of the jobs to requeue and records which exist. -1 with *cause (caller frees). */
static int
plan_check_hashes(struct ctl *ctl, struct conn *c, struct plan *plans, size_t n, char **cause)
{
	struct cmdvec cv = {0};
	struct conn_cmd *watch = cmdvec_add(&cv, "WATCH");
	for (size_t i = 0; i < n; i++) {
		if (plans[i].payload == NULL || plans[i].id == NULL)
			continue;
		char *key = ctl_key(ctl, "job:%s", plans[i].id);
		conn_arg(watch, key);
		conn_arg(cmdvec_add(&cv, "EXISTS"), key);
		free(key);
	}
	struct conn_reply **r = xcalloc(cv.n, sizeof(*r));
	int rv = cv.n > 1 ? conn_pipeline(c, cv.v, cv.n, r, cause) : 0;
	for (size_t i = 0, k = 1; rv == 0 && i < n && cv.n > 1; i++) {
		if (plans[i].payload == NULL || plans[i].id == NULL)
			continue;
		plans[i].exists = r[k]->type == CONN_INTEGER && r[k]->integer > 0;
		k++;
	}
	for (size_t i = 0; i < cv.n; i++) {
		if (r[i] != NULL && r[i]->type == CONN_ERROR && *cause == NULL)
			*cause = xasprintf("Redis %s: %s", cv.v[i]->argv[0], r[i]->str);
		conn_reply_free(r[i]);
	}
	free(r);
	cmdvec_free(&cv);
	return *cause != NULL ? -1 : rv;
}

/* Appends to cv (which owns them) the commands for one planned entry: remove it, and for a requeue push the
 * payload and reset the hash. */
static void
plan_cmds(struct ctl *ctl, const struct plan *p, const char *now, struct cmdvec *cv)
{
	char *dead = ctl_key(ctl, "dead");
	struct conn_cmd *c = cmdvec_add(cv, "LREM");
	conn_arg(c, dead);
	conn_arg(c, "1");
	conn_argn(c, p->raw->str, p->raw->len);
	free(dead);
	if (p->payload == NULL)
		return;
	char *queue = ctl_key(ctl, "queue:%s", p->queue);
	c = cmdvec_add(cv, "LPUSH");
	conn_arg(c, queue);
	conn_argn(c, p->payload, p->len);
	free(queue);
	if (!p->exists)
		return;
	char *key = ctl_key(ctl, "job:%s", p->id);
	static const char *const reset[] = {"state", "queued", "attempt", "0", "stalls", "0", "progress", "0"};
	c = cmdvec_add(cv, "HSET");
	conn_arg(c, key);
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		conn_arg(c, reset[i]);
	const char *times[] = {"updated_at", now, "enqueued_at", now};
	for (size_t i = 0; i < 4; i++)
		conn_arg(c, times[i]);
	/* stage and message belong to the attempt that died; left in place they would describe a queued job */
	static const char *const drop[] = {"error", "result", "finished_at", "stage", "message"};
	c = cmdvec_add(cv, "HDEL");
	conn_arg(c, key);
	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		conn_arg(c, drop[i]);
	conn_arg(cmdvec_add(cv, "PERSIST"), key);
	free(key);
	key = ctl_key(ctl, "job:%s:events", p->id);
	conn_arg(cmdvec_add(cv, "PERSIST"), key); /* the events expire with the hash */
	free(key);
}

static void
report(const struct ctl *ctl, const struct plan *plans, size_t n, int requeue)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if (!requeue || plans[i].payload == NULL) {
			count++;
			continue;
		}
		const char *id = plans[i].id != NULL ? plans[i].id : "(no id)";
		if (ctl->json) {
			json_t *o = json_pack("{s:s, s:s, s:b}", "id", id, "queue", plans[i].queue, "hash_reset",
			                      plans[i].exists);
			char *s = text_json_dump(o);
			printf("%s\n", s);
			free(s);
			json_decref(o);
		} else
			printf("requeued %s onto %s\n", id, plans[i].queue);
	}
	if (!requeue && ctl->json)
		printf("{\"purged\":%zu}\n", count);
	else if (!requeue)
		printf("purged %zu dead entr%s\n", count, count == 1 ? "y" : "ies");
}

/* One read-plan-commit round. 0 done, 1 the list changed (retry), -1 with *cause (caller frees). */
static int
dead_change_once(struct ctl *ctl, struct conn *c, struct cmd_args *a, int requeue, int *found, char **cause)
{
	struct conn_reply *list = NULL;
	if (dead_read(ctl, c, 1, &list, cause) < 0)
		return -1;
	size_t n = 0;
	struct plan *plans = dead_plan(list, a, requeue, found, &n);
	int rv = requeue ? plan_check_hashes(ctl, c, plans, n, cause) : 0;
	if (rv == 0 && n == 0)
		rv = conn_run(c, conn_cmd_new("UNWATCH"), cause);
	else if (rv == 0) {
		char now[32];
		clock_format(clock_now(), now, sizeof(now));
		struct cmdvec cv = {0};
		for (size_t i = 0; i < n; i++)
			plan_cmds(ctl, &plans[i], now, &cv);
		rv = conn_transact(c, cv.v, cv.n, NULL, cause);
		cmdvec_free(&cv);
	}
	if (rv == 0)
		report(ctl, plans, n, requeue);
	plans_free(plans, n);
	conn_reply_free(list);
	return rv;
}

static int
dead_change(struct ctl *ctl, struct conn *c, struct cmd_args *a, int requeue)
{
	if ((a->opt[OPT_ALL] != NULL) == (a->argc > 1)) {
		ctl_warn("dead %s: give either ids or --all", a->argv[0]);
		return ctl_usage("dead");
	}
	int *found = xcalloc((size_t)a->argc, sizeof(*found));
	char *cause = NULL;
	int rv = 1;
	for (int tries = 0; tries < DEAD_WATCH_TRIES && rv == 1; tries++) {
		memset(found, 0, (size_t)a->argc * sizeof(*found));
		struct timespec pause = {0, 10000000L * tries}; /* let the writer that beat us finish */
		if (tries > 0)
			nanosleep(&pause, NULL);
		rv = dead_change_once(ctl, c, a, requeue, found, &cause);
	}
	int code = CTL_EXIT_OK;
	if (rv != 0) {
		ctl_warn("%s", cause != NULL ? cause : "the dead list kept changing; nothing done");
		code = CTL_EXIT_REDIS;
	}
	for (int i = 1; rv == 0 && i < a->argc; i++) {
		if (!found[i]) {
			ctl_warn("no dead entry for %s", a->argv[i]);
			code = CTL_EXIT_UNKNOWN_JOB;
		}
	}
	free(cause);
	free(found);
	return code;
}

int
dead_cmd(struct ctl *ctl, struct cmd_args *args)
{
	static const char *const subs[] = {"list", "requeue", "purge"};
	const char *sub = args->argc > 0 ? args->argv[0] : "list";
	size_t k = 0;
	while (k < 3 && strcmp(subs[k], sub) != 0)
		k++;
	if (k == 3) {
		ctl_warn("dead: unknown subcommand '%s'", sub);
		return ctl_usage("dead");
	}
	if (k == 0 && (args->argc > 1 || args->opt[OPT_ALL] != NULL)) {
		ctl_warn("dead list takes no arguments");
		return ctl_usage("dead");
	}
	struct conn *c = ctl_conn(ctl);
	if (c == NULL)
		return CTL_EXIT_REDIS;
	return k == 0 ? dead_list(ctl, c, args) : dead_change(ctl, c, args, k == 1);
}

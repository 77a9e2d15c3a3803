/*
 * hopperctl: the command-line client of hopper. It talks to hopperd's control socket through libhopper
 * (client/hopper.h), over the Unix socket or encrypted TCP, so it needs no access to Redis.
 *
 * Every op of the protocol's catalogue (ctl_ops[] in common/ctl_proto.c) is a subcommand: its usage, options
 * and help are generated from the catalogue, and ops.c runs it generically. A few commands are written by
 * hand (cmd_table below): submit and watch (progress, --wait), dead (a convenience over list and retry),
 * help. Exit codes follow the protocol's error table (ctl_errors[].exit_code), plus 1 for a job that ended
 * without success, 15 for no connection and 16 for a --wait-timeout; see global_help and hopperctl(1).
 *
 * Credentials, first found wins: --token, --token-file, $HOPPER_TOKEN, $HOPPER_TOKEN_FILE,
 * ~/.config/hopper/token (a file readable by group or others is refused); none: peer credentials on the
 * Unix socket (root or the daemon's user: the bootstrap path).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_crypto.h"
#include "hopperctl.h"
#include "job.h"
#include "log.h"
#include "xmalloc.h"

/* Values getopt_long returns: global options below 0x200, hand-written subcommand options at CMD_OPT_BASE +
 * enum ctl_opt, catalogue fields at FIELD_OPT_BASE + their index in ctl_ops[].args. */
enum {
	GOPT_HOST = 0x100,
	GOPT_PORT,
	GOPT_UNIX,
	GOPT_PASSWORD,
	GOPT_DB,
	GOPT_PREFIX,
	GOPT_JSON,
	GOPT_HELP,
	GOPT_VERSION,
	GOPT_SOCKET,
	GOPT_TCP,
	GOPT_TOKEN,
	GOPT_TOKEN_FILE,
	GOPT_IO_TIMEOUT,
	GOPT_SERVER_KEY,
	GOPT_KNOWN_HOSTS,
	GOPT_PASSWORD_FILE,
	CMD_OPT_BASE = 0x200,
	FIELD_OPT_BASE = 0x300
};

#define GO_ON (-1) /* from the option parsers: carry on (any other value is the exit code) */
#define O(name, arg, opt)                                                                                              \
	{                                                                                                              \
		name, arg, NULL, CMD_OPT_BASE + (opt)                                                                  \
	}
#define OPTS_MAX 48 /* global plus one subcommand's options, with room to grow */

static const struct option global_options[] = {{"socket", required_argument, NULL, GOPT_SOCKET},
                                               {"host", required_argument, NULL, GOPT_TCP},
                                               {"token", required_argument, NULL, GOPT_TOKEN},
                                               {"token-file", required_argument, NULL, GOPT_TOKEN_FILE},
                                               {"io-timeout", required_argument, NULL, GOPT_IO_TIMEOUT},
                                               {"server-key", required_argument, NULL, GOPT_SERVER_KEY},
                                               {"known-hosts", required_argument, NULL, GOPT_KNOWN_HOSTS},
                                               {"json", no_argument, NULL, GOPT_JSON},
                                               {"help", no_argument, NULL, GOPT_HELP},
                                               {"version", no_argument, NULL, GOPT_VERSION},
                                               {"redis-host", required_argument, NULL, GOPT_HOST},
                                               {"redis-port", required_argument, NULL, GOPT_PORT},
                                               {"redis-unix", required_argument, NULL, GOPT_UNIX},
                                               {"redis-password", required_argument, NULL, GOPT_PASSWORD},
                                               {"redis-password-file", required_argument, NULL, GOPT_PASSWORD_FILE},
                                               {"redis-db", required_argument, NULL, GOPT_DB},
                                               {"prefix", required_argument, NULL, GOPT_PREFIX},
                                               {NULL, 0, NULL, 0}};

static const struct option submit_options[] = {O("args", required_argument, OPT_ARGS),
                                               O("queue", required_argument, OPT_QUEUE),
                                               O("id", required_argument, OPT_ID),
                                               O("max-attempts", required_argument, OPT_MAX_ATTEMPTS),
                                               O("timeout", required_argument, OPT_TIMEOUT),
                                               O("delay", required_argument, OPT_DELAY),
                                               O("run-at", required_argument, OPT_RUN_AT),
                                               O("owner", required_argument, OPT_OWNER),
                                               O("idempotency-key", required_argument, OPT_IDEM_KEY),
                                               O("unique", required_argument, OPT_UNIQUE),
                                               O("debounce", required_argument, OPT_DEBOUNCE),
                                               O("file", required_argument, OPT_FILE),
                                               O("wait", no_argument, OPT_WAIT),
                                               O("wait-timeout", required_argument, OPT_WAIT_TIMEOUT),
                                               {NULL, 0, NULL, 0}};
static const struct option watch_options[] = {O("timeout", required_argument, OPT_TIMEOUT), {NULL, 0, NULL, 0}};
static const struct option dead_options[] = {O("all", no_argument, OPT_ALL),
                                             O("queue", required_argument, OPT_QUEUE),
                                             O("type", required_argument, OPT_TYPE),
                                             O("error", required_argument, OPT_ERROR),
                                             O("older-than", required_argument, OPT_OLDER_THAN),
                                             O("chunk", required_argument, OPT_CHUNK),
                                             {NULL, 0, NULL, 0}};
static const struct option no_options[] = {{NULL, 0, NULL, 0}};
static const struct option wf_put_options[] = {O("name", required_argument, OPT_NAME),
                                               O("description", required_argument, OPT_DESCRIPTION),
                                               O("inactive", no_argument, OPT_INACTIVE),
                                               O("owner", required_argument, OPT_OWNER),
                                               {NULL, 0, NULL, 0}};
static const struct option wf_run_options[] = {O("input", required_argument, OPT_INPUT),
                                               O("queue", required_argument, OPT_QUEUE),
                                               O("idempotency-key", required_argument, OPT_IDEM_KEY),
                                               O("id", required_argument, OPT_ID),
                                               O("wait", no_argument, OPT_WAIT),
                                               O("wait-timeout", required_argument, OPT_WAIT_TIMEOUT),
                                               {NULL, 0, NULL, 0}};
static const struct option wf_restart_options[] = {
        O("from", required_argument, OPT_FROM),   O("queue", required_argument, OPT_QUEUE),
        O("all", no_argument, OPT_ALL),           O("state", required_argument, OPT_STATE),
        O("owner", required_argument, OPT_OWNER), {NULL, 0, NULL, 0}};
static const struct option wf_hook_options[] = {
        O("create", no_argument, OPT_CREATE),           O("rotate", no_argument, OPT_ROTATE),
        O("revoke", no_argument, OPT_REVOKE),           O("signature", required_argument, OPT_SIGNATURE),
        O("secret", required_argument, OPT_SECRET),     O("secret-file", required_argument, OPT_SECRET_FILE),
        O("base-url", required_argument, OPT_BASE_URL), {NULL, 0, NULL, 0}};
static const struct option celery_options[] = {O("args", required_argument, OPT_ARGS),
                                               O("kwargs", required_argument, OPT_KWARGS),
                                               O("queue", required_argument, OPT_QUEUE),
                                               O("priority", required_argument, OPT_PRIORITY),
                                               O("countdown", required_argument, OPT_COUNTDOWN),
                                               O("id", required_argument, OPT_ID),
                                               O("celery-prefix", required_argument, OPT_CPREFIX),
                                               O("expires", required_argument, OPT_EXPIRES),
                                               O("eta", required_argument, OPT_ETA),
                                               {NULL, 0, NULL, 0}};

static int help_cmd(struct ctl *ctl, struct cmd_args *args);

struct cmd_entry {
	const char *name;
	int (*handler)(struct ctl *ctl, struct cmd_args *args);
	const char *usage;   /* the arguments after the name, then one line per option */
	const char *summary; /* one line for the command list */
	const struct option *options;
	int min_args, max_args; /* positional arguments after the options; -1: no maximum */
	const char *op;         /* the catalogue op it runs: usage and summary then come from the catalogue */
};

/* Hand-written commands. A catalogue op not listed here runs through ops_cmd with generated options. */
static const struct cmd_entry cmd_table[] = {
        {"submit", submit_cmd,
         "  --args JSON            the handler's arguments, a JSON object (default {}); or ARGS_JSON\n"
         "  --queue Q              queue (default: default)\n"
         "  --id ID                job id; letters, digits and ._:- (default: the daemon makes a UUIDv4)\n"
         "  --max-attempts N       attempts before the job is dead (default: the daemon's)\n"
         "  --timeout S            seconds one attempt may run (default: the daemon's)\n"
         "  --delay S              run no earlier than S seconds from now\n"
         "  --run-at UNIX_TS       run no earlier than this Unix time\n"
         "  --owner O              on behalf of this owner (admin only)\n"
         "  --idempotency-key K    the daemon runs only one job per key\n"
         "  --unique JSON          {\"key\":K,\"until\":\"started|finished|ttl\",\"ttl_s\":S}: one job per key at a "
         "time;\n"
         "                         while another holds it, prints that job's id\n"
         "  --debounce JSON        {\"key\":K,\"delay_s\":S,\"max_wait_s\":S}: a later job of the key replaces it\n"
         "  --file JOBS.json       a batch: a JSON array of job objects, all or none accepted\n"
         "  --wait                 show the job's progress until it ends; exit 0 if it succeeded, 1 if not\n"
         "  --wait-timeout S       stop waiting after S seconds (exit 16)\n"
         "Prints the new job's id (one per line for a batch).",
         NULL, submit_options, 0, 2, "submit"},
        {"watch", watch_cmd,
         "  --timeout S            give up after S seconds (exit 16)\n"
         "Also: watch ID ID... (up to 16 jobs on one connection).\n"
         "Replays each job's events, then follows it until it ends. On a terminal: a progress bar per job\n"
         "(colours unless NO_COLOR is set); otherwise or with --json: one JSON event per line. Exit 0 if every\n"
         "job succeeded, 1 if one ended otherwise.",
         NULL, watch_options, 1, 16, "watch"},
        {"dead", dead_cmd,
         "[list] | retry ID... | retry --all [--queue Q] [--type T] [--error TEXT] [--older-than S]\n"
         "  list                   the dead jobs, newest first (list --state dead)\n"
         "  retry (or requeue)     send the jobs back to their queues (the retry op)\n"
         "  --all                  every dead job instead of the given ids, in chunks on the daemon (the\n"
         "                         dead_retry op): each job dead when it began is retried once; prints the count\n"
         "  --queue Q              --all: only this queue's dead jobs\n"
         "  --type T               --all: only jobs of this type\n"
         "  --error TEXT           --all: only jobs whose error contains TEXT\n"
         "  --older-than S         --all: only jobs dead for at least S seconds\n"
         "  --chunk N              --all: dead entries per call, 1-1000 (default 500)",
         "list dead jobs or retry them", dead_options, 0, -1, NULL},
        /* the op celery.send, hand-written: it also has a direct mode (--redis-*) */
        {"celery.send", celery_cmd,
         "  --args JSON            positional arguments, a JSON array (default [])\n"
         "  --kwargs JSON          keyword arguments, a JSON object (default {})\n"
         "  --queue Q              Celery queue (default: celery)\n"
         "  --priority N           0-9, 0 first (kombu's Redis transport)\n"
         "  --countdown S          run no earlier than S seconds from now (the eta header)\n"
         "  --eta UNIX_TS          or no earlier than this Unix time\n"
         "  --expires S            not to be run after S seconds from now (Celery revokes it)\n"
         "  --id ID                task id (default: a new UUIDv4)\n"
         "  --celery-prefix P      kombu's global_keyprefix of the Celery app (direct mode only)\n"
         "Publishes the task in Celery's format (protocol 2) for a Celery worker or hopperd; prints its id.\n"
         "By default through the daemon (the celery.send op, scope submit; its celery_prefix applies); with a\n"
         "--redis-* option (or HOPPER_REDIS_* variable) hopperctl writes to that Redis itself instead.",
         NULL, celery_options, 1, 1, "celery.send"},
        {"workflow.put", workflow_put_cmd,
         "  FILE                   the definition, a JSON object (schema/workflow.schema.json)\n"
         "  --name N               its name (default: the definition's \"name\")\n"
         "  --description D        one line shown by workflow list\n"
         "  --inactive             store it but refuse runs until it is put again without --inactive\n"
         "  --owner O              store it for another owner (admin only)\n"
         "Stores (or replaces) a workflow in the daemon's SQLite; it belongs to the credential's owner.",
         NULL, wf_put_options, 1, 1, "workflow.put"},
        {"workflow.run", workflow_run_cmd,
         "  --input JSON           the run's input, a JSON object ({{input.x}}; default {})\n"
         "  --queue Q              queue (default: default)\n"
         "  --idempotency-key K    a second run with the same key returns the first\n"
         "  --id ID                the run's job id (default: the daemon makes a UUIDv4)\n"
         "  --wait                 show the run's progress until it ends; exit 0 if it succeeded, 1 if not\n"
         "  --wait-timeout S       stop waiting after S seconds (exit 16)\n"
         "Prints the workflow.run job's id; `hopperctl logs ID` shows its step table.",
         NULL, wf_run_options, 1, 1, "workflow.run"},
        {"workflow.restart", workflow_restart_cmd,
         "  --from STEP            the step to re-run, with every step depending on it (required)\n"
         "  --queue Q              the run's queue (only for an id in several); with --all: only this queue's\n"
         "Prints the steps that run again (rerun).\n"
         "Also: workflow restart --all --from STEP --state STATE [--queue Q] [--owner O]: every ended run in\n"
         "STATE (succeeded, failed or dead) that the credential may see (--owner: one owner's, admin), newest\n"
         "first, each once; prints each run restarted, then the counts of runs restarted, without a record of\n"
         "STEP, and changed meanwhile (no longer ended, or gone).",
         NULL, wf_restart_options, 0, 1, "workflow.restart"},
        {"workflow.webhook", workflow_webhook_cmd,
         "  --create               give the workflow a webhook (a random URL token)\n"
         "  --rotate               a new URL token; the old URL stops working\n"
         "  --revoke               remove the webhook\n"
         "  --signature S          none, github (X-Hub-Signature-256) or stripe (Stripe-Signature), with a secret\n"
         "  --secret-file PATH     the shared HMAC-SHA256 key the sender signs bodies with, read from PATH (a\n"
         "                         file only you may read; - for standard input)\n"
         "  --secret SECRET        the key on the command line: every user of the machine sees it in ps\n"
         "  --base-url URL         hopper-web's address for the printed URL ($HOPPER_WEB_URL; http://127.0.0.1:8080)\n"
         "Without an action shows the webhook. Prints its URL: POST /webhook/TOKEN on hopper-web runs the workflow\n"
         "with the trigger {method, headers, url, timestamp, payload} as its input.",
         NULL, wf_hook_options, 1, 1, "workflow.webhook"},
        {"help", help_cmd, "[COMMAND]", "show help for hopperctl or one command", no_options, 0, 2, NULL},
};
#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))

static const char global_help[] =
        "Global options (may also follow the command):\n"
        "  --socket PATH          the daemon's Unix socket ($HOPPER_SOCKET; default " HOPPERCTL_DEFAULT_SOCKET ")\n"
        "  --host HOST:PORT       the daemon's TCP address, encrypted; needs a token ($HOPPER_HOST)\n"
        "  --token TOKEN          credential hop_... ($HOPPER_TOKEN)\n"
        "  --token-file FILE      read the token from FILE, which must not be readable by group or others\n"
        "                         ($HOPPER_TOKEN_FILE; default ~/" HOPPERCTL_TOKEN_FILE " if it exists).\n"
        "                         No token on a Unix socket: peer credentials (root or the daemon's user).\n"
        "  --server-key KEY|FILE  TCP: the daemon's public key (hopperd --print-pubkey), or a file holding it,\n"
        "                         pinned instead of known_hosts ($HOPPER_SERVER_KEY)\n"
        "  --known-hosts FILE     TCP: pinned daemon keys, recorded on first use; a changed key is refused\n"
        "                         ($HOPPER_KNOWN_HOSTS; default ~/" HOPPERCTL_KNOWN_HOSTS ")\n"
        "  --io-timeout S         give up on an unanswered request after S seconds (30)\n"
        "  --json                 machine-readable output: one JSON object per line\n"
        "  --version              print the version\n"
        "  --redis-host H, --redis-port P, --redis-unix PATH, --redis-password PW, --redis-db N, --prefix P\n"
        "                         only for commands that write to a broker's Redis directly\n"
        "  --redis-password-file PATH  the password from a file only you may read (- for stdin): unlike\n"
        "                         --redis-password, not shown by ps ($HOPPER_REDIS_PASSWORD works too)\n"
        "Exit codes:\n"
        "  0 ok   1 a job ended failed, dead or cancelled (--wait, watch)   2 bad request or usage\n"
        "  3 unknown op   4 too large   5 version   6 unauthenticated   7 auth failed   8 locked out\n"
        "  9 forbidden   10 not found   11 conflict   12 unavailable (Redis down)   13 limit   14 internal\n"
        "  15 no connection or connection lost   16 --wait-timeout / --timeout passed\n";

void
ctl_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("hopperctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* --- commands: the hand-written table, then the catalogue --- */

/* A catalogue op runnable from the command line (not hello or auth), by name; "token.create" is also
 * reachable as "token create" (see run). */
static const struct ctl_op *
op_find(const char *name)
{
	const struct ctl_op *op = ctl_op_find(name);
	return op != NULL && !(op->flags & CTL_F_PREAUTH) ? op : NULL;
}

/* The field of op given as a positional argument: its first name-typed field, when its usage starts with
 * an argument rather than an option ("JOB_ID", "QUEUE", "NAME ..."). -1 when none. */
static int
positional_field(const struct ctl_op *op)
{
	if (op->usage[0] < 'A' || op->usage[0] > 'Z')
		return -1;
	for (int i = 0; op->args[i].name != NULL; i++)
		if (op->args[i].type == CTL_ARG_NAME)
			return i;
	return -1;
}

/* The entry for a catalogue op without a hand-written row: options generated from its fields. Fills *e. */
static void
op_entry(const struct ctl_op *op, struct cmd_entry *e)
{
	int pos = positional_field(op);
	memset(e, 0, sizeof(*e));
	e->name = op->name;
	e->handler = ops_cmd;
	e->usage = "";
	e->summary = op->help;
	e->options = no_options;
	e->min_args = pos >= 0 && op->args[pos].required ? 1 : 0;
	e->max_args = pos >= 0 ? 1 : 0;
	e->op = op->name;
}

static const struct cmd_entry *
cmd_find(const char *name, struct cmd_entry *scratch)
{
	for (size_t i = 0; i < CMD_COUNT; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	const struct ctl_op *op = op_find(name);
	if (op == NULL)
		return NULL;
	op_entry(op, scratch);
	return scratch;
}

/* The catalogue's option name for a field: "token_id" -> "token-id". Static storage per field. */
static const char *
field_option(const struct ctl_op *op, int i)
{
	static char names[CTL_OP_COUNT][CMD_FIELDS_MAX][32];
	char *n = names[op->id][i];
	if (n[0] == '\0') {
		snprintf(n, 32, "%s", op->args[i].name);
		for (char *p = n; *p != '\0'; p++)
			if (*p == '_')
				*p = '-';
	}
	return n;
}

static const char *
arg_value_name(const struct ctl_arg *a)
{
	static const char *const names[] = {
	        [CTL_ARG_STRING] = "S",    [CTL_ARG_NAME] = "NAME",   [CTL_ARG_INT] = "N",
	        [CTL_ARG_BOOL] = "",       [CTL_ARG_OBJECT] = "JSON", [CTL_ARG_ARRAY] = "JSON",
	        [CTL_ARG_STRINGS] = "A,B", [CTL_ARG_STATE] = "STATE", [CTL_ARG_LIST] = "JSON"};
	return names[a->type];
}

static void
print_usage(FILE *f, const struct cmd_entry *e, int full)
{
	const struct ctl_op *op = e->op != NULL ? ctl_op_find(e->op) : NULL;
	char name[64];
	snprintf(name, sizeof(name), "%s", e->name);
	char *dot = strchr(name, '.');
	if (dot != NULL)
		*dot = ' ';
	if (op == NULL) {
		size_t first = full ? strlen(e->usage) : strcspn(e->usage, "\n");
		fprintf(f, "usage: hopperctl %s %.*s\n", name, (int)first, e->usage);
		return;
	}
	fprintf(f, "usage: hopperctl %s %s\n", name, op->usage);
	if (!full)
		return;
	if (op->scope != 0) {
		char scopes[64];
		fprintf(f, "needs scope: %s\n", ctl_scopes_format(op->scope, scopes, sizeof(scopes)));
	}
	if (e->handler == ops_cmd) {
		int pos = positional_field(op);
		for (int i = 0; op->args[i].name != NULL; i++) {
			char opt[64];
			snprintf(opt, sizeof(opt), "--%s %s", field_option(op, i), arg_value_name(&op->args[i]));
			fprintf(f, "  %-22s %s%s%s\n", opt, op->args[i].help, i == pos ? " (or the argument)" : "",
			        op->args[i].required && i != pos ? " (required)" : "");
		}
	} else if (e->usage[0] != '\0')
		fprintf(f, "%s\n", e->usage);
}

int
ctl_usage(const char *cmd)
{
	struct cmd_entry scratch;
	const struct cmd_entry *e = cmd_find(cmd, &scratch);
	if (e != NULL)
		print_usage(stderr, e, 0);
	fprintf(stderr, "Try 'hopperctl help%s%s'.\n", e != NULL ? " " : "", e != NULL ? e->name : "");
	return CTL_EXIT_USAGE;
}

static void
help_all(FILE *f)
{
	fprintf(f, "usage: hopperctl [global options] COMMAND [ARGS]\n\nCommands (the daemon's operations):\n");
	for (int i = 0; i < CTL_OP_COUNT; i++) {
		const struct ctl_op *op = &ctl_ops[i];
		if (op->flags & CTL_F_PREAUTH)
			continue;
		char name[64];
		snprintf(name, sizeof(name), "%s", op->name);
		char *dot = strchr(name, '.');
		if (dot != NULL)
			*dot = ' ';
		fprintf(f, "  %-14s %s\n", name, op->help);
	}
	fprintf(f, "Client commands:\n");
	for (size_t i = 0; i < CMD_COUNT; i++)
		if (cmd_table[i].op == NULL)
			fprintf(f, "  %-14s %s\n", cmd_table[i].name, cmd_table[i].summary);
	fprintf(f, "\n%s\nJob types built into hopper-worker:", global_help);
	for (size_t i = 0; job_type_names[i] != NULL; i++)
		fprintf(f, " %s", job_type_names[i]);
	fprintf(f, "\n");
}

static int
help_cmd(struct ctl *ctl, struct cmd_args *args)
{
	if (args->argc == 0) {
		help_all(stdout);
		return CTL_EXIT_OK;
	}
	char name[64];
	if (args->argc == 2)
		snprintf(name, sizeof(name), "%s.%s", args->argv[0], args->argv[1]);
	else
		snprintf(name, sizeof(name), "%s", args->argv[0]);
	struct cmd_entry scratch;
	const struct cmd_entry *e = cmd_find(name, &scratch);
	if (e == NULL) {
		ctl_warn("unknown command '%s'", name);
		return ctl_usage("help");
	}
	const struct ctl_op *op = e->op != NULL ? ctl_op_find(e->op) : NULL;
	printf("hopperctl %s: %s\n\n", e->name, op != NULL ? op->help : e->summary);
	print_usage(stdout, e, 1);
	return CTL_EXIT_OK;
}

/* --- options --- */

/* Applies one global option (source: the environment variable it came from, or NULL). Returns GO_ON, or the
 * exit code the program ends with (--help, --version, errors). */
static int
global_opt(struct ctl *ctl, int val, const char *arg, const char *source)
{
	long long n;
	double d;
	switch (val) {
	case GOPT_SOCKET:
		ctl->hopts.socket = arg;
		ctl->hopts.host = NULL;
		break;
	case GOPT_TCP:
		ctl->hopts.host = arg;
		ctl->hopts.socket = NULL;
		break;
	case GOPT_TOKEN: ctl->hopts.token = arg; break;
	case GOPT_TOKEN_FILE: ctl->token_file = arg; break;
	case GOPT_SERVER_KEY: ctl->server_key = arg; break;
	case GOPT_KNOWN_HOSTS: ctl->hopts.known_hosts = arg; break;
	case GOPT_IO_TIMEOUT:
		if (text_double(arg, 0.001, 86400, &d) < 0) {
			ctl_warn("bad --io-timeout '%s'", arg);
			return CTL_EXIT_USAGE;
		}
		ctl->io_timeout_s = d;
		break;
	case GOPT_HOST:
		ctl->redis.host = arg;
		ctl->redis_given = 1;
		break;
	case GOPT_UNIX:
		ctl->redis.unix_path = arg;
		ctl->redis_given = 1;
		break;
	case GOPT_PASSWORD:
		ctl->redis.password = arg;
		ctl->redis_given = 1;
		break;
	case GOPT_PASSWORD_FILE:
		secret_free(ctl->password_buf);
		if ((ctl->password_buf = secret_read(arg, "--redis-password-file")) == NULL)
			return CTL_EXIT_USAGE;
		ctl->redis.password = ctl->password_buf;
		ctl->redis_given = 1;
		break;
	case GOPT_PREFIX: ctl->prefix = arg; break;
	case GOPT_JSON: ctl->json = 1; break;
	case GOPT_PORT:
	case GOPT_DB:
		if (text_int(arg, val == GOPT_PORT ? 1 : 0, val == GOPT_PORT ? 65535 : 1000000, &n) < 0) {
			ctl_warn("bad %s '%s'%s%s", val == GOPT_PORT ? "port" : "database number", arg,
			         source != NULL ? " from $" : "", source != NULL ? source : "");
			return CTL_EXIT_USAGE;
		}
		if (val == GOPT_PORT)
			ctl->redis.port = (int)n;
		else
			ctl->redis.db = (int)n;
		ctl->redis_given = 1;
		break;
	case GOPT_HELP: help_all(stdout); return CTL_EXIT_OK;
	case GOPT_VERSION: printf("hopperctl %s (protocol %d)\n", HOPPERCTL_VERSION, CTL_PROTOCOL_VERSION); return 0;
	default: return CTL_EXIT_USAGE;
	}
	return GO_ON;
}

/* Environment first, so the command line wins. HOPPER_TOKEN and HOPPER_TOKEN_FILE are read later, by
 * ctl_hopper, because --token-file must win over $HOPPER_TOKEN. */
static int
apply_env(struct ctl *ctl)
{
	static const struct {
		const char *name;
		int val;
	} env[] = {{"HOPPER_HOST", GOPT_TCP},
	           {"HOPPER_SOCKET", GOPT_SOCKET},
	           {"HOPPER_REDIS_HOST", GOPT_HOST},
	           {"HOPPER_REDIS_PORT", GOPT_PORT},
	           {"HOPPER_REDIS_UNIX", GOPT_UNIX},
	           {"HOPPER_REDIS_PASSWORD", GOPT_PASSWORD},
	           {"HOPPER_REDIS_DB", GOPT_DB},
	           {"HOPPER_PREFIX", GOPT_PREFIX},
	           {"HOPPER_SERVER_KEY", GOPT_SERVER_KEY},
	           {"HOPPER_KNOWN_HOSTS", GOPT_KNOWN_HOSTS}};
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
		const char *v = getenv(env[i].name);
		if (v != NULL && v[0] != '\0') {
			int r = global_opt(ctl, env[i].val, v, env[i].name);
			if (r != GO_ON)
				return r;
		}
	}
	return GO_ON;
}

/* Parses a subcommand's options (its own, its catalogue fields and the global ones) and checks its arity.
 * GO_ON or an exit code. */
static int
parse_cmd(struct ctl *ctl, const struct cmd_entry *e, int argc, char **argv, struct cmd_args *args)
{
	struct option all[OPTS_MAX];
	size_t n = 0;
	args->op = e->op != NULL ? ctl_op_find(e->op) : NULL;
	for (const struct option *o = e->options; o->name != NULL; o++)
		all[n++] = *o;
	if (e->handler == ops_cmd)
		for (int i = 0; args->op->args[i].name != NULL && i < CMD_FIELDS_MAX; i++)
			all[n++] = (struct option){field_option(args->op, i),
			                           args->op->args[i].type == CTL_ARG_BOOL ? no_argument
			                                                                  : required_argument,
			                           NULL, FIELD_OPT_BASE + i};
	if (args->op != NULL && args->op->id == CTL_OP_TOKEN_REVOKE) /* the catalogue's usage: --id TOKEN_ID */
		all[n++] = (struct option){"id", required_argument, NULL, FIELD_OPT_BASE + 1};
	for (const struct option *o = global_options; n < OPTS_MAX - 1; o++) {
		all[n++] = *o;
		if (o->name == NULL)
			break;
	}
	optind = 0; /* GNU getopt: start afresh on the subcommand's argv */
	int c;
	while ((c = getopt_long(argc, argv, "h", all, NULL)) != -1) {
		if (c >= CMD_OPT_BASE && c < CMD_OPT_BASE + OPT_COUNT)
			args->opt[c - CMD_OPT_BASE] = optarg != NULL ? optarg : "";
		else if (c >= FIELD_OPT_BASE && c < FIELD_OPT_BASE + CMD_FIELDS_MAX)
			args->field[c - FIELD_OPT_BASE] = optarg != NULL ? optarg : "";
		else if (c == 'h' || c == GOPT_HELP) {
			print_usage(stdout, e, 1);
			return CTL_EXIT_OK;
		} else if (c == '?' || c == ':')
			return ctl_usage(e->name);
		else {
			int r = global_opt(ctl, c, optarg, NULL);
			if (r != GO_ON)
				return r;
		}
	}
	args->argc = argc - optind;
	args->argv = argv + optind;
	if (args->argc < e->min_args || (e->max_args >= 0 && args->argc > e->max_args)) {
		ctl_warn("%s: %s", e->name, args->argc < e->min_args ? "missing arguments" : "too many arguments");
		return ctl_usage(e->name);
	}
	return GO_ON;
}

int
ctl_term_cols(void)
{
	struct winsize ws;
	if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return 0;
	return ws.ws_col >= 20 ? ws.ws_col : 80; /* a pty that reports no size */
}

/* --- connections --- */

struct conn *
ctl_conn(struct ctl *ctl)
{
	if (ctl->conn == NULL) {
		char *cause = NULL;
		ctl->conn = conn_open(&ctl->redis, &cause);
		if (ctl->conn == NULL) {
			ctl_warn("%s", cause);
			free(cause);
		}
	}
	return ctl->conn;
}

char *
ctl_key(const struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *tail = NULL;
	if (vasprintf(&tail, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	char *key = xasprintf("%s%s", ctl->prefix, tail);
	free(tail);
	return key;
}

/*
 * Reads a token from path. A file that group or others may read is refused: a token is a password. missing_ok:
 * a file that does not exist is no error (the default path). 1 with the token in ctl->token_buf, 0 when
 * absent and missing_ok, -1 with the error printed.
 */
static int
read_token_file(struct ctl *ctl, const char *path, int missing_ok)
{
	/* O_NONBLOCK: a FIFO (or a device) must not block the open; the type check below refuses it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd < 0) {
		if (errno == ENOENT && missing_ok)
			return 0;
		ctl_warn("token file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ctl_warn("token file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		ctl_warn("token file %s is accessible by group or others (mode %04o): refusing it; chmod 600 %s", path,
		         (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		ctl_warn("token file %s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, " \t\r\n")] = '\0';
	if (buf[0] == '\0') {
		ctl_warn("token file %s is empty", path);
		return -1;
	}
	ctl->token_buf = xstrdup(buf);
	ctl_wipe(buf, sizeof(buf));
	return 1;
}

/* Picks the credential (see the header comment's order). 0, or -1 with the error printed. */
static int
resolve_token(struct ctl *ctl)
{
	const char *env;
	int r = 0;
	if (ctl->hopts.token != NULL)
		return 0;
	if (ctl->token_file != NULL)
		r = read_token_file(ctl, ctl->token_file, 0);
	else if ((env = getenv("HOPPER_TOKEN")) != NULL && env[0] != '\0') {
		ctl->hopts.token = env;
		return 0;
	} else if ((env = getenv("HOPPER_TOKEN_FILE")) != NULL && env[0] != '\0')
		r = read_token_file(ctl, env, 0);
	else if ((env = getenv("HOME")) != NULL && env[0] != '\0') {
		char *path = xasprintf("%s/%s", env, HOPPERCTL_TOKEN_FILE);
		r = read_token_file(ctl, path, 1);
		free(path);
	}
	if (r < 0)
		return -1;
	if (r > 0)
		ctl->hopts.token = ctl->token_buf;
	return 0;
}

/* TCP: --server-key is the key itself, or (with a '/', which base64url has not) a file whose first word it
 * is; else the known_hosts file, by default under $HOME. 0, or -1 with the error printed. */
static int
resolve_pin(struct ctl *ctl)
{
	const char *k = ctl->server_key, *home = getenv("HOME");
	if (ctl->hopts.host == NULL)
		return 0;
	if (k != NULL && strchr(k, '/') != NULL) {
		FILE *f = fopen(k, "re");
		if (f == NULL || fgets(ctl->server_key_buf, sizeof(ctl->server_key_buf), f) == NULL) {
			ctl_warn("--server-key %s: %s", k, f == NULL ? strerror(errno) : "empty file");
			if (f != NULL)
				fclose(f);
			return -1;
		}
		fclose(f);
		ctl->server_key_buf[strcspn(ctl->server_key_buf, " \t\r\n")] = '\0';
		k = ctl->server_key_buf;
	}
	ctl->hopts.server_key = k;
	if (k == NULL && ctl->hopts.known_hosts == NULL && home != NULL && home[0] != '\0') {
		snprintf(ctl->known_hosts_buf, sizeof(ctl->known_hosts_buf), "%s/%s", home, HOPPERCTL_KNOWN_HOSTS);
		ctl->hopts.known_hosts = ctl->known_hosts_buf;
	}
	return 0;
}

struct hopper *
ctl_hopper(struct ctl *ctl, int *code)
{
	if (ctl->h != NULL)
		return ctl->h;
	if (resolve_token(ctl) < 0) {
		*code = CTL_EXIT_USAGE;
		return NULL;
	}
	if (ctl->hopts.socket == NULL && ctl->hopts.host == NULL)
		ctl->hopts.socket = HOPPERCTL_DEFAULT_SOCKET;
	if (resolve_pin(ctl) < 0) {
		*code = CTL_EXIT_USAGE;
		return NULL;
	}
	ctl->hopts.timeout_ms = (int)(ctl->io_timeout_s * 1000);
	ctl->hopts.client = "hopperctl/" HOPPERCTL_VERSION;
	char err[512];
	int rc = 0;
	ctl->h = hopper_connect(&ctl->hopts, &rc, err, sizeof(err));
	if (ctl->h == NULL) {
		ctl_warn("%s: %s", hopper_err_name(rc), err);
		*code = hopper_exit_code(rc);
	} else if (hopper_learned_key(ctl->h) != NULL)
		ctl_warn("first connection to %s: recorded its key %s in %s (compare it with hopperd --print-pubkey "
		         "on the daemon's host)",
		         ctl->hopts.host, hopper_learned_key(ctl->h), ctl->hopts.known_hosts);
	return ctl->h;
}

int
ctl_fail(struct ctl *ctl)
{
	enum hopper_err e = hopper_errcode(ctl->h);
	ctl_warn("%s: %s", hopper_err_name(e), hopper_errmsg(ctl->h));
	return hopper_exit_code(e);
}

/* 1 if word is the group of dotted catalogue ops ("token" of "token.create"). */
static int
is_group(const char *word)
{
	size_t n = strlen(word);
	for (int i = 0; i < CTL_OP_COUNT; i++)
		if (strncmp(ctl_ops[i].name, word, n) == 0 && ctl_ops[i].name[n] == '.')
			return 1;
	return 0;
}

/* The usage lines of every op of a group, to stderr. */
static void
group_usage(const char *word)
{
	size_t n = strlen(word);
	struct cmd_entry scratch;
	for (int i = 0; i < CTL_OP_COUNT; i++)
		if (strncmp(ctl_ops[i].name, word, n) == 0 && ctl_ops[i].name[n] == '.') {
			const struct cmd_entry *e = cmd_find(ctl_ops[i].name, &scratch);
			print_usage(stderr, e, 0);
		}
}

static int
run(struct ctl *ctl, int argc, char **argv)
{
	int r = apply_env(ctl);
	if (r != GO_ON)
		return r;
	int c;
	while ((c = getopt_long(argc, argv, "+h", global_options, NULL)) != -1) {
		if (c == '?')
			return ctl_usage("");
		r = global_opt(ctl, c == 'h' ? GOPT_HELP : c, optarg, NULL);
		if (r != GO_ON)
			return r;
	}
	if (optind >= argc) {
		help_all(stderr);
		return CTL_EXIT_USAGE;
	}
	/* "token create" is the op "token.create", "workflow put" the op "workflow.put". */
	char name[64];
	int skip = 0, group = is_group(argv[optind]);
	if (group && optind + 1 < argc && argv[optind + 1][0] != '-') {
		snprintf(name, sizeof(name), "%s.%s", argv[optind], argv[optind + 1]);
		skip = 1;
	} else
		snprintf(name, sizeof(name), "%s", argv[optind]);
	struct cmd_entry scratch;
	const struct cmd_entry *e = cmd_find(name, &scratch);
	if (e == NULL && group) {
		ctl_warn("%s: give one of its subcommands", argv[optind]);
		group_usage(argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (e == NULL && strcmp(name, "celery") == 0) {
		ctl_warn("celery: give send");
		return ctl_usage("celery.send");
	}
	if (e == NULL) {
		ctl_warn("unknown command '%s'", name);
		return ctl_usage("");
	}
	struct cmd_args args = {0};
	r = parse_cmd(ctl, e, argc - optind - skip, argv + optind + skip, &args);
	if (r != GO_ON)
		return r;
	return e->handler(ctl, &args);
}

int
main(int argc, char **argv)
{
	struct ctl ctl = {.redis = {.host = "127.0.0.1", .port = 6379}, .prefix = "hopper:", .io_timeout_s = 30};
	ctl.color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	int code = run(&ctl, argc, argv);
	hopper_close(ctl.h);
	conn_close(ctl.conn);
	if (ctl.token_buf != NULL) {
		ctl_wipe(ctl.token_buf, strlen(ctl.token_buf));
		free(ctl.token_buf);
	}
	secret_free(ctl.password_buf);
	return code;
}

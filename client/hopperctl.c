/*
 * hopperctl: the command-line client of hopper. It talks to Redis only (schema/redis-keys.md is the contract),
 * never to a daemon, so it works whichever hopperd nodes are up.
 *
 * Exit codes (also in `hopperctl help` and hopperctl(1)):
 *   0  ok; with submit --wait and watch: every job succeeded
 *   1  submit --wait / watch: a job ended failed, dead or cancelled
 *   2  usage error: bad command line, or a job that does not validate
 *   3  unknown job: no hash for the id (or no dead entry for it)
 *   4  timeout: --wait-timeout or watch --timeout passed first
 *   5  Redis unreachable, or it answered with an error
 * When several jobs are involved the highest code wins.
 *
 * This file holds the global options, the subcommand table that drives both dispatch and help, and the
 * central parsing of each subcommand's options and arity, so handlers start from a checked command line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hopperctl.h"
#include "job.h"
#include "log.h"
#include "xmalloc.h"

/* Values getopt_long returns: global options below 0x200, subcommand options at CMD_OPT_BASE + enum ctl_opt. */
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
	CMD_OPT_BASE = 0x200
};

#define GO_ON (-1) /* from the option parsers: carry on (any other value is the exit code) */
#define O(name, arg, opt)                                                                                              \
	{                                                                                                              \
		name, arg, NULL, CMD_OPT_BASE + (opt)                                                                  \
	}
#define OPTS_MAX 32 /* global plus one subcommand's options, with room to grow */

static const struct option global_options[] = {{"redis-host", required_argument, NULL, GOPT_HOST},
                                               {"redis-port", required_argument, NULL, GOPT_PORT},
                                               {"redis-unix", required_argument, NULL, GOPT_UNIX},
                                               {"redis-password", required_argument, NULL, GOPT_PASSWORD},
                                               {"redis-db", required_argument, NULL, GOPT_DB},
                                               {"prefix", required_argument, NULL, GOPT_PREFIX},
                                               {"json", no_argument, NULL, GOPT_JSON},
                                               {"help", no_argument, NULL, GOPT_HELP},
                                               {"version", no_argument, NULL, GOPT_VERSION},
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
                                               O("wait", no_argument, OPT_WAIT),
                                               O("wait-timeout", required_argument, OPT_WAIT_TIMEOUT),
                                               {NULL, 0, NULL, 0}};
static const struct option watch_options[] = {O("timeout", required_argument, OPT_TIMEOUT), {NULL, 0, NULL, 0}};
static const struct option dead_options[] = {O("all", no_argument, OPT_ALL), {NULL, 0, NULL, 0}};
static const struct option no_options[] = {{NULL, 0, NULL, 0}};
static const struct option celery_options[] = {O("args", required_argument, OPT_ARGS),
                                               O("kwargs", required_argument, OPT_KWARGS),
                                               O("queue", required_argument, OPT_QUEUE),
                                               O("priority", required_argument, OPT_PRIORITY),
                                               O("countdown", required_argument, OPT_COUNTDOWN),
                                               O("id", required_argument, OPT_ID),
                                               O("celery-prefix", required_argument, OPT_CPREFIX),
                                               {NULL, 0, NULL, 0}};

static int help_cmd(struct ctl *ctl, struct cmd_args *args);

struct cmd_entry {
	const char *name;
	int (*handler)(struct ctl *ctl, struct cmd_args *args);
	const char *usage;   /* the arguments after the name, then one line per option */
	const char *summary; /* one line for the command list */
	const struct option *options;
	int min_args, max_args; /* positional arguments after the options; -1: no maximum */
};

static const struct cmd_entry cmd_table[] = {
        {"submit", submit_cmd,
         "TYPE [--args JSON] [--queue Q] [--id ID] [--max-attempts N] [--timeout S]\n"
         "       [--delay S | --run-at UNIX_TS] [--owner O] [--idempotency-key K] [--wait [--wait-timeout S]]\n"
         "  --args JSON            the handler's arguments, a JSON object (default {})\n"
         "  --queue Q              queue to push the job onto (default: default)\n"
         "  --id ID                job id; letters, digits and ._:- (default: a new UUIDv4)\n"
         "  --max-attempts N       attempts before the job is dead, 1-100 (default: the daemon's, 3)\n"
         "  --timeout S            seconds one attempt may run (default: the daemon's, 300)\n"
         "  --delay S              run no earlier than S seconds from now\n"
         "  --run-at UNIX_TS       run no earlier than this Unix time\n"
         "  --owner O              who the job belongs to (recorded, not interpreted)\n"
         "  --idempotency-key K    the daemon runs only one job per key\n"
         "  --wait                 wait until the job ends and print its final status (exit 0 if it succeeded)\n"
         "  --wait-timeout S       stop waiting after S seconds (exit 4)\n"
         "Prints the new job's id. The job is validated before anything is written.",
         "submit a job, optionally waiting for it", submit_options, 1, 1},
        {"status", status_cmd,
         "ID\n"
         "Prints the job's state, attempts, progress, stage, message, error, result, times and node;\n"
         "with --json, the job hash as one JSON object. Exit 3 if there is no such job.",
         "show one job", no_options, 1, 1},
        {"watch", watch_cmd,
         "ID... [--timeout S]\n"
         "  --timeout S            give up after S seconds (exit 4)\n"
         "Replays each job's events, then follows them until every job has ended. On a terminal: one\n"
         "progress bar per job (no colours when NO_COLOR is set); otherwise or with --json: one JSON\n"
         "event per line. Exit 0 if every job succeeded.",
         "follow jobs until they end", watch_options, 1, -1},
        {"dead", dead_cmd,
         "[list] | requeue ID... | requeue --all | purge ID... | purge --all\n"
         "  list                   the dead jobs, newest first (with --json: one entry per line)\n"
         "  requeue                push the jobs back onto their queues and reset their state\n"
         "  purge                  delete the entries\n"
         "  --all                  every entry instead of the given ids",
         "list, requeue or purge dead jobs", dead_options, 0, -1},
        {"celery", celery_cmd,
         "send TASK [--args JSON] [--kwargs JSON] [--queue Q] [--priority N] [--countdown S] [--id ID]\n"
         "       [--celery-prefix P]\n"
         "  --args JSON            positional arguments, a JSON array (default [])\n"
         "  --kwargs JSON          keyword arguments, a JSON object (default {})\n"
         "  --queue Q              Celery queue (default: celery)\n"
         "  --priority N           0-9, 0 first (kombu's Redis transport)\n"
         "  --countdown S          run no earlier than S seconds from now (the eta header)\n"
         "  --id ID                task id (default: a new UUIDv4)\n"
         "  --celery-prefix P      kombu's global_keyprefix of the Celery app\n"
         "Publishes the task in Celery's format (protocol 2) for a Celery worker or hopperd; prints its id.",
         "publish a task in Celery's format", celery_options, 2, 2},
        {"help", help_cmd, "[COMMAND]", "show help for hopperctl or one command", no_options, 0, 1},
};
#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))

static const char global_help[] =
        "Global options (may also follow the command):\n"
        "  --redis-host H         Redis host (127.0.0.1; $HOPPER_REDIS_HOST)\n"
        "  --redis-port P         Redis port (6379; $HOPPER_REDIS_PORT)\n"
        "  --redis-unix PATH      Redis unix socket, wins over host and port ($HOPPER_REDIS_UNIX)\n"
        "  --redis-password PW    AUTH with this password ($HOPPER_REDIS_PASSWORD)\n"
        "  --redis-db N           SELECT this database (0; $HOPPER_REDIS_DB)\n"
        "  --prefix P             key prefix (hopper:; $HOPPER_PREFIX)\n"
        "  --json                 machine-readable output\n"
        "  --version              print the version\n"
        "Exit codes:\n"
        "  0 ok (submit --wait, watch: every job succeeded)   1 a job failed, died or was cancelled\n"
        "  2 usage error or invalid job   3 unknown job   4 timeout   5 Redis unreachable or error\n";

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

static const struct cmd_entry *
cmd_find(const char *name)
{
	for (size_t i = 0; i < CMD_COUNT; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

int
ctl_usage(const char *cmd)
{
	const struct cmd_entry *e = cmd_find(cmd);
	if (e != NULL) {
		size_t first = strcspn(e->usage, "\n");
		fprintf(stderr, "usage: hopperctl %s %.*s\n", e->name, (int)first, e->usage);
	}
	fprintf(stderr, "Try 'hopperctl help%s%s'.\n", e != NULL ? " " : "", e != NULL ? e->name : "");
	return CTL_EXIT_USAGE;
}

static void
help_all(FILE *f)
{
	fprintf(f, "usage: hopperctl [global options] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < CMD_COUNT; i++)
		fprintf(f, "  %-8s %s\n", cmd_table[i].name, cmd_table[i].summary);
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
	const struct cmd_entry *e = cmd_find(args->argv[0]);
	if (e == NULL) {
		ctl_warn("unknown command '%s'", args->argv[0]);
		return ctl_usage("help");
	}
	printf("hopperctl %s: %s\n\nusage: hopperctl %s %s\n", e->name, e->summary, e->name, e->usage);
	return CTL_EXIT_OK;
}

/* Applies one global option (source: the environment variable it came from, or NULL). Returns GO_ON, or the
 * CTL_EXIT_* code the program ends with (--help, --version, errors). */
static int
global_opt(struct ctl *ctl, int val, const char *arg, const char *source)
{
	long long n;
	switch (val) {
	case GOPT_HOST: ctl->redis.host = arg; break;
	case GOPT_UNIX: ctl->redis.unix_path = arg; break;
	case GOPT_PASSWORD: ctl->redis.password = arg; break;
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
		break;
	case GOPT_HELP: help_all(stdout); return CTL_EXIT_OK;
	case GOPT_VERSION: printf("hopperctl %s\n", HOPPERCTL_VERSION); return CTL_EXIT_OK;
	default: return CTL_EXIT_USAGE;
	}
	return GO_ON;
}

/* Environment first, so the command line wins. */
static int
apply_env(struct ctl *ctl)
{
	static const struct {
		const char *name;
		int val;
	} env[] = {{"HOPPER_REDIS_HOST", GOPT_HOST}, {"HOPPER_REDIS_PORT", GOPT_PORT},
	           {"HOPPER_REDIS_UNIX", GOPT_UNIX}, {"HOPPER_REDIS_PASSWORD", GOPT_PASSWORD},
	           {"HOPPER_REDIS_DB", GOPT_DB},     {"HOPPER_PREFIX", GOPT_PREFIX}};
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

/* Parses a subcommand's options (its own and the global ones) and checks its arity. GO_ON or an exit code. */
static int
parse_cmd(struct ctl *ctl, const struct cmd_entry *e, int argc, char **argv, struct cmd_args *args)
{
	struct option all[OPTS_MAX];
	size_t n = 0;
	for (const struct option *o = e->options; o->name != NULL; o++)
		all[n++] = *o;
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
		else if (c == 'h' || c == GOPT_HELP) {
			printf("usage: hopperctl %s %s\n", e->name, e->usage);
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

struct conn *
ctl_conn_new(struct ctl *ctl)
{
	char *cause = NULL;
	struct conn *c = conn_open(&ctl->redis, &cause);
	if (c == NULL) {
		ctl_warn("%s", cause);
		free(cause);
	}
	return c;
}

struct conn *
ctl_conn(struct ctl *ctl)
{
	if (ctl->conn == NULL)
		ctl->conn = ctl_conn_new(ctl);
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
	const struct cmd_entry *e = cmd_find(argv[optind]);
	if (e == NULL) {
		ctl_warn("unknown command '%s'", argv[optind]);
		return ctl_usage("");
	}
	struct cmd_args args = {0};
	r = parse_cmd(ctl, e, argc - optind, argv + optind, &args);
	if (r != GO_ON)
		return r;
	return e->handler(ctl, &args);
}

int
main(int argc, char **argv)
{
	struct ctl ctl = {.redis = {.host = "127.0.0.1", .port = 6379}, .prefix = "hopper:"};
	int code = run(&ctl, argc, argv);
	conn_close(ctl.conn);
	return code;
}

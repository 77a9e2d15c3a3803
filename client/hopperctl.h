/*
 * hopperctl.h: the command-line client's internal header. Every command but one talks to hopperd's control
 * socket through libhopper (client/hopper.h); conn.c is the one file that includes hiredis, for the one command
 * that writes to a foreign broker's Redis directly (celery send), and it takes the --redis-* options.
 */
#ifndef HOPPERCTL_H
#define HOPPERCTL_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>

#include "ctl_proto.h"
#include "hopper.h"

#define HOPPERCTL_VERSION        HOPPER_VERSION
#define HOPPERCTL_DEFAULT_SOCKET "/var/lib/hopper/hopper.sock"
#define HOPPERCTL_TOKEN_FILE     ".config/hopper/token"       /* under $HOME */
#define HOPPERCTL_KNOWN_HOSTS    ".config/hopper/known_hosts" /* under $HOME: pinned daemon keys (TCP) */

/*
 * Exit codes, documented in `hopperctl help` and hopperctl(1): 0 ok; 1 a job ended without success
 * (--wait, watch); 2..14 the protocol's error codes (ctl_errors[].exit_code; 2 is also a usage error);
 * 15 no connection / connection lost; 16 --wait-timeout or watch --timeout passed first.
 */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNKNOWN_JOB = 10, /* = not_found */
	CTL_EXIT_REDIS = 12,       /* = unavailable; for the commands that write to a broker's Redis directly */
	CTL_EXIT_TIMEOUT = 16
};

/* Options of the hand-written subcommands share one numbering, so the central parser stores them by index. */
enum ctl_opt {
	OPT_ARGS,
	OPT_QUEUE,
	OPT_ID,
	OPT_MAX_ATTEMPTS,
	OPT_TIMEOUT,
	OPT_DELAY,
	OPT_RUN_AT,
	OPT_OWNER,
	OPT_IDEM_KEY,
	OPT_WAIT,
	OPT_WAIT_TIMEOUT,
	OPT_ALL,
	OPT_KWARGS, /* celery send */
	OPT_PRIORITY,
	OPT_COUNTDOWN,
	OPT_CPREFIX,
	OPT_FILE,
	OPT_NAME, /* workflow put / run */
	OPT_DESCRIPTION,
	OPT_INACTIVE,
	OPT_INPUT,
	OPT_EXPIRES, /* celery send */
	OPT_ETA,
	OPT_CREATE, /* workflow webhook */
	OPT_ROTATE,
	OPT_REVOKE,
	OPT_SIGNATURE,
	OPT_SECRET,
	OPT_BASE_URL,
	OPT_SECRET_FILE,
	OPT_TYPE, /* dead retry --all filters */
	OPT_ERROR,
	OPT_OLDER_THAN,
	OPT_CHUNK,
	OPT_UNIQUE, /* submit: flow control (README "Unique jobs and debounce") */
	OPT_DEBOUNCE,
	OPT_FROM, /* workflow restart */
	OPT_STATE,
	OPT_COUNT
};

/* --- conn.c: the Redis connection (the only user of hiredis) --- */

struct conn_opts {
	const char *host;
	int port;
	const char *unix_path; /* wins over host/port when set */
	const char *password;  /* NULL: no AUTH */
	int db;
};

enum conn_reply_type { CONN_NIL, CONN_STRING, CONN_INTEGER, CONN_ARRAY, CONN_STATUS, CONN_ERROR };

/* An owned copy of one Redis reply. str is NUL-terminated but may hold NULs within len. */
struct conn_reply {
	enum conn_reply_type type;
	long long integer;
	char *str;
	size_t len;
	size_t n;
	struct conn_reply **elem;
};

/* A command under construction; arguments are owned copies, so callers may pass temporaries. */
struct conn_cmd {
	int argc;
	int cap;
	char **argv;
	size_t *len;
};

struct conn;

/* Connects, authenticates and selects the database. NULL on failure with *cause set (caller frees). */
struct conn *conn_open(const struct conn_opts *opts, char **cause);
void conn_close(struct conn *c);

/* A new command named name. Caller frees with conn_cmd_free. */
struct conn_cmd *conn_cmd_new(const char *name);
void conn_cmd_free(struct conn_cmd *cmd);
/* Appends a copy of one argument (binary-safe for conn_argn). */
void conn_arg(struct conn_cmd *cmd, const char *s);
void conn_argn(struct conn_cmd *cmd, const char *buf, size_t len);
void conn_argf(struct conn_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends cmd and reads its reply. 0 with *out (caller frees), or -1 with *cause (caller frees) on an I/O error
 * or an error reply. cmd stays the caller's. */
int conn_call(struct conn *c, const struct conn_cmd *cmd, struct conn_reply **out, char **cause);
/* Sends n commands in one write and reads n replies into out[] (caller frees each, error replies included).
 * -1 with *cause on an I/O error, in which case out[] holds nothing. */
int conn_pipeline(struct conn *c, struct conn_cmd *const *cmds, size_t n, struct conn_reply **out, char **cause);
/*
 * MULTI, cmds, EXEC as one pipeline. 0 when EXEC ran (its reply array in *out if out is not NULL; caller frees),
 * 1 when a WATCHed key changed and nothing ran, -1 with *cause when Redis refused a command or one failed.
 */
int conn_transact(struct conn *c, struct conn_cmd *const *cmds, size_t n, struct conn_reply **out, char **cause);
/* SUBSCRIBEs to n channels and reads the confirmations. -1 with *cause on failure. */
int conn_subscribe(struct conn *c, char *const *channels, size_t n, char **cause);
/* Waits at most timeout_ms for the next message on a subscribed connection, without ever blocking longer.
 * 1 with *out (caller frees), 0 on timeout, -1 with *cause (caller frees) when the connection broke. */
int conn_wait(struct conn *c, int timeout_ms, struct conn_reply **out, char **cause);
void conn_reply_free(struct conn_reply *r);
/* Runs one command whose reply only matters as success or error. Takes ownership of cmd; *cause as conn_call. */
int conn_run(struct conn *c, struct conn_cmd *cmd, char **cause);

/* --- hopperctl.c: global state, dispatch, help, credentials --- */

struct ctl {
	struct conn_opts redis; /* --redis-*: only for the commands that write to a broker's Redis */
	int redis_given; /* a --redis-* option (or HOPPER_REDIS_* variable) was given: celery send's direct mode */
	const char *prefix;
	int json;
	int color;                /* stdout is a terminal and NO_COLOR is not set */
	struct conn *conn;        /* Redis, opened by ctl_conn on first use, closed by main */
	struct hopper_opts hopts; /* --socket / --host / credentials */
	const char *token_file;   /* --token-file or $HOPPER_TOKEN_FILE; NULL: the default, if it exists */
	const char *server_key;   /* --server-key or $HOPPER_SERVER_KEY: a key, or a file holding one */
	char server_key_buf[128];
	char known_hosts_buf[4096];
	char *token_buf;    /* a token read from a file (owned, wiped at exit) */
	char *password_buf; /* --redis-password-file's (owned, wiped at exit) */
	double io_timeout_s;
	struct hopper *h; /* opened by ctl_hopper on first use, closed by main */
};

/* Most arguments a catalogue op takes (ctl_ops[].args), for the generic option parser. */
#define CMD_FIELDS_MAX 16

/* A subcommand's parsed command line: positional arguments, option values by enum ctl_opt and, for a
 * catalogue op, by the index of its field in ctl_ops[].args (NULL when absent, "" for options without an
 * argument). Borrowed from main's argv. */
struct cmd_args {
	int argc;
	char **argv;
	const char *opt[OPT_COUNT];
	const char *field[CMD_FIELDS_MAX];
	const struct ctl_op *op; /* the catalogue op being run, or NULL for a client-only command */
};

/* The shared Redis connection, opened on first use. NULL (error already printed) when Redis is unreachable. */
struct conn *ctl_conn(struct ctl *ctl);
/* A key or channel name under the prefix: ctl_key(ctl, "job:%s", id). Caller frees. */
char *ctl_key(const struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The daemon connection, opened (hello + auth) on first use. NULL with the error printed and *code set to the
 * exit code. Borrowed: main closes it. */
struct hopper *ctl_hopper(struct ctl *ctl, int *code);
/* Prints the handle's last error ("hopperctl: CODE: message") and returns its exit code. */
int ctl_fail(struct ctl *ctl);
/* Columns of the terminal on stdout, or 0 when stdout is not a terminal. */
int ctl_term_cols(void);
/* Prints "hopperctl: message" to stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the usage of one subcommand to stderr and returns CTL_EXIT_USAGE. */
int ctl_usage(const char *cmd);

/* --- secret.c: secrets from a file or stdin (--secret-file, --redis-password-file) --- */

/*
 * The secret in path ("-": standard input): a regular file (opened O_NONBLOCK, so a FIFO cannot hang the
 * open) that only its owner may read, at most 4 KiB, one final newline dropped. NULL with the error printed
 * (what names the option). Caller frees with secret_free, which wipes it.
 */
char *secret_read(const char *path, const char *what);
void secret_free(char *s);

/* --- text.c: pure helpers over strings and times --- */

/* Parses a whole decimal number within [min, max]. 0 or -1. */
int text_double(const char *s, double min, double max, double *out);
int text_int(const char *s, long long min, long long max, long long *out);
/* A JSON string of buf's bytes, invalid UTF-8 replaced by U+FFFD. New reference. */
json_t *text_json_string(const char *buf, size_t len);
/* Compact JSON text with times kept at millisecond precision. Caller frees. */
char *text_json_dump(const json_t *v);
/* Decodes standard base64. Caller frees *out; -1 on malformed input (nothing to free). */
int text_b64_decode(const char *in, size_t inlen, char **out, size_t *outlen);
/* Local time "2025-11-24 02:39:00" of Unix time t into buf. Returns buf. */
char *text_local_time(double t, char *buf, size_t size);
/* A short duration "1h 2m", "3.4s" of s seconds into buf. Returns buf. */
char *text_duration(double s, char *buf, size_t size);

/* Prints s with control characters masked as '?', so text from a job cannot drive the terminal. */
void text_put_safe(FILE *f, const char *s, int width);

/* --- ops.c: the catalogue ops (request built from the command line, result printed) --- */

/* Runs any catalogue op generically: fields from the command line, one request, the result printed. */
int ops_cmd(struct ctl *ctl, struct cmd_args *args);
/* Prints an op's result: --json as one line, else the op's human form. */
void ops_print(struct ctl *ctl, const struct ctl_op *op, json_t *result);
/* A state name, coloured on a terminal. */
const char *ops_state_color(const struct ctl *ctl, const char *state);
const char *ops_color_reset(const struct ctl *ctl);

/* --- status.c --- */

/* Prints a job view (readable, or one JSON line with --json). */
void status_print(struct ctl *ctl, json_t *job);

/* --- submit.c --- */

int submit_cmd(struct ctl *ctl, struct cmd_args *args);

/* --- watch.c --- */

int watch_cmd(struct ctl *ctl, struct cmd_args *args);
/*
 * Follows up to 16 jobs on one connection until each ends or timeout_s (<= 0: none) passes, showing their
 * events: progress bars on a terminal, JSON lines with --json or when piped, nothing when quiet. finals
 * (may be NULL) gets each job's final view, NULL when it did not end (caller decrefs each). Returns the
 * worst exit code: 0 every job succeeded, 1 one ended otherwise, 16 timeout, else an error's.
 */
int watch_jobs(struct ctl *ctl, char *const *ids, int n, int quiet, double timeout_s, json_t **finals);

/* --- celery.c --- */

int celery_cmd(struct ctl *ctl, struct cmd_args *args);

/* --- workflow.c: workflow put FILE, workflow run NAME [--wait] --- */

int workflow_put_cmd(struct ctl *ctl, struct cmd_args *args);
int workflow_run_cmd(struct ctl *ctl, struct cmd_args *args);
int workflow_webhook_cmd(struct ctl *ctl, struct cmd_args *args);
int workflow_restart_cmd(struct ctl *ctl, struct cmd_args *args);

/* --- dead.c --- */

int dead_cmd(struct ctl *ctl, struct cmd_args *args);

#endif

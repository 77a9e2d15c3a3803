/*
 * hopperctl.h: the command-line client's internal header. One prototype group per file; conn.c is the only
 * file that includes hiredis, so every other file talks to Redis through struct conn and struct conn_reply.
 */
#ifndef HOPPERCTL_H
#define HOPPERCTL_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>

#define HOPPERCTL_VERSION "0.1.0"

/* The exit codes, documented in hopperctl.c's header comment, usage and hopperctl(1). */
enum ctl_exit {
	CTL_EXIT_OK = 0,          /* done; for --wait/watch: every job succeeded */
	CTL_EXIT_JOB_FAILED = 1,  /* --wait/watch: a job ended failed, dead or cancelled */
	CTL_EXIT_USAGE = 2,       /* bad command line or a job that does not validate */
	CTL_EXIT_UNKNOWN_JOB = 3, /* no such job (or dead entry) */
	CTL_EXIT_TIMEOUT = 4,     /* --wait-timeout / watch --timeout passed */
	CTL_EXIT_REDIS = 5        /* Redis unreachable or answered with an error */
};

/* Options of every subcommand share one numbering, so the central parser can store them by index. */
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

/* --- hopperctl.c: global state, dispatch, help --- */

struct ctl {
	struct conn_opts redis;
	const char *prefix;
	int json;
	struct conn *conn; /* opened by ctl_conn on first use, closed by main */
};

/* A subcommand's parsed command line: positional arguments and option values by enum ctl_opt
 * (NULL when absent, "" for options without an argument). Borrowed from main's argv. */
struct cmd_args {
	int argc;
	char **argv;
	const char *opt[OPT_COUNT];
};

/* The shared connection, opened on first use. NULL (error already printed) when Redis is unreachable. */
struct conn *ctl_conn(struct ctl *ctl);
/* A new connection with the same settings (for SUBSCRIBE). NULL with the error printed. Caller closes. */
struct conn *ctl_conn_new(struct ctl *ctl);
/* A key or channel name under the prefix: ctl_key(ctl, "job:%s", id). Caller frees. */
char *ctl_key(const struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Columns of the terminal on stdout, or 0 when stdout is not a terminal. */
int ctl_term_cols(void);
/* Prints "hopperctl: message" to stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the usage of one subcommand to stderr and returns CTL_EXIT_USAGE. */
int ctl_usage(const char *cmd);

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

/* --- status.c --- */

int status_cmd(struct ctl *ctl, struct cmd_args *args);
/* Reads the job hash and prints it (readable, or JSON with --json). A CTL_EXIT_* code. */
int status_show(struct ctl *ctl, const char *id);

/* --- submit.c --- */

int submit_cmd(struct ctl *ctl, struct cmd_args *args);

/* --- watch.c --- */

enum watch_mode {
	WATCH_QUIET, /* print nothing (submit --wait) */
	WATCH_LINES, /* each event as one JSON line */
	WATCH_BARS   /* a progress bar per job, redrawn in place */
};

int watch_cmd(struct ctl *ctl, struct cmd_args *args);
/* Follows the jobs until each is terminal or timeout_s (<= 0: none) passes. Returns the worst CTL_EXIT_*. */
int watch_jobs(struct ctl *ctl, char *const *ids, int n, enum watch_mode mode, double timeout_s);

/* --- celery.c --- */

int celery_cmd(struct ctl *ctl, struct cmd_args *args);

/* --- dead.c --- */

int dead_cmd(struct ctl *ctl, struct cmd_args *args);

#endif

/*
 * conn: hopperctl's Redis connection over hiredis's synchronous API (the only file that includes hiredis).
 *
 * Every reply is copied into a struct conn_reply so the rest of the client never sees hiredis types. Every
 * blocking call is bounded by a socket timeout, and conn_wait polls the socket itself, so a Redis server that
 * stops answering turns into an error rather than a hang.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "hopperctl.h"
#include "log.h"
#include "xmalloc.h"

/* Connecting and each blocking round trip give up after this long: a healthy Redis answers in milliseconds,
 * and a user at a terminal should not wait longer than this to learn it is not healthy. */
#define CONN_TIMEOUT_S 10

struct conn {
	redisContext *rc;
};

/* Deep copy of a hiredis reply. Caller frees with conn_reply_free. */
static struct conn_reply *
reply_copy(const redisReply *r)
{
	struct conn_reply *c = xcalloc(1, sizeof(*c));
	switch (r->type) {
	case REDIS_REPLY_STRING: c->type = CONN_STRING; break;
	case REDIS_REPLY_STATUS: c->type = CONN_STATUS; break;
	case REDIS_REPLY_ERROR: c->type = CONN_ERROR; break;
	case REDIS_REPLY_INTEGER: c->type = CONN_INTEGER; break;
	case REDIS_REPLY_ARRAY: c->type = CONN_ARRAY; break;
	default: c->type = CONN_NIL; break;
	}
	c->integer = r->integer;
	if (c->type == CONN_STRING || c->type == CONN_STATUS || c->type == CONN_ERROR) {
		c->str = xmalloc(r->len + 1);
		memcpy(c->str, r->str, r->len);
		c->str[r->len] = '\0';
		c->len = r->len;
	}
	if (c->type == CONN_ARRAY && r->elements > 0) {
		c->n = r->elements;
		c->elem = xcalloc(r->elements, sizeof(*c->elem));
		for (size_t i = 0; i < r->elements; i++)
			c->elem[i] = reply_copy(r->element[i]);
	}
	return c;
}

void
conn_reply_free(struct conn_reply *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		conn_reply_free(r->elem[i]);
	free(r->elem);
	free(r->str);
	free(r);
}

/* The context's error as a new string. Caller frees. */
static char *
io_cause(const redisContext *rc)
{
	if (rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		return xasprintf("Redis did not answer within %d s", CONN_TIMEOUT_S);
	if (rc->err == REDIS_ERR_EOF)
		return xstrdup("Redis closed the connection");
	return xasprintf("Redis: %s", rc->errstr[0] != '\0' ? rc->errstr : strerror(errno));
}

/* Reads one reply. 0 with *out (caller frees), -1 with *cause (caller frees). */
static int
read_reply(struct conn *c, struct conn_reply **out, char **cause)
{
	void *r = NULL;
	if (redisGetReply(c->rc, &r) != REDIS_OK || r == NULL) {
		*cause = io_cause(c->rc);
		return -1;
	}
	*out = reply_copy(r);
	freeReplyObject(r);
	return 0;
}

static int
append_cmd(struct conn *c, const struct conn_cmd *cmd)
{
	return redisAppendCommandArgv(c->rc, cmd->argc, (const char **)cmd->argv, cmd->len) == REDIS_OK ? 0 : -1;
}

int
conn_run(struct conn *c, struct conn_cmd *cmd, char **cause)
{
	struct conn_reply *r = NULL;
	int rv = conn_call(c, cmd, &r, cause);
	conn_reply_free(r);
	conn_cmd_free(cmd);
	return rv;
}

struct conn *
conn_open(const struct conn_opts *opts, char **cause)
{
	struct timeval tv = {CONN_TIMEOUT_S, 0};
	redisContext *rc = opts->unix_path != NULL ? redisConnectUnixWithTimeout(opts->unix_path, tv)
	                                           : redisConnectWithTimeout(opts->host, opts->port, tv);
	if (rc == NULL) {
		*cause = xstrdup("out of memory connecting to Redis");
		return NULL;
	}
	if (rc->err != 0) {
		if (opts->unix_path != NULL)
			*cause = xasprintf("cannot connect to Redis at %s: %s", opts->unix_path, rc->errstr);
		else
			*cause = xasprintf("cannot connect to Redis at %s:%d: %s", opts->host, opts->port, rc->errstr);
		redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	struct conn *c = xcalloc(1, sizeof(*c));
	c->rc = rc;
	if (opts->password != NULL) {
		struct conn_cmd *cmd = conn_cmd_new("AUTH");
		conn_arg(cmd, opts->password);
		if (conn_run(c, cmd, cause) < 0)
			goto fail;
	}
	if (opts->db != 0) {
		struct conn_cmd *cmd = conn_cmd_new("SELECT");
		conn_argf(cmd, "%d", opts->db);
		if (conn_run(c, cmd, cause) < 0)
			goto fail;
	}
	return c;
fail:
	conn_close(c);
	return NULL;
}

void
conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	redisFree(c->rc);
	free(c);
}

struct conn_cmd *
conn_cmd_new(const char *name)
{
	struct conn_cmd *cmd = xcalloc(1, sizeof(*cmd));
	conn_arg(cmd, name);
	return cmd;
}

void
conn_cmd_free(struct conn_cmd *cmd)
{
	if (cmd == NULL)
		return;
	for (int i = 0; i < cmd->argc; i++)
		free(cmd->argv[i]);
	free(cmd->argv);
	free(cmd->len);
	free(cmd);
}

void
conn_argn(struct conn_cmd *cmd, const char *buf, size_t len)
{
	if (cmd->argc == cmd->cap) {
		cmd->cap = cmd->cap == 0 ? 8 : cmd->cap * 2;
		cmd->argv = xrealloc(cmd->argv, (size_t)cmd->cap * sizeof(*cmd->argv));
		cmd->len = xrealloc(cmd->len, (size_t)cmd->cap * sizeof(*cmd->len));
	}
	char *copy = xmalloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = '\0';
	cmd->argv[cmd->argc] = copy;
	cmd->len[cmd->argc] = len;
	cmd->argc++;
}

void
conn_arg(struct conn_cmd *cmd, const char *s)
{
	conn_argn(cmd, s, strlen(s));
}

void
conn_argf(struct conn_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory formatting a Redis argument");
	conn_argn(cmd, s, (size_t)n);
	free(s);
}

int
conn_call(struct conn *c, const struct conn_cmd *cmd, struct conn_reply **out, char **cause)
{
	*out = NULL;
	if (append_cmd(c, cmd) < 0) {
		*cause = io_cause(c->rc);
		return -1;
	}
	if (read_reply(c, out, cause) < 0)
		return -1;
	if ((*out)->type == CONN_ERROR) {
		*cause = xasprintf("Redis %s: %s", cmd->argv[0], (*out)->str);
		conn_reply_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
conn_pipeline(struct conn *c, struct conn_cmd *const *cmds, size_t n, struct conn_reply **out, char **cause)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = NULL;
		if (append_cmd(c, cmds[i]) < 0) {
			*cause = io_cause(c->rc);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (read_reply(c, &out[i], cause) < 0) {
			for (size_t j = 0; j < i; j++) {
				conn_reply_free(out[j]);
				out[j] = NULL;
			}
			return -1;
		}
	}
	return 0;
}

/* The first error among a transaction's replies (queueing errors, then EXEC's own per-command results) as a
 * new string, or NULL. Caller frees. */
static char *
transact_error(struct conn_cmd *const *cmds, size_t n, struct conn_reply **r)
{
	for (size_t i = 0; i < n + 2; i++)
		if (r[i]->type == CONN_ERROR)
			return xasprintf("Redis %s: %s",
			                 i == 0       ? "MULTI"
			                 : i == n + 1 ? "EXEC"
			                              : cmds[i - 1]->argv[0],
			                 r[i]->str);
	struct conn_reply *exec = r[n + 1];
	for (size_t i = 0; exec->type == CONN_ARRAY && i < exec->n && i < n; i++)
		if (exec->elem[i]->type == CONN_ERROR)
			return xasprintf("Redis %s (in a transaction whose other commands ran): %s", cmds[i]->argv[0],
			                 exec->elem[i]->str);
	return NULL;
}

int
conn_transact(struct conn *c, struct conn_cmd *const *cmds, size_t n, struct conn_reply **out, char **cause)
{
	size_t total = n + 2;
	struct conn_cmd **all = xcalloc(total, sizeof(*all));
	struct conn_reply **r = xcalloc(total, sizeof(*r));
	all[0] = conn_cmd_new("MULTI");
	for (size_t i = 0; i < n; i++)
		all[i + 1] = cmds[i];
	all[n + 1] = conn_cmd_new("EXEC");
	int rv = conn_pipeline(c, all, total, r, cause);
	if (rv == 0) {
		*cause = transact_error(cmds, n, r);
		if (*cause != NULL)
			rv = -1;
		else if (r[n + 1]->type == CONN_NIL)
			rv = 1;
	}
	if (rv == 0 && out != NULL) {
		*out = r[n + 1];
		r[n + 1] = NULL;
	}
	for (size_t i = 0; i < total; i++)
		conn_reply_free(r[i]);
	conn_cmd_free(all[0]);
	conn_cmd_free(all[n + 1]);
	free(all);
	free(r);
	return rv;
}

int
conn_subscribe(struct conn *c, char *const *channels, size_t n, char **cause)
{
	struct conn_cmd *cmd = conn_cmd_new("SUBSCRIBE");
	for (size_t i = 0; i < n; i++)
		conn_arg(cmd, channels[i]);
	int rv = append_cmd(c, cmd);
	conn_cmd_free(cmd);
	if (rv < 0) {
		*cause = io_cause(c->rc);
		return -1;
	}
	/* One confirmation per channel: ["subscribe", channel, count]. */
	for (size_t i = 0; i < n; i++) {
		struct conn_reply *r = NULL;
		if (read_reply(c, &r, cause) < 0)
			return -1;
		int ok = r->type == CONN_ARRAY && r->n == 3 && r->elem[0]->type == CONN_STRING &&
		         strcmp(r->elem[0]->str, "subscribe") == 0;
		if (!ok)
			*cause = xasprintf("Redis SUBSCRIBE: %s", r->type == CONN_ERROR ? r->str : "unexpected reply");
		conn_reply_free(r);
		if (!ok)
			return -1;
	}
	return 0;
}

/* A reply already in the reader's buffer: 1 with *out (caller frees), 0 when none is complete, -1 with *cause
 * (caller frees) on a protocol error. */
static int
buffered_reply(struct conn *c, struct conn_reply **out, char **cause)
{
	void *r = NULL;
	if (redisReaderGetReply(c->rc->reader, &r) != REDIS_OK) {
		*cause = xasprintf("Redis protocol error: %s", c->rc->reader->errstr);
		return -1;
	}
	if (r == NULL)
		return 0;
	*out = reply_copy(r);
	freeReplyObject(r);
	return 1;
}

/*
 * Why not redisGetReply with a socket timeout: in hiredis a timed-out read marks the context as failed for
 * good, which would end the watch on the first quiet second. Polling the socket and feeding the reader only
 * when bytes are there keeps the context usable, and a half-received reply just waits for the next call.
 */
int
conn_wait(struct conn *c, int timeout_ms, struct conn_reply **out, char **cause)
{
	double deadline = clock_monotonic_ms() + timeout_ms;
	for (;;) {
		int rv = buffered_reply(c, out, cause);
		if (rv != 0)
			return rv;
		double left = deadline - clock_monotonic_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = c->rc->fd, .events = POLLIN};
		int n = poll(&pfd, 1, (int)left + 1);
		if (n < 0 && errno != EINTR) {
			*cause = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
		if (n > 0 && redisBufferRead(c->rc) != REDIS_OK) {
			*cause = io_cause(c->rc);
			return -1;
		}
	}
}

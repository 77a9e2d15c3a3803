/*
 * worker: hopper-worker's main loop and the frame I/O handlers use.
 *
 * Started by hopperd with its end of a socketpair on fd 3. Before it reads any job it asks to die with its
 * parent (PR_SET_PDEATHSIG), drops to --user when started as root, and sets its rlimits. Then it says HELLO
 * and serves JOB frames one at a time until the socket closes.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "job.h"
#include "jsonx.h"
#include "log.h"
#include "worker.h"
#include "workflow.h"
#include "xmalloc.h"

/* The one piece of state a signal handler may touch. */
static volatile sig_atomic_t stop_requested;

/* The worker's process-wide state. */
static struct {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	worker_progress_hook *progress_hook;
	void *progress_arg;
} w = {3, NULL, 0, 0, NULL, NULL};

/* How long a request waits for the daemon's reply. A step record's reply waits for a Redis write, which a
 * Redis outage can hold up; past this the run fails its attempt instead of waiting forever. */
#define REQUEST_TIMEOUT_MS 30000

static void
on_term(int sig)
{
	stop_requested = 1;
}

int
worker_should_stop(void)
{
	return stop_requested;
}

/* Writes one frame whole; a worker that cannot reach its daemon has nothing left to do. */
static void
send_frame(enum frame_type type, const char *payload, size_t len)
{
	unsigned char hdr[FRAME_HEADER_LEN];
	if (frame_header(hdr, type, len) < 0) {
		const char *too_big = "{\"ok\":false,\"error\":\"result larger than the frame limit\",\"retry\":false}";
		send_frame(FRAME_RESULT, too_big, strlen(too_big));
		return;
	}
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	size_t total = sizeof(hdr) + len;
	while (total > 0) {
		ssize_t n = writev(w.fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		total -= (size_t)n;
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + take;
			iov[i].iov_len -= take;
			n -= (ssize_t)take;
		}
	}
}

/* Takes ownership of obj. */
static void
send_json(enum frame_type type, json_t *obj)
{
	char *s = jsonx_dump(obj);
	send_frame(type, s, strlen(s));
	free(s);
	json_decref(obj);
}

void
worker_set_progress_hook(worker_progress_hook *fn, void *arg)
{
	w.progress_hook = fn;
	w.progress_arg = arg;
}

void
worker_progress(struct job_ctx *ctx, int progress, const char *stage, const char *message)
{
	if (w.progress_hook != NULL) {
		worker_progress_hook *fn = w.progress_hook;
		w.progress_hook = NULL; /* the hook reports through worker_progress itself */
		fn(w.progress_arg, progress, stage, message);
		w.progress_hook = fn;
		return;
	}
	json_t *o = json_pack("{s:s,s:i}", "id", ctx->id, "progress",
	                      progress < 0     ? 0
	                      : progress > 100 ? 100
	                                       : progress);
	if (stage != NULL)
		json_object_set_new(o, "stage", json_string(stage));
	if (message != NULL) {
		char *m = ctx->secrets != NULL ? wf_mask_text(message, ctx->secrets) : xstrdup(message);
		json_object_set_new(o, "message", json_string(m));
		free(m);
	}
	send_json(FRAME_PROGRESS, o);
}

void
worker_log(struct job_ctx *ctx, const char *level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* A workflow's secrets, also in the lines of the handlers it runs as steps (run_handler copies ctx). */
	char *m = ctx->secrets != NULL ? wf_mask_text(line, ctx->secrets) : xstrdup(line);
	send_json(FRAME_LOG, json_pack("{s:s,s:s,s:s}", "id", ctx->id, "level", level, "line", m));
	free(m);
}

static void
run_job(const char *payload, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(payload, len, 0, &jerr);
	const char *id = "", *type = "";
	json_t *args = NULL;
	long long attempt = 1;
	double timeout_s = 0;
	char err[256] = "";
	if (req == NULL || jsonx_string(req, "id", JOB_ID_MAX, &id, err, sizeof(err)) <= 0 ||
	    jsonx_string(req, "type", JOB_TYPE_MAX, &type, err, sizeof(err)) <= 0 ||
	    jsonx_int(req, "attempt", 0, 1000, &attempt, err, sizeof(err)) < 0 ||
	    jsonx_number(req, "timeout_s", 0, 1e9, &timeout_s, err, sizeof(err)) < 0 ||
	    !json_is_object(args = json_object_get(req, "args"))) {
		/* The daemon validated the job: a bad JOB frame means the daemon and worker disagree. */
		log_error("bad job frame from the daemon: %s", req ? err : jerr.text);
		_exit(2);
	}
	json_t *resume = json_object_get(req, "resume");
	struct job_ctx ctx = {.id = id,
	                      .type = type,
	                      .args = args,
	                      .attempt = (int)attempt,
	                      .timeout_s = timeout_s,
	                      .resume = json_is_object(resume) ? resume : NULL,
	                      .retryable = 1};
	const struct handler_entry *h = handler_find(type);
	json_t *result = NULL;
	int rc = -1;
	if (h == NULL)
		snprintf(ctx.error, sizeof(ctx.error), "this worker has no handler for job type '%s'", type);
	else
		rc = h->run(&ctx, &result);
	json_t *reply;
	if (ctx.park != NULL) { /* "ok": false for a daemon that knows no park: it retries the attempt */
		json_decref(result);
		reply = json_pack("{s:s,s:b,s:s,s:b,s:o}", "id", id, "ok", 0, "error", "parked", "retry", 1, "park",
		                  ctx.park);
	} else if (rc == 0)
		reply = json_pack("{s:s,s:b,s:o}", "id", id, "ok", 1, "result", result ? result : json_null());
	else
		reply = json_pack("{s:s,s:b,s:s,s:b}", "id", id, "ok", 0, "error", ctx.error[0] ? ctx.error : "failed",
		                  "retry", ctx.retryable);
	send_json(FRAME_RESULT, reply);
	json_decref(req);
}

/* Reads until one whole frame is buffered. Returns 0 with *f set, or -1 at EOF. */
static int
read_frame(struct frame *f, size_t *consumed)
{
	for (;;) {
		const char *errstr = NULL;
		enum frame_status st = frame_decode(w.buf, w.len, f, consumed, &errstr);
		if (st == FRAME_OK)
			return 0;
		if (st == FRAME_ERROR) {
			log_error("bad frame from the daemon: %s", errstr);
			_exit(2);
		}
		if (w.len == w.cap) {
			w.cap = w.cap ? w.cap * 2 : 65536;
			w.buf = xrealloc(w.buf, w.cap);
		}
		ssize_t n = read(w.fd, w.buf + w.len, w.cap - w.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		w.len += (size_t)n;
	}
}

json_t *
worker_request(struct job_ctx *ctx, int type, json_t *payload, char *err, size_t errlen)
{
	send_json((enum frame_type)type, payload);
	double give_up = clock_monotonic_ms() + REQUEST_TIMEOUT_MS;
	for (;;) {
		struct frame f;
		size_t consumed;
		const char *errstr = NULL;
		enum frame_status st = frame_decode(w.buf, w.len, &f, &consumed, &errstr);
		if (st == FRAME_ERROR) {
			log_error("bad frame from the daemon: %s", errstr);
			_exit(2);
		}
		if (st == FRAME_OK) {
			json_t *o = f.type == FRAME_REPLY ? json_loadb(f.payload, f.len, 0, NULL) : NULL;
			memmove(w.buf, w.buf + consumed, w.len - consumed);
			w.len -= consumed;
			if (o == NULL) {
				log_warn("ignoring a %s frame while waiting for a reply", frame_type_name(f.type));
				continue;
			}
			if (json_is_true(json_object_get(o, "ok")))
				return o;
			const char *e = json_string_value(json_object_get(o, "error"));
			snprintf(err, errlen, "the daemon refused: %s", e ? e : "no reason given");
			json_decref(o);
			return NULL;
		}
		double left = give_up - clock_monotonic_ms();
		if (left <= 0) {
			snprintf(err, errlen, "no reply from the daemon within %d s", REQUEST_TIMEOUT_MS / 1000);
			return NULL;
		}
		struct pollfd pfd = {.fd = w.fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)left) <= 0)
			continue; /* EINTR (SIGTERM) or the time is up: the loop decides */
		if (w.len == w.cap) {
			w.cap = w.cap ? w.cap * 2 : 65536;
			w.buf = xrealloc(w.buf, w.cap);
		}
		ssize_t n = read(w.fd, w.buf + w.len, w.cap - w.len);
		if (n == 0)
			_exit(0); /* the daemon is gone */
		if (n > 0)
			w.len += (size_t)n;
	}
}

static void
drop_privileges(const char *user)
{
	if (geteuid() != 0 || user == NULL || user[0] == '\0')
		return;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		fatal("worker user '%s' does not exist", user);
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		fatal("cannot switch to user '%s': %s", user, strerror(errno));
	if (setuid(0) == 0)
		fatal("still able to regain root after dropping privileges");
}

static void
set_limits(long as_limit_mb)
{
	struct rlimit core = {0, 0};
	setrlimit(RLIMIT_CORE, &core);
#ifndef HOPPER_SAN /* the sanitizers reserve terabytes of address space */
	if (as_limit_mb > 0) {
		struct rlimit as = {(rlim_t)as_limit_mb << 20, (rlim_t)as_limit_mb << 20};
		setrlimit(RLIMIT_AS, &as);
	}
#else
	(void)as_limit_mb;
#endif
}

static void
say_hello(void)
{
	json_t *types = json_array();
	for (const struct handler_entry *h = handler_table; h->name != NULL; h++)
		json_array_append_new(types, json_string(h->name));
	send_json(FRAME_HELLO,
	          json_pack("{s:i,s:i,s:o}", "pid", (int)getpid(), "version", FRAME_PROTOCOL_VERSION, "types", types));
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"fd", required_argument, NULL, 'f'},
	                                     {"user", required_argument, NULL, 'u'},
	                                     {"as-limit-mb", required_argument, NULL, 'm'},
	                                     {NULL, 0, NULL, 0}};
	const char *user = NULL;
	long as_limit_mb = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f': w.fd = atoi(optarg); break;
		case 'u': user = optarg; break;
		case 'm': as_limit_mb = atol(optarg); break;
		default: fprintf(stderr, "usage: hopper-worker [--fd N] [--user NAME] [--as-limit-mb N]\n"); return 2;
		}
	}
	log_init("hopper-worker", LOG_LVL_INFO);
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		return 0; /* the daemon died before the death signal was armed */
	drop_privileges(user);
	set_limits(as_limit_mb);
	struct sigaction sa = {.sa_handler = on_term};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* a terminal's ^C goes to hopperd, which decides what workers do */

	say_hello();
	struct frame f;
	size_t consumed;
	while (!stop_requested && read_frame(&f, &consumed) == 0) {
		/* The frame leaves the buffer before the job runs: a workflow reads replies into it meanwhile. */
		enum frame_type type = f.type;
		char *payload = type == FRAME_JOB ? xstrndup(f.payload, f.len) : NULL;
		size_t plen = f.len;
		memmove(w.buf, w.buf + consumed, w.len - consumed);
		w.len -= consumed;
		if (type == FRAME_JOB)
			run_job(payload, plen);
		else
			log_warn("ignoring a %s frame from the daemon", frame_type_name(type));
		free(payload);
	}
	free(w.buf);
	return 0;
}

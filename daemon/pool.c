/*
 * pool: the worker processes. Each is a fork+exec of hopper-worker with its end of a socketpair on fd 3,
 * in its own process group, and no other fd but 0-2. The pool hands READY jobs to idle workers, reads their frames,
 * enforces timeouts (SIGTERM, then SIGKILL after kill_grace_s) through one deadline heap, replaces workers that die,
 * and retires them after worker_max_jobs jobs or past worker_max_rss_mb.
 *
 * An attempt that ends by a worker's death is decided only once the worker's exit status is in and its
 * socket has been drained, so a RESULT it managed to send is never mistaken for a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "hopperd.h"
#include "jsonx.h"
#include "log.h"
#include "xmalloc.h"

static void worker_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void worker_child_cb(struct ev_loop *loop, ev_child *w, int revents);

static double
job_deadline_key(const void *item)
{
	return ((const struct job *)item)->deadline;
}

static void
job_deadline_setpos(void *item, size_t pos)
{
	((struct job *)item)->heap_pos = pos;
}

void
pool_start(struct server *s)
{
	heap_init(&s->deadlines, job_deadline_key, job_deadline_setpos);
	pool_fill(s);
}

/*
 * Closes every fd from `from` up in the forked child: close_range(2) (Linux 5.9, glibc 2.34), else each fd
 * /proc/self/fd lists (a kernel without close_range), else as many as RLIMIT_NOFILE allows. The daemon's fds
 * are CLOEXEC anyway; this also catches any a library opened without it.
 */
static void
close_fds_from(int from)
{
	if (close_range((unsigned)from, ~0U, 0) == 0)
		return;
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		int self = dirfd(d), fds[256], n;
		do { /* collect, then close: closing while reading the directory could skip entries */
			n = 0;
			rewinddir(d);
			struct dirent *e;
			while ((e = readdir(d)) != NULL && n < (int)(sizeof(fds) / sizeof(fds[0]))) {
				int fd = atoi(e->d_name);
				if (fd >= from && fd != self)
					fds[n++] = fd;
			}
			for (int i = 0; i < n; i++)
				close(fds[i]);
		} while (n > 0);
		closedir(d);
		return;
	}
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = from; fd < (max > 0 ? max : 1024); fd++)
		close((int)fd);
}

static void
exec_worker(const struct config *cfg, int fd)
{
	/* The socket goes to fd 3 without CLOEXEC (dup2 clears it; if it already is 3, clear it here). */
	if (fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
		_exit(127);
	close_fds_from(4);
	setpgid(0, 0);
	char as_limit[32];
	snprintf(as_limit, sizeof(as_limit), "%d", cfg->worker_max_rss_mb * 4);
	const char *argv[] = {"hopper-worker", "--fd",           "3", "--as-limit-mb", as_limit,
	                      "--user",        cfg->worker_user, NULL};
	/* The workflow engine's limits (worker/workflow/wf_config.c reads them). */
	char resp[32], out[32];
	snprintf(resp, sizeof(resp), "%d", cfg->workflow_max_response_bytes);
	snprintf(out, sizeof(out), "%d", cfg->workflow_max_output_bytes);
	setenv("HOPPER_WF_EXEC_ENABLED", cfg->workflow_exec_enabled ? "1" : "0", 1);
	setenv("HOPPER_WF_EXEC_PROGRAMS", cfg->workflow_exec_programs, 1);
	setenv("HOPPER_WF_HTTP_SCHEMES", cfg->workflow_http_schemes, 1);
	setenv("HOPPER_WF_HTTP_HOSTS", cfg->workflow_http_hosts, 1);
	setenv("HOPPER_WF_ENV_ALLOW", cfg->workflow_env_allow, 1);
	setenv("HOPPER_WF_EXEC_ENV_ALLOW", cfg->workflow_exec_env_allow, 1);
	setenv("HOPPER_WF_MASK_NAMES", cfg->workflow_mask_names, 1);
	setenv("HOPPER_WF_MAX_RESPONSE", resp, 1);
	setenv("HOPPER_WF_MAX_OUTPUT", out, 1);
	/* The daemon's own TCP addresses (Redis, control): http steps never reach them unless workflow_http_hosts
	 * names them with their port (worker/workflow/wf_http.c). */
	char deny[600];
	if (cfg->nsentinels > 0) /* the Sentinels; the master they name is not known here (README) */
		snprintf(deny, sizeof(deny), "%.300s,%.250s", cfg->redis_sentinels, cfg->ctl_tcp);
	else if (cfg->redis_unix[0] != '\0')
		snprintf(deny, sizeof(deny), "%.500s", cfg->ctl_tcp);
	else
		snprintf(deny, sizeof(deny), "%.300s:%d,%.250s", cfg->redis_host, cfg->redis_port, cfg->ctl_tcp);
	setenv("HOPPER_WF_DENY_ADDRS", deny, 1);
	/* the audio.analyze path policy travels in the environment (worker/handlers.c reads it) */
	char max_bytes[32];
	snprintf(max_bytes, sizeof(max_bytes), "%.0f", cfg->audio_max_bytes);
	setenv("HOPPER_AUDIO_ROOTS", cfg->audio_roots, 1);
	setenv("HOPPER_AUDIO_MAX_BYTES", max_bytes, 1);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(cfg->worker_path, (char *const *)argv);
	fprintf(stderr, "hopperd: cannot run worker %s: %s\n", cfg->worker_path, strerror(errno));
	_exit(127);
}

/* Starts one worker. It is owned by s->workers (freed by pool_reap once dead); NULL if fork failed. */
static struct worker *
worker_spawn(struct server *s)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0)
		exec_worker(&s->cfg, sv[1]);
	setpgid(pid, pid); /* also in the child: whichever runs first, the group exists before any kill */
	close(sv[1]);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	struct worker *w = xcalloc(1, sizeof(*w));
	w->pid = pid;
	w->fd = sv[0];
	w->phase = WORKER_STARTING;
	ev_io_init(&w->rio, worker_read_cb, w->fd, EV_READ);
	w->rio.data = s;
	ev_io_start(s->loop, &w->rio);
	ev_child_init(&w->child, worker_child_cb, pid, 0);
	w->child.data = s;
	ev_child_start(s->loop, &w->child);
	w->next = s->workers;
	s->workers = w;
	s->nworkers++;
	s->metrics.worker_spawns++;
	log_debug("worker %d started", (int)pid);
	return w;
}

void
pool_fill(struct server *s)
{
	if (s->shutting_down || clock_mono() < s->spawn_after)
		return;
	while (s->nworkers < s->cfg.workers)
		if (worker_spawn(s) == NULL)
			break;
}

int
pool_idle(const struct server *s)
{
	int n = 0;
	for (const struct worker *w = s->workers; w != NULL; w = w->next)
		if (w->phase == WORKER_IDLE || w->phase == WORKER_STARTING)
			n++;
	return n;
}

/* Stops reading and closes the worker's socket; the worker exits on EOF. It leaves the live count. */
static void
worker_retire(struct server *s, struct worker *w)
{
	if (w->phase != WORKER_EXITING)
		s->nworkers--;
	w->phase = WORKER_EXITING;
	if (w->fd >= 0) {
		ev_io_stop(s->loop, &w->rio);
		close(w->fd);
		w->fd = -1;
	}
}

/*
 * A JOB frame can be larger than the socket buffer (args up to max_message_bytes). The worker is idle and
 * reading, so the rest drains at once; the wait is bounded so a wedged worker cannot stall the loop.
 */
#define SEND_FRAME_WAIT_MS 2000

static int
send_frame(struct worker *w, enum frame_type type, const char *payload, size_t len)
{
	unsigned char hdr[FRAME_HEADER_LEN];
	if (frame_header(hdr, type, len) < 0)
		return -1;
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	size_t left = sizeof(hdr) + len;
	double give_up = clock_monotonic_ms() + SEND_FRAME_WAIT_MS;
	while (left > 0) {
		ssize_t n = writev(w->fd, iov, 2);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (n < 0) {
			struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
			double wait = give_up - clock_monotonic_ms();
			if (wait <= 0 || poll(&pfd, 1, (int)wait) <= 0)
				return -1;
			continue;
		}
		left -= (size_t)n;
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + take;
			iov[i].iov_len -= take;
			n -= (ssize_t)take;
		}
	}
	return 0;
}

static void
deadline_set(struct server *s, struct job *j, double at)
{
	j->deadline = at;
	if (j->heap_pos == HEAP_NOT_IN)
		heap_insert(&s->deadlines, j);
	else
		heap_update(&s->deadlines, j->heap_pos);
}

int
pool_send(struct worker *w, enum frame_type type, const char *payload, size_t len)
{
	return send_frame(w, type, payload, len);
}

static int
dispatch_one(struct server *s, struct worker *w, struct job *j)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:O,s:i,s:f}", "id", j->spec.id, "type", j->spec.type, "queue", j->queue,
	                      "args", j->wf_args ? j->wf_args : j->spec.args, "attempt", j->attempt, "timeout_s",
	                      j->spec.timeout_s);
	if (j->wf_resume != NULL)
		json_object_set(o, "resume", j->wf_resume);
	char *text = jsonx_dump(o);
	json_decref(o);
	int rc = send_frame(w, FRAME_JOB, text, strlen(text));
	free(text);
	if (rc < 0)
		return -1;
	w->phase = WORKER_BUSY;
	w->job = j;
	j->worker = w;
	j->phase = PHASE_RUNNING;
	j->started_at = clock_now(); /* for the log and Redis; the timeout runs on the monotonic clock */
	j->worker_pid = w->pid;
	j->heap_pos = HEAP_NOT_IN;
	deadline_set(s, j, clock_mono() + j->spec.timeout_s);
	return 0;
}

void
pool_dispatch(struct server *s)
{
	for (struct worker *w = s->workers; w != NULL && s->ready_head != NULL; w = w->next) {
		if (w->phase != WORKER_IDLE)
			continue;
		struct job *j = job_ready_pop(s);
		if (dispatch_one(s, w, j) < 0) {
			/* Part of a frame may have gone out: that worker's stream is unusable. */
			log_warn("worker %d: cannot send it a job; replacing it", (int)w->pid);
			job_ready_push(s, j);
			kill(w->pid, SIGKILL);
			worker_retire(s, w);
			continue;
		}
		s->nfetched--;
		jobs_started(s, j);
	}
}

static long
worker_rss_mb(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	long size = 0, resident = 0;
	int n = fscanf(f, "%ld %ld", &size, &resident);
	fclose(f);
	return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024 : 0;
}

/* The worker is done with its job (it sent RESULT): the job moves on, the worker serves the next or retires. */
static void
worker_job_ended(struct server *s, struct worker *w)
{
	struct job *j = w->job;
	w->job = NULL;
	j->worker = NULL;
	if (j->heap_pos != HEAP_NOT_IN)
		heap_remove(&s->deadlines, j->heap_pos);
	jobs_attempt_done(s, j);
	w->jobs_done++;
	if (w->phase == WORKER_EXITING)
		return;
	/* Reading /proc costs three syscalls: at most once a second per worker, not once per job. */
	long rss = 0;
	double now = clock_mono();
	if (now - w->rss_checked_at >= 1.0) {
		w->rss_checked_at = now;
		rss = worker_rss_mb(w->pid);
	}
	const char *why = s->shutting_down                         ? "shutting down"
	                  : w->recycle                             ? "it was signalled"
	                  : w->jobs_done >= s->cfg.worker_max_jobs ? "worker_max_jobs reached"
	                  : rss > s->cfg.worker_max_rss_mb         ? "worker_max_rss_mb passed"
	                                                           : NULL;
	if (why != NULL) {
		log_debug("worker %d retires after %d jobs: %s", (int)w->pid, w->jobs_done, why);
		worker_retire(s, w);
		return;
	}
	w->phase = WORKER_IDLE;
}

static void
take_result(struct job *j, json_t *o)
{
	int ok = 0, retry = 1;
	const char *err = NULL;
	char why[256];
	jsonx_bool(o, "ok", &ok, why, sizeof(why));
	jsonx_bool(o, "retry", &retry, why, sizeof(why));
	jsonx_string(o, "error", 64 * 1024, &err, why, sizeof(why));
	j->have_result = 1;
	j->ok = ok;
	j->retryable = retry;
	free(j->error);
	free(j->result);
	j->error = ok ? NULL : xstrdup(err ? err : "the job failed without a message");
	json_t *res = json_object_get(o, "result");
	j->result = ok ? jsonx_dump(res ? res : json_null()) : NULL;
	json_t *park = json_object_get(o, "park");
	if (park != NULL && !ok)
		jobs_park_take(j, park); /* a durable wait instead of a result (jobs_park.c) */
}

/* Handles one frame. Returns -1 if the worker broke the protocol. */
static int
worker_frame(struct server *s, struct worker *w, const struct frame *f)
{
	if (f->type == FRAME_HELLO) {
		if (w->phase == WORKER_STARTING)
			w->phase = WORKER_IDLE;
		return 0;
	}
	if (f->type == FRAME_JOB)
		return -1;
	if (w->job == NULL) /* progress from a job that already timed out and was re-assigned: harmless */
		return 0;
	json_error_t jerr;
	json_t *o = json_loadb(f->payload, f->len, 0, &jerr);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	struct job *j = w->job;
	char why[128];
	const char *stage = NULL, *message = NULL, *level = "info", *line = "";
	long long progress = 0;
	switch (f->type) {
	case FRAME_PROGRESS:
		jsonx_int(o, "progress", 0, 100, &progress, why, sizeof(why));
		jsonx_string(o, "stage", 256, &stage, why, sizeof(why));
		jsonx_string(o, "message", 4096, &message, why, sizeof(why));
		jobs_progress(s, j, (int)progress, stage, message);
		break;
	case FRAME_LOG:
		jsonx_string(o, "level", 16, &level, why, sizeof(why));
		jsonx_string(o, "line", 64 * 1024, &line, why, sizeof(why));
		jobs_log(s, j, level, line);
		break;
	case FRAME_RESULT:
		take_result(j, o);
		worker_job_ended(s, w);
		break;
	default:
		if (workflows_frame(s, w, f->type, o) < 0) {
			json_decref(o);
			return -1; /* a REPLY, which only the daemon sends */
		}
		break;
	}
	json_decref(o);
	return 0;
}

/* Reads what the worker sent and handles every whole frame. Returns -1 on EOF or a broken worker. */
static int
worker_drain(struct server *s, struct worker *w)
{
	for (;;) {
		if (w->rlen == w->rcap) {
			if (w->rcap >= WORKER_RBUF_MAX)
				return -1;
			w->rcap = w->rcap ? w->rcap * 2 : 16384;
			if (w->rcap > WORKER_RBUF_MAX)
				w->rcap = WORKER_RBUF_MAX;
			w->rbuf = xrealloc(w->rbuf, w->rcap);
		}
		ssize_t n = read(w->fd, w->rbuf + w->rlen, w->rcap - w->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		w->rlen += (size_t)n;
		size_t off = 0, used;
		struct frame f;
		const char *errstr = "";
		enum frame_status st;
		while ((st = frame_decode(w->rbuf + off, w->rlen - off, &f, &used, &errstr)) == FRAME_OK) {
			if (worker_frame(s, w, &f) < 0) {
				errstr = "malformed frame";
				st = FRAME_ERROR;
				break;
			}
			off += used;
			if (w->fd < 0) /* retired while handling the frame */
				return 0;
		}
		if (st == FRAME_ERROR) {
			log_warn("worker %d: %s %s; killing it", (int)w->pid, errstr, frame_type_name(f.type));
			return -1;
		}
		memmove(w->rbuf, w->rbuf + off, w->rlen - off);
		w->rlen -= off;
	}
}

static void
worker_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct server *s = io->data;
	struct worker *w = (struct worker *)((char *)io - offsetof(struct worker, rio));
	if (worker_drain(s, w) < 0) {
		kill(w->pid, SIGKILL);
		worker_retire(s, w); /* the attempt ends when its exit status arrives */
	}
	pool_dispatch(s);
}

static void
describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
		         WTERMSIG(status) == SIGKILL ? ", possibly out of memory" : "");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void
worker_child_cb(struct ev_loop *loop, ev_child *cw, int revents)
{
	struct server *s = cw->data;
	struct worker *w = (struct worker *)((char *)cw - offsetof(struct worker, child));
	ev_child_stop(loop, cw);
	w->exited = 1;
	w->wstatus = cw->rstatus;
	if (w->fd >= 0)
		worker_drain(s, w); /* frames it wrote before dying */
	if (w->phase == WORKER_STARTING) {
		/* It never said hello (bad worker_path, missing library, a user that cannot be switched to):
		 * retrying at once would only fork in a loop. The tick tries again in a second. */
		char how[160];
		describe_exit(w->wstatus, how, sizeof(how));
		log_error("worker %d %s before it was ready; retrying in 1 s", (int)w->pid, how);
		s->spawn_after = clock_mono() + 1.0;
	} else if (w->phase != WORKER_EXITING && w->job == NULL)
		log_warn("worker %d died while idle", (int)w->pid);
	worker_retire(s, w);
	if (w->job != NULL) {
		struct job *j = w->job;
		char how[160];
		describe_exit(w->wstatus, how, sizeof(how));
		if (!j->have_result) {
			j->have_result = 1;
			j->ok = 0;
			j->retryable = 1;
			free(j->error);
			j->error = xasprintf("worker %d crashed: %s", (int)w->pid, how);
		}
		worker_job_ended(s, w);
	}
	w->dead = 1;
	log_debug("worker %d gone (status %d)", (int)w->pid, w->wstatus);
	if (!s->shutting_down)
		pool_fill(s);
	pool_dispatch(s);
	server_maybe_exit(s);
}

void
pool_stop_job(struct server *s, struct job *j, int sig)
{
	if (j->worker == NULL)
		return;
	j->worker->recycle = 1;
	/* The worker leads its own process group: whatever the job started goes too. */
	kill(-j->worker->pid, sig);
}

void
pool_cancel_job(struct server *s, struct job *j)
{
	if (j->worker == NULL || j->term_sent)
		return;
	j->term_sent = 1;
	log_info("job %s: cancelled; SIGTERM to worker %d", j->spec.id, (int)j->worker->pid);
	pool_stop_job(s, j, SIGTERM);
	deadline_set(s, j, clock_mono() + s->cfg.kill_grace_s);
}

void
pool_check_deadlines(struct server *s)
{
	double now = clock_mono();
	struct job *j;
	while ((j = heap_peek(&s->deadlines)) != NULL && j->deadline <= now) {
		if (!j->term_sent) {
			j->term_sent = 1;
			j->timed_out = 1;
			log_info("job %s: timed out after %g s; SIGTERM to worker %d", j->spec.id, j->spec.timeout_s,
			         j->worker ? (int)j->worker->pid : -1);
			pool_stop_job(s, j, SIGTERM);
			deadline_set(s, j, now + s->cfg.kill_grace_s);
		} else {
			heap_remove(&s->deadlines, j->heap_pos);
			log_info("job %s: still running after the grace period; SIGKILL", j->spec.id);
			/* (a cancelled job's grace ends here too) */
			pool_stop_job(s, j, SIGKILL);
		}
	}
}

/* When the deadline timer must next fire (monotonic time), or 0 if no job has one. */
double
pool_next_deadline(const struct server *s)
{
	const struct job *j = heap_peek(&s->deadlines);
	return j ? j->deadline : 0;
}

void
pool_shutdown(struct server *s)
{
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (w->job == NULL && w->fd >= 0)
			worker_retire(s, w);
	}
}

void
pool_reap(struct server *s)
{
	struct worker **pp = &s->workers;
	while (*pp != NULL) {
		struct worker *w = *pp;
		if (w->dead) {
			*pp = w->next;
			free(w->rbuf);
			free(w);
		} else
			pp = &w->next;
	}
}

int
pool_live(const struct server *s)
{
	int n = 0;
	for (const struct worker *w = s->workers; w != NULL; w = w->next)
		if (!w->dead)
			n++;
	return n;
}

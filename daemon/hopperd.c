/*
 * hopperd: start-up, the event loop's fixed hooks, signals and shutdown.
 *
 * Signals only wake the loop (ev_signal). The prepare hook runs once per loop turn before the loop sleeps:
 * it group-commits the turn's SQLite writes, frees jobs and workers marked dead, and re-arms the one
 * deadline timer. Every deadline and interval here is on the monotonic clock (clock_mono), so a step of the
 * wall clock moves none of them; only the times written down (rows, Redis) are wall-clock.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "hopperd.h"
#include "log.h"
#include "redis.h"
#include "rfunc.h"
#include "store.h"
#include "xmalloc.h"

#define DEFAULT_CONFIG "/etc/hopper/hopperd.conf"
/* After shutdown's work is done, Redis writes still pending get this long before hopperd exits anyway:
 * the jobs stay in this node's inflight list, and the next start returns them to their queues. */
#define SHUTDOWN_REDIS_WAIT_S 5.0
#define PRUNE_EVERY_S         3600.0
/* The execution log commits at most this often: one transaction per loop turn would mean thousands of
 * fsync-free but still lock-and-write commits a second under load; this bounds them to 100/s while a
 * crash of hopperd can lose at most the last 10 ms of log rows (Redis holds the jobs' truth). */
#define STORE_COMMIT_EVERY_S 0.010
/* Finishes wait for their rows' commit; that commit is grouped too: at most one per this interval (or
 * sooner once FINISH_COMMIT_MAX finishes wait), so a 1-worker daemon finishing a job every 100 us does not
 * pay a SQLite transaction (locks, WAL frames: ~9 pwrite + 5 fcntl) per job. It delays a finish's Redis
 * write by at most this long; the worker meanwhile runs its next job. */
#define FINISH_COMMIT_EVERY_S 0.002
#define FINISH_COMMIT_MAX     256

/* systemd's notify protocol, without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));
	close(fd);
}

void
server_maybe_exit(struct server *s)
{
	if (!s->shutting_down)
		return;
	int pending = 0;
	for (struct job *j = s->jobs; j != NULL; j = j->next)
		if (!j->dead)
			pending++;
	if (pending == 0 && pool_live(s) == 0) {
		log_info("shutdown complete");
		ev_break(s->loop, EVBREAK_ALL);
		return;
	}
	if (s->nrunning == 0 && pool_live(s) == 0 && clock_mono() > s->shutdown_deadline + SHUTDOWN_REDIS_WAIT_S) {
		log_warn("exiting with %d jobs not written back (Redis unreachable); they stay in this node's inflight "
		         "list and return to their queues when it starts again",
		         pending);
		ev_break(s->loop, EVBREAK_ALL);
	}
}

static void
begin_shutdown(struct server *s, const char *why)
{
	if (s->shutting_down)
		return;
	log_info("%s: stop fetching; %d running jobs get %g s to finish", why, s->nrunning, s->cfg.shutdown_grace_s);
	sd_notify_msg("STOPPING=1");
	s->shutting_down = 1;
	s->shutdown_deadline = clock_mono() + s->cfg.shutdown_grace_s;
	jobs_requeue_unstarted(s);
	pool_shutdown(s);
	celery_events_stop(s); /* worker-offline */
	server_maybe_exit(s);
}

static int load_config(struct config *c, int argc, char **argv, int *check, char **cause);
static void apply_job_defaults(struct server *s);

/*
 * SIGHUP: reads the config file and flags again. If they are valid, the options that can change while
 * jobs run take effect (log level, job defaults, limits, timeouts, retention); the others (Redis address,
 * node id, queues, workers, paths) need a restart and are left as they were, with a warning. If the new
 * configuration is invalid, the old one stays whole.
 */
static void
reload_config(struct server *s)
{
	struct config next;
	int check = 0;
	char *cause = NULL;
	if (load_config(&next, s->argc, s->argv, &check, &cause) < 0) {
		log_error("SIGHUP: keeping the running configuration: %s", cause);
		free(cause);
		config_free(&next);
		return;
	}
	struct config *c = &s->cfg;
	char restart_only[512];
	if (config_reload(c, &next, restart_only, sizeof(restart_only)) > 0)
		log_warn("SIGHUP: %s change only on restart; keeping the running values", restart_only);
	enum log_level lvl = LOG_LVL_INFO;
	log_level_parse(c->log_level, &lvl);
	log_init("hopperd", lvl);
	apply_job_defaults(s);
	config_free(&next);
	log_info("SIGHUP: configuration reloaded from %s", c->path ? c->path : "flags");
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *s = w->data;
	if (w->signum == SIGHUP) {
		reload_config(s);
		return;
	}
	if (s->shutting_down && w->signum == SIGINT) {
		log_warn("second interrupt: stopping running jobs now");
		s->shutdown_deadline = clock_mono();
		jobs_stop_running(s);
		return;
	}
	begin_shutdown(s, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
rearm_deadline_timer(struct server *s)
{
	double next = pool_next_deadline(s);
	if (s->shutting_down && s->nrunning > 0 && (next == 0 || s->shutdown_deadline < next))
		next = s->shutdown_deadline;
	ev_timer_stop(s->loop, &s->deadline_timer);
	if (next == 0)
		return;
	double in = next - clock_mono();
	ev_timer_set(&s->deadline_timer, in > 0 ? in : 0, 0);
	ev_timer_start(s->loop, &s->deadline_timer);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	pool_check_deadlines(s);
	if (s->shutting_down && s->nrunning > 0 && clock_mono() >= s->shutdown_deadline) {
		log_warn("shutdown grace over: stopping %d running jobs; they go back to their queues", s->nrunning);
		jobs_stop_running(s);
	}
}

static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct server *s = w->data;
	/* A few turns' batches in flight (redis_can_flush): while they are out, the next grow (fast jobs skip
	 * "running").
	 * Attempt rows are committed before their finishes leave (grouped: FINISH_COMMIT_EVERY_S): the
	 * execution log hears an attempt's end before Redis does (a busy store keeps the finishes for the next
	 * turn; a failing one lets them go: Redis stays the truth). */
	if (redis_can_flush(s->redis)) {
		if (s->nawait_commit > 0) {
			double now = clock_mono();
			if (now - s->last_commit >= FINISH_COMMIT_EVERY_S || s->nawait_commit >= FINISH_COMMIT_MAX ||
			    s->shutting_down) {
				if (store_flush(s->store) != 1)
					jobs_release_finishes(s);
				s->last_commit = now;
			} else {
				/* (The timer may be armed for the plain rows' longer interval: shortened.) */
				double in = FINISH_COMMIT_EVERY_S - (now - s->last_commit);
				if (!ev_is_active(&s->commit_timer) ||
				    ev_timer_remaining(loop, &s->commit_timer) > in) {
					ev_timer_stop(loop, &s->commit_timer);
					ev_timer_set(&s->commit_timer, in, 0);
					ev_timer_start(loop, &s->commit_timer);
				}
			}
		}
		jobs_flush_runs(s);
		fetch_flush(s);
		redis_flush(s->redis);
	}
	if (store_pending(s->store)) {
		double now = clock_mono();
		if (now - s->last_commit >= STORE_COMMIT_EVERY_S || s->shutting_down) {
			store_flush(s->store);
			s->last_commit = now;
		} else if (!ev_is_active(&s->commit_timer)) {
			ev_timer_set(&s->commit_timer, STORE_COMMIT_EVERY_S, 0);
			ev_timer_start(loop, &s->commit_timer);
		}
	}
	jobs_free_dead(s);
	pool_reap(s);
	ctl_reap(s);
	rearm_deadline_timer(s);
}

/* Wakes the loop so the prepare hook commits what an idle turn left pending. */
static void
commit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/*
 * One bounded step of an execution-log prune pass (store_prune_step deletes at most log_prune_chunk rows in a
 * transaction of its own), so the loop serves jobs between steps however large the log. Steps run on idle
 * turns (ev_idle) and one per tick, so a busy loop still makes progress. A locked or failing database ends
 * the idle steps until the next tick.
 */
static void
prune_step(struct server *s)
{
	int n = store_prune_step(s->store, s->prune_before, s->cfg.log_prune_chunk);
	if (n > 0) {
		s->pruned += n;
		return;
	}
	ev_idle_stop(s->loop, &s->prune_idle);
	if (n < 0)
		return;
	s->pruning = 0;
	if (s->pruned > 0)
		log_info("pruned %lld execution-log rows older than %d days", s->pruned, s->cfg.log_retention_days);
}

static void
prune_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	prune_step(w->data);
}

/* Starts a pass every PRUNE_EVERY_S (the first at start-up), and keeps one under way moving. */
static void
prune_tick(struct server *s)
{
	double mono = clock_mono();
	if (!s->pruning && mono >= s->next_prune) {
		s->next_prune = mono + PRUNE_EVERY_S;
		s->pruning = 1;
		s->pruned = 0;
		s->prune_before = clock_now() - s->cfg.log_retention_days * 86400.0;
	}
	if (!s->pruning)
		return;
	prune_step(s);
	if (s->pruning && !ev_is_active(&s->prune_idle))
		ev_idle_start(s->loop, &s->prune_idle);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	redis_tick(s->redis);
	node_tick(s);
	fetch_unhoard(s);
	ctl_tick(s);
	shared_tick(s);
	pool_fill(s);
	pool_dispatch(s);
	sd_notify_msg("WATCHDOG=1");
	prune_tick(s);
	server_maybe_exit(s);
}

static void
promote_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	node_promote(w->data);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: hopperd [-c FILE] [-n] [-V] [--OPTION=VALUE ...]\n"
	             "  -c, --config FILE          config file (default " DEFAULT_CONFIG ", if it exists)\n"
	             "  -n, --check-config         check the configuration and exit\n"
	             "  -V, --version              print the version and exit\n"
	             "  --functions                print the table of Redis functions (name, keys, args, flags)\n"
	             "  --token-create NAME --token-scopes LIST [--token-owner OWNER]\n"
	             "                             store a control-socket token in the deployment's shared set\n"
	             "                             (Redis) and db_path's cache, print it once, exit\n"
	             "  --migrate-shared [--force] copy db_path's tokens and stored workflows into the shared\n"
	             "                             set in Redis, exit; refuses (for each) if Redis holds some\n"
	             "                             already, unless --force\n"
	             "  --print-pubkey             print the TCP handshake's public key (ctl_key; created if\n"
	             "                             absent) for clients to pin, exit\n"
	             "Every config file option is also a flag (it wins over the file):\n");
	config_usage(out);
}

enum {
	OPT_CONFIG = 'c',
	OPT_CHECK = 'n',
	OPT_VERSION = 'V',
	OPT_HELP = 'h',
	OPT_TOKEN_CREATE = 900,
	OPT_TOKEN_SCOPES,
	OPT_TOKEN_OWNER,
	OPT_FUNCTIONS,
	OPT_PRINT_PUBKEY,
	OPT_MIGRATE_SHARED,
	OPT_FORCE,
	OPT_BASE = 1000
};

/* Builds the getopt table: the fixed flags plus every config option, with dashes and with underscores.
 * Caller frees the table; its names point into `names` and the option table. */
static struct option *
build_longopts(char names[][64])
{
	size_t n = config_count();
	struct option *lo = xcalloc(2 * n + 10, sizeof(*lo));
	size_t k = 0;
	lo[k++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lo[k++] = (struct option){"token-create", required_argument, NULL, OPT_TOKEN_CREATE};
	lo[k++] = (struct option){"token-scopes", required_argument, NULL, OPT_TOKEN_SCOPES};
	lo[k++] = (struct option){"token-owner", required_argument, NULL, OPT_TOKEN_OWNER};
	lo[k++] = (struct option){"print-pubkey", no_argument, NULL, OPT_PRINT_PUBKEY};
	lo[k++] = (struct option){"migrate-shared", no_argument, NULL, OPT_MIGRATE_SHARED};
	lo[k++] = (struct option){"force", no_argument, NULL, OPT_FORCE};
	lo[k++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK};
	lo[k++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	lo[k++] = (struct option){"functions", no_argument, NULL, OPT_FUNCTIONS};
	lo[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], 64, "%s", config_name(i));
		for (char *p = names[i]; *p; p++)
			if (*p == '_')
				*p = '-';
		lo[k++] = (struct option){config_name(i), required_argument, NULL, OPT_BASE + (int)i};
		if (strchr(config_name(i), '_') != NULL)
			lo[k++] = (struct option){names[i], required_argument, NULL, OPT_BASE + (int)i};
	}
	return lo;
}

/* Fills in what "0" or "" means for the derived options. */
static int
config_derive(struct config *c, char **cause)
{
	if (c->node_id[0] == '\0') {
		char host[256] = "localhost";
		gethostname(host, sizeof(host) - 1);
		for (char *p = host; *p; p++)
			if (!job_name_valid((char[]){*p, 0}, 1))
				*p = '-';
		free(c->node_id);
		c->node_id = xstrdup(host);
	}
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n > 0 ? (int)n : 1;
	}
	if (c->worker_path[0] == '\0') {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 32);
		free(c->worker_path);
		c->worker_path = NULL;
		if (n > 0) {
			self[n] = '\0';
			char *slash = strrchr(self, '/');
			strcpy(slash + 1, "hopper-worker");
			if (access(self, X_OK) == 0)
				c->worker_path = xstrdup(self);
		}
		if (c->worker_path == NULL)
			c->worker_path = xstrdup(HOPPER_LIBEXEC "/hopper-worker");
	}
	if (access(c->worker_path, X_OK) != 0) {
		*cause = xasprintf("worker_path: %s: %s", c->worker_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Loads the file, then applies the flags over it. Returns 0, or -1 with *cause; sets *check for -n. */
static int
load_config(struct config *c, int argc, char **argv, int *check, char **cause)
{
	char names[128][64];
	if (config_count() > 128)
		fatal("too many config options");
	struct option *lo = build_longopts(names);
	const char *path = NULL;
	int opt, rc = 0;
	config_defaults(c);
	opterr = 1;
	optind = 0; /* glibc: rescan from the start (SIGHUP parses the same argv again) */
	while ((opt = getopt_long(argc, argv, "c:nVh", lo, NULL)) != -1) {
		if (opt == OPT_CONFIG)
			path = optarg;
		else if (opt == OPT_CHECK)
			*check = 1;
		else if (opt == OPT_VERSION) {
			printf("hopperd %s\n", HOPPER_VERSION);
			exit(0);
		} else if (opt == OPT_FUNCTIONS) {
			rfunc_print();
			exit(0);
		} else if (opt == OPT_HELP) {
			usage(stdout);
			exit(0);
		} else if (opt == OPT_TOKEN_CREATE)
			c->token_create = optarg;
		else if (opt == OPT_TOKEN_SCOPES)
			c->token_scopes = optarg;
		else if (opt == OPT_TOKEN_OWNER)
			c->token_owner = optarg;
		else if (opt == OPT_PRINT_PUBKEY)
			c->print_pubkey = 1;
		else if (opt == OPT_MIGRATE_SHARED)
			c->migrate_shared |= 1;
		else if (opt == OPT_FORCE)
			c->migrate_shared |= 2;
		else if (opt == '?') {
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hopperd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (path != NULL || access(DEFAULT_CONFIG, F_OK) == 0)
		rc = config_load_file(c, path ? path : DEFAULT_CONFIG, cause);
	optind = 0;
	while (rc == 0 && (opt = getopt_long(argc, argv, "c:nVh", lo, NULL)) != -1)
		if (opt >= OPT_BASE)
			rc = config_set(c, config_name((size_t)(opt - OPT_BASE)), optarg, cause);
	free(lo);
	if (rc == 0)
		rc = config_finish(c, cause);
	if (rc == 0)
		rc = config_derive(c, cause);
	return rc;
}

static void
apply_job_defaults(struct server *s)
{
	s->defaults = (struct job_defaults){.max_bytes = (size_t)s->cfg.max_message_bytes,
	                                    .max_attempts = s->cfg.max_attempts,
	                                    .timeout_s = s->cfg.timeout_s,
	                                    .backoff_base_s = s->cfg.backoff_base_s,
	                                    .backoff_max_s = s->cfg.backoff_max_s,
	                                    .rl = &s->cfg.rl};
}

static void
server_init(struct server *s)
{
	s->loop = EV_DEFAULT;
	s->started_at = clock_now();
	gethostname(s->host, sizeof(s->host) - 1);
	apply_job_defaults(s);
	s->next_prune = 0; /* the first pass at start-up */
	ev_prepare_init(&s->prepare, prepare_cb);
	ev_idle_init(&s->prune_idle, prune_idle_cb);
	ev_timer_init(&s->deadline_timer, deadline_cb, 0, 0);
	ev_timer_init(&s->commit_timer, commit_cb, 0, 0);
	ev_timer_init(&s->tick, tick_cb, 0.2, s->cfg.heartbeat_s < 1 ? s->cfg.heartbeat_s : 1);
	ev_timer_init(&s->promote_timer, promote_cb, 0.05, s->cfg.poll_ms / 1000.0);
	ev_signal_init(&s->sigterm, signal_cb, SIGTERM);
	ev_signal_init(&s->sigint, signal_cb, SIGINT);
	ev_signal_init(&s->sighup, signal_cb, SIGHUP);
	ev_watcher *ws[] = {(ev_watcher *)&s->prepare,       (ev_watcher *)&s->deadline_timer, (ev_watcher *)&s->tick,
	                    (ev_watcher *)&s->promote_timer, (ev_watcher *)&s->sigterm,        (ev_watcher *)&s->sigint,
	                    (ev_watcher *)&s->sighup,        (ev_watcher *)&s->prune_idle};
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		ws[i]->data = s;
	ev_prepare_start(s->loop, &s->prepare);
	ev_timer_start(s->loop, &s->tick);
	ev_timer_start(s->loop, &s->promote_timer);
	ev_signal_start(s->loop, &s->sigterm);
	ev_signal_start(s->loop, &s->sigint);
	ev_signal_start(s->loop, &s->sighup);
}

int
main(int argc, char **argv)
{
	/* The one struct server; everything mutable hangs off it. */
	static struct server server;
	struct server *s = &server;
	int check = 0;
	char *cause = NULL;
	s->argc = argc;
	s->argv = argv;
	log_init("hopperd", LOG_LVL_INFO);
	if (load_config(&s->cfg, argc, argv, &check, &cause) < 0) {
		fprintf(stderr, "hopperd: %s\n", cause);
		free(cause);
		config_free(&s->cfg);
		return 1;
	}
	if (check) {
		printf("hopperd: configuration OK (%s)\n", s->cfg.path ? s->cfg.path : "defaults and flags");
		config_free(&s->cfg);
		return 0;
	}
	enum log_level lvl = LOG_LVL_INFO;
	log_level_parse(s->cfg.log_level, &lvl);
	log_init("hopperd", lvl);
	signal(SIGPIPE, SIG_IGN);
	if (s->cfg.print_pubkey) {
		int rc = ctl_key_print(&s->cfg);
		config_free(&s->cfg);
		return rc;
	}

	s->store = store_open(s->cfg.db_path, &cause);
	if (s->store == NULL)
		fatal("execution log: %s", cause);
	if (s->cfg.migrate_shared == 2) {
		fprintf(stderr, "hopperd: --force belongs with --migrate-shared\n");
		return 2;
	}
	if (s->cfg.migrate_shared) {
		int rc = shared_migrate(s, s->cfg.migrate_shared & 2);
		store_close(s->store);
		config_free(&s->cfg);
		return rc;
	}
	if (s->cfg.token_create != NULL) { /* the offline bootstrap of the first admin token */
		int rc = shared_token_create_offline(s, s->cfg.token_create,
		                                     s->cfg.token_scopes ? s->cfg.token_scopes : "admin",
		                                     s->cfg.token_owner);
		store_close(s->store);
		config_free(&s->cfg);
		return rc;
	}
	/* This log is this daemon's: rows still "running" are an earlier, killed run's attempts. */
	store_reap_running(s->store, clock_now());
	server_init(s);
	shared_start(s);
	if (ctl_start(s, &cause) != 0)
		fatal("control socket: %s", cause);
	s->redis = redis_new(s);
	jobs_start(s);
	celery_start(s);
	sched_start(s);
	pool_start(s);
	redis_start(s->redis);
	log_info("hopperd %s node %s: %d workers, queues %s (%s), redis %s", HOPPER_VERSION, s->cfg.node_id,
	         s->cfg.workers, s->cfg.queues_spec, s->cfg.queue_mode,
	         s->cfg.nsentinels      ? "via sentinels"
	         : s->cfg.redis_unix[0] ? s->cfg.redis_unix
	                                : s->cfg.redis_host);
	sd_notify_msg("READY=1");
	ev_run(s->loop, 0);

	/* Whatever is still held (Redis was unreachable at the end) stays in the inflight lists in Redis, from
	 * where the next start returns it; here it is only memory. */
	sched_stop(s);
	redis_free(s->redis); /* pending callbacks run now, with no reply */
	celery_free(s);
	s->redis = NULL;
	ctl_free(s); /* after Redis: no callback points at a connection any more */
	shared_free(s);
	for (struct job *j = s->jobs; j != NULL; j = j->next) {
		j->dead = 1;
		j->redis_busy = 0;
	}
	jobs_free_dead(s);
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		if (!w->dead)
			kill(-w->pid, SIGKILL);
		w->dead = 1;
	}
	pool_reap(s);
	heap_free(&s->deadlines);
	store_close(s->store);
	config_free(&s->cfg);
	return s->exit_code;
}

/*
 * config: hopperd's options as one typed table {name, type, default, min, max, help}. The same table reads
 * the config file, the --name=value flags, --help and the man page's list. The file format is
 * "name = value" per line, '#' comments; errors name file:line and quote the line.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celery_msg.h"
#include "celery_opts.h"
#include "hopperd.h"
#include "log.h"
#include "xmalloc.h"

enum opt_type { OPT_STR, OPT_INT, OPT_DBL };

struct option_def {
	const char *name;
	enum opt_type type;
	size_t offset;
	const char *def;
	double min, max;
	const char *help;
	int reload; /* RELOAD: SIGHUP applies it to a running daemon; otherwise it needs a restart */
};

#define RELOAD  1
#define RESTART 0

#define O(field) offsetof(struct config, field)
static const struct option_def options[] = {
        {"redis_host", OPT_STR, O(redis_host), "127.0.0.1", 0, 0, "Redis host", RESTART},
        {"redis_port", OPT_INT, O(redis_port), "6379", 1, 65535, "Redis port", RESTART},
        {"redis_unix", OPT_STR, O(redis_unix), "", 0, 0, "Redis unix socket (wins over host and port)", RESTART},
        {"redis_password", OPT_STR, O(redis_password), "", 0, 0, "Redis AUTH password", RESTART},
        {"redis_db", OPT_INT, O(redis_db), "0", 0, 1000, "Redis database number", RESTART},
        {"key_prefix", OPT_STR, O(key_prefix), "hopper:", 0, 0, "prefix of every Redis key", RESTART},
        {"node_id", OPT_STR, O(node_id), "", 0, 0, "this daemon's stable name (default: host name)", RESTART},
        {"lease_s", OPT_DBL, O(lease_s), "15", 1, 3600, "heartbeat TTL; a silent node's jobs return after this",
         RESTART},
        {"heartbeat_s", OPT_DBL, O(heartbeat_s), "2", 0.1, 600, "heartbeat interval", RESTART},
        {"queues", OPT_STR, O(queues_spec), "default", 0, 0, "queues, highest priority first; name[:weight],...",
         RESTART},
        {"queue_mode", OPT_STR, O(queue_mode), "strict", 0, 0, "strict or weighted", RESTART},
        {"prefetch", OPT_INT, O(prefetch), "0", 0, 10000, "fetched-but-not-started jobs held (0: automatic)", RESTART},
        {"block_s", OPT_DBL, O(block_s), "1", 0.01, 60, "blocking fetch timeout", RESTART},
        {"poll_ms", OPT_INT, O(poll_ms), "200", 10, 60000, "how often due delayed jobs and retries are promoted",
         RESTART},
        {"workers", OPT_INT, O(workers), "0", 0, 1024, "worker processes (0: number of CPU cores)", RESTART},
        {"worker_path", OPT_STR, O(worker_path), "", 0, 0, "the hopper-worker program", RESTART},
        {"worker_user", OPT_STR, O(worker_user), "", 0, 0, "user the workers switch to when hopperd runs as root",
         RESTART},
        {"worker_max_jobs", OPT_INT, O(worker_max_jobs), "10000", 1, INT_MAX, "jobs before a worker is replaced",
         RELOAD},
        {"worker_max_rss_mb", OPT_INT, O(worker_max_rss_mb), "512", 16, 1048576, "worker memory before replacement",
         RELOAD},
        {"audio_roots", OPT_STR, O(audio_roots), "/var/lib/hopper/audio", 0, 0,
         "audio.analyze: colon-separated directories a path must resolve under", RESTART},
        {"audio_max_bytes", OPT_DBL, O(audio_max_bytes), "2147483648", 1, 1e13, "audio.analyze: largest file, bytes",
         RESTART},
        {"max_attempts", OPT_INT, O(max_attempts), "3", 1, JOB_MAX_ATTEMPTS_LIMIT, "default attempts per job", RELOAD},
        {"timeout_s", OPT_DBL, O(timeout_s), "300", 0.001, JOB_TIMEOUT_LIMIT_S, "default job timeout", RELOAD},
        {"kill_grace_s", OPT_DBL, O(kill_grace_s), "5", 0, 3600, "SIGTERM to SIGKILL grace for a timed-out job",
         RELOAD},
        {"backoff_base_s", OPT_DBL, O(backoff_base_s), "1", 0, 86400, "first retry delay (doubles each time)", RELOAD},
        {"backoff_max_s", OPT_DBL, O(backoff_max_s), "300", 0, 604800, "longest retry delay", RELOAD},
        {"max_message_bytes", OPT_INT, O(max_message_bytes), "1048576", 64, 1 << 20, "largest job message", RELOAD},
        {"max_stalls", OPT_INT, O(max_stalls), "3", 1, 1000, "lost-with-its-daemon count that makes a job dead",
         RELOAD},
        {"result_ttl_s", OPT_INT, O(result_ttl_s), "604800", 1, INT_MAX, "how long finished jobs stay in Redis",
         RELOAD},
        {"events_max", OPT_INT, O(events_max), "100", 1, 100000, "events kept per job", RELOAD},
        {"dead_max", OPT_INT, O(dead_max), "100000", 1, INT_MAX, "dead entries kept per queue (oldest go first)",
         RELOAD},
        {"dead_max_age_days", OPT_INT, O(dead_max_age_days), "30", 1, 36500, "days a dead entry is kept", RELOAD},
        {"redis_allow_eviction", OPT_INT, O(redis_allow_eviction), "0", 0, 1,
         "UNSAFE: 1 runs on a Redis whose maxmemory-policy evicts keys", RESTART},
        {"db_path", OPT_STR, O(db_path), "/var/lib/hopper/hopper.db", 0, 0, "SQLite execution log", RESTART},
        {"log_retention_days", OPT_INT, O(log_retention_days), "30", 1, 36500, "execution log rows kept", RELOAD},
        {"log_prune_chunk", OPT_INT, O(log_prune_chunk), "500", 1, 100000,
         "execution log rows one prune step deletes (the loop runs between steps)", RELOAD},
        {"shutdown_grace_s", OPT_DBL, O(shutdown_grace_s), "30", 0, 86400, "time running jobs get on SIGTERM", RELOAD},
        {"log_level", OPT_STR, O(log_level), "info", 0, 0, "error, warn, info or debug", RELOAD},
        {"celery_queues", OPT_STR, O(celery_queues), "", 0, 0,
         "Celery queues to consume (each also a hopper queue in queues); empty: off", RESTART},
        {"celery_tasks", OPT_STR, O(celery_tasks), "", 0, 0, "Celery task -> job type: TASK=TYPE[:ARG,...] ...",
         RESTART},
        {"celery_prefix", OPT_STR, O(celery_prefix), "", 0, 0, "kombu global_keyprefix of the Celery app", RESTART},
        {"celery_default_queue", OPT_STR, O(celery_default_queue), "celery", 0, 0,
         "queue for chain links and callbacks that name none", RESTART},
        {"celery_result_expires", OPT_INT, O(celery_result_expires), "86400", 0, INT_MAX,
         "Celery result_expires in seconds (0: never)", RESTART},
        {"celery_track_started", OPT_INT, O(celery_track_started), "0", 0, 1, "write STARTED results (1) or not (0)",
         RESTART},
        /* Celery v2 (daemon/celery/): remote control, events, routes, per-task result shapes */
        {"celery_hostname", OPT_STR, O(celery_hostname), "", 0, 0,
         "name in celery inspect/control and events; empty: hopperd@NODE", RESTART},
        {"celery_revoked_max", OPT_INT, O(celery_revoked_max), "50000", 1, 10000000,
         "revoked task ids kept (Celery's REVOKES_MAX)", RELOAD},
        {"celery_revoked_expires", OPT_INT, O(celery_revoked_expires), "10800", 1, INT_MAX,
         "seconds a revoked id is kept (Celery's REVOKE_EXPIRES)", RELOAD},
        {"celery_events", OPT_STR, O(celery_events), "off", 0, 0, "on: send Celery events (celeryev)", RESTART},
        {"celery_routes", OPT_STR, O(celery_routes), "", 0, 0,
         "task_routes for the links hopperd publishes: TASK_OR_GLOB=QUEUE ...", RESTART},
        {"celery_types", OPT_STR, O(celery_types), "", 0, 0,
         "per task: TASK:exc=MODULE.TYPE, TASK:progress=TEMPLATE (see hopperd.conf(5))", RESTART},
        /* configured rate limits (common/job_limits.h; README "Rate limits and concurrency keys") */
        {"rate_limits", OPT_STR, O(rate_limits), "", 0, 0,
         "named rate limits jobs may use by name: NAME:RATE[:BURST] ... (e.g. stripe:25/s:50 mail:100/m)", RESTART},
        {"queue_rate_limits", OPT_STR, O(queue_rate_limits), "", 0, 0,
         "a queue's default limit, for its jobs that name none: QUEUE:NAME ... (a name of rate_limits)", RESTART},
        /* workflow.run steps: workers read these at start, so a reload reaches the workers started after it */
        {"workflow_exec_enabled", OPT_INT, O(workflow_exec_enabled), "0", 0, 1, "1 lets workflows run exec steps",
         RELOAD},
        {"workflow_exec_programs", OPT_STR, O(workflow_exec_programs), "", 0, 0,
         "absolute paths exec steps may run, comma-separated", RELOAD},
        {"workflow_http_schemes", OPT_STR, O(workflow_http_schemes), "http,https", 0, 0,
         "URL schemes http steps (and their redirects) may use", RELOAD},
        {"workflow_http_hosts", OPT_STR, O(workflow_http_hosts), "", 0, 0,
         "hosts http steps may reach, comma-separated (empty: any)", RELOAD},
        {"workflow_exec_env_allow", OPT_STR, O(workflow_exec_env_allow), "", 0, 0,
         "variables an exec step's env may set, comma-separated (NAME or PREFIX*)", RELOAD},
        {"workflow_env_allow", OPT_STR, O(workflow_env_allow), "", 0, 0,
         "environment variables {{env.NAME}} may read, comma-separated", RELOAD},
        {"workflow_mask_names", OPT_STR, O(workflow_mask_names), "", 0, 0,
         "header/parameter names masked besides Authorization and Cookie", RELOAD},
        {"workflow_max_response_bytes", OPT_INT, O(workflow_max_response_bytes), "1048576", 1024, 64 << 20,
         "largest http step response body", RELOAD},
        {"workflow_max_output_bytes", OPT_INT, O(workflow_max_output_bytes), "262144", 1024, 64 << 20,
         "largest exec step stdout (and stderr)", RELOAD},
        /* Control socket (schema/control-protocol.md). */
        {"ctl_socket", OPT_STR, O(ctl_socket), "", 0, 0,
         "control socket path (default: db_path with .sock for .db; 'none': off)", RESTART},
        {"ctl_socket_mode", OPT_STR, O(ctl_socket_mode), "0660", 0, 0, "control socket permission bits (octal)",
         RESTART},
        {"ctl_tcp", OPT_STR, O(ctl_tcp), "", 0, 0, "HOST:PORT for encrypted TCP control (default: off)", RESTART},
        {"ctl_key", OPT_STR, O(ctl_key), "", 0, 0,
         "TCP handshake's private key file, created if absent (default: db_path with .key for .db)", RESTART},
        {"ctl_max_conns", OPT_INT, O(ctl_max_conns), "256", 1, 100000, "open control connections", RELOAD},
        {"ctl_max_conns_per_peer", OPT_INT, O(ctl_max_conns_per_peer), "64", 1, 100000,
         "open control connections from one uid (unix) or address (TCP)", RELOAD},
        {"ctl_max_frame", OPT_INT, O(ctl_max_frame), "1048576", 4096, 64 << 20, "control frame payload bytes", RELOAD},
        {"ctl_auth_timeout_s", OPT_DBL, O(ctl_auth_timeout_s), "10", 0.1, 3600, "hello + auth must finish within",
         RELOAD},
        {"ctl_idle_timeout_s", OPT_DBL, O(ctl_idle_timeout_s), "300", 0.1, 604800,
         "idle authenticated control connection lifetime", RELOAD},
        {"ctl_out_max", OPT_INT, O(ctl_out_max), "8388608", 65536, 1 << 30,
         "bytes queued for one control client before it is cut off", RELOAD},
        {"ctl_auth_max_failures", OPT_INT, O(ctl_auth_max_failures), "5", 1, 1000,
         "failed authentications per peer before a lockout", RELOAD},
        {"ctl_lockout_s", OPT_DBL, O(ctl_lockout_s), "60", 0.1, 86400, "lockout length and failure window", RELOAD},
        {"ctl_auth_delay_ms", OPT_INT, O(ctl_auth_delay_ms), "250", 0, 60000,
         "base of the exponential delay of failed-auth replies", RELOAD},
        /* Redis Sentinel (redis_sentinel.c): when set, redis_host, redis_port and redis_unix are not used */
        {"redis_sentinels", OPT_STR, O(redis_sentinels), "", 0, 0,
         "Sentinels asked for the master, in order: HOST:PORT,... (with redis_master_name)", RESTART},
        {"redis_master_name", OPT_STR, O(redis_master_name), "", 0, 0, "the master's name at the Sentinels", RESTART},
        {"redis_sentinel_password", OPT_STR, O(redis_sentinel_password), "", 0, 0,
         "AUTH password of the Sentinels (redis_password is the master's)", RESTART},
        {"redis_wait_replicas", OPT_INT, O(redis_wait_replicas), "0", 0, 100,
         "replicas that must have each batch (finishes, submissions) before it counts as done; 0 = off", RESTART},
        {"redis_wait_timeout_ms", OPT_INT, O(redis_wait_timeout_ms), "1000", 1, 60000,
         "how long a batch waits for redis_wait_replicas before it carries on (counted in redis_wait_short)", RESTART},
        /* cluster-wide log queries (ctl_logs.c) */
        {"log_query_timeout_ms", OPT_INT, O(log_query_timeout_ms), "1000", 10, 60000,
         "logs: how long the daemon asked waits for the other daemons' rows", RELOAD},
        /* events for workflows that wait (daemon/ctl/ctl_event.c, daemon/lua/20_events.lua) */
        {"event_keep_s", OPT_INT, O(event_keep_s), "86400", 1, 31536000,
         "how long sent events stay readable (the longest lookback a wait_event step can use)", RELOAD},
        {"event_max_per_key", OPT_INT, O(event_max_per_key), "1000", 1, 1000000, "events kept per event key", RELOAD},
        {"event_max_waiters", OPT_INT, O(event_max_waiters), "100000", 1, 10000000,
         "runs that may wait for one event key at once", RELOAD},
};
#undef O
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

size_t
config_count(void)
{
	return NOPTIONS;
}

const char *
config_name(size_t i)
{
	return i < NOPTIONS ? options[i].name : NULL;
}

static const struct option_def *
find_option(const char *name)
{
	char norm[64];
	size_t n = strlen(name);
	if (n >= sizeof(norm))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		norm[i] = name[i] == '-' ? '_' : name[i];
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strcmp(options[i].name, norm) == 0)
			return &options[i];
	return NULL;
}

static int
set_value(struct config *c, const struct option_def *o, const char *value, char **cause)
{
	char *end;
	void *field = (char *)c + o->offset;
	if (o->type == OPT_STR) {
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	}
	errno = 0;
	double d = strtod(value, &end);
	if (end == value || *end != '\0' || errno != 0) {
		*cause = xasprintf("%s: '%s' is not a number", o->name, value);
		return -1;
	}
	if (d < o->min || d > o->max || (o->type == OPT_INT && d != (double)(long long)d)) {
		*cause = xasprintf("%s: %s is out of range (%s from %g to %g)", o->name, value,
		                   o->type == OPT_INT ? "an integer" : "a number", o->min, o->max);
		return -1;
	}
	if (o->type == OPT_INT)
		*(int *)field = (int)d;
	else
		*(double *)field = d;
	return 0;
}

int
config_set(struct config *c, const char *name, const char *value, char **cause)
{
	const struct option_def *o = find_option(name);
	if (o == NULL) {
		*cause = xasprintf("unknown option '%s'", name);
		return -1;
	}
	return set_value(c, o, value, cause);
}

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NOPTIONS; i++) {
		char *cause = NULL;
		if (set_value(c, &options[i], options[i].def, &cause) < 0)
			fatal("bad built-in default: %s", cause);
	}
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Parses one "name = value" line; returns 0 or -1 with *cause. */
static int
config_line(struct config *c, char *line, char **cause)
{
	char *hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	char *s = trim(line);
	if (*s == '\0')
		return 0;
	char *eq = strchr(s, '=');
	if (eq == NULL) {
		*cause = xstrdup("expected 'name = value'");
		return -1;
	}
	*eq = '\0';
	return config_set(c, trim(s), trim(eq + 1), cause);
}

int
config_load_file(struct config *c, const char *path, char **cause)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	char buf[4096];
	int lineno = 0, rc = 0;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		lineno++;
		char copy[sizeof(buf)];
		snprintf(copy, sizeof(copy), "%s", buf);
		copy[strcspn(copy, "\n")] = '\0';
		char *why = NULL;
		if (config_line(c, buf, &why) < 0) {
			*cause = xasprintf("%s:%d: %s: %s", path, lineno, why, copy);
			free(why);
			rc = -1;
			break;
		}
	}
	fclose(f);
	if (rc == 0) {
		free(c->path);
		c->path = xstrdup(path);
	}
	return rc;
}

/* Parses "name[:weight],..." into c->queues. */
static int
parse_queues(struct config *c, char **cause)
{
	char *spec = xstrdup(c->queues_spec), *save = NULL;
	c->nqueues = 0;
	for (char *tok = strtok_r(spec, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		char *colon = strchr(tok, ':');
		int weight = 1;
		if (colon != NULL) {
			*colon = '\0';
			weight = atoi(colon + 1);
		}
		if (!job_name_valid(tok, QUEUE_NAME_MAX) || weight < 1 || weight > 1000 || c->nqueues == MAX_QUEUES) {
			*cause = xasprintf(
			        "queues: bad entry '%s' (a name, optionally ':weight' 1-1000; at most %d queues)", tok,
			        MAX_QUEUES);
			free(spec);
			return -1;
		}
		snprintf(c->queues[c->nqueues].name, sizeof(c->queues[0].name), "%s", tok);
		c->queues[c->nqueues++].weight = weight;
	}
	free(spec);
	if (c->nqueues == 0) {
		*cause = xstrdup("queues: at least one queue is needed");
		return -1;
	}
	return 0;
}

/* Parses redis_sentinels ("host:port,...") into c->sentinels; both or neither of it and redis_master_name. */
static int
parse_sentinels(struct config *c, char **cause)
{
	c->nsentinels = 0;
	if ((c->redis_sentinels[0] == '\0') != (c->redis_master_name[0] == '\0')) {
		*cause = xstrdup("redis_sentinels and redis_master_name go together: set both or neither");
		return -1;
	}
	char *spec = xstrdup(c->redis_sentinels), *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(spec, ",", &save); tok != NULL && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		char *colon = strrchr(tok, ':'), *end = NULL;
		long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
		if (colon == NULL || colon == tok || (size_t)(colon - tok) >= sizeof(c->sentinels[0].host) ||
		    end == colon + 1 || *end != '\0' || port < 1 || port > 65535 || c->nsentinels == MAX_SENTINELS) {
			*cause = xasprintf("redis_sentinels: bad entry '%s' (HOST:PORT, at most %d entries)", tok,
			                   MAX_SENTINELS);
			rc = -1;
			break;
		}
		snprintf(c->sentinels[c->nsentinels].host, sizeof(c->sentinels[0].host), "%.*s", (int)(colon - tok),
		         tok);
		c->sentinels[c->nsentinels++].port = (int)port;
	}
	free(spec);
	if (rc == 0 && c->redis_master_name[0] != '\0' && c->nsentinels == 0) {
		*cause = xstrdup("redis_sentinels: no HOST:PORT given");
		rc = -1;
	}
	return rc;
}

/* Celery options: the task map parses, and each Celery queue is also a hopper queue its jobs run from. */
static int
check_celery(const struct config *c, char **cause)
{
	struct celery_map map;
	if (celery_map_parse(c->celery_tasks, &map, cause) < 0)
		return -1;
	for (size_t i = 0; i < map.n; i++) {
		if (!job_type_known(map.routes[i].type)) {
			*cause = xasprintf("celery_tasks: %s maps to unknown job type '%s'", map.routes[i].task,
			                   map.routes[i].type);
			celery_map_free(&map);
			return -1;
		}
	}
	celery_map_free(&map);
	struct celery_opts opts;
	int bad = celery_opts_parse(c->celery_routes, c->celery_types, &opts, cause);
	celery_opts_free(&opts);
	if (bad < 0)
		return -1;
	if (strcmp(c->celery_events, "on") != 0 && strcmp(c->celery_events, "off") != 0) {
		*cause = xasprintf("celery_events: '%s' must be on or off", c->celery_events);
		return -1;
	}
	if (!job_name_valid(c->celery_default_queue, CELERY_QUEUE_MAX)) {
		*cause = xasprintf("celery_default_queue: '%s' is not a queue name", c->celery_default_queue);
		return -1;
	}
	char *spec = xstrdup(c->celery_queues), *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(spec, ",", &save); tok != NULL && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		int found = 0;
		for (int i = 0; i < c->nqueues; i++)
			found |= strcmp(c->queues[i].name, tok) == 0;
		if (!found) {
			*cause = xasprintf(
			        "celery_queues: '%s' must also be listed in queues (its tasks run from the hopper "
			        "queue of the same name)",
			        tok);
			rc = -1;
		}
	}
	free(spec);
	return rc;
}

int
config_finish(struct config *c, char **cause)
{
	enum log_level lvl;
	if (log_level_parse(c->log_level, &lvl) < 0) {
		*cause = xasprintf("log_level: '%s' is not one of error, warn, info, debug", c->log_level);
		return -1;
	}
	if (strcmp(c->queue_mode, "strict") != 0 && strcmp(c->queue_mode, "weighted") != 0) {
		*cause = xasprintf("queue_mode: '%s' is not strict or weighted", c->queue_mode);
		return -1;
	}
	if (c->heartbeat_s * 2 > c->lease_s) {
		*cause = xasprintf("heartbeat_s (%g) must be at most half of lease_s (%g)", c->heartbeat_s, c->lease_s);
		return -1;
	}
	if (strpbrk(c->key_prefix, "{}") != NULL) {
		*cause = xasprintf("key_prefix: '%s' may not hold { or } (hopper's keys carry their own hash tags)",
		                   c->key_prefix);
		return -1;
	}
	if (c->node_id[0] != '\0' && !job_name_valid(c->node_id, 64)) {
		*cause = xasprintf("node_id: '%s' may hold only letters, digits and . _ : -", c->node_id);
		return -1;
	}
	char *end = NULL;
	long mode = strtol(c->ctl_socket_mode, &end, 8);
	if (c->ctl_socket_mode[0] == '\0' || *end != '\0' || mode < 0 || mode > 0777) {
		*cause =
		        xasprintf("ctl_socket_mode: '%s' is not octal permission bits (e.g. 0660)", c->ctl_socket_mode);
		return -1;
	}
	if (c->ctl_tcp[0] != '\0' && strrchr(c->ctl_tcp, ':') == NULL) {
		*cause = xasprintf("ctl_tcp: '%s' is not HOST:PORT", c->ctl_tcp);
		return -1;
	}
	if (c->backoff_max_s < c->backoff_base_s) {
		*cause = xstrdup("backoff_max_s must not be below backoff_base_s");
		return -1;
	}
	if (parse_queues(c, cause) < 0)
		return -1;
	if (parse_sentinels(c, cause) < 0)
		return -1;
	char why[512];
	if (job_rl_config_parse(c->rate_limits, c->queue_rate_limits, &c->rl, why, sizeof(why)) < 0) {
		*cause = xstrdup(why);
		return -1;
	}
	return check_celery(c, cause);
}

/* 1 if option o holds the same value in a and b. */
static int
option_equal(const struct option_def *o, const struct config *a, const struct config *b)
{
	const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
	switch (o->type) {
	case OPT_STR: return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
	case OPT_INT: return *(const int *)fa == *(const int *)fb;
	default: return *(const double *)fa == *(const double *)fb;
	}
}

size_t
config_reload(struct config *c, struct config *next, char *restart_only, size_t len)
{
	size_t skipped = 0, used = 0;
	restart_only[0] = '\0';
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option_def *o = &options[i];
		if (option_equal(o, c, next))
			continue;
		if (!o->reload) {
			int n = snprintf(restart_only + used, len - used, "%s%s", skipped ? ", " : "", o->name);
			if (n > 0 && (size_t)n < len - used)
				used += (size_t)n;
			skipped++;
			continue;
		}
		char *fc = (char *)c + o->offset, *fn = (char *)next + o->offset;
		size_t size = o->type == OPT_STR ? sizeof(char *) : o->type == OPT_INT ? sizeof(int) : sizeof(double);
		char tmp[sizeof(double) > sizeof(char *) ? sizeof(double) : sizeof(char *)];
		memcpy(tmp, fc, size); /* swap, so next (freed by the caller) takes the old string */
		memcpy(fc, fn, size);
		memcpy(fn, tmp, size);
	}
	return skipped;
}

void
config_free(struct config *c)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (options[i].type == OPT_STR)
			free(*(char **)((char *)c + options[i].offset));
	free(c->path);
	memset(c, 0, sizeof(*c));
}

void
config_usage(FILE *out)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s", options[i].name);
		for (char *p = flag + 2; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(out, "  %-26s %s (default: %s)\n", flag, options[i].help,
		        options[i].def[0] ? options[i].def : "none");
	}
}

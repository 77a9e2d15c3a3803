/*
 * hopperd.h: the daemon's one internal header. All mutable daemon state lives in struct server; each
 * module's functions are grouped under its file name below.
 *
 * A job's life inside the daemon (phases, not the public states in Redis):
 *   FETCHED   moved from its queue into this node's inflight list (fetch.lua), parsed and validated;
 *   CLAIMING  claim.lua is checking it against Redis (terminal? duplicate? stalled too often?);
 *   READY     claimed; waits for an idle worker (this is the bounded prefetch);
 *   RUNNING   its JOB frame went to a worker; run.lua marked it running;
 *   FINISHING the attempt ended (result frame and worker exit or timeout); finish.lua is writing the outcome.
 * The job leaves the inflight list only in the Lua script that writes its final word (finish, requeue, bury,
 * schedule), so a daemon that dies at any point leaves every job it held in its inflight list, from where a
 * restart or another daemon returns it to its queue.
 */
#ifndef HOPPERD_H
#define HOPPERD_H

#include <ev.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "heap.h"
#include "job.h"

#define HOPPER_VERSION "0.1.0"
#define MAX_QUEUES     32
#define MAX_SENTINELS  16 /* redis_sentinels entries; a deployment has 3 or 5 */
/* A worker's result, progress and log frames are read into a buffer that may grow to one frame's worth. */
#define WORKER_RBUF_MAX (FRAME_HEADER_LEN + FRAME_MAX_PAYLOAD)

struct redis;
struct store;
struct celery;
struct celery_map;
struct ctl;

/* --- configuration (config.c) --- */
struct queue_conf {
	char name[QUEUE_NAME_MAX + 1];
	int weight;
};

struct config {
	char *path; /* the file it came from, or NULL */
	char *redis_host;
	int redis_port;
	char *redis_unix;
	char *redis_password;
	int redis_db;
	char *key_prefix;
	char *node_id;
	double lease_s;
	double heartbeat_s;
	char *queues_spec;
	struct queue_conf queues[MAX_QUEUES];
	int nqueues;
	char *queue_mode; /* "strict" or "weighted" */
	int prefetch;
	double block_s;
	int poll_ms;
	int workers;
	char *worker_path;
	char *worker_user;
	int worker_max_jobs;
	int worker_max_rss_mb;
	char *audio_roots;      /* audio.analyze: colon-separated allowed roots (HOPPER_AUDIO_ROOTS) */
	double audio_max_bytes; /* audio.analyze: largest file (HOPPER_AUDIO_MAX_BYTES) */
	int max_attempts;
	double timeout_s;
	double kill_grace_s;
	double backoff_base_s;
	double backoff_max_s;
	int max_message_bytes;
	int max_stalls;
	int result_ttl_s;
	int events_max;
	int dead_max;             /* dead entries kept per queue */
	int dead_max_age_days;    /* and for how long */
	int redis_allow_eviction; /* UNSAFE override of the maxmemory-policy check */
	/* Redis Sentinel (redis_sentinel.c): nsentinels > 0 means the master is discovered, not configured */
	char *redis_sentinels;   /* "host:port,...", parsed into sentinels by config_finish */
	char *redis_master_name; /* the name the Sentinels monitor it under */
	char *redis_sentinel_password;
	struct sentinel_addr {
		char host[256];
		int port;
	} sentinels[MAX_SENTINELS];
	int nsentinels;
	int redis_wait_replicas;   /* WAIT for this many replicas after each batch; 0 = off (redis_wait.c) */
	int redis_wait_timeout_ms; /* WAIT's timeout */
	char *db_path;
	int log_retention_days;
	int log_prune_chunk;
	double shutdown_grace_s;
	char *log_level;
	/* Celery compatibility (celery.c) */
	char *celery_queues; /* Celery queues consumed, comma-separated; "" = off */
	char *celery_tasks;  /* TASK=TYPE[:ARG,...] entries, space-separated */
	char *celery_prefix; /* kombu's global_keyprefix (broker and result backend) */
	char *celery_default_queue;
	int celery_result_expires;
	int celery_track_started;
	char *celery_hostname; /* "" = hopperd@NODE */
	int celery_revoked_max;
	int celery_revoked_expires;
	char *celery_events; /* "on" or "off" */
	char *celery_routes; /* TASK_OR_GLOB=QUEUE ... */
	char *celery_types;  /* TASK:KEY=VALUE ... */
	/* workflow.run steps (passed to workers as HOPPER_WF_* variables) */
	int workflow_exec_enabled;
	char *workflow_exec_programs;
	char *workflow_http_schemes;
	char *workflow_http_hosts;
	char *workflow_env_allow;
	char *workflow_exec_env_allow;
	char *workflow_mask_names;
	int workflow_max_response_bytes;
	int workflow_max_output_bytes;
	/* control socket (ctl*.c) */
	char *ctl_socket;
	char *ctl_socket_mode;
	char *ctl_tcp;
	char *ctl_key;
	int ctl_max_conns;
	int ctl_max_conns_per_peer;
	int ctl_max_frame;
	double ctl_auth_timeout_s;
	double ctl_idle_timeout_s;
	int ctl_out_max;
	/* events (ctl_event.c) */
	int event_keep_s;      /* an event key's stream expires this long after its last event */
	int event_max_per_key; /* events kept per key (oldest go first) */
	int event_max_waiters; /* runs waiting for one key */
	int ctl_auth_max_failures;
	double ctl_lockout_s;
	int ctl_auth_delay_ms;
	int log_query_timeout_ms; /* logs: how long the asked daemon waits for the others (ctl_logs.c) */
	/* hopperd --token-create NAME --token-scopes LIST [--token-owner O]: point into argv, not options */
	const char *token_create, *token_scopes, *token_owner;
	int print_pubkey;                      /* --print-pubkey */
	int migrate_shared;                    /* --migrate-shared: 1, or 2 with --force */
	char *rate_limits, *queue_rate_limits; /* as written */
	struct job_rl_config rl;               /* ... parsed by config_finish */
};

/* --- in-flight jobs --- */
enum job_phase { PHASE_FETCHED, PHASE_CLAIMING, PHASE_READY, PHASE_RUNNING, PHASE_FINISHING };
/* The Redis script that will take the job out of this node's inflight list (or claim it). */
enum job_op { OP_NONE, OP_CLAIM, OP_BURY, OP_ACK, OP_FINISH, OP_REQUEUE, OP_PARK };

struct worker;

struct job {
	struct job *prev, *next; /* server.jobs */
	struct job *ready_next;  /* server.ready FIFO */
	double ready_at;         /* when it joined it */
	char *payload;           /* the message bytes exactly as they sit in the inflight list (LREM needs them) */
	size_t payload_len;
	char *admitted; /* the message with the id hopperd gave it written in (claim stores it); owned */
	size_t admitted_len;
	int64_t fence;       /* the fencing token claim handed out (0: not claimed); every write carries it */
	double created_at;   /* the job hash's created_at (from claim): the log's real creation time */
	int superseded;      /* Redis holds another token: stop, log superseded, apply nothing */
	int await_commit;    /* OP_FINISH waits for the commit of its row (jobs_release_finishes) */
	double started_mono; /* monotonic seconds at dispatch */
	double ran_s;        /* how long the attempt ran (monotonic) */
	double retry_delay;  /* OP_FINISH retrying: seconds until the retry, from Redis's now */
	char queue[QUEUE_NAME_MAX + 1];
	struct job_spec spec;
	enum job_phase phase;
	struct worker *worker;
	int attempt;
	int64_t row; /* execution-log row of the current attempt */
	pid_t worker_pid;
	double started_at;
	/* timeouts */
	double deadline; /* monotonic time (clock_mono): a wall-clock step moves no timeout */
	size_t heap_pos;
	int term_sent;
	int timed_out;
	/* outcome, filled when the attempt ends */
	int have_result;
	int ok, retryable;
	char *error;        /* owned */
	char *result;       /* owned JSON text */
	int requeue;        /* stopped by shutdown: goes back to the head of its queue, not counted as an attempt */
	enum job_op op;     /* the Redis write this job waits for; resent after a reconnect */
	int redis_busy;     /* op is in flight */
	double op_retry_at; /* after an error reply, when to try op again (monotonic seconds) */
	int has_id;         /* the message carried an id (or it was assigned) that a hash may use */
	int run_pending;    /* on a worker, "running" not yet written (see jobs_started) */
	int run_await;      /* ... and its attempt's row not yet committed: "running" waits for the commit */
	char *dead_entry;   /* OP_BURY: the dead entry (JSON) */
	char *dead_id;      /* OP_BURY: its id, "msg-" UUID */
	enum job_state outcome;
	/* workflow.run (workflows.c) */
	json_t *wf_args;   /* args with the stored definition resolved, sent instead of spec.args; owned */
	json_t *wf_resume; /* step records of earlier attempts, sent as the JOB frame's "resume"; owned */
	int wf_loading;    /* its step records are being read from Redis: not freed until the reply */
	int cancelled;     /* cancelled through the control socket: the attempt ends cancelled, whatever it returns */
	int dead;          /* freed in the prepare hook */
	/* a durable wait (jobs_park.c): the attempt ended with a park instead of a result */
	int parked;
	double park_until;                        /* Unix seconds */
	char *park_reason;                        /* owned */
	char park_wake[JOB_ID_MAX + 1];           /* the child job it waits for; "" for none */
	char park_wake_queue[QUEUE_NAME_MAX + 1]; /* that child's queue */
};

/* --- workers (pool.c) --- */
enum worker_phase { WORKER_STARTING, WORKER_IDLE, WORKER_BUSY, WORKER_EXITING };

struct worker {
	struct worker *next;
	pid_t pid;
	int fd;
	enum worker_phase phase;
	ev_io rio;
	ev_child child;
	unsigned char *rbuf;
	size_t rlen, rcap;
	struct job *job;
	int jobs_done;
	int exited; /* ev_child fired */
	int eof;    /* its socket closed */
	int wstatus;
	int dead;    /* freed in the prepare hook */
	int recycle; /* retire after the current job */
	double rss_checked_at;
};

/* --- the daemon --- */
/* metrics.c: this daemon's own counters (stats' "local" section, hopper-web's /metrics). */
#define METRICS_SERIES_MAX 256 /* distinct (queue, type, state) kept with labels */
#define METRICS_BUCKETS    14
struct metrics {
	struct {
		char queue[QUEUE_NAME_MAX + 1], type[JOB_TYPE_MAX + 1], state[16];
		uint64_t count;
	} series[METRICS_SERIES_MAX];
	int nseries;
	uint64_t overflow;
	uint64_t buckets[METRICS_BUCKETS], duration_count;
	double duration_sum;
	uint64_t worker_spawns, redis_errors, redis_reconnects;
	uint64_t redis_master_changes; /* Sentinel: a discovery named another master than the last one */
	uint64_t redis_wait_short;     /* WAITs that returned fewer replicas than redis_wait_replicas */
	uint64_t batches, batch_max_bytes,
	        batch_max_ops;             /* hopper_batch calls sent; the largest (key+arg bytes, ops) */
	uint64_t sched_fires, sched_stale; /* schedule jobs this daemon made; claims another daemon won */
};

struct server {
	struct ev_loop *loop;
	int argc; /* kept for SIGHUP, which reads the config file and flags again */
	char **argv;
	struct config cfg;
	struct job_defaults defaults;
	char host[256];
	double started_at;
	int shutting_down;
	double shutdown_deadline; /* monotonic */
	int exit_code;

	struct redis *redis;
	struct store *store;
	struct celery *celery; /* NULL unless celery_queues is set */

	struct job *jobs; /* every job this daemon holds */
	int njobs;
	struct job *ready_head, *ready_tail;
	int nfetched;       /* fetched or claimed, not yet on a worker */
	int nrunning;       /* on a worker */
	double avg_job_s;   /* moving average of attempt durations (automatic prefetch) */
	double spawn_after; /* monotonic: workers that die at start-up are not respawned in a tight loop */
	int registered;     /* heartbeat accepted and own leftovers recovered: fetching may start */
	char inc[96];       /* this incarnation: NODE/random hex, new at every start (and after being reaped) */
	long long hb_seq;   /* heartbeat sequence number (stale beats from an abandoned connection are refused) */
	unsigned beats;     /* heartbeats sent (every third re-reads the held jobs) */
	int nawait_commit;  /* finishes and runs waiting for their row's commit */
	int fetch_qi;       /* the queue (in fetch order) the next fetch asks */
	const char *fetch_order[MAX_QUEUES];
	int nfetch_order;
	int nreconcile; /* reconcile calls outstanding */
	int reconcile_failed;
	/* refreshed once a tick (ctl_state): known queues and node ids, for the control ops */
	char **known_queues;
	int nknown_queues;
	char **known_nodes;
	int nknown_nodes;
	int fetching;       /* a fetch request is outstanding */
	int want_fetch;     /* something freed room this turn */
	int need_reconcile; /* a connection dropped since the last reconcile (see jobs.c reconcile) */
	int blocking;       /* a blocking fetch is outstanding */
	unsigned block_rr;
	double block_retry_at; /* monotonic seconds: after a refused BLMOVE, not before this */

	struct worker *workers;
	int nworkers; /* live (not exiting) */
	struct heap deadlines;

	ev_prepare prepare;
	ev_timer deadline_timer;
	ev_timer commit_timer;
	double last_commit; /* monotonic */
	ev_timer tick;      /* heartbeat, reaper, promoter, pruning, pool upkeep */
	ev_timer promote_timer;
	ev_signal sigterm, sigint, sighup, sigchld_dummy;
	double last_heartbeat;
	/* pruning the execution log in bounded steps (hopperd.c): one per idle turn and one per tick */
	double next_prune;   /* monotonic time of the next pass */
	int pruning;         /* a pass is under way */
	double prune_before; /* its cut-off (wall clock: the rows' times are) */
	long long pruned;    /* rows its steps deleted so far */
	ev_idle prune_idle;
	uint64_t stats_succeeded, stats_failed;

	struct ctl *ctl;        /* the control socket (ctl*.c) */
	struct metrics metrics; /* this daemon's counters for stats' "local" section (metrics.c) */
	int paused[MAX_QUEUES]; /* cfg.queues[i] is paused (control op pause; refreshed every tick) */
	struct sched *sched;    /* the schedule poller (sched.c) */
	struct shared *shared;  /* the token cache's sync with the deployment's shared set (shared.c) */
};

/* metrics.c */
/* An attempt ended in state after seconds on a worker. */
void metrics_attempt(struct server *s, const char *queue, const char *type, const char *state, double seconds);
/* The "local" section of the stats reply. New reference. */
json_t *metrics_json(const struct server *s, int ctl_conns);

/* config.c */
void config_defaults(struct config *c);
/* Reads a config file. Returns 0 or -1 with *cause ("file:line: why: the line"; caller frees). */
int config_load_file(struct config *c, const char *path, char **cause);
/* Sets one option by name ("redis_unix" or "redis-unix"). Returns 0 or -1 with *cause (caller frees). */
int config_set(struct config *c, const char *name, const char *value, char **cause);
/* Checks cross-option rules and derives queues[] from queues_spec. Returns 0 or -1 with *cause. */
int config_finish(struct config *c, char **cause);
void config_free(struct config *c);
/*
 * SIGHUP: moves the options marked reloadable from next into c (next keeps the old values, for the caller
 * to free). Options that differ but need a restart stay as they were; their names are listed in
 * restart_only. Returns how many those are.
 */
size_t config_reload(struct config *c, struct config *next, char *restart_only, size_t len);
/* Writes the option table as "--name=VALUE  description" lines, for --help. */
void config_usage(FILE *out);
/* Fills a getopt_long table entry per option; returns the count. opts must have room for config_count(). */
size_t config_count(void);
const char *config_name(size_t i);

/* pool.c */
void pool_start(struct server *s);
/* Starts workers until there are cfg.workers of them. */
void pool_fill(struct server *s);
/* Hands READY jobs to idle workers. */
void pool_dispatch(struct server *s);
int pool_idle(const struct server *s);
/* Asks every worker to stop (TERM now, KILL after grace) -- shutdown. */
void pool_stop_job(struct server *s, struct job *j, int sig);
void pool_shutdown(struct server *s);
/* Frees workers marked dead. */
void pool_reap(struct server *s);
void pool_check_deadlines(struct server *s);
double pool_next_deadline(const struct server *s);
/* Worker processes not yet reaped (exiting ones included). */
int pool_live(const struct server *s);
/* Sends one frame to a worker (a REPLY). Returns 0 or -1 (the worker's stream is then unusable). */
int pool_send(struct worker *w, enum frame_type type, const char *payload, size_t len);

/* jobs.c */
/* Decimal text of a time or an integer into a local buffer, for script arguments. */
#define FMT_NUM(buf, v) (snprintf((buf), sizeof(buf), "%.3f", (double)(v)), (buf))
#define FMT_INT(buf, v) (snprintf((buf), sizeof(buf), "%lld", (long long)(v)), (buf))
void jobs_start(struct server *s);
/* A message fetched without a claim: validated here, then claimed, scheduled or buried. Copies payload. */
void job_accept(struct server *s, const char *queue, const char *payload, size_t len);
/* Sets the Redis write that will take the job out of the inflight list, and sends it when Redis is up. */
void job_op_start(struct server *s, struct job *j, enum job_op op);
/* The commit of the turn's rows is done (or the store is failing): the finishes waiting for it go out. */
void jobs_release_finishes(struct server *s);
/* The attempt lost its fencing token: stop it, log it superseded, apply nothing. */
void jobs_supersede(struct server *s, struct job *j, const char *why);
/* This node was reaped while alive (or Redis lost its registration): every claimed attempt is superseded. */
void jobs_supersede_all(struct server *s, const char *why);
/* After a resubscribe: reads the held jobs' states and tokens, stops the cancelled and superseded ones. */
void jobs_recheck_held(struct server *s);
/* Sends every pending op again (after a reconnect), and those whose error-retry time has come. */
void jobs_resend(struct server *s);
void jobs_retry_failed_ops(struct server *s);
/* A worker reported the attempt's end (frame) or died; decides the outcome once both are in. */
void jobs_attempt_done(struct server *s, struct job *j);
/* The job went to a worker: its execution-log row opens; "running" is written with the next batch. */
void jobs_started(struct server *s, struct job *j);
/* Adds the pending "running" writes to the batch; called by the prepare hook when a batch can leave. */
void jobs_flush_runs(struct server *s);
void jobs_progress(struct server *s, struct job *j, int progress, const char *stage, const char *message);
void jobs_log(struct server *s, struct job *j, const char *level, const char *line);
/* Puts every job that has not reached a worker back at the head of its queue (shutdown). */
void jobs_requeue_unstarted(struct server *s);
/* Shutdown's grace ran out: stops running jobs; they go back to the head of their queues. */
void jobs_stop_running(struct server *s);
void jobs_free_dead(struct server *s);
void job_ready_push(struct server *s, struct job *j);
struct job *job_ready_pop(struct server *s);
/* Unlinks j from the ready FIFO (it stays a fetched job). */
void job_ready_remove(struct server *s, struct job *j);

struct rcall;
/* jobs_park.c: durable waits (README "Durable waits") */
/* The RESULT frame's "park" object: 0 with the park taken onto j, or -1 with j's error saying why not. */
int jobs_park_take(struct job *j, json_t *park);
/* The attempt ended with a park: its row ends 'parked' and OP_PARK takes it to the scheduled set. */
void jobs_park(struct server *s, struct job *j, double took);
/* OP_PARK's call (hopper_park), for jobs.c's op table to send. Freed by rcall_batch. */
struct rcall *jobs_park_call(struct server *s, struct job *j);
/* A job finished (its finish was applied): if it names a parent waiting for it, that parent is woken. */
void jobs_park_child_ended(struct server *s, const struct job *j);

/* fetch.c */
/* Fetches more jobs if there is room (at the end of this loop turn, in its batch). */
void fetch_more(struct server *s);
/* Adds the fetch asked for during this turn (or a pending reconcile) to the batch; from the prepare hook. */
void fetch_flush(struct server *s);
/* Gives back automatically prefetched jobs that waited too long for a worker (called from the tick). */
void fetch_unhoard(struct server *s);

/* node.c */
/* Redis (re)connected: registers (start-up) or re-registers, resends pending writes, fetches again. */
void node_on_connect(struct server *s);
/* A connection dropped: replies it owed are lost, so the inflight lists are reconciled before the next fetch. */
void node_on_disconnect(struct server *s, int blocking_conn);
/* Heartbeat, reaping of dead nodes, retries of refused writes; once per tick. */
void node_tick(struct server *s);
/* Moves due delayed jobs and retries to their queues. */
void node_promote(struct server *s);

/* celery.c */
/* Starts consuming the Celery queues (when celery_queues is set). */
void celery_start(struct server *s);
void celery_free(struct server *s);
/* The configured task map (NULL when Celery is off); 1 if queue is a consumed Celery queue. */
const struct celery_map *celery_task_map(const struct server *s);
int celery_consumes(const struct server *s, const char *queue);
/* 1 if a timed-out attempt of j hit a Celery soft time limit that ends the task (SoftTimeLimitExceeded). */
int celery_timeout_final(const struct server *s, const struct job *j);

/* celery/pidbox.c: Celery remote control (ping, inspect, revoke) on kombu's celery.pidbox fanout */
void celery_pidbox_start(struct server *s);
/* The pub/sub connection is up: subscribe. */
void celery_pidbox_connected(struct server *s);
/* 1 if channel is the pidbox channel (the message was handled), 0 otherwise. */
int celery_pidbox_message(struct server *s, const char *channel, const char *msg, size_t len);
/* This daemon's name as Celery sees it (celery_hostname, default hopperd@NODE). */
const char *celery_pidbox_hostname(void);

/* celery/events.c: Celery events on the celeryev fanout (celery_events = on); all no-ops when off */
struct celery_task;
void celery_events_start(struct server *s);
/* worker-offline; called when shutdown begins. */
void celery_events_stop(struct server *s);
void celery_events_received(struct server *s, const struct celery_task *t);
void celery_events_revoked(struct server *s, const char *id, int terminated);
/* task-started (j running) or the end of an attempt (j->outcome), for a Celery job of this daemon. */
void celery_events_job(struct server *s, const struct job *j);
/* workflows.c */
/* A claimed job: for workflow.run, resolves a stored workflow and loads the resume records, then makes it
 * READY itself (returns 1); other types return 0 and go on as usual. */
int workflows_claimed(struct server *s, struct job *j);
/* A STEP, ENQUEUE or QUERY frame from the worker running a job. Returns -1 for any other type. */
int workflows_frame(struct server *s, struct worker *w, int type, json_t *o);
/* Stored workflows, for the control socket: checks req {"name"?, "definition", "description"?, "owner"?,
 * "active"?} and fills *w (its strings owned: store_workflow_free; times unset) for the write to the shared
 * set (ctl_workflow.c). 0, or -1 for a bad name or definition shape with *cause (caller frees). */
struct store_workflow;
int workflows_check(json_t *req, struct store_workflow *w, char **cause);
/* {"name", "description", "definition", "owner", "active", "created_at", "updated_at"} or NULL. New reference. */
json_t *workflows_get(struct server *s, const char *name);
/* An array of them without definitions, by name. New reference. */
json_t *workflows_list(struct server *s);
/* 1 removed, 0 none, -1 error. */
int workflows_rm(struct server *s, const char *name);
/* The control op cancel reached this daemon: stops the job if it holds it (ready or running). */
void jobs_cancel(struct server *s, const char *id);

/* pool.c (continued) */
/* SIGTERM to the job's worker now, SIGKILL after kill_grace_s (as for a timeout). */
void pool_cancel_job(struct server *s, struct job *j);

/* ctl.c: the control socket (schema/control-protocol.md) */
/* Opens the listeners (unix socket, TCP if configured). Returns 0 or -1 with *cause (caller frees). */
int ctl_start(struct server *s, char **cause);
/* Closes every connection and listener, unlinks the socket, frees everything. */
void ctl_free(struct server *s);
/* Prepare hook: frees closed connections no callback points to. */
void ctl_reap(struct server *s);
/* Once a second: connection deadlines, paused queues, throughput samples. */
void ctl_tick(struct server *s);
/* Reads which queues are paused (also on a control-channel pause message). */
void ctl_refresh_paused(struct server *s);
/* ctl_watch.c: the pub/sub connection's events (called by redis.c) */
void ctl_sub_connected(struct server *s);
void ctl_sub_lost(struct server *s);
void ctl_sub_confirmed(struct server *s, const char *channel);
void ctl_sub_unsubscribed(struct server *s, const char *channel);
void ctl_sub_message(struct server *s, const char *channel, const char *msg, size_t len);
/* ctl_logs.c: cluster log queries over the pub/sub connection (called by redis.c) */
void ctl_logs_sub_connected(struct server *s);
void ctl_logs_confirmed(struct server *s, const char *channel);
/* 1 if the message was a log query or an answer (handled), 0 if the channel is not ours. */
int ctl_logs_message(struct server *s, const char *channel, const char *msg, size_t len);
void ctl_logs_sub_lost(struct server *s);
/* --print-pubkey: prints the TCP key's public half (creating the key file if absent). Returns the exit code. */
int ctl_key_print(const struct config *cfg);

/* ctl_locate.c */
struct ctl_conn;
/* Called with the job's queue once ctl_locate found it; takes data. */
typedef void ctl_located_fn(struct ctl_conn *c, json_t *rid, const char *queue, void *data);
/* Finds the queue of job id (queue if the request gave one; else one EXISTS per known queue, pipelined) and
 * calls fn; answers not_found, "ambiguous id" or unavailable itself (then frees data with free()). */
void ctl_locate(struct ctl_conn *c, json_t *rid, const char *id, const char *queue, ctl_located_fn *fn, void *data);
/* Registers a queue in P{@}:queues (once per process). */
void ctl_known_queue(struct server *s, const char *queue);
/* This daemon's queues and every known one, deduplicated. Caller frees the array only. */
const char **ctl_all_queues(const struct server *s, int *n);
void ctl_state_free(struct server *s);

/* hopperd.c */
void server_maybe_exit(struct server *s);

/* sched.c: fires the schedules of the queues this daemon serves (daemon/lua/15_sched.lua) */
struct sched;
void sched_start(struct server *s);
/* Reads every served queue's due schedules now (also called by its timer; a put calls it at once). */
void sched_poll(struct server *s);
void sched_stop(struct server *s);
struct sched_def;
/* The job one fire time t of schedule d makes: the template with its id derived from d and t (in the id space
 * of ns, the owner's, when set), created_at now_ms and a "schedule" member. Returns the payload (caller
 * frees) with *spec filled (caller calls job_spec_free), or NULL with err. */
char *sched_job_payload(struct server *s, const char *queue, const struct sched_def *d, const char *ns, int64_t t,
                        int64_t now_ms, struct job_spec *spec, char *err, size_t errlen);

/* shared.c: the deployment's shared tokens (Redis, 18_shared.lua) and this node's SQLite cache of them */
struct shared;
void shared_start(struct server *s);
void shared_free(struct server *s);
/* The command connection is up: the cache syncs now (and the pub/sub link subscribes, shared_sub_*). */
void shared_connected(struct server *s);
void shared_sub_connected(struct server *s);
void shared_sub_confirmed(struct server *s, const char *channel);
/* A pub/sub message: 1 if it was the shared set's notice (handled), 0 if it is someone else's. */
int shared_sub_message(struct server *s, const char *channel, const char *msg, size_t len);
/* Once a second: the periodic version check (a lost notice is caught within SHARED_CHECK_S). */
void shared_tick(struct server *s);
/* 1 when the cache holds shared tokens: then only they authenticate (a node's own old rows do not). */
int shared_active(const struct server *s);
/* The cache was written by this node's own op at version ver of the shared set (tokens or workflows). */
void shared_wrote(struct server *s, long long ver);
/* Hex of a 32-byte verifier (65 bytes with the NUL) and back (0, or -1 if not 64 hex digits). */
void shared_hex(const unsigned char v[32], char out[65]);
int shared_unhex(const char *hex, unsigned char v[32]);

/* shared_cli.c: the command-line modes that talk to Redis and exit (exit status returned) */
/* hopperd --migrate-shared [--force]: copies this node's SQLite tokens into the shared set. */
int shared_migrate(struct server *s, int force);
/* hopperd --token-create: a token made straight into the shared set (and this node's cache). */
int shared_token_create_offline(struct server *s, const char *name, const char *scopes, const char *owner);
/* events.c: wakes the runs an event.send found waiting. member: "QUEUE<TAB>ID" from event_send; key and its
 * owner (NULL: none) name the wake. 0 when a wake was sent, -1 when the member was malformed or Redis is down. */
int event_wake_member(struct server *s, const char *member, const char *key, const char *owner);
/* A run parked on event key KEY waits for the wake "evt:KEY" (what a park's wake names; fits JOB_ID_MAX). */
#define EVENT_WAKE_PREFIX     "evt:"
#define EVENT_WAKE_PREFIX_LEN 4

#endif

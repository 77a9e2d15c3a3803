/*
 * libhopper: a small blocking C client of hopperd's control socket (schema/control-protocol.md).
 *
 * One struct hopper is one authenticated connection, over the Unix socket (a token, or the peer credentials
 * of root / the daemon's user) or over TCP (a token, and the daemon's pinned key: a Noise XK handshake, then
 * every frame encrypted and authenticated).
 * Every call blocks, bounded by the connection's timeout; none is thread-safe on the same handle (use one
 * handle per thread). hopperctl is built on this library.
 *
 * Errors: every call returns HOPPER_OK (0) or an enum hopper_err code. The protocol's codes keep their
 * numbers (HOPPER_E_BAD_REQUEST .. HOPPER_E_INTERNAL, the same order as the protocol's table); the library
 * adds its own from 100 up. hopper_errcode()/hopper_errmsg() return the last failure of a handle. After
 * HOPPER_E_TRANSPORT, HOPPER_E_STOPPED, or HOPPER_E_TIMEOUT from anything but hopper_recv, the connection
 * is closed: the only useful call left is hopper_close().
 *
 * JSON is jansson's json_t. The rule, the same everywhere below: arguments are borrowed (the library takes
 * no reference the caller must give up); every json_t ** output is a new reference the caller json_decref()s,
 * set to NULL on failure.
 *
 * Build: pkg-config --cflags --libs hopper (static: pkg-config --static --libs hopper).
 */
#ifndef HOPPER_H
#define HOPPER_H

#include <jansson.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HOPPER_API __attribute__((visibility("default")))
#else
#define HOPPER_API
#endif

#define HOPPER_VERSION          "0.1.0"
#define HOPPER_PROTOCOL_VERSION 2

enum hopper_err {
	HOPPER_OK = 0,
	/* The protocol's closed set (error.code on the wire), same numbers as its table. */
	HOPPER_E_BAD_REQUEST = 1,
	HOPPER_E_UNKNOWN_OP = 2,
	HOPPER_E_TOO_LARGE = 3,
	HOPPER_E_VERSION = 4,
	HOPPER_E_UNAUTHENTICATED = 5,
	HOPPER_E_AUTH_FAILED = 6,
	HOPPER_E_LOCKED_OUT = 7,
	HOPPER_E_FORBIDDEN = 8,
	HOPPER_E_NOT_FOUND = 9,
	HOPPER_E_CONFLICT = 10,
	HOPPER_E_UNAVAILABLE = 11,
	HOPPER_E_LIMIT = 12,
	HOPPER_E_INTERNAL = 13, /* also: a code this library does not know */
	/* The library's own. */
	HOPPER_E_TRANSPORT = 100, /* could not connect, connection lost, a frame that does not open or parse */
	HOPPER_E_TIMEOUT = 101,   /* the connection's timeout, or a stream's deadline, passed */
	HOPPER_E_STOPPED = 102,   /* a watch callback asked to stop */
	HOPPER_E_USAGE = 103      /* a bad argument to a library call (nothing was sent) */
};

struct hopper_opts {
	const char *socket; /* Unix socket path; wins over host when both are set */
	const char *host;   /* "HOST:PORT" or "[V6]:PORT" for TCP (needs a token) */
	const char *token;  /* "hop_<id>_<secret>"; NULL on a Unix socket: peer credentials */
	int timeout_ms;     /* bound of connecting and of each request's round trip; <= 0: 30000 */
	const char *client; /* "name/version" sent in the hello, for the daemon's log; NULL: "libhopper/VERSION" */
	/* TCP: the daemon's public key (base64url, hopperd --print-pubkey) to pin; wins over known_hosts. */
	const char *server_key;
	/* TCP: a known_hosts file ("HOST:PORT KEY" lines): the key recorded for host is pinned; a host not in it
	 * is asked for its key once and recorded (trust on first use, as ssh). One of the two is needed on TCP. A
	 * daemon that does not hold the pinned key fails with HOPPER_E_AUTH_FAILED and a message saying so. */
	const char *known_hosts;
};

struct hopper;

/*
 * Connects, exchanges hellos (and keys, on TCP) and authenticates. Returns a handle the caller releases with
 * hopper_close, or NULL with a message in err (errlen bytes, may be 0) and, when code is not NULL, the
 * enum hopper_err in *code. opts and the strings it points to are only read during the call.
 */
HOPPER_API struct hopper *hopper_connect(const struct hopper_opts *opts, int *code, char *err, size_t errlen);
/* Closes the connection and frees the handle (wiping its keys). NULL is a no-op. */
HOPPER_API void hopper_close(struct hopper *h);

/* The last failure of h: its code and its message (borrowed, valid until the next call on h). */
HOPPER_API enum hopper_err hopper_errcode(const struct hopper *h);
HOPPER_API const char *hopper_errmsg(const struct hopper *h);
/* The wire name of a code ("not_found"; "transport", "timeout", "stopped", "usage" for the library's). Static. */
HOPPER_API const char *hopper_err_name(enum hopper_err code);
/* A code from its wire name; HOPPER_E_INTERNAL for a name this build does not know. */
HOPPER_API enum hopper_err hopper_err_parse(const char *name);
/* hopperctl's exit status for a code (the protocol's table: 2..14; 15 transport; 16 timeout). */
HOPPER_API int hopper_exit_code(enum hopper_err code);

/* The auth reply {method, name, owner, scopes} and the hello reply {version, server, node, max_frame, ...}.
 * Borrowed: valid until hopper_close. */
HOPPER_API const json_t *hopper_identity(const struct hopper *h);
HOPPER_API const json_t *hopper_server(const struct hopper *h);
/* TCP: the daemon key this connect recorded in known_hosts (first use), or NULL. Valid until hopper_close. */
HOPPER_API const char *hopper_learned_key(const struct hopper *h);

/*
 * The generic call: sends {"id", "op": op, ...fields} (fields may be NULL) and waits for its reply. On
 * HOPPER_OK *result is the reply's result object. A streaming op (watch) must go through hopper_watch.
 */
HOPPER_API int hopper_call(struct hopper *h, const char *op, const json_t *fields, json_t **result);

/* --- pipelining: the building blocks of hopper_call and hopper_watch --- */
/* Sends one request and returns at once; *req_id (if not NULL) gets the id its replies will carry. */
HOPPER_API int hopper_send(struct hopper *h, const char *op, const json_t *fields, long long *req_id);
/* Waits at most timeout_ms (< 0: the connection's timeout; 0: no wait; HOPPER_WAIT_FOREVER: about 12 days)
 * for the next frame, a reply or an event, as sent by the daemon ({"id", "ok", "result"|"error", "done"} or
 * {"id", "event"}). HOPPER_E_TIMEOUT when none began in time: the connection stays usable. */
#define HOPPER_WAIT_FOREVER (1 << 30)
HOPPER_API int hopper_recv(struct hopper *h, int timeout_ms, json_t **frame);
/* The connection's file descriptor, for poll() when one thread multiplexes several handles (hopper-web's
 * event streams): wait for POLLIN, then hopper_recv(h, 0, ...) until HOPPER_E_TIMEOUT. Read nothing from it
 * yourself. -1 after a transport failure. */
HOPPER_API int hopper_fd(const struct hopper *h);

/* --- typed helpers: each is hopper_call with the op's fields (see schema/control/OP.schema.json) --- */
HOPPER_API int hopper_ping(struct hopper *h, json_t **result);
/* One job (an object: type, args, queue, id, max_attempts, timeout_s, run_at, ...); result {id, queue, state}. */
HOPPER_API int hopper_submit(struct hopper *h, const json_t *job, json_t **result);
/* A batch (an array of 1..1000 job objects), all or none; result {ids: [...]}, in order. */
HOPPER_API int hopper_submit_batch(struct hopper *h, const json_t *jobs, json_t **result);
/* The job view: state, progress, stage, message, result, error, times, ... */
HOPPER_API int hopper_status(struct hopper *h, const char *job, json_t **result);
HOPPER_API int hopper_cancel(struct hopper *h, const char *job, json_t **result);
HOPPER_API int hopper_retry(struct hopper *h, const char *job, json_t **result);
/*
 * The same naming the job's queue (hopperctl --queue). Ids are unique per queue: without a queue the daemon
 * finds the job among the known queues and answers bad_request ("ambiguous id") when several hold it; queue
 * NULL or "" is that search.
 */
HOPPER_API int hopper_status_in(struct hopper *h, const char *job, const char *queue, json_t **result);
HOPPER_API int hopper_cancel_in(struct hopper *h, const char *job, const char *queue, json_t **result);
HOPPER_API int hopper_retry_in(struct hopper *h, const char *job, const char *queue, json_t **result);

struct hopper_list_filter {
	const char *state, *queue, *type, *owner; /* NULL: any */
	int limit;                                /* 1..1000; 0: the daemon's default (100) */
	const char *cursor;                       /* NULL: the first page; then the previous result's cursor */
};
/* result {jobs: [...], cursor: "..." | null}. filter may be NULL. */
HOPPER_API int hopper_list(struct hopper *h, const struct hopper_list_filter *filter, json_t **result);
/* Which dead jobs hopper_dead_retry_all retries; NULL/0 = any. */
struct hopper_dead_filter {
	const char *queue;      /* only this queue's */
	const char *type;       /* only jobs of this type */
	const char *error;      /* only jobs whose error contains this text */
	long long older_than_s; /* only jobs dead for at least this many seconds */
	int chunk;              /* dead entries per call, 1..1000; 0: the daemon's default (500) */
};
/*
 * Retries every dead job the filter matches (and the credential may see), calling the dead_retry op chunk by
 * chunk until its cursor ends: each job dead when the first chunk ran is retried once, jobs that die while
 * it runs are left for the next run. *retried (may be NULL) gets the count, also after a failure part-way
 * (what was retried stays retried).
 */
HOPPER_API int hopper_dead_retry_all(struct hopper *h, const struct hopper_dead_filter *filter, long long *retried);
/* Which ended workflow runs hopper_workflow_restart_all restarts, and from which step. */
struct hopper_restart_filter {
	const char *from;  /* the step to re-run, with every step depending on it (required) */
	const char *state; /* succeeded, failed or dead (required: a bulk restart names what it restarts) */
	const char *queue; /* NULL: every queue */
	const char *owner; /* NULL: the credential's own runs (admin: every owner's) */
};
/* What a bulk restart did with each run it matched. */
struct hopper_restart_counts {
	long long restarted; /* queued again from the step */
	long long no_step;   /* no record of the step (another workflow, or it failed before the step) */
	long long changed;   /* no longer ended, its unique key held, or gone, between the list and the restart */
};
/* Called after each matched run: code HOPPER_OK with the op's result, or the run's error code (result NULL;
 * hopper_errmsg says why). */
typedef void (*hopper_restart_cb)(struct hopper *h, const char *job, int code, const json_t *result, void *ud);
/* An ended workflow.run again from step `from` (the workflow.restart op). result {id, queue, state, from,
 * rerun}. queue NULL: found among the known queues. */
HOPPER_API int hopper_workflow_restart(struct hopper *h, const char *job, const char *queue, const char *from,
                                       json_t **result);
/*
 * hopper_workflow_restart for every workflow.run the filter matches, walking `list` newest first page by page:
 * each run matched when its page was read is restarted at most once (a restarted run is behind the cursor).
 * A run that cannot be restarted is counted, not an error; the walk stops at the first other error (Redis
 * down, the connection lost, forbidden), which it returns, *counts holding what was done. cb may be NULL.
 */
HOPPER_API int hopper_workflow_restart_all(struct hopper *h, const struct hopper_restart_filter *filter,
                                           hopper_restart_cb cb, void *ud, struct hopper_restart_counts *counts);
/* limit 0: the daemon's default. result {node, attempts, lines}. */
HOPPER_API int hopper_logs(struct hopper *h, const char *job, int limit, json_t **result);
HOPPER_API int hopper_queues(struct hopper *h, json_t **result);
HOPPER_API int hopper_stats(struct hopper *h, json_t **result);
HOPPER_API int hopper_pause(struct hopper *h, const char *queue, json_t **result);
HOPPER_API int hopper_resume(struct hopper *h, const char *queue, json_t **result);
/* scopes: "submit,read,cancel,admin" (any subset); owner NULL: the name. result holds the secret "token":
 * the only time it exists outside the caller; wipe it when done. */
HOPPER_API int hopper_token_create(struct hopper *h, const char *name, const char *scopes, const char *owner,
                                   json_t **result);
HOPPER_API int hopper_token_list(struct hopper *h, json_t **result);
/* Exactly one of name and token_id. */
HOPPER_API int hopper_token_revoke(struct hopper *h, const char *name, const char *token_id, json_t **result);

/* A task to publish in Celery's format (the celery.send op). Every pointer is borrowed; NULL/0 = absent. */
struct hopper_celery_task {
	const char *task;     /* the Celery task name, e.g. "proj.tasks.add" (required) */
	const json_t *args;   /* positional arguments, a JSON array; NULL: [] */
	const json_t *kwargs; /* keyword arguments, a JSON object; NULL: {} */
	const char *queue;    /* the Celery queue; NULL: "celery" */
	int priority;         /* 0..9, 0 first (kombu's Redis transport) */
	int countdown_s;      /* run no earlier than this many seconds from now; 0: at once */
	long long eta;        /* or no earlier than this Unix time (not with countdown_s); 0: none */
	int expires_s;        /* not to be run after this many seconds from now; 0: never expires */
	const char *id;       /* the task id; NULL: the daemon makes a UUIDv4 */
};

/*
 * Publishes t in Celery's format (task protocol v2) on the daemon's Redis, in the queue's kombu priority
 * list, for a stock Celery worker (or a hopperd consuming that queue) to run; needs the submit scope. On
 * HOPPER_OK, *task_id_out (if not NULL) is the task's id, a new string the caller free()s (its result will
 * be in Celery's result backend under celery-task-meta-ID); on failure it is set to NULL.
 */
HOPPER_API int hopper_celery_send(struct hopper *h, const struct hopper_celery_task *t, char **task_id_out);

/*
 * Called for each event of a watch (see schema/event.schema.json); event is borrowed, valid until the
 * callback returns. Return 0 to go on, anything else to stop (the watch then returns HOPPER_E_STOPPED and
 * the connection is closed, since the protocol has no way to end one stream and keep the others).
 */
typedef int (*hopper_event_cb)(const json_t *event, void *ud);

/*
 * Streams the job's events (stored ones first, then live, each once and in order) to cb (may be NULL) until
 * the job ends; *result (may be NULL) gets the final job view. timeout_ms <= 0: no deadline (a job may stay
 * queued for long); otherwise HOPPER_E_TIMEOUT when it passes first. The job's outcome is result's state.
 */
HOPPER_API int hopper_watch(struct hopper *h, const char *job, hopper_event_cb cb, void *ud, int timeout_ms,
                            json_t **result);
/* hopper_watch of the job of that queue (NULL or "": found among the known queues, as hopper_status_in). */
HOPPER_API int hopper_watch_in(struct hopper *h, const char *job, const char *queue, hopper_event_cb cb, void *ud,
                               int timeout_ms, json_t **result);

#ifdef __cplusplus
}
#endif
#endif

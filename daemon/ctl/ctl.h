/*
 * ctl.h: the control socket's internal header, shared by its four modules and nothing else:
 *   ctl_listen.c the unix and TCP listeners, accepting, the connection cap, who the peer is;
 *   ctl.c        connections, buffers, deadlines, framing, the dispatch table;
 *   ctl_auth.c   hello (and the TCP handshake), auth, the failed-auth lockout table, token ops;
 *   ctl_key.c    the daemon's static key of the TCP handshake (its file);
 *   ctl_ops.c    the job and queue ops (submit, status, list, queues, stats, pause);
 *   ctl_logs.c   the logs op, asking every live daemon for its rows over Redis pub/sub;
 *   ctl_workflow.c stored workflows (workflow.put, list, show, rm) and workflow.run by name;
 *   ctl_watch.c  watch streams, the pub/sub channels they share, and control-channel messages;
 *   ctl_celery.c celery.send: a task published in Celery's format to a Celery queue;
 *   ctl_webhook.c webhooks of stored workflows (workflow.webhook) and their triggering (webhook.trigger);
 *   ctl_sched.c  schedules (schedule.*), kept in Redis per queue and fired by sched.c.
 *   ctl_jobops.c cancel, retry and workflow.restart (an ended run again from one of its steps);
 * The protocol itself (codec, validator, catalogue, error codes) is common/ctl_proto.c; the crypto
 * common/ctl_crypto.c. hopperd.h declares the few entry points the rest of the daemon calls.
 */
#ifndef HOPPERD_CTL_H
#define HOPPERD_CTL_H

#include <ev.h>
#include <jansson.h>
#include <stdint.h>

#include "ctl_crypto.h"
#include "ctl_proto.h"
#include "hopperd.h"
#include "redis.h"

/* Unanswered requests per connection: pipelining is welcome, an unbounded queue of Redis calls is not. */
#define CTL_INFLIGHT_MAX 32
/* Watches per connection: each holds a subscription and a backlog. */
#define CTL_WATCHES_MAX 16
/* Live events a watch buffers while its first read of the events list is on its way (events_max bounds
 * what one job emits between the two, so this is generous). */
#define CTL_BACKLOG_MAX 10000
/* Peers remembered by the lockout table: fixed memory whatever the number of addresses attacking. */
#define CTL_PEERS_MAX 4096
/* A reply may exceed ctl_max_frame by this much (a 1 MiB job result plus the job view around it). */
#define CTL_REPLY_SLACK 65536
/* The longest delay of a failed-auth reply, however many failures came before. */
#define CTL_AUTH_DELAY_MAX_S 5.0
/* A connection told to close gets this long to take its last reply. */
#define CTL_CLOSE_FLUSH_S 5.0
/* How many jobs list examines per page at most, per job asked for (a selective filter pages on). */
#define CTL_LIST_SCAN_FACTOR 10

enum ctl_method { CTL_AUTH_NONE, CTL_AUTH_TOKEN, CTL_AUTH_PEERCRED };

struct ctl_cred {
	enum ctl_method method;
	unsigned scopes;
	char owner[JOB_OWNER_MAX + 1];
	char token_id[CTL_TOKEN_ID_LEN + 1]; /* "" for peercred */
	char name[CTL_TOKEN_NAME_MAX + 1];   /* the token's name; "" for peercred */
};

struct ctl_watch;

struct ctl_conn {
	struct ctl_conn *prev, *next;
	struct ctl *ctl;
	uint64_t serial; /* for logs */
	int fd;
	int tcp;
	char peer[96];     /* for logs: "uid 1000 pid 42" or "127.0.0.1:5555" */
	char peer_key[64]; /* lockout key: "uid:1000", "ip:127.0.0.1", "ip6:20010db8000000000/64" */
	long uid;          /* unix socket: SO_PEERCRED uid; -1 on TCP */
	ev_io rio, wio;
	ev_timer delay; /* a failed auth's reply waits on it */

	unsigned char *in; /* bytes read, not yet a whole frame; at most one frame's worth */
	size_t in_len, in_cap;
	unsigned char *out; /* frames not yet written; bounded by ctl_out_max (slow consumer) */
	size_t out_off, out_len, out_cap;

	int hello;  /* hello done */
	int authed; /* auth done */
	struct ctl_cred cred;
	/* TCP only */
	int encrypted;                   /* frames after handshake message 3 are sealed */
	struct ctl_noise *noise;         /* the handshake between messages 1 and 3 (owned); NULL before and after */
	unsigned char client_static[32]; /* the key message 3 proved: compared with the token's verifier */
	struct ctl_session sess;
	char hello_token_id[CTL_TOKEN_ID_LEN + 1];
	char auth_token_id[CTL_TOKEN_ID_LEN + 1]; /* unix: the id the last auth named, for failure counting */

	double opened_at, last_frame_at, closing_at;
	int inflight;              /* requests whose reply is pending */
	int refs;                  /* async callbacks that still point here: freed when 0 and dead */
	int reading_paused;        /* a failed auth's delay is running */
	int throttled;             /* its unread output passed half of ctl_out_max: its requests wait */
	json_t *delayed_reply;     /* sent when it ends (owned) */
	int delayed_close;         /* ... then close (TCP); in clear if the handshake did not complete */
	int closing;               /* close once the output is written */
	int dead;                  /* closed; freed by ctl_reap */
	struct ctl_watch *watches; /* owned; freed with the connection */
	int nwatches;              /* live ones */
};

struct redis_reply;
struct ctl_chan; /* a subscribed channel, refcounted by its watches (ctl_watch.c) */

struct ctl_peer {
	char key[96]; /* peer_key, or peer_key|token id */
	int failures;
	double first_at, last_at, locked_until;
};

/* The control socket's state: hangs off struct server (s->ctl). */
struct ctl {
	struct server *s;
	int unix_fd, tcp_fd;
	char *unix_path; /* owned; unlinked at exit */
	ev_io unix_io, tcp_io;
	ev_timer accept_retry;  /* out of file descriptors: accepting pauses a second */
	struct ctl_keypair key; /* the TCP handshake's static key (ctl_key.c); loaded when TCP is on */
	struct ctl_conn *conns;
	int nconns;
	uint64_t serial;
	struct ctl_chan *chans;
	int control_subscribed;
	struct ctl_peer peers[CTL_PEERS_MAX];
	size_t npeers;
	int global_failures; /* failed auths from anyone in the window that began at global_first_at */
	double global_first_at;
	/* finished jobs at each of the last 60 ticks, for stats' throughput */
	uint64_t done_ring[60];
	double ring_t[60];
	unsigned ring_pos, ring_filled;
	struct ctl_logs *logs; /* cluster log queries waiting for answers (ctl_logs.c); NULL until the first */
};

/* An async request: keeps its connection alive (refs) until the callback ran. */
struct ctl_pending {
	struct ctl_conn *c;
	json_t *id; /* owned reference (may be NULL) */
	void *data; /* op-specific; freed by the op's callback */
};

typedef void ctl_handler(struct ctl_conn *c, struct ctl_request *req);

/* ctl.c */
/* A connection accepted (fd, tcp, peer filled in): it joins the list and starts reading. Takes c. */
void ctl_conn_start(struct ctl_conn *c);
/* Start-up invariant: every op of the catalogue but hello has a handler (fatal otherwise). */
void ctl_check_handlers(void);
/* Exit: closes and frees every connection (after Redis is gone). */
void ctl_conns_free(struct ctl *ctl);
/* Sends one message (takes ownership of msg). Sealed on an encrypted connection. */
void ctl_send(struct ctl_conn *c, json_t *msg);
void ctl_reply_err(struct ctl_conn *c, json_t *id, enum ctl_err code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Closes now (logged with why). The memory goes in the prepare hook, once no callback points here. */
void ctl_close(struct ctl_conn *c, const char *why);
/* Stops reading, closes once the output is written (or after CTL_CLOSE_FLUSH_S). */
void ctl_close_after_flush(struct ctl_conn *c, const char *why);
/* Resumes reading after a delay and handles what was already buffered. */
void ctl_resume(struct ctl_conn *c);
/* An async request of c begins / ends. Caller frees p->data before ctl_pending_end. */
struct ctl_pending *ctl_pending_new(struct ctl_conn *c, json_t *id);
void ctl_pending_end(struct ctl_pending *p);
/* Closes every connection authenticated with this token id but except. Returns how many. */
int ctl_close_token(struct ctl *ctl, const char *token_id, struct ctl_conn *except);

/* ctl_auth.c */
void ctl_hello(struct ctl_conn *c, struct ctl_request *req, const unsigned char *payload, size_t len);
/*
 * TCP: handshake message 3 (the frame after the hello). Returns 0 with its payload (the auth request) in out
 * (room for n bytes) and the session keyed, or -1 after answering the failure (the connection then closes).
 */
int ctl_handshake_finish(struct ctl_conn *c, const unsigned char *msg, size_t n, unsigned char *out, size_t *plen);
ctl_handler ctl_op_auth;

/* ctl_token.c: the token ops; shared tokens are written to Redis first, then to this node's cache */
ctl_handler ctl_op_token_create, ctl_op_token_list, ctl_op_token_revoke;
/* A shared token's old hash was replaced by its verifier here: the shared set gets it too (no reply). */
void ctl_token_upgrade_shared(struct server *s, const char *id, const unsigned char old[32],
                              const unsigned char verifier[32]);
/* A failed authentication: counted, logged, answered after the backoff delay (TCP: in clear, then closed). */
void ctl_auth_failed(struct ctl_conn *c, json_t *id, const char *why);
/* 1 if the failure-table key is locked out now (*left = seconds remaining). */
int ctl_peer_locked(struct ctl *ctl, const char *key, double now, double *left);
/* 1 if this connection's attempt with token_id (NULL/"": none) is locked out: unix by the peer's uid, TCP by
 * (address, token id). *left = seconds remaining. */
int ctl_auth_locked(struct ctl_conn *c, const char *token_id, double now, double *left);

/* ctl_key.c */
/* The key file's path: ctl_key, or db_path with .key for .db. Caller frees. */
char *ctl_key_path(const struct config *cfg);
/* Loads the key at path, creating it (mode 0600) if absent. Returns 0, or -1 with *cause (caller frees). */
int ctl_key_load(const char *path, struct ctl_keypair *kp, char **cause);

/* ctl_ops.c */
ctl_handler ctl_op_ping, ctl_op_submit, ctl_op_status, ctl_op_cancel, ctl_op_retry, ctl_op_list, ctl_op_queues,
        ctl_op_stats, ctl_op_pause, ctl_op_resume;
/* Submits one job object (one) or a batch (many), exactly as the submit op does, answering request rid.
 * Borrows every argument: the jobs are copied and completed (owner, id, queue) before validation. */
void ctl_submit(struct ctl_conn *c, json_t *rid, json_t *one, json_t *many);
/* ... with extra's members added to the success reply (webhook.trigger's "workflow"). Borrows extra. */
void ctl_submit_with(struct ctl_conn *c, json_t *rid, json_t *one, json_t *many, json_t *extra);
/* The job view of a job hash given as a flat field/value reply (HGETALL). New reference. */
json_t *ctl_job_view(const struct redis_reply *r);
/* 1 if the credential may see a job with this owner (NULL: none). */
int ctl_may_see(const struct ctl_conn *c, const char *job_owner);

/* ctl_logs.c */
ctl_handler ctl_op_logs;
/* Exit: every waiting query is answered with what it has, and the module's state goes. */
void ctl_logs_free(struct ctl *ctl);

/* ctl_ns.c: owner-scoped job ids (common/job_ns.h) */
/* 1 if this connection's job ids are scoped to its owner (authenticated, not admin). */
int ctl_ns_active(const struct ctl_conn *c);
/* The stored form of the client's id (unchanged for admin). 0, or -1 with err (too long, reserved). */
int ctl_ns_id(const struct ctl_conn *c, const char *id, char *out, size_t outlen, char *err, size_t errlen);
/* Rewrites the request's job ids to their stored form before its op runs. 0, or -1 with err. */
int ctl_ns_request(const struct ctl_conn *c, struct ctl_request *req, char *err, size_t errlen);
/* Shows the client its own ids: strips its owner's prefix from every string of the reply. */
void ctl_ns_reply(const struct ctl_conn *c, json_t *msg);
/* Strips owner's prefix from every string of msg (a reply for a job submitted on owner's behalf). */
void ctl_ns_strip_owner(json_t *msg, const char *owner);
/* ctl_rf.c: ops that call one Redis function */
struct rcall;
/* Sends rc (FCALL_RO when ro, else in the turn's batch) for an async reply to cb with priv = a new pending p,
 * p->data = data. 0, or -1 after answering unavailable (p ended; data is the caller's to free). */
int ctl_rf_send(struct ctl_conn *c, json_t *id, struct rcall *rc, int ro, redis_cb *cb, void *data);
/* 1 if the reply may be used; otherwise it answered (unless the client is gone). The caller ends p. */
int ctl_rf_usable(struct ctl_pending *p, const struct redis_reply *r, const char *what);
/* Element i of an array reply as a string, or NULL. */
const char *ctl_rf_elem(const struct redis_reply *r, size_t i);
/* ctl_event.c: events that wake waiting workflow runs */
ctl_handler ctl_op_event_send, ctl_op_event_list;
/* ctl_jobops.c: cancel, retry, workflow.restart (a run again from one of its steps) */
ctl_handler ctl_op_workflow_restart;
/* ctl_dead.c */
ctl_handler ctl_op_dead_retry;
/* ctl_sched.c: schedules (schedule.put, list, show, rm, pause, resume) */
ctl_handler ctl_op_schedule_put, ctl_op_schedule_list, ctl_op_schedule_show, ctl_op_schedule_rm, ctl_op_schedule_pause;

/* ctl_workflow.c */
ctl_handler ctl_op_workflow_put, ctl_op_workflow_list, ctl_op_workflow_show, ctl_op_workflow_rm, ctl_op_workflow_run;
/* The stored workflow NAME's definition if this credential may run it (new reference), else NULL with *code
 * and err (another owner's answers not_found like a missing one). workflow.run and submit both call it. */
json_t *ctl_workflow_resolve(struct ctl_conn *c, const char *name, enum ctl_err *code, char *err, size_t errlen);

/* ctl_webhook.c */
ctl_handler ctl_op_workflow_webhook, ctl_op_webhook_trigger;

/* ctl_watch.c */
ctl_handler ctl_op_watch;
/* ctl_celery.c */
ctl_handler ctl_op_celery_send;
/* The connection closed: its watches end and release their channels. */
void ctl_watch_conn_closed(struct ctl_conn *c);
void ctl_watch_free_all(struct ctl_conn *c);
/* At exit: channels still waiting for their unsubscribe go too. */
void ctl_watch_free_chans(struct ctl *ctl);

#endif

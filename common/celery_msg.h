/*
 * celery_msg: Celery's wire format, as pure functions over buffers (no I/O, fuzzable).
 *
 * - celery_parse: a kombu Redis-transport envelope carrying a Celery task protocol v2 message -> a
 *   validated struct celery_task (base64 body decoded, application/json only: anything else, pickle above
 *   all, is reported as refused and never decoded).
 * - celery_map_*: the configured mapping of Celery task names to hopper job types, and the conversion of a
 *   task's positional and keyword arguments into a hopper job's `args` (celery_job_json).
 * - celery_encode_task: the envelope a Celery producer would push (hopperctl celery send, and the
 *   chain/callback/errback messages hopperd publishes), split so that a previous task's result can be
 *   spliced into the body later (by hopperd's Lua, atomically with the job's finish).
 * - celery_meta_encode: a result-backend value (`celery-task-meta-<id>`).
 * The format is described in README.md ("Celery compatibility") and was checked against Celery 5.2.6 and
 * kombu 5.2.4 (Debian 12).
 */
#ifndef HOPPER_CELERY_MSG_H
#define HOPPER_CELERY_MSG_H

#include <jansson.h>
#include <stddef.h>

#include "job.h"

#define CELERY_TASK_NAME_MAX 200 /* Celery puts no limit; dotted Python paths are far shorter */
#define CELERY_QUEUE_MAX     QUEUE_NAME_MAX
#define CELERY_ARGNAMES_MAX  16
#define CELERY_SIGS_MAX      64 /* chain links, callbacks or errbacks carried by one task */
/* The headers of a message too large or too broken to parse whole are still read, up to this size (kombu's
 * headers are a few hundred bytes; argsrepr is cut at 1 KB by Celery's argsrepr_maxsize). */
#define CELERY_HEADERS_MAX (64 * 1024)
/* A task's arguments travel base64-encoded (4/3 of their size) inside an envelope of a few hundred bytes:
 * the envelope may be this much larger than the job it becomes (max_message_bytes bounds the job). */
#define CELERY_ENVELOPE_MAX(job_max) ((job_max) / 3 * 4 + 64 * 1024)
/* kombu's Redis transport: priority buckets and the separator between queue name and bucket. */
#define CELERY_SEP      "\x06\x16"
#define CELERY_NBUCKETS 4
extern const int celery_buckets[CELERY_NBUCKETS]; /* 0, 3, 6, 9: consumed in this order */

enum celery_verdict {
	CELERY_OK = 0,        /* a JSON task: run it */
	CELERY_REFUSED = 1,   /* content type not accepted (pickle, yaml, msgpack...): id and task are set */
	CELERY_MALFORMED = -1 /* not a usable v2 message; id is set if the headers named a valid one */
};

/* A parsed task. Strings are copies; args, kwargs and embed are new references (celery_task_free). */
struct celery_task {
	char id[JOB_ID_MAX + 1];
	char task[CELERY_TASK_NAME_MAX + 1];
	char content_type[64];
	char root_id[JOB_ID_MAX + 1];
	char parent_id[JOB_ID_MAX + 1];
	char group[JOB_ID_MAX + 1];
	json_t *args;                       /* array */
	json_t *kwargs;                     /* object */
	json_t *embed;                      /* object: callbacks, errbacks, chain, chord (each may be null) */
	double eta;                         /* Unix seconds, 0 when absent */
	double expires;                     /* Unix seconds, 0 when absent */
	double time_limit, soft_time_limit; /* seconds, 0 when absent: headers.timelimit = [hard, soft] */
	int retries;
	int priority;
	long long group_index; /* headers.group_index, -1 when absent (a chord orders its results by it) */
};

/*
 * Parses one envelope of len bytes (at most max_bytes). Returns a celery_verdict; on CELERY_OK the caller
 * calls celery_task_free, otherwise there is nothing to free and err holds the reason. Never decodes a
 * body whose content type is not application/json. A message over max_bytes, or not valid JSON, is
 * malformed, but its id and task are still read from its headers when the envelope allows (a bounded
 * scan), so that its sender can get a FAILURE result.
 */
int celery_parse(const char *buf, size_t len, size_t max_bytes, struct celery_task *out, char *err, size_t errlen);
void celery_task_free(struct celery_task *t);

/* One configured task: Celery name -> hopper type, with names for the positional arguments. */
struct celery_route {
	char task[CELERY_TASK_NAME_MAX + 1];
	char type[JOB_TYPE_MAX + 1];
	char argnames[CELERY_ARGNAMES_MAX][64];
	int nargnames;
};

struct celery_map {
	struct celery_route *routes; /* owned */
	size_t n;
};

/*
 * Parses "TASK=TYPE[:ARG,ARG...] ..." (entries separated by spaces). Returns 0, or -1 with *cause (caller
 * frees). map is filled even when spec is empty; free with celery_map_free.
 */
int celery_map_parse(const char *spec, struct celery_map *map, char **cause);
const struct celery_route *celery_map_find(const struct celery_map *map, const char *task);
void celery_map_free(struct celery_map *map);

/*
 * A hopper job's args from a task: the kwargs, plus positional argument i under route->argnames[i]; the
 * positional arguments left without a name go, as a list, to args["args"]. A kwarg wins over nothing:
 * naming the same key twice is an error. Returns a new reference, or NULL with err.
 */
json_t *celery_job_args(const struct celery_task *t, const struct celery_route *route, char *err, size_t errlen);

/*
 * The hopper job message for a task (id = the Celery task id). timeout_s is the soft time limit, else the
 * hard one, else the daemon default; max_attempts is max_attempts minus the task's Celery retries (at
 * least 1); run_at is the eta. Returns the JSON text (caller frees) or NULL with err.
 */
char *celery_job_json(const struct celery_task *t, const struct celery_route *route, const char *queue,
                      int max_attempts, double now, char *err, size_t errlen);

/* A task to publish in Celery's format. Borrowed pointers; NULL/0 for absent. */
struct celery_send {
	const char *task;
	const char *id;    /* NULL: a new UUID */
	const char *queue; /* routing key; the list is queue[+SEP+bucket] */
	int priority;      /* 0..9 */
	const json_t *args, *kwargs;
	const json_t *chain, *callbacks, *errbacks; /* lists of signatures or NULL */
	double eta, expires;                        /* Unix seconds or 0 */
	const char *root_id, *parent_id;
	const char *origin;   /* "pid@host" */
	const char *reply_to; /* may be NULL */
	int insert_result;    /* leave a hole before args[0] for a result spliced in later (see below) */
};

/*
 * An encoded message, in four pieces around two holes: envelope = env_pre + base64(body) + env_post, and
 * body = body_pre + [result JSON + (',' if more args)] + body_post. With insert_result = 0 body_pre holds
 * the whole body and body_post is empty. key is the Redis list (without kombu's global_keyprefix).
 * All strings owned; free with celery_encoded_free.
 */
struct celery_encoded {
	char *key, *env_pre, *env_post, *body_pre, *body_post;
	char id[37 + JOB_ID_MAX];
	int comma; /* body_post starts with more args: the splice adds ',' after the result */
};

int celery_encode_task(const struct celery_send *m, struct celery_encoded *out, char *err, size_t errlen);
void celery_encoded_free(struct celery_encoded *e);
/* Joins the pieces around result (JSON text, or NULL when insert_result was 0). Caller frees. */
char *celery_encoded_join(const struct celery_encoded *e, const char *result);

/*
 * A result-backend value: {"status", "result", "traceback", "children", "date_done", "task_id"}.
 * result is JSON text (NULL: null); traceback may be NULL; date_done 0 means null (not ready).
 * Caller frees.
 */
char *celery_meta_encode(const char *status, const char *result, const char *traceback, const char *task_id,
                         double date_done);
/* Celery's serialized exception {"exc_type", "exc_message": [msg], "exc_module"}. Caller frees. */
char *celery_exc_encode(const char *type, const char *module, const char *message);

/* The broker list of a queue and priority: queue, or queue SEP bucket. Returns -1 if it does not fit. */
int celery_queue_key(const char *prefix, const char *queue, int bucket, char *out, size_t outlen);
/* Bucket of a priority 0..9 (kombu priority_steps). */
int celery_bucket(int priority);

/* ISO-8601 with optional fraction and zone (Z, +HH:MM; none = UTC) -> Unix seconds. Returns 0 or -1. */
int celery_iso_parse(const char *s, double *out);
/* Unix seconds -> "YYYY-MM-DDTHH:MM:SS.ffffff" (zone suffix appended when utc_suffix). */
void celery_iso_format(double t, int utc_suffix, char *out, size_t outlen);

/*
 * kombu broadcast messages (remote control on the "celery.pidbox" fanout, its replies, and events on
 * "celeryev"); the format is in schema/celery-control.md.
 */
#define CELERY_METHOD_MAX 64
struct celery_control {
	char method[CELERY_METHOD_MAX + 1];
	json_t *arguments;  /* object (new reference; celery_control_free) */
	char ticket[64];    /* "" when absent */
	char reply_rk[128]; /* reply_to.routing_key; "" when no reply is wanted */
	int for_us;         /* destination is null/empty or names hostname, and headers.expires has not passed */
};
/* Parses one control envelope. Returns 0 (caller calls celery_control_free) or -1 with err. */
int celery_control_parse(const char *buf, size_t len, const char *hostname, double now, struct celery_control *out,
                         char *err, size_t errlen);
void celery_control_free(struct celery_control *c);
/*
 * The envelope kombu publishes for a broadcast or a reply: body (JSON text) base64-encoded, headers (borrowed,
 * NULL: {}), properties {delivery_mode, delivery_info {exchange, routing_key}, priority 0, body_encoding,
 * delivery_tag}. Caller frees.
 */
char *celery_envelope_encode(const char *body, const json_t *headers, const char *exchange, const char *routing_key,
                             int delivery_mode);

/* base64 (RFC 4648, padded). Both return a new buffer the caller frees; decode returns NULL if invalid. */
char *celery_b64_encode(const unsigned char *in, size_t len);
unsigned char *celery_b64_decode(const char *in, size_t len, size_t *outlen);

#endif

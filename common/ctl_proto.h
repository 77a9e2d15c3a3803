/*
 * ctl_proto: the control protocol spoken on hopperd's control socket (unix and TCP), shared by the daemon
 * and every client. Documented in schema/control-protocol.md and schema/control/ (one JSON Schema per op).
 *
 * This module owns: the frame codec (4-byte big-endian length + one JSON object), request parsing and
 * validation (a pure function over the payload bytes), the reply builders, the closed set of error codes
 * (with hopperctl's exit codes), the scopes, and THE ops catalogue: one table that drives the daemon's
 * dispatch and hopperctl's help. It does no I/O and knows nothing about sodium (see ctl_crypto.h).
 *
 * jansson references follow the rule stated in jsonx.h.
 */
#ifndef HOPPER_CTL_PROTO_H
#define HOPPER_CTL_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

/* 2: the TCP handshake is Noise XK with a pinned daemon key and the token's key (protocol 1's TCP handshake,
 * keyed by the stored token hash, is refused with "version"); the unix socket is unchanged and accepts 1. */
#define CTL_PROTOCOL_VERSION 2
#define CTL_FRAME_HEADER_LEN 4
/* Default ceiling for one frame's payload (ctl_max_frame): a job may carry up to 1 MiB of args. */
#define CTL_MAX_FRAME_DEFAULT (1024 * 1024)
/* The smallest and largest ctl_max_frame accepted: a hello must fit; 64 MiB keeps a u32 far from wrapping. */
#define CTL_MAX_FRAME_MIN   4096
#define CTL_MAX_FRAME_LIMIT (64 * 1024 * 1024)
/* A request id is an integer in [0, 2^53) (exact in every JSON implementation) or a short string. */
#define CTL_ID_INT_MAX      9007199254740991LL
#define CTL_ID_STR_MAX      64
#define CTL_BATCH_MAX       1000 /* jobs in one submit: bounds the Lua call and the reply */
#define CTL_LIST_MAX        1000 /* jobs in one list page */
#define CTL_LOGS_MAX        10000
#define CTL_TOKEN_NAME_MAX  64
#define CTL_CURSOR_MAX      (40 + 1 + JOB_ID_MAX) /* "<score>|<id>": bounded by the longest id */
#define CTL_DEAD_CURSOR_MAX 400                   /* dead_retry's cursor: queue|upto|score|id|token */
#define CTL_EVENT_KEY_MAX   120                   /* an event key (job-name characters; "evt:" + it is a wake) */
#define CTL_EVENT_DATA_MAX  65536                 /* an event's data, as JSON text */
#define CTL_DEAD_CHUNK_MAX  1000                  /* dead jobs one dead_retry call examines at most */
#define CTL_DEAD_ERROR_MAX  256                   /* dead_retry's error substring */
#define CTL_STEP_ID_MAX     64                    /* a workflow step id (WF_ID_MAX, worker/workflow/workflow.h) */
/* Stored workflows: a name is a job name of up to 128 bytes (the workflows table's unique key). */
#define CTL_WORKFLOW_NAME_MAX 128
#define CTL_WORKFLOW_DESC_MAX 1024
#define CTL_CELERY_ARGS_MAX   10000 /* positional arguments of one celery.send */
/* A webhook's path token: 32 random bytes in base64url without padding. */
#define CTL_WEBHOOK_TOKEN_LEN 43
/* A webhook's body as hopper-web sends it (base64 of at most 512 KiB, hopper-web's largest cap). */
#define CTL_WEBHOOK_BODY_MAX   (700 * 1024)
#define CTL_WEBHOOK_SECRET_MAX 256

/* Scopes, a bit set. admin implies every other scope. */
enum ctl_scope {
	CTL_SCOPE_SUBMIT = 1 << 0,
	CTL_SCOPE_READ = 1 << 1,
	CTL_SCOPE_CANCEL = 1 << 2,
	CTL_SCOPE_ADMIN = 1 << 3,
	CTL_SCOPE_ALL = 0xf
};

/* The closed set of error codes a client can see. CTL_OK is not an error; it never goes on the wire. */
enum ctl_err {
	CTL_OK = 0,
	CTL_E_BAD_REQUEST,
	CTL_E_UNKNOWN_OP,
	CTL_E_TOO_LARGE,
	CTL_E_VERSION,
	CTL_E_UNAUTHENTICATED,
	CTL_E_AUTH_FAILED,
	CTL_E_LOCKED_OUT,
	CTL_E_FORBIDDEN,
	CTL_E_NOT_FOUND,
	CTL_E_CONFLICT,
	CTL_E_UNAVAILABLE,
	CTL_E_LIMIT,
	CTL_E_INTERNAL,
	CTL_E_COUNT
};

struct ctl_error_info {
	const char *name;    /* on the wire */
	const char *meaning; /* one line, for docs and hopperctl */
	int exit_code;       /* hopperctl's exit status when a request ends with this error */
};
/* Indexed by enum ctl_err; [CTL_OK] is {"ok", ..., 0}. */
extern const struct ctl_error_info ctl_errors[CTL_E_COUNT];
/* Exit codes hopperctl uses besides the table's: the job ended without success (--wait), no connection. */
#define CTL_EXIT_JOB_FAILED 1
#define CTL_EXIT_TRANSPORT  15

const char *ctl_err_name(enum ctl_err e);
/* Returns the code named s, or -1 (a code this build does not know: treat as internal). */
int ctl_err_parse(const char *s);

/* --- the ops catalogue --- */
enum ctl_op_id {
	CTL_OP_HELLO,
	CTL_OP_AUTH,
	CTL_OP_PING,
	CTL_OP_SUBMIT,
	CTL_OP_STATUS,
	CTL_OP_WATCH,
	CTL_OP_CANCEL,
	CTL_OP_RETRY,
	CTL_OP_LIST,
	CTL_OP_LOGS,
	CTL_OP_QUEUES,
	CTL_OP_STATS,
	CTL_OP_PAUSE,
	CTL_OP_RESUME,
	CTL_OP_TOKEN_CREATE,
	CTL_OP_TOKEN_LIST,
	CTL_OP_TOKEN_REVOKE,
	CTL_OP_WORKFLOW_PUT,
	CTL_OP_WORKFLOW_LIST,
	CTL_OP_WORKFLOW_SHOW,
	CTL_OP_WORKFLOW_RM,
	CTL_OP_WORKFLOW_RUN,
	CTL_OP_CELERY_SEND,      /* celery.send: publish a task in Celery's format (issue #6) */
	CTL_OP_WORKFLOW_WEBHOOK, /* workflow.webhook: a stored workflow's webhook (issue #13) */
	CTL_OP_WEBHOOK_TRIGGER,  /* webhook.trigger: hopper-web's POST /webhook/TOKEN */
	CTL_OP_DEAD_RETRY,       /* dead_retry: one chunk of `dead retry --all` (issue #10) */
	CTL_OP_SCHEDULE_PUT,     /* schedule.*: cron schedules kept in Redis (issue #17) */
	CTL_OP_SCHEDULE_LIST,
	CTL_OP_SCHEDULE_SHOW,
	CTL_OP_SCHEDULE_RM,
	CTL_OP_SCHEDULE_PAUSE,
	CTL_OP_SCHEDULE_RESUME,
	CTL_OP_EVENT_SEND, /* event.*: events that wake workflow runs waiting for them (issue #18) */
	CTL_OP_EVENT_LIST,
	CTL_OP_WORKFLOW_RESTART, /* workflow.restart: re-run an ended run from a step (issue #18) */
	CTL_OP_COUNT
};

enum ctl_arg_type {
	CTL_ARG_STRING, /* 1..max bytes, no NUL */
	CTL_ARG_NAME,   /* a job id, queue or type name: job_name_valid, 1..max */
	CTL_ARG_INT,    /* integer in [min, max] */
	CTL_ARG_BOOL,
	CTL_ARG_OBJECT,
	CTL_ARG_ARRAY,   /* 1..max elements, each an object */
	CTL_ARG_STRINGS, /* 1..max elements, each a string of 1..64 bytes */
	CTL_ARG_STATE,   /* one of the job state names */
	CTL_ARG_LIST     /* any JSON array of 0..max elements of any type (Celery's positional args) */
};

struct ctl_arg {
	const char *name;
	enum ctl_arg_type type;
	int required;
	long long min, max; /* INT: bounds; STRING/NAME: max length; ARRAY/STRINGS: max elements */
	const char *help;
};

/* Flags of an op. */
#define CTL_F_PREAUTH (1u << 0) /* allowed before auth (hello, auth) */
#define CTL_F_STREAM  (1u << 1) /* replies with event frames, then a final frame with "done": true */
#define CTL_F_JOB     (1u << 2) /* names one job in "job": non-admins see only their owner's jobs */
#define CTL_F_WRITES  (1u << 3) /* changes state (Redis or SQLite) */
#define CTL_F_NOREDIS (1u << 4) /* answered without Redis (works while Redis is down) */

struct ctl_op {
	const char *name; /* on the wire: "submit", "token.create" */
	enum ctl_op_id id;
	unsigned scope; /* scope bits needed, any of them (0 = none: hello, auth, ping) */
	unsigned flags;
	const struct ctl_arg *args; /* terminated by {NULL} */
	const char *usage;          /* hopperctl argument summary, e.g. "JOB_ID" */
	const char *help;           /* one line */
	/* Cross-field rules (exactly one of two fields, ...), after every field passed its type check. */
	int (*check)(json_t *req, char *err, size_t errlen);
};

/* Indexed by enum ctl_op_id. */
extern const struct ctl_op ctl_ops[CTL_OP_COUNT];
/* The op named name, or NULL. */
const struct ctl_op *ctl_op_find(const char *name);

/* "submit,read" -> bits. Returns 0 and sets *out, or -1 with err. Empty lists are refused. */
int ctl_scopes_parse(const char *csv, unsigned *out, char *err, size_t errlen);
/* Scope names from a JSON array of strings (token.create). Returns 0 or -1 with err. */
int ctl_scopes_from_json(json_t *arr, unsigned *out, char *err, size_t errlen);
/* "submit,read,cancel,admin" order, comma-separated, into buf. Returns buf. */
char *ctl_scopes_format(unsigned bits, char *buf, size_t len);
/* A new JSON array of scope names. Caller decrefs. */
json_t *ctl_scopes_json(unsigned bits);
/* 1 if a credential holding `have` may run an op needing `need` (admin implies all; need 0 always ok). */
int ctl_scope_allows(unsigned have, unsigned need);
/* 1 if a credential with scopes `have` and owner `owner` may see a job whose owner is job_owner (NULL = none). */
int ctl_owner_allows(unsigned have, const char *owner, const char *job_owner);

/* --- frames --- */
enum ctl_frame_status { CTL_FRAME_NEED_MORE = 0, CTL_FRAME_OK = 1, CTL_FRAME_TOO_LARGE = -1, CTL_FRAME_EMPTY = -2 };

/*
 * Decodes one frame from the start of buf (max = the payload ceiling). On CTL_FRAME_OK, *payload points
 * into buf, *plen is its length and *consumed the frame's total size. A length over max is reported as
 * soon as the 4 header bytes are in (before the payload), a zero length as CTL_FRAME_EMPTY.
 */
enum ctl_frame_status ctl_frame_decode(const unsigned char *buf, size_t len, size_t max, const unsigned char **payload,
                                       size_t *plen, size_t *consumed);
/* Writes the 4-byte header for a payload of len bytes. Returns -1 if len is 0 or over max. */
int ctl_frame_header(unsigned char hdr[CTL_FRAME_HEADER_LEN], size_t len, size_t max);
/*
 * Encodes msg as one frame (header + compact JSON). Returns a new buffer (caller frees) and sets *len, or
 * NULL when the JSON is over max bytes (nothing to free).
 */
unsigned char *ctl_frame_encode(const json_t *msg, size_t max, size_t *len);

/* --- requests --- */
struct ctl_request {
	json_t *root;            /* the parsed object (new reference) or NULL */
	json_t *id;              /* borrowed from root; NULL when absent or unusable */
	const struct ctl_op *op; /* NULL unless the op was found */
};

/*
 * Parses and validates one request payload: a JSON object, a valid id (optional), a known op, every field
 * of the op's spec with the right type and bounds, no unknown field, the op's cross-field rules. Returns
 * CTL_OK or the error code (bad_request, unknown_op), with a readable reason in err. In both cases the
 * caller calls ctl_request_free(req); req->id is set whenever the id was valid, so the error reply can
 * carry it. Pure: no I/O, no global state.
 */
enum ctl_err ctl_request_parse(const unsigned char *buf, size_t len, struct ctl_request *req, char *err, size_t errlen);
void ctl_request_free(struct ctl_request *req);

/*
 * Parses a reply or event frame (client side): a JSON object with "id" and exactly one of "ok" or "event".
 * Returns a new reference (caller decrefs) or NULL with err.
 */
json_t *ctl_reply_parse(const unsigned char *buf, size_t len, char *err, size_t errlen);

/* --- replies (each returns a new reference, caller decrefs; id is borrowed and may be NULL -> null) --- */
/* {"id", "ok": true, "result": result}. Takes ownership of result (NULL -> {}). */
json_t *ctl_reply_ok(json_t *id, json_t *result);
/* {"id", "ok": true, "result": result, "done": true}: the end of a stream. Takes ownership of result. */
json_t *ctl_reply_done(json_t *id, json_t *result);
/* {"id", "event": event}. Takes ownership of event. */
json_t *ctl_reply_event(json_t *id, json_t *event);
/* {"id", "ok": false, "error": {"code", "message"}}. message is printf-formatted. */
json_t *ctl_reply_error(json_t *id, enum ctl_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

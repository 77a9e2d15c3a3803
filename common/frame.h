/*
 * frame: the typed, length-prefixed frames daemon and worker exchange over their socketpair.
 *
 * Wire: a 4-byte big-endian payload length, a 1-byte type, then the payload (JSON text, see
 * schema/worker-frames.md). Encoding and decoding are pure functions over buffers; the I/O layer only
 * feeds them bytes. A peer that sends an unknown type or an oversized length is broken: the caller drops
 * the connection (and, for a worker, fails its attempt).
 */
#ifndef HOPPER_FRAME_H
#define HOPPER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_PROTOCOL_VERSION 1
#define FRAME_HEADER_LEN       5
/* A job result or job message may be up to 1 MiB of JSON; a frame adds a little envelope around it. */
#define FRAME_MAX_PAYLOAD (1024 * 1024 + 4096)

enum frame_type {
	FRAME_HELLO = 1,    /* worker -> daemon: {"pid","version","types":[...]} once at start */
	FRAME_JOB = 2,      /* daemon -> worker: {"id","type","queue","args","attempt","timeout_s"} */
	FRAME_PROGRESS = 3, /* worker -> daemon: {"id","progress","stage","message"} */
	FRAME_LOG = 4,      /* worker -> daemon: {"id","level","line"} */
	FRAME_RESULT = 5,   /* worker -> daemon: {"id","ok",("result"|"error","retry"),"park"?} */
	/* workflow.run (worker/workflow/): each request gets exactly one REPLY, in order */
	FRAME_STEP = 6,    /* worker -> daemon: a step record {"id","step","type","state",...,"resume"} */
	FRAME_REPLY = 7,   /* daemon -> worker: {"ok", ...} answering STEP (once durable), ENQUEUE or QUERY */
	FRAME_ENQUEUE = 8, /* worker -> daemon: {"id","queue","job":{...}} submit a child job */
	FRAME_QUERY = 9,   /* worker -> daemon: {"id","job_id"} a child job's state, result and error */
	FRAME_TYPE_MAX = 9
};

struct frame {
	enum frame_type type;
	const char *payload; /* points into the decoder's input buffer; not NUL-terminated */
	size_t len;
};

enum frame_status { FRAME_NEED_MORE = 0, FRAME_OK = 1, FRAME_ERROR = -1 };

/*
 * Decodes one frame from the start of buf. On FRAME_OK, *out points into buf and *consumed is the frame's
 * total size. On FRAME_ERROR, *errstr says why (a static string).
 */
enum frame_status frame_decode(const unsigned char *buf, size_t len, struct frame *out, size_t *consumed,
                               const char **errstr);

/* Writes the 5-byte header for a payload of len bytes. Returns -1 if len is over the limit. */
int frame_header(unsigned char hdr[FRAME_HEADER_LEN], enum frame_type type, size_t len);

const char *frame_type_name(enum frame_type type);

#endif

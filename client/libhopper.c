/*
 * libhopper: the client side of the control protocol (schema/control-protocol.md) over blocking sockets.
 *
 * The frame codec, the reply parser and the error table come from common/ctl_proto, the handshake and the
 * frame encryption from common/ctl_crypto: this file only moves bytes, with poll() bounding every wait, and
 * keeps the per-connection state (keys, counters, the next request id, the last error).
 */
#include "hopper.h"
#include "libhopper_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_crypto.h"
#include "ctl_proto.h"
#include "jsonx.h"
#include "known_hosts.h"
#include "xmalloc.h"

_Static_assert((int)HOPPER_E_INTERNAL == (int)CTL_E_INTERNAL, "enum hopper_err follows enum ctl_err");
_Static_assert((int)HOPPER_E_BAD_REQUEST == (int)CTL_E_BAD_REQUEST, "enum hopper_err follows enum ctl_err");

#define DEFAULT_TIMEOUT_MS 30000
/* Replies are bounded by the client's own ceiling: the protocol's largest frame, whatever the server says. */
#define RECV_MAX     CTL_MAX_FRAME_LIMIT
#define EXIT_TIMEOUT 16

struct hopper {
	int fd;
	int tcp;
	int broken;              /* the connection is gone or out of sync: every call fails */
	struct ctl_session sess; /* TCP only */
	size_t max_frame;        /* the server's, for what we send */
	int timeout_ms;
	long long next_id;
	enum hopper_err code;
	char msg[512];
	json_t *identity, *server;       /* owned */
	char pinned[CTL_PK_B64_LEN + 1]; /* TCP: the daemon key pinned, and where it came from (for errors) */
	char pinned_from[300];
	char learned[CTL_PK_B64_LEN + 1]; /* TCP: a key recorded in known_hosts by this connect ("" if none) */
};

/* --- errors --- */

static int fail(struct hopper *h, enum hopper_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int
fail(struct hopper *h, enum hopper_err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	h->code = code;
	if (code == HOPPER_E_TRANSPORT || code == HOPPER_E_TIMEOUT || code == HOPPER_E_STOPPED)
		h->broken = 1;
	return code;
}

int
libhopper_usage(struct hopper *h, const char *what)
{
	return fail(h, HOPPER_E_USAGE, "%s", what);
}

static int
ok(struct hopper *h)
{
	h->code = HOPPER_OK;
	h->msg[0] = '\0';
	return HOPPER_OK;
}

enum hopper_err
hopper_errcode(const struct hopper *h)
{
	return h->code;
}

const char *
hopper_errmsg(const struct hopper *h)
{
	return h->msg;
}

static const struct {
	enum hopper_err code;
	const char *name;
	int exit_code;
} own_errors[] = {{HOPPER_E_TRANSPORT, "transport", CTL_EXIT_TRANSPORT},
                  {HOPPER_E_TIMEOUT, "timeout", EXIT_TIMEOUT},
                  {HOPPER_E_STOPPED, "stopped", CTL_EXIT_JOB_FAILED},
                  {HOPPER_E_USAGE, "usage", 2}};
#define OWN_ERRORS (sizeof(own_errors) / sizeof(own_errors[0]))

const char *
hopper_err_name(enum hopper_err code)
{
	if ((int)code >= 0 && (int)code < CTL_E_COUNT)
		return ctl_errors[code].name;
	for (size_t i = 0; i < OWN_ERRORS; i++)
		if (own_errors[i].code == code)
			return own_errors[i].name;
	return "internal";
}

enum hopper_err
hopper_err_parse(const char *name)
{
	int c = ctl_err_parse(name);
	if (c > 0)
		return (enum hopper_err)c;
	for (size_t i = 0; i < OWN_ERRORS; i++)
		if (strcmp(own_errors[i].name, name) == 0)
			return own_errors[i].code;
	return HOPPER_E_INTERNAL;
}

int
hopper_exit_code(enum hopper_err code)
{
	if ((int)code >= 0 && (int)code < CTL_E_COUNT)
		return ctl_errors[code].exit_code;
	for (size_t i = 0; i < OWN_ERRORS; i++)
		if (own_errors[i].code == code)
			return own_errors[i].exit_code;
	return ctl_errors[CTL_E_INTERNAL].exit_code;
}

const json_t *
hopper_identity(const struct hopper *h)
{
	return h->identity;
}

const json_t *
hopper_server(const struct hopper *h)
{
	return h->server;
}

const char *
hopper_learned_key(const struct hopper *h)
{
	return h->learned[0] != '\0' ? h->learned : NULL;
}

/* --- bounded blocking I/O --- */

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline (ms, monotonic; -1: forever). 1 ready, 0 timed out, -1 error. */
static int
wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		int t = -1;
		if (deadline >= 0) {
			long long left = deadline - now_ms();
			t = left < 0 ? 0 : (int)(left > 1 << 30 ? 1 << 30 : left);
		}
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, t);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int
write_all(struct hopper *h, const unsigned char *buf, size_t len)
{
	long long deadline = now_ms() + h->timeout_ms;
	while (len > 0) {
		ssize_t n = send(h->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_fd(h->fd, POLLOUT, deadline);
			if (w == 0)
				return fail(h, HOPPER_E_TIMEOUT, "the daemon did not read a request within %d ms",
				            h->timeout_ms);
			if (w > 0)
				continue;
		}
		return fail(h, HOPPER_E_TRANSPORT, "sending to the daemon: %s", strerror(errno));
	}
	return HOPPER_OK;
}

/* Reads exactly len bytes. first_deadline bounds the wait for the first byte, then the connection's timeout
 * bounds the rest (a frame once started must arrive whole). */
static int
read_exact(struct hopper *h, unsigned char *buf, size_t len, long long first_deadline)
{
	long long deadline = first_deadline;
	while (len > 0) {
		ssize_t n = recv(h->fd, buf, len, 0);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			deadline = now_ms() + h->timeout_ms;
			continue;
		}
		if (n == 0)
			return fail(h, HOPPER_E_TRANSPORT, "the daemon closed the connection");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int w = wait_fd(h->fd, POLLIN, deadline);
			if (w == 0)
				return fail(h, HOPPER_E_TIMEOUT, "no answer from the daemon in time");
			if (w > 0)
				continue;
		}
		return fail(h, HOPPER_E_TRANSPORT, "reading from the daemon: %s", strerror(errno));
	}
	return HOPPER_OK;
}

/* Reads one frame's payload. *out is a new buffer of *len bytes (+ a NUL); caller frees. encrypted: the
 * payload is a ciphertext to open (a cleartext error frame is returned as is with *was_clear = 1). */
static int
read_payload(struct hopper *h, long long first_deadline, int encrypted, unsigned char **out, size_t *len,
             int *was_clear)
{
	unsigned char hdr[CTL_FRAME_HEADER_LEN];
	*out = NULL;
	if (was_clear != NULL)
		*was_clear = 0;
	int r = read_exact(h, hdr, sizeof(hdr), first_deadline);
	if (r != HOPPER_OK)
		return r;
	size_t n = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) | hdr[3];
	if (n == 0 || n > RECV_MAX + (encrypted ? CTL_SEAL_OVERHEAD : 0))
		return fail(h, HOPPER_E_TRANSPORT, "the daemon sent a frame of %zu bytes (limit %d)", n, RECV_MAX);
	unsigned char *buf = xmalloc(n + 1);
	r = read_exact(h, buf, n, now_ms() + h->timeout_ms);
	if (r != HOPPER_OK) {
		free(buf);
		return r;
	}
	buf[n] = '\0';
	if (!encrypted) {
		*out = buf;
		*len = n;
		return HOPPER_OK;
	}
	unsigned char *plain = xmalloc(n + 1);
	size_t plen = 0;
	if (n > CTL_SEAL_OVERHEAD && ctl_open(&h->sess, buf, n, plain, &plen) == 0) {
		plain[plen] = '\0';
		free(buf);
		*out = plain;
		*len = plen;
		return HOPPER_OK;
	}
	free(plain);
	/* The protocol's one cleartext frame after the hello: an auth_failed error before the connection closes. */
	if (was_clear != NULL && buf[0] == '{') {
		*was_clear = 1;
		*out = buf;
		*len = n;
		return HOPPER_OK;
	}
	free(buf);
	return fail(h, HOPPER_E_TRANSPORT, "a frame from the daemon did not open (altered or wrong keys)");
}

/* Sends one JSON text as a frame (sealed on TCP after the handshake). */
static int
send_text(struct hopper *h, const char *text, size_t n, int encrypted)
{
	if (n > h->max_frame)
		return fail(h, HOPPER_E_TOO_LARGE, "the request is %zu bytes, over the daemon's limit of %zu", n,
		            h->max_frame);
	unsigned char *frame = xmalloc(CTL_FRAME_HEADER_LEN + n + CTL_SEAL_OVERHEAD);
	size_t flen;
	if (encrypted) {
		flen = ctl_seal(&h->sess, (const unsigned char *)text, n, frame);
		if (flen == 0) {
			free(frame);
			return fail(h, HOPPER_E_TRANSPORT, "cannot seal a frame");
		}
	} else {
		ctl_frame_header(frame, n, h->max_frame);
		memcpy(frame + CTL_FRAME_HEADER_LEN, text, n);
		flen = CTL_FRAME_HEADER_LEN + n;
	}
	int r = write_all(h, frame, flen);
	free(frame);
	return r;
}

/* --- connecting --- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* connect() bounded by the timeout; fd is non-blocking. 0 or -1 with errno set. */
static int
connect_bounded(int fd, const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return -1;
	int w = wait_fd(fd, POLLOUT, now_ms() + timeout_ms);
	if (w <= 0) {
		if (w == 0)
			errno = ETIMEDOUT;
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

static int
open_unix(struct hopper *h, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(h, HOPPER_E_USAGE, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0 || set_nonblock(h->fd) < 0 ||
	    connect_bounded(h->fd, (struct sockaddr *)&sa, sizeof(sa), h->timeout_ms) < 0)
		return fail(h, HOPPER_E_TRANSPORT, "cannot connect to %s: %s", path, strerror(errno));
	return HOPPER_OK;
}

/* "host:port", "[v6]:port". Fills host (hostlen bytes) and port. 0 or -1. */
static int
split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *hs = s;
	size_t hl;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		hs = s + 1;
		hl = (size_t)(end - hs);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static int
open_tcp(struct hopper *h, const char *hostport)
{
	char host[256], port[16];
	if (split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0)
		return fail(h, HOPPER_E_USAGE, "'%s' is not HOST:PORT", hostport);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0)
		return fail(h, HOPPER_E_TRANSPORT, "cannot resolve %s: %s", host, gai_strerror(gai));
	int saved = ECONNREFUSED;
	for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
		h->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (h->fd >= 0 && set_nonblock(h->fd) == 0 &&
		    connect_bounded(h->fd, a->ai_addr, a->ai_addrlen, h->timeout_ms) == 0)
			break;
		saved = errno;
		if (h->fd >= 0)
			close(h->fd);
		h->fd = -1;
	}
	freeaddrinfo(res);
	if (h->fd < 0)
		return fail(h, HOPPER_E_TRANSPORT, "cannot connect to %s: %s", hostport, strerror(saved));
	return HOPPER_OK;
}

/* Parses a reply payload; an error reply sets h's error. 0 with *reply (caller decrefs) when ok:true. */
static int
take_reply(struct hopper *h, const unsigned char *buf, size_t len, json_t **reply)
{
	char err[256];
	*reply = ctl_reply_parse(buf, len, err, sizeof(err));
	if (*reply == NULL)
		return fail(h, HOPPER_E_TRANSPORT, "bad frame from the daemon: %s", err);
	json_t *okv = json_object_get(*reply, "ok");
	if (json_is_false(okv)) {
		json_t *e = json_object_get(*reply, "error");
		const char *m = json_string_value(json_object_get(e, "message"));
		int code = fail(h, hopper_err_parse(json_string_value(json_object_get(e, "code"))), "%s",
		                m != NULL ? m : "(no message)");
		json_decref(*reply);
		*reply = NULL;
		return code;
	}
	return HOPPER_OK;
}

/*
 * A protocol-1 daemon does not know protocol 2's hello: it refuses the field "noise" ("op 'hello' takes no
 * field 'noise'") and,
 * over TCP, a hello without its protocol-1 fields ("hello needs token_id and pk"). Said as what it is.
 */
static int
old_daemon(struct hopper *h, int r)
{
	if (r != HOPPER_E_BAD_REQUEST ||
	    !(((strstr(h->msg, "unknown field") != NULL || strstr(h->msg, "takes no field") != NULL) &&
	       strstr(h->msg, "noise") != NULL) ||
	      strstr(h->msg, "hello needs token_id and pk") != NULL))
		return r;
	char said[201]; /* fail() writes h->msg: the daemon's words are copied out first */
	snprintf(said, sizeof(said), "%.200s", h->msg);
	return fail(h, HOPPER_E_VERSION,
	            "daemon speaks protocol v1, this client needs v%d: upgrade hopperd (it said: %s)",
	            CTL_PROTOCOL_VERSION, said);
}

/* Reads the hello reply's result (or the error it is). 0 with *result (caller decrefs). */
static int
hello_reply(struct hopper *h, json_t **result)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	json_t *reply = NULL;
	*result = NULL;
	int r = read_payload(h, now_ms() + h->timeout_ms, 0, &buf, &len, NULL);
	if (r == HOPPER_OK)
		r = old_daemon(h, take_reply(h, buf, len, &reply));
	free(buf);
	if (r == HOPPER_OK)
		*result = json_incref(json_object_get(reply, "result"));
	json_decref(reply);
	return r;
}

/* Takes max_frame from the server's hello result. */
static void
note_server(struct hopper *h, json_t *server)
{
	json_decref(h->server);
	h->server = server;
	json_int_t mf = json_integer_value(json_object_get(server, "max_frame"));
	h->max_frame = mf >= CTL_MAX_FRAME_MIN && mf <= CTL_MAX_FRAME_LIMIT ? (size_t)mf : CTL_MAX_FRAME_DEFAULT;
}

static int
send_hello(struct hopper *h, const struct hopper_opts *o, const char *noise)
{
	json_t *hello = json_pack("{s:s, s:i, s:s}", "op", "hello", "version", CTL_PROTOCOL_VERSION, "client",
	                          o->client != NULL ? o->client : "libhopper/" HOPPER_VERSION);
	if (noise != NULL)
		json_object_set_new(hello, "noise", json_string(noise));
	char *text = jsonx_dump(hello);
	json_decref(hello);
	int r = send_text(h, text, strlen(text), 0);
	free(text);
	return r;
}

/* Unix socket: the hello exchange. */
static int
do_hello(struct hopper *h, const struct hopper_opts *o)
{
	json_t *res = NULL;
	int r = send_hello(h, o, NULL);
	if (r == HOPPER_OK)
		r = hello_reply(h, &res);
	if (r == HOPPER_OK)
		note_server(h, res);
	return r;
}

static int
do_auth(struct hopper *h, const char *token)
{
	json_t *auth = json_pack("{s:s, s:I}", "op", "auth", "id", (json_int_t)h->next_id++);
	if (token != NULL)
		json_object_set_new(auth, "token", json_string(token));
	else
		json_object_set_new(auth, "peercred", json_true());
	char *text = jsonx_dump(auth);
	json_decref(auth);
	int r = send_text(h, text, strlen(text), 0);
	ctl_wipe(text, strlen(text));
	free(text);
	return r;
}

/* The auth reply (sealed on TCP; a cleartext frame there can only be the failed-auth error). */
static int
auth_reply(struct hopper *h)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int clear = 0;
	json_t *reply = NULL;
	int r = read_payload(h, now_ms() + h->timeout_ms, h->tcp, &buf, &len, &clear);
	if (r == HOPPER_OK) {
		r = take_reply(h, buf, len, &reply);
		if (clear && r == HOPPER_OK) /* a cleartext frame can only be an error: anything else is forged */
			r = fail(h, HOPPER_E_TRANSPORT, "unexpected cleartext frame from the daemon");
	}
	if (r == HOPPER_OK)
		h->identity = json_incref(json_object_get(reply, "result"));
	json_decref(reply);
	free(buf);
	return r;
}

/* The error of a daemon that does not hold the pinned key. */
static int
key_mismatch(struct hopper *h, const char *hostport, const char *why)
{
	return fail(h, HOPPER_E_AUTH_FAILED,
	            "%s %s: it does not hold the key pinned for it (%s, from %s). Either the daemon's key was "
	            "replaced, or this is not that daemon (a man in the middle, or another daemon with a copy of its "
	            "database). If the key was replaced on purpose, remove the line from the known_hosts file (or "
	            "give the new key)",
	            hostport, why, h->pinned, h->pinned_from);
}

/*
 * TCP: the Noise XK handshake with the pinned key. Message 1 rides in the clear hello, message 2 in its
 * reply (its payload the hello result), message 3 is the next frame, its payload the auth request (the
 * token's id; the handshake itself proves the secret). Then the sealed auth reply.
 */
static int
tcp_handshake(struct hopper *h, const struct hopper_opts *o, const char *token_id,
              const unsigned char secret[CTL_TOKEN_SECRET_BYTES], const unsigned char pinned[32])
{
	struct ctl_noise hs;
	struct ctl_keypair ck;
	unsigned char msg[512], *pl = NULL;
	char b64[128];
	size_t plen = 0;
	json_t *res = NULL;
	ctl_token_keypair(secret, &ck);
	ctl_noise_init(&hs, 1, (const unsigned char *)CTL_NOISE_PROLOGUE, strlen(CTL_NOISE_PROLOGUE), &ck, pinned);
	ctl_wipe(&ck, sizeof(ck));
	size_t n = ctl_noise_write(&hs, NULL, 0, msg);
	if (n == 0) {
		ctl_noise_wipe(&hs);
		return fail(h, HOPPER_E_USAGE, "the pinned daemon key is unusable");
	}
	ctl_b64_encode(msg, n, b64, sizeof(b64));
	int r = send_hello(h, o, b64);
	if (r == HOPPER_OK)
		r = hello_reply(h, &res);
	if (r == HOPPER_E_AUTH_FAILED)
		r = key_mismatch(h, o->host, "refused the handshake");
	const char *m2 = r == HOPPER_OK ? json_string_value(json_object_get(res, "noise")) : NULL;
	if (r == HOPPER_OK && m2 == NULL)
		r = fail(h, HOPPER_E_TRANSPORT, "the daemon's hello reply carries no handshake message");
	if (r == HOPPER_OK) {
		size_t cap = strlen(m2);
		unsigned char *m = xmalloc(cap + 1);
		pl = xmalloc(cap + 1);
		long ml = ctl_b64_decode_var(m2, cap, m, cap);
		if (ml < 0 || ctl_noise_read(&hs, m, (size_t)ml, pl, &plen) != 0)
			r = key_mismatch(h, o->host, "answered with a handshake that does not open");
		free(m);
	}
	json_decref(res);
	if (r == HOPPER_OK) {
		json_error_t jerr;
		json_t *server = json_loadb((const char *)pl, plen, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(server)) {
			json_decref(server);
			r = fail(h, HOPPER_E_TRANSPORT, "the daemon's hello (in the handshake) is not a JSON object");
		} else
			note_server(h, server);
	}
	free(pl);
	if (r == HOPPER_OK) {
		char *text = xasprintf("{\"id\":%lld,\"op\":\"auth\",\"token_id\":\"%s\"}", h->next_id++, token_id);
		size_t tl = strlen(text);
		unsigned char *m3 = xmalloc(tl + CTL_NOISE_OVERHEAD(2));
		size_t n3 = ctl_noise_write(&hs, (const unsigned char *)text, tl, m3);
		free(text);
		unsigned char *frame = xmalloc(CTL_FRAME_HEADER_LEN + n3);
		ctl_frame_header(frame, n3, SIZE_MAX);
		memcpy(frame + CTL_FRAME_HEADER_LEN, m3, n3);
		free(m3);
		ctl_noise_split(&hs, &h->sess);
		r = n3 == 0 ? fail(h, HOPPER_E_TRANSPORT, "cannot write handshake message 3")
		            : write_all(h, frame, CTL_FRAME_HEADER_LEN + n3);
		free(frame);
	}
	ctl_noise_wipe(&hs);
	return r;
}

/* Asks the daemon for its key (first use: nothing pinned yet). Fills key64 (44 bytes). Closes h's socket. */
static int
probe_key(struct hopper *h, const struct hopper_opts *o, char key64[44])
{
	json_t *res = NULL;
	int r = send_hello(h, o, NULL);
	if (r == HOPPER_OK)
		r = hello_reply(h, &res);
	const char *k = json_string_value(json_object_get(res, "server_key"));
	unsigned char pk[32];
	if (r == HOPPER_OK && (k == NULL || ctl_b64_decode(k, strlen(k), pk, sizeof(pk)) != 0))
		r = fail(h, HOPPER_E_TRANSPORT, "the daemon did not say its key (server_key)");
	if (r == HOPPER_OK)
		snprintf(key64, 44, "%s", k);
	json_decref(res);
	close(h->fd);
	h->fd = -1;
	return r;
}

/*
 * The daemon key to pin: opts->server_key, else the known_hosts entry, else (first use) the key the daemon
 * says, recorded in known_hosts. Fills pinned. Opens (and may reopen) the connection.
 */
static int
tcp_pin(struct hopper *h, const struct hopper_opts *o, unsigned char pinned[32])
{
	char key64[44] = "", err[512] = "";
	int line = 0, r;
	if (o->server_key != NULL && o->server_key[0] != '\0') {
		snprintf(key64, sizeof(key64), "%.43s", o->server_key);
		snprintf(h->pinned_from, sizeof(h->pinned_from), "the server key option");
	} else if (o->known_hosts == NULL || o->known_hosts[0] == '\0')
		return fail(h, HOPPER_E_USAGE,
		            "TCP needs the daemon's key: give server_key (hopperd --print-pubkey) "
		            "or a known_hosts file");
	else {
		int found = known_hosts_lookup(o->known_hosts, o->host, key64, &line, err, sizeof(err));
		if (found < 0)
			return fail(h, HOPPER_E_USAGE, "%s", err);
		if (found == 0) {
			if ((r = open_tcp(h, o->host)) != HOPPER_OK || (r = probe_key(h, o, key64)) != HOPPER_OK)
				return r;
			if (known_hosts_add(o->known_hosts, o->host, key64, err, sizeof(err)) != 0)
				return fail(h, HOPPER_E_USAGE, "%s", err);
			snprintf(h->learned, sizeof(h->learned), "%s", key64);
			snprintf(h->pinned_from, sizeof(h->pinned_from), "%s, recorded now", o->known_hosts);
		} else
			snprintf(h->pinned_from, sizeof(h->pinned_from), "%s:%d", o->known_hosts, line);
	}
	snprintf(h->pinned, sizeof(h->pinned), "%s", key64);
	if (strlen(key64) != CTL_PK_B64_LEN || ctl_b64_decode(key64, CTL_PK_B64_LEN, pinned, 32) != 0)
		return fail(h, HOPPER_E_USAGE, "the daemon key (%s) is not 43 base64url characters", h->pinned_from);
	return open_tcp(h, o->host);
}

static int
connect_all(struct hopper *h, const struct hopper_opts *o)
{
	char token_id[CTL_TOKEN_ID_LEN + 1] = "";
	unsigned char secret[CTL_TOKEN_SECRET_BYTES], pinned[32];
	int r;
	if (ctl_crypto_init() < 0)
		return fail(h, HOPPER_E_TRANSPORT, "libsodium failed to initialise");
	if (o->token != NULL && ctl_token_parse(o->token, strlen(o->token), token_id, secret) < 0)
		return fail(h, HOPPER_E_USAGE, "the token is not of the form hop_<12 hex>_<43 base64url>");
	if (o->socket != NULL && o->socket[0] != '\0') {
		ctl_wipe(secret, sizeof(secret));
		r = open_unix(h, o->socket);
		if (r == HOPPER_OK)
			r = do_hello(h, o);
		if (r == HOPPER_OK)
			r = do_auth(h, o->token);
	} else if (o->host != NULL && o->host[0] != '\0') {
		if (o->token == NULL)
			return fail(h, HOPPER_E_USAGE,
			            "TCP needs a token (peer credentials work on the Unix socket only)");
		r = tcp_pin(h, o, pinned);
		if (r == HOPPER_OK) {
			h->tcp = 1;
			r = tcp_handshake(h, o, token_id, secret, pinned);
		}
		ctl_wipe(secret, sizeof(secret));
	} else
		return fail(h, HOPPER_E_USAGE, "give a socket path or a HOST:PORT");
	if (r == HOPPER_OK)
		r = auth_reply(h);
	return r;
}

struct hopper *
hopper_connect(const struct hopper_opts *opts, int *code, char *err, size_t errlen)
{
	struct hopper *h = xcalloc(1, sizeof(*h));
	h->fd = -1;
	h->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	h->max_frame = CTL_MAX_FRAME_DEFAULT;
	h->next_id = 1;
	int r = connect_all(h, opts);
	if (code != NULL)
		*code = r;
	if (r == HOPPER_OK)
		return h;
	if (errlen > 0)
		snprintf(err, errlen, "%s", h->msg);
	hopper_close(h);
	return NULL;
}

void
hopper_close(struct hopper *h)
{
	if (h == NULL)
		return;
	if (h->fd >= 0)
		close(h->fd);
	ctl_session_wipe(&h->sess);
	json_decref(h->identity);
	json_decref(h->server);
	free(h);
}

/* --- requests --- */

int
hopper_send(struct hopper *h, const char *op, const json_t *fields, long long *req_id)
{
	if (h->broken)
		return fail(h, HOPPER_E_TRANSPORT, "the connection is closed");
	if (op == NULL || (fields != NULL && !json_is_object(fields)))
		return fail(h, HOPPER_E_USAGE, "an op name and an object of fields");
	json_t *req = fields != NULL ? json_deep_copy(fields) : json_object();
	long long id = h->next_id++;
	json_object_set_new(req, "id", json_integer(id));
	json_object_set_new(req, "op", json_string(op));
	char *text = jsonx_dump(req);
	json_decref(req);
	int r = send_text(h, text, strlen(text), h->tcp);
	free(text);
	if (r == HOPPER_OK && req_id != NULL)
		*req_id = id;
	return r == HOPPER_OK ? ok(h) : r;
}

int
hopper_recv(struct hopper *h, int timeout_ms, json_t **frame)
{
	*frame = NULL;
	if (h->broken)
		return fail(h, HOPPER_E_TRANSPORT, "the connection is closed");
	long long first = timeout_ms < 0 ? now_ms() + h->timeout_ms : now_ms() + timeout_ms;
	/* Nothing arriving in time leaves the connection usable: no byte of a frame was consumed. */
	int w = wait_fd(h->fd, POLLIN, first);
	if (w == 0) {
		snprintf(h->msg, sizeof(h->msg), "no frame from the daemon within %d ms",
		         timeout_ms < 0 ? h->timeout_ms : timeout_ms);
		h->code = HOPPER_E_TIMEOUT;
		return HOPPER_E_TIMEOUT;
	}
	if (w < 0)
		return fail(h, HOPPER_E_TRANSPORT, "waiting for the daemon: %s", strerror(errno));
	unsigned char *buf = NULL;
	size_t len = 0;
	int r = read_payload(h, now_ms() + h->timeout_ms, h->tcp, &buf, &len, NULL);
	if (r != HOPPER_OK)
		return r;
	char err[256];
	*frame = ctl_reply_parse(buf, len, err, sizeof(err));
	free(buf);
	if (*frame == NULL)
		return fail(h, HOPPER_E_TRANSPORT, "bad frame from the daemon: %s", err);
	return ok(h);
}

int
hopper_fd(const struct hopper *h)
{
	return h->broken ? -1 : h->fd;
}

/* 1 when frame answers request id (or is an error the daemon could not tie to a request: id null). */
static int
is_ours(const json_t *frame, long long id)
{
	json_t *fid = json_object_get(frame, "id");
	if (json_is_integer(fid))
		return json_integer_value(fid) == id;
	return json_is_null(fid) && json_is_false(json_object_get(frame, "ok"));
}

/* Turns a final reply into the caller's result or h's error. Takes ownership of frame. */
static int
finish(struct hopper *h, json_t *frame, json_t **result)
{
	int r = HOPPER_OK;
	if (json_is_false(json_object_get(frame, "ok"))) {
		json_t *e = json_object_get(frame, "error");
		const char *m = json_string_value(json_object_get(e, "message"));
		r = fail(h, hopper_err_parse(json_string_value(json_object_get(e, "code"))), "%s",
		         m != NULL ? m : "(no message)");
	} else if (result != NULL) {
		json_t *res = json_object_get(frame, "result");
		*result = res != NULL ? json_incref(res) : json_object();
	}
	json_decref(frame);
	return r == HOPPER_OK ? ok(h) : r;
}

int
hopper_call(struct hopper *h, const char *op, const json_t *fields, json_t **result)
{
	long long id;
	if (result != NULL)
		*result = NULL;
	int r = hopper_send(h, op, fields, &id);
	if (r != HOPPER_OK)
		return r;
	for (;;) {
		json_t *frame;
		r = hopper_recv(h, -1, &frame);
		if (r != HOPPER_OK)
			return r;
		if (is_ours(frame, id) && json_object_get(frame, "ok") != NULL)
			return finish(h, frame, result);
		json_decref(frame); /* an event, or a reply to a request sent with hopper_send */
	}
}

int
hopper_watch(struct hopper *h, const char *job, hopper_event_cb cb, void *ud, int timeout_ms, json_t **result)
{
	return hopper_watch_in(h, job, NULL, cb, ud, timeout_ms, result);
}

int
hopper_watch_in(struct hopper *h, const char *job, const char *queue, hopper_event_cb cb, void *ud, int timeout_ms,
                json_t **result)
{
	long long id;
	if (result != NULL)
		*result = NULL;
	if (job == NULL)
		return fail(h, HOPPER_E_USAGE, "watch needs a job id");
	json_t *f = json_pack("{s:s}", "job", job);
	if (queue != NULL && queue[0] != '\0')
		json_object_set_new(f, "queue", json_string(queue));
	int r = hopper_send(h, "watch", f, &id);
	json_decref(f);
	if (r != HOPPER_OK)
		return r;
	long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
	for (;;) {
		json_t *frame;
		/* No deadline: wait as long as it takes (a queued job may wait for hours). */
		long long left = deadline < 0 ? HOPPER_WAIT_FOREVER : deadline - now_ms();
		r = hopper_recv(h, left > 0 ? (int)left : 0, &frame);
		if (r == HOPPER_E_TIMEOUT && deadline < 0)
			continue;
		if (r == HOPPER_E_TIMEOUT)
			return fail(h, HOPPER_E_TIMEOUT, "job %s did not end within %d ms", job, timeout_ms);
		if (r != HOPPER_OK)
			return r;
		if (!is_ours(frame, id)) {
			json_decref(frame);
			continue;
		}
		json_t *ev = json_object_get(frame, "event");
		if (ev == NULL)
			return finish(h, frame, result);
		int stop = cb != NULL ? cb(ev, ud) : 0;
		json_decref(frame);
		if (stop != 0)
			return fail(h, HOPPER_E_STOPPED, "the watch of %s was stopped", job);
	}
}

/* --- typed helpers --- */

/* hopper_call with fields built by the caller; takes ownership of fields. */
static int
call_owned(struct hopper *h, const char *op, json_t *fields, json_t **result)
{
	int r = hopper_call(h, op, fields, result);
	json_decref(fields);
	return r;
}

/* queue NULL or "": found among the known queues (ambiguous ids answer bad_request). */
static int
call_job(struct hopper *h, const char *op, const char *job, const char *queue, json_t **result)
{
	if (job == NULL)
		return fail(h, HOPPER_E_USAGE, "%s needs a job id", op);
	json_t *f = json_pack("{s:s}", "job", job);
	if (queue != NULL && queue[0] != '\0')
		json_object_set_new(f, "queue", json_string(queue));
	return call_owned(h, op, f, result);
}

int
hopper_ping(struct hopper *h, json_t **result)
{
	return hopper_call(h, "ping", NULL, result);
}

int
hopper_submit(struct hopper *h, const json_t *job, json_t **result)
{
	if (!json_is_object(job))
		return fail(h, HOPPER_E_USAGE, "a job is a JSON object");
	return call_owned(h, "submit", json_pack("{s:O}", "job", job), result);
}

int
hopper_submit_batch(struct hopper *h, const json_t *jobs, json_t **result)
{
	if (!json_is_array(jobs))
		return fail(h, HOPPER_E_USAGE, "a batch is a JSON array of jobs");
	return call_owned(h, "submit", json_pack("{s:O}", "jobs", jobs), result);
}

int
hopper_status(struct hopper *h, const char *job, json_t **result)
{
	return call_job(h, "status", job, NULL, result);
}

int
hopper_status_in(struct hopper *h, const char *job, const char *queue, json_t **result)
{
	return call_job(h, "status", job, queue, result);
}

int
hopper_cancel(struct hopper *h, const char *job, json_t **result)
{
	return call_job(h, "cancel", job, NULL, result);
}

int
hopper_cancel_in(struct hopper *h, const char *job, const char *queue, json_t **result)
{
	return call_job(h, "cancel", job, queue, result);
}

int
hopper_retry(struct hopper *h, const char *job, json_t **result)
{
	return call_job(h, "retry", job, NULL, result);
}

int
hopper_retry_in(struct hopper *h, const char *job, const char *queue, json_t **result)
{
	return call_job(h, "retry", job, queue, result);
}

static void
set_str(json_t *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, key, json_string(v));
}

int
hopper_list(struct hopper *h, const struct hopper_list_filter *f, json_t **result)
{
	json_t *fields = json_object();
	if (f != NULL) {
		set_str(fields, "state", f->state);
		set_str(fields, "queue", f->queue);
		set_str(fields, "type", f->type);
		set_str(fields, "owner", f->owner);
		set_str(fields, "cursor", f->cursor);
		if (f->limit > 0)
			json_object_set_new(fields, "limit", json_integer(f->limit));
	}
	return call_owned(h, "list", fields, result);
}

int
hopper_dead_retry_all(struct hopper *h, const struct hopper_dead_filter *f, long long *retried)
{
	long long total = 0;
	char *cursor = NULL;
	int r;
	for (;;) {
		json_t *fields = json_object(), *res = NULL;
		if (f != NULL) {
			set_str(fields, "queue", f->queue);
			set_str(fields, "type", f->type);
			set_str(fields, "error", f->error);
			if (f->older_than_s > 0)
				json_object_set_new(fields, "older_than_s", json_integer(f->older_than_s));
			if (f->chunk > 0)
				json_object_set_new(fields, "limit", json_integer(f->chunk));
		}
		set_str(fields, "cursor", cursor);
		free(cursor);
		cursor = NULL;
		r = call_owned(h, "dead_retry", fields, &res);
		if (r != HOPPER_OK)
			break;
		total += json_integer_value(json_object_get(res, "retried"));
		const char *c = json_string_value(json_object_get(res, "cursor"));
		cursor = c != NULL ? xstrdup(c) : NULL;
		json_decref(res);
		if (cursor == NULL)
			break;
	}
	if (retried != NULL)
		*retried = total;
	return r;
}

int
hopper_logs(struct hopper *h, const char *job, int limit, json_t **result)
{
	if (job == NULL)
		return fail(h, HOPPER_E_USAGE, "logs needs a job id");
	json_t *fields = json_pack("{s:s}", "job", job);
	if (limit > 0)
		json_object_set_new(fields, "limit", json_integer(limit));
	return call_owned(h, "logs", fields, result);
}

int
hopper_queues(struct hopper *h, json_t **result)
{
	return hopper_call(h, "queues", NULL, result);
}

int
hopper_stats(struct hopper *h, json_t **result)
{
	return hopper_call(h, "stats", NULL, result);
}

int
hopper_pause(struct hopper *h, const char *queue, json_t **result)
{
	if (queue == NULL)
		return fail(h, HOPPER_E_USAGE, "pause needs a queue");
	return call_owned(h, "pause", json_pack("{s:s}", "queue", queue), result);
}

int
hopper_resume(struct hopper *h, const char *queue, json_t **result)
{
	if (queue == NULL)
		return fail(h, HOPPER_E_USAGE, "resume needs a queue");
	return call_owned(h, "resume", json_pack("{s:s}", "queue", queue), result);
}

int
hopper_token_create(struct hopper *h, const char *name, const char *scopes, const char *owner, json_t **result)
{
	unsigned bits;
	char err[128];
	if (name == NULL || scopes == NULL)
		return fail(h, HOPPER_E_USAGE, "token.create needs a name and scopes");
	if (ctl_scopes_parse(scopes, &bits, err, sizeof(err)) < 0)
		return fail(h, HOPPER_E_USAGE, "%s", err);
	json_t *fields = json_pack("{s:s, s:o}", "name", name, "scopes", ctl_scopes_json(bits));
	set_str(fields, "owner", owner);
	return call_owned(h, "token.create", fields, result);
}

int
hopper_token_list(struct hopper *h, json_t **result)
{
	return hopper_call(h, "token.list", NULL, result);
}

int
hopper_token_revoke(struct hopper *h, const char *name, const char *token_id, json_t **result)
{
	if ((name == NULL) == (token_id == NULL))
		return fail(h, HOPPER_E_USAGE, "token.revoke needs exactly one of a name and a token id");
	json_t *fields = json_object();
	set_str(fields, "name", name);
	set_str(fields, "token_id", token_id);
	return call_owned(h, "token.revoke", fields, result);
}

/* The celery.send fields of t (absent ones left out, so the daemon's defaults apply). New reference. */
static json_t *
celery_fields(const struct hopper_celery_task *t)
{
	json_t *f = json_object();
	json_object_set_new(f, "task", json_string(t->task)); /* not UTF-8: left out, the daemon says so */
	set_str(f, "queue", t->queue);
	set_str(f, "task_id", t->id);
	if (t->args != NULL)
		json_object_set(f, "args", (json_t *)t->args);
	if (t->kwargs != NULL)
		json_object_set(f, "kwargs", (json_t *)t->kwargs);
	if (t->priority != 0)
		json_object_set_new(f, "priority", json_integer(t->priority));
	if (t->countdown_s != 0)
		json_object_set_new(f, "countdown_s", json_integer(t->countdown_s));
	if (t->eta != 0)
		json_object_set_new(f, "eta", json_integer(t->eta));
	if (t->expires_s != 0)
		json_object_set_new(f, "expires_s", json_integer(t->expires_s));
	return f;
}

int
hopper_celery_send(struct hopper *h, const struct hopper_celery_task *t, char **task_id_out)
{
	json_t *res = NULL;
	if (task_id_out != NULL)
		*task_id_out = NULL;
	if (t == NULL || t->task == NULL)
		return fail(h, HOPPER_E_USAGE, "celery.send needs a task name");
	int r = call_owned(h, "celery.send", celery_fields(t), &res);
	if (r != HOPPER_OK)
		return r;
	const char *id = json_string_value(json_object_get(res, "task_id"));
	if (id == NULL) {
		json_decref(res);
		return fail(h, HOPPER_E_INTERNAL, "celery.send replied without a task_id");
	}
	if (task_id_out != NULL)
		*task_id_out = xstrdup(id);
	json_decref(res);
	return HOPPER_OK;
}

/*
 * ctl_listen: where control clients come in. The unix socket (created safely: a live daemon on the path
 * means refuse to start, only a refused probe lets a stale socket go; umask around bind), the optional TCP
 * listener, accepting (a connection over ctl_max_conns gets a limit error and is closed; out of file
 * descriptors pauses accepting for a second instead of spinning), and who the peer is (SO_PEERCRED uid on
 * the unix socket, the address - IPv6 by /64 - on TCP) for logs and the failed-auth table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "log.h"
#include "xmalloc.h"

#define LISTEN_BACKLOG 128
/* Accepts per wake-up, so a connection storm cannot starve the rest of the loop. */
#define ACCEPT_BURST 64

/* --- accepting --- */

/* Fills peer, peer_key and uid from the socket. */
static void
peer_identify(struct ctl_conn *c, const struct sockaddr_storage *sa)
{
	if (!c->tcp) {
		struct ucred cr;
		socklen_t len = sizeof(cr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
			c->uid = (long)cr.uid;
			snprintf(c->peer, sizeof(c->peer), "uid %ld pid %ld", (long)cr.uid, (long)cr.pid);
		} else {
			c->uid = -1;
			snprintf(c->peer, sizeof(c->peer), "uid ?");
		}
		snprintf(c->peer_key, sizeof(c->peer_key), "uid:%ld", c->uid);
		return;
	}
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	c->uid = -1;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(c->peer_key, sizeof(c->peer_key), "ip:%s", host);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *b = in6->sin6_addr.s6_addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			snprintf(c->peer_key, sizeof(c->peer_key), "ip:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
		else /* one attacker usually holds a whole /64: count failures per /64 */
			snprintf(c->peer_key, sizeof(c->peer_key), "ip6:%02x%02x%02x%02x%02x%02x%02x%02x/64", b[0],
			         b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
	}
	snprintf(c->peer, sizeof(c->peer), "%s%s%s:%d", sa->ss_family == AF_INET6 ? "[" : "", host,
	         sa->ss_family == AF_INET6 ? "]" : "", port);
}

/* Over the cap: a best-effort error frame in clear (nothing was negotiated yet), then close. */
static void
refuse(int fd, size_t max)
{
	json_t *e = ctl_reply_error(NULL, CTL_E_LIMIT, "too many connections");
	size_t len = 0;
	unsigned char *frame = ctl_frame_encode(e, max, &len);
	if (frame != NULL && write(fd, frame, len) < 0) {
		/* the client may be gone already: nothing to do */
	}
	free(frame);
	json_decref(e);
	close(fd);
}

/* Open connections from this peer (unix: its uid; TCP: its address or IPv6 /64). */
static int
peer_conns(const struct ctl *ctl, const char *peer_key)
{
	int n = 0;
	for (const struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		if (!c->dead && strcmp(c->peer_key, peer_key) == 0)
			n++;
	return n;
}

/* Accepts one connection. Returns 0 when there is none left to take (or accepting paused), else 1. */
static int
accept_one(struct ctl *ctl, int lfd, int tcp)
{
	struct server *s = ctl->s;
	struct sockaddr_storage sa;
	socklen_t slen = sizeof(sa);
	int fd = accept4(lfd, (struct sockaddr *)&sa, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Pause rather than spin on a listener that stays readable (OpenSMTPD control.c). */
			log_error("ctl: accept: %s; pausing new connections for 1 s", strerror(errno));
			ev_io_stop(s->loop, &ctl->unix_io);
			ev_io_stop(s->loop, &ctl->tcp_io);
			ev_timer_start(s->loop, &ctl->accept_retry);
		}
		return errno == EINTR || errno == ECONNABORTED;
	}
	if (ctl->nconns >= s->cfg.ctl_max_conns) {
		log_warn("ctl: connection refused: %d connections open (ctl_max_conns)", ctl->nconns);
		refuse(fd, (size_t)s->cfg.ctl_max_frame);
		return 1;
	}
	struct ctl_conn *c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	c->serial = ++ctl->serial;
	c->fd = fd;
	c->tcp = tcp;
	c->opened_at = c->last_frame_at = clock_mono();
	peer_identify(c, &sa);
	int mine = peer_conns(ctl, c->peer_key);
	if (mine >= s->cfg.ctl_max_conns_per_peer) {
		/* One peer (a uid, an address) cannot take every slot: others still get in. */
		if (mine == s->cfg.ctl_max_conns_per_peer)
			log_warn("ctl: %s: connection refused: %d open from %s (ctl_max_conns_per_peer)", c->peer, mine,
			         c->peer_key);
		refuse(fd, (size_t)s->cfg.ctl_max_frame);
		free(c);
		return 1;
	}
	ctl_conn_start(c);
	return 1;
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl *ctl = w->data;
	int tcp = w == &ctl->tcp_io;
	for (int i = 0; i < ACCEPT_BURST && ev_is_active(w); i++)
		if (!accept_one(ctl, w->fd, tcp))
			break;
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl *ctl = w->data;
	if (ctl->unix_fd >= 0)
		ev_io_start(loop, &ctl->unix_io);
	if (ctl->tcp_fd >= 0)
		ev_io_start(loop, &ctl->tcp_io);
}

/* --- listeners --- */

/*
 * The socket path: configured, or the database's path with ".sock" for ".db" (hopper.db -> hopper.sock),
 * so each daemon's socket sits beside its own execution log. Caller frees; NULL when off.
 */
static char *
socket_path(const struct config *cfg)
{
	if (strcmp(cfg->ctl_socket, "none") == 0)
		return NULL;
	if (cfg->ctl_socket[0] != '\0')
		return xstrdup(cfg->ctl_socket);
	size_t n = strlen(cfg->db_path);
	if (n > 3 && strcmp(cfg->db_path + n - 3, ".db") == 0)
		n -= 3;
	return xasprintf("%.*s.sock", (int)n, cfg->db_path);
}

/*
 * A path that exists is probed first: a daemon that answers owns it (refuse to start); only a refused
 * connection (a stale socket of a dead daemon) lets it be unlinked. Anything else (not a socket, no access)
 * is left alone and reported.
 */
static int
socket_probe(const char *path, char **cause)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : (*cause = xasprintf("%s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		*cause = xasprintf("%s exists and is not a socket; not touching it", path);
		return -1;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int err = errno;
	close(fd);
	if (rc == 0) {
		*cause = xasprintf("%s: another hopperd is listening there", path);
		return -1;
	}
	if (err != ECONNREFUSED) {
		*cause = xasprintf("%s: probing the existing socket: %s", path, strerror(err));
		return -1;
	}
	log_warn("ctl: removing stale socket %s (no daemon answers)", path);
	if (unlink(path) != 0 && errno != ENOENT) {
		*cause = xasprintf("unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
listen_unix(struct ctl *ctl, const char *path, char **cause)
{
	const struct config *cfg = &ctl->s->cfg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		*cause = xasprintf("ctl_socket: %s: path too long", path);
		return -1;
	}
	if (socket_probe(path, cause) != 0)
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	mode_t mode = (mode_t)strtol(cfg->ctl_socket_mode, NULL, 8);
	/* The socket never exists with looser permissions than configured, not even between bind and chmod. */
	mode_t old = umask((mode_t)(~mode & 0777));
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || chmod(path, mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		*cause = xasprintf("ctl_socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	ctl->unix_fd = fd;
	ctl->unix_path = xstrdup(path);
	log_info("ctl: listening on %s (mode %s)", path, cfg->ctl_socket_mode);
	return 0;
}

static int
listen_tcp(struct ctl *ctl, const char *spec, char **cause)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = (size_t)(colon - spec);
	if (hl >= sizeof(host)) {
		*cause = xasprintf("ctl_tcp: '%s': host too long", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:port */
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (gai != 0) {
		*cause = xasprintf("ctl_tcp: '%s': %s", spec, gai_strerror(gai));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		*cause = xasprintf("ctl_tcp %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	ctl->tcp_fd = fd;
	char pk[CTL_PK_B64_LEN + 1];
	ctl_b64_encode(ctl->key.pk, sizeof(ctl->key.pk), pk, sizeof(pk));
	log_info("ctl: listening on tcp %s (Noise XK; token authentication); public key %s", spec, pk);
	return 0;
}

int
ctl_start(struct server *s, char **cause)
{
	ctl_check_handlers();
	if (ctl_crypto_init() != 0) {
		*cause = xstrdup("libsodium failed to initialise");
		return -1;
	}
	struct ctl *ctl = xcalloc(1, sizeof(*ctl));
	ctl->s = s;
	ctl->unix_fd = ctl->tcp_fd = -1;
	s->ctl = ctl;
	ev_timer_init(&ctl->accept_retry, accept_retry_cb, 1.0, 0);
	ctl->accept_retry.data = ctl;
	char *path = socket_path(&s->cfg);
	int rc = 0;
	if (path != NULL)
		rc = listen_unix(ctl, path, cause);
	free(path);
	if (rc == 0 && s->cfg.ctl_tcp[0] != '\0') {
		char *kpath = ctl_key_path(&s->cfg);
		rc = ctl_key_load(kpath, &ctl->key, cause);
		free(kpath);
	}
	if (rc == 0 && s->cfg.ctl_tcp[0] != '\0')
		rc = listen_tcp(ctl, s->cfg.ctl_tcp, cause);
	if (rc != 0)
		return -1;
	ev_io_init(&ctl->unix_io, accept_cb, ctl->unix_fd, EV_READ);
	ev_io_init(&ctl->tcp_io, accept_cb, ctl->tcp_fd, EV_READ);
	ctl->unix_io.data = ctl->tcp_io.data = ctl;
	if (ctl->unix_fd >= 0)
		ev_io_start(s->loop, &ctl->unix_io);
	if (ctl->tcp_fd >= 0)
		ev_io_start(s->loop, &ctl->tcp_io);
	return 0;
}

void
ctl_free(struct server *s)
{
	struct ctl *ctl = s->ctl;
	if (ctl == NULL)
		return;
	ctl_conns_free(ctl);
	ev_io_stop(s->loop, &ctl->unix_io);
	ev_io_stop(s->loop, &ctl->tcp_io);
	ev_timer_stop(s->loop, &ctl->accept_retry);
	if (ctl->unix_fd >= 0) {
		close(ctl->unix_fd);
		unlink(ctl->unix_path);
	}
	if (ctl->tcp_fd >= 0)
		close(ctl->tcp_fd);
	free(ctl->unix_path);
	ctl_wipe(&ctl->key, sizeof(ctl->key));
	free(ctl);
	s->ctl = NULL;
}

/*
 * beanstalk: a minimal beanstalkd client for the peers benchmark (bench/peers/compare.py, make bench-peers).
 *
 * With -f it pre-fills tube TUBE with N noop jobs ("put", pipelined 1000 at a time); otherwise it consumes N
 * jobs, one "reserve-with-timeout 1" + "delete" round trip pair per job, as the simplest reliable consumer
 * does (the same shape as bench/baseline.c's BLMOVE + LREM). Two of these run side by side as the 2 consumers.
 *
 *   beanstalk (-h HOST -p PORT | -s SOCKET) [-t TUBE] [-n N] [-f]
 *
 * Exit 0 when N jobs were put or deleted, 1 on an I/O or protocol error or a tube that ran dry, 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* puts per pipelined batch while pre-filling */
#define FILL_BATCH 1000
/* one reply line or job body; noop jobs are ~60 bytes */
#define LINE_MAX_LEN 512

/* Buffered reader over the connection: owns nothing but its buffer. */
struct conn {
	int fd;
	char buf[65536];
	size_t len, off;
};

static int
dial(const char *host, int port, const char *path)
{
	int fd;

	if (path != NULL) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(path) >= sizeof sa.sun_path)
			return -1;
		strcpy(sa.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			return -1;
		return fd;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to and including "\r\n" into out (NUL-terminated, CRLF stripped). Returns 0 or -1. */
static int
read_line(struct conn *c, char *out, size_t cap)
{
	size_t n = 0;

	for (;;) {
		if (c->off == c->len) {
			ssize_t r = read(c->fd, c->buf, sizeof c->buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			c->len = (size_t)r;
			c->off = 0;
		}
		char ch = c->buf[c->off++];
		if (n + 1 >= cap)
			return -1;
		out[n++] = ch;
		if (n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n') {
			out[n - 2] = '\0';
			return 0;
		}
	}
}

static int
fill(struct conn *c, const char *tube, long n)
{
	char cmd[LINE_MAX_LEN], line[LINE_MAX_LEN];
	int len = snprintf(cmd, sizeof cmd, "use %s\r\n", tube);

	if (send_all(c->fd, cmd, (size_t)len) < 0 || read_line(c, line, sizeof line) < 0 || strncmp(line, "USING", 5))
		return -1;
	for (long done = 0; done < n;) {
		long batch = n - done < FILL_BATCH ? n - done : FILL_BATCH;
		static char out[FILL_BATCH * 160];
		size_t o = 0;
		for (long i = 0; i < batch; i++) {
			char job[128];
			int jl = snprintf(job, sizeof job, "{\"id\":\"b-%ld\",\"type\":\"noop\"}", done + i);
			o += (size_t)snprintf(out + o, sizeof out - o, "put 0 0 60 %d\r\n%s\r\n", jl, job);
		}
		if (send_all(c->fd, out, o) < 0)
			return -1;
		for (long i = 0; i < batch; i++)
			if (read_line(c, line, sizeof line) < 0 || strncmp(line, "INSERTED", 8)) {
				fprintf(stderr, "beanstalk: put: %s\n", line);
				return -1;
			}
		done += batch;
	}
	return 0;
}

static int
consume(struct conn *c, const char *tube, long n)
{
	char cmd[LINE_MAX_LEN], line[LINE_MAX_LEN];
	int len = snprintf(cmd, sizeof cmd, "watch %s\r\nignore default\r\n", tube);

	if (send_all(c->fd, cmd, (size_t)len) < 0 || read_line(c, line, sizeof line) < 0 ||
	    read_line(c, line, sizeof line) < 0)
		return -1;
	for (long done = 0; done < n; done++) {
		static const char reserve[] = "reserve-with-timeout 1\r\n";
		unsigned long long id;
		int bytes;

		if (send_all(c->fd, reserve, sizeof reserve - 1) < 0 || read_line(c, line, sizeof line) < 0)
			return -1;
		if (sscanf(line, "RESERVED %llu %d", &id, &bytes) != 2) {
			fprintf(stderr, "beanstalk: reserve after %ld of %ld jobs: %s\n", done, n, line);
			return -1;
		}
		if (read_line(c, line, sizeof line) < 0) /* the job body */
			return -1;
		len = snprintf(cmd, sizeof cmd, "delete %llu\r\n", id);
		if (send_all(c->fd, cmd, (size_t)len) < 0 || read_line(c, line, sizeof line) < 0 ||
		    strcmp(line, "DELETED") != 0) {
			fprintf(stderr, "beanstalk: delete %llu: %s\n", id, line);
			return -1;
		}
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: beanstalk (-h HOST -p PORT | -s SOCKET) [-t TUBE] [-n N] [-f]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = NULL, *tube = "bench";
	int port = 11300, do_fill = 0, ch;
	long n = 20000;

	while ((ch = getopt(argc, argv, "h:p:s:t:n:f")) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 's': path = optarg; break;
		case 't': tube = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'f': do_fill = 1; break;
		default: usage();
		}
	}
	if (optind != argc || n <= 0 || port <= 0 || port > 65535)
		usage();
	static struct conn c;
	c.fd = dial(host, port, path);
	if (c.fd < 0) {
		perror("beanstalk: connect");
		return 1;
	}
	int rc = do_fill ? fill(&c, tube, n) : consume(&c, tube, n);
	close(c.fd);
	return rc < 0 ? 1 : 0;
}

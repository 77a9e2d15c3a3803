/*
 * secret: a secret (a webhook's HMAC key, the Redis password) read from a file or standard input, so that it
 * is not on the command line, where ps(1) and /proc/PID/cmdline show it to every user of the machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_crypto.h"
#include "hopperctl.h"
#include "xmalloc.h"

/* The longest secret read: webhook secrets and passwords are tens of bytes; this bounds a wrong file. */
#define SECRET_MAX 4096

/* Reads at most SECRET_MAX + 1 bytes of fd into buf (which holds SECRET_MAX + 2). -1 on a read error. */
static ssize_t
read_all(int fd, char *buf)
{
	size_t n = 0;
	while (n < SECRET_MAX + 1) {
		ssize_t r = read(fd, buf + n, SECRET_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

char *
secret_read(const char *path, const char *what)
{
	int fd = 0;
	if (strcmp(path, "-") != 0) {
		/* O_NONBLOCK: a FIFO (or a device) must not block the open; the type check below refuses it. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		struct stat st;
		if (fd < 0) {
			ctl_warn("%s %s: %s", what, path, strerror(errno));
			return NULL;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			ctl_warn("%s %s: not a regular file", what, path);
			close(fd);
			return NULL;
		}
		if (st.st_mode & (S_IRWXG | S_IRWXO)) {
			ctl_warn("%s %s is accessible by group or others (mode %04o): refusing it; chmod 600 %s", what,
			         path, (unsigned)(st.st_mode & 07777), path);
			close(fd);
			return NULL;
		}
	}
	char buf[SECRET_MAX + 2];
	ssize_t n = read_all(fd, buf);
	int err = errno;
	if (fd != 0)
		close(fd);
	char *out = NULL;
	if (n < 0)
		ctl_warn("%s %s: %s", what, path, strerror(err));
	else if (n > SECRET_MAX)
		ctl_warn("%s %s: longer than %d bytes", what, path, SECRET_MAX);
	else {
		/* One final newline (echo, an editor) is not part of the secret; anything else is. */
		if (n > 0 && buf[n - 1] == '\n')
			n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
		if (n == 0)
			ctl_warn("%s %s is empty", what, path);
		else if (memchr(buf, '\0', (size_t)n) != NULL)
			ctl_warn("%s %s holds a NUL byte", what, path);
		else
			out = xstrndup(buf, (size_t)n);
	}
	ctl_wipe(buf, sizeof(buf));
	return out;
}

void
secret_free(char *s)
{
	if (s == NULL)
		return;
	ctl_wipe(s, strlen(s));
	free(s);
}

#include "known_hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_LEN 43 /* base64url of 32 bytes */

static int
key_ok(const char *k, size_t n)
{
	if (n != KEY_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return 0;
	}
	return 1;
}

int
known_hosts_lookup(const char *path, const char *hostport, char key[44], int *line, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char buf[1024];
	int n = 0, rc = 0;
	size_t hl = strlen(hostport);
	while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		n++;
		char *p = buf + strspn(buf, " \t");
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		if (strncmp(p, hostport, hl) != 0 || (p[hl] != ' ' && p[hl] != '\t'))
			continue;
		char *k = p + hl + strspn(p + hl, " \t");
		size_t kl = strcspn(k, " \t\r\n");
		if (!key_ok(k, kl)) {
			snprintf(err, errlen, "%s:%d: the key for %s is not 43 base64url characters", path, n,
			         hostport);
			rc = -1;
			break;
		}
		memcpy(key, k, KEY_LEN);
		key[KEY_LEN] = '\0';
		*line = n;
		rc = 1;
	}
	fclose(f);
	return rc;
}

int
known_hosts_add(const char *path, const char *hostport, const char *key, char *err, size_t errlen)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		/* mkdir -p, each new directory 0700 (~/.config may not exist yet) */
		for (char *p = dir + 1;; p++) {
			if (*p != '/' && *p != '\0')
				continue;
			char c = *p;
			*p = '\0';
			if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
				snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
				return -1;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s %s\n", hostport, key);
	int rc = n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) == n ? 0 : -1;
	if (rc != 0)
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

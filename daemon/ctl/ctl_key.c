/*
 * ctl_key: the daemon's long-term X25519 key, the static key of the TCP handshake (Noise XK) that clients
 * pin. It lives in its own file (ctl_key; default db_path with .key for .db), never in the database, so a
 * copy of the database cannot impersonate the daemon. Created at the first start with TCP on (or by
 * --print-pubkey), mode 0600, with O_EXCL so that two daemons starting at once keep one key; refused when
 * group or others may read it (as ssh refuses a private key file anyone can read).
 *
 * The file is text: comment lines (#) and one line with the private key in base64url (43 characters).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "xmalloc.h"

/* The file is a few hundred bytes; anything longer is not a key file. */
#define KEY_FILE_MAX 4096

char *
ctl_key_path(const struct config *cfg)
{
	if (cfg->ctl_key[0] != '\0')
		return xstrdup(cfg->ctl_key);
	size_t n = strlen(cfg->db_path);
	if (n > 3 && strcmp(cfg->db_path + n - 3, ".db") == 0)
		n -= 3;
	return xasprintf("%.*s.key", (int)n, cfg->db_path);
}

/* Writes a new key to path, which must not exist. Returns 0, 1 when it appeared meanwhile, -1 with *cause. */
static int
key_create(const char *path, struct ctl_keypair *kp, char **cause)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 1;
		*cause = xasprintf("creating %s: %s", path, strerror(errno));
		return -1;
	}
	char sk[CTL_PK_B64_LEN + 1], pk[CTL_PK_B64_LEN + 1];
	ctl_keypair_new(kp);
	ctl_b64_encode(kp->sk, sizeof(kp->sk), sk, sizeof(sk));
	ctl_b64_encode(kp->pk, sizeof(kp->pk), pk, sizeof(pk));
	char *text = xasprintf("# hopperd control key: the X25519 private key of the TCP handshake (base64url).\n"
	                       "# Keep it secret. Clients pin the public key: %s\n%s\n",
	                       pk, sk);
	size_t len = strlen(text);
	int rc = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
	if (rc != 0)
		*cause = xasprintf("writing %s: %s", path, strerror(errno));
	ctl_wipe(text, len);
	ctl_wipe(sk, sizeof(sk));
	free(text);
	close(fd);
	if (rc != 0)
		unlink(path);
	else
		log_info("ctl: created the TCP key %s (public key %s)", path, pk);
	return rc;
}

/* Parses a key file's text: the first line that is not a comment is the private key. */
static int
key_parse(char *text, struct ctl_keypair *kp)
{
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (line[0] == '#' || line[0] == '\0')
			continue;
		size_t n = strcspn(line, " \t\r");
		unsigned char sk[32];
		if (ctl_b64_decode(line, n, sk, sizeof(sk)) != 0)
			return -1;
		int rc = ctl_keypair_from_sk(kp, sk);
		ctl_wipe(sk, sizeof(sk));
		return rc;
	}
	return -1;
}

static int
key_read(const char *path, struct ctl_keypair *kp, char **cause)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	char buf[KEY_FILE_MAX + 1];
	ssize_t n = -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		*cause = xasprintf("%s: not a regular file", path);
	else if ((st.st_mode & 077) != 0)
		*cause = xasprintf("%s: mode %04o lets others read the daemon's private key; chmod 600 it "
		                   "(and replace the key if others may have read it)",
		                   path, (unsigned)(st.st_mode & 07777));
	else if ((n = read(fd, buf, KEY_FILE_MAX)) < 0)
		*cause = xasprintf("%s: %s", path, strerror(errno));
	close(fd);
	if (*cause != NULL)
		return -1;
	buf[n] = '\0';
	int rc = key_parse(buf, kp);
	ctl_wipe(buf, sizeof(buf));
	if (rc != 0)
		*cause = xasprintf("%s: no base64url X25519 private key in it", path);
	return rc;
}

int
ctl_key_load(const char *path, struct ctl_keypair *kp, char **cause)
{
	*cause = NULL;
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		int rc = key_create(path, kp, cause);
		if (rc <= 0)
			return rc;
	}
	return key_read(path, kp, cause);
}

int
ctl_key_print(const struct config *cfg)
{
	struct ctl_keypair kp;
	char *cause = NULL, pk[CTL_PK_B64_LEN + 1];
	char *path = ctl_key_path(cfg);
	if (ctl_crypto_init() != 0 || ctl_key_load(path, &kp, &cause) != 0) {
		fprintf(stderr, "hopperd: %s\n", cause != NULL ? cause : "libsodium failed to initialise");
		free(cause);
		free(path);
		return 1;
	}
	ctl_b64_encode(kp.pk, sizeof(kp.pk), pk, sizeof(pk));
	ctl_wipe(&kp, sizeof(kp));
	printf("%s\n", pk);
	fprintf(stderr, "hopperd: the public key of %s; clients pin it (hopperctl --server-key, known_hosts)\n", path);
	free(path);
	return 0;
}

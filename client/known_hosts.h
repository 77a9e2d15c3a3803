/*
 * known_hosts: libhopper's file of pinned daemon keys, one "HOST:PORT KEY" per line (KEY the daemon's X25519
 * public key in base64url, as hopperd --print-pubkey prints it; '#' starts a comment), like ssh's
 * known_hosts. A key is recorded on first use and from then on required: a daemon that cannot complete the
 * handshake with it is refused. Pure file I/O; no crypto.
 */
#ifndef HOPPER_KNOWN_HOSTS_H
#define HOPPER_KNOWN_HOSTS_H

#include <stddef.h>

/*
 * Looks hostport up in path. Returns 1 with key (its base64url text, 43 chars + NUL) and *line, 0 when the
 * file or the entry is absent, -1 when the file cannot be read or the entry is malformed (err says why).
 */
int known_hosts_lookup(const char *path, const char *hostport, char key[44], int *line, char *err, size_t errlen);
/* Appends "hostport key" to path (mode 0600; the directory is made 0700 if absent). 0 or -1 (err says why). */
int known_hosts_add(const char *path, const char *hostport, const char *key, char *err, size_t errlen);

#endif

/*
 * job_ns: owner-scoped job ids. A non-admin owner's id ID is stored as "_" + 24 hex digits of
 * SHA-256(owner) + ":" + ID, so two owners' ids never meet in one queue and no answer can tell one owner
 * whether another's id exists (schema/control-protocol.md, "Job ids and other owners"). Admin ids, and ids
 * the daemon makes for id-less admission (LPUSH, Celery), carry no prefix.
 */
#ifndef HOPPER_JOB_NS_H
#define HOPPER_JOB_NS_H

#include <stddef.h>

#include "job.h"

#define JOB_NS_HEX        24
#define JOB_NS_PREFIX_LEN (JOB_NS_HEX + 2) /* "_" hex ":" */
/* The longest id a non-admin owner may name: the stored id must fit JOB_ID_MAX. */
#define JOB_NS_ID_MAX (JOB_ID_MAX - JOB_NS_PREFIX_LEN)

/* Writes owner's prefix ("_<24 hex>:", NUL-terminated) into out. */
void job_ns_prefix(const char *owner, char out[JOB_NS_PREFIX_LEN + 1]);
/* 1 if id begins with a namespace prefix (of any owner): such an id is reserved, never a client's own. */
int job_ns_reserved(const char *id);
/* The stored id of owner's id into out (at least JOB_ID_MAX + 1). 0, or -1 with err: too long or reserved. */
int job_ns_make(const char *owner, const char *id, char *out, size_t outlen, char *err, size_t errlen);
/* id without prefix (the client's own name) when it carries prefix; id itself otherwise. */
const char *job_ns_strip(const char *prefix, const char *id);

#endif

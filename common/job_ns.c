#include "job_ns.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void
job_ns_prefix(const char *owner, char out[JOB_NS_PREFIX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)owner, strlen(owner));
	out[0] = '_';
	for (int i = 0; i < JOB_NS_HEX / 2; i++) {
		out[1 + 2 * i] = hex[h[i] >> 4];
		out[2 + 2 * i] = hex[h[i] & 15];
	}
	out[JOB_NS_HEX + 1] = ':';
	out[JOB_NS_PREFIX_LEN] = '\0';
}

int
job_ns_reserved(const char *id)
{
	if (id[0] != '_')
		return 0;
	for (int i = 1; i <= JOB_NS_HEX; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return id[JOB_NS_HEX + 1] == ':';
}

int
job_ns_make(const char *owner, const char *id, char *out, size_t outlen, char *err, size_t errlen)
{
	if (strlen(id) > JOB_NS_ID_MAX) {
		snprintf(err, errlen, "a job id may be at most %d characters", JOB_NS_ID_MAX);
		return -1;
	}
	if (job_ns_reserved(id)) {
		snprintf(err, errlen, "a job id may not begin with _ + %d hex digits + : (reserved)", JOB_NS_HEX);
		return -1;
	}
	char p[JOB_NS_PREFIX_LEN + 1];
	job_ns_prefix(owner, p);
	if ((size_t)snprintf(out, outlen, "%s%s", p, id) >= outlen) {
		snprintf(err, errlen, "job id too long");
		return -1;
	}
	return 0;
}

const char *
job_ns_strip(const char *prefix, const char *id)
{
	size_t n = strlen(prefix);
	return strncmp(id, prefix, n) == 0 ? id + n : id;
}

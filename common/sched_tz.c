/* sched_tz: TEMPORARY STUB (UTC only) until the tz branch lands. */
#include "sched_tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sched_zone {
	int utc;
};

int
sched_zone_parse(const unsigned char *buf, size_t len, struct sched_zone **out, char *err, size_t errlen)
{
	(void)buf;
	(void)len;
	*out = NULL;
	snprintf(err, errlen, "time zones are not supported by this build");
	return -1;
}

struct sched_zone *
sched_zone_load(const char *name, char *err, size_t errlen)
{
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
		struct sched_zone *z = calloc(1, sizeof(*z));
		if (z != NULL)
			z->utc = 1;
		return z;
	}
	snprintf(err, errlen, "unknown time zone '%s'", name);
	return NULL;
}

void
sched_zone_free(struct sched_zone *z)
{
	free(z);
}

int32_t
sched_zone_offset(const struct sched_zone *z, int64_t utc_s)
{
	(void)z;
	(void)utc_s;
	return 0;
}

int64_t
sched_next_zone(const struct sched_spec *spec, const struct sched_zone *z, int64_t after_ms)
{
	(void)z;
	return sched_next_utc(spec, after_ms);
}

/*
 * sched_tz: IANA time zones for schedules (TEMPORARY STUB on branch sched4: UTC only; the tz branch
 * provides the real TZif parser with the same API).
 */
#ifndef HOPPER_SCHED_TZ_H
#define HOPPER_SCHED_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "sched_time.h"

struct sched_zone;

int sched_zone_parse(const unsigned char *buf, size_t len, struct sched_zone **out, char *err, size_t errlen);
struct sched_zone *sched_zone_load(const char *name, char *err, size_t errlen);
void sched_zone_free(struct sched_zone *z);
int32_t sched_zone_offset(const struct sched_zone *z, int64_t utc_s);
int64_t sched_next_zone(const struct sched_spec *spec, const struct sched_zone *z, int64_t after_ms);

#endif

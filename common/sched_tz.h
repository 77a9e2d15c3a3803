/*
 * sched_tz: IANA time zones for schedules. A TZif parser over a buffer (RFC 8536, v1 to v4, with the POSIX TZ
 * footer for instants after the last transition), a loader for $TZDIR or /usr/share/zoneinfo, the UTC offset
 * at an instant, and the next fire time of a cron spec evaluated in a zone's wall time.
 * Pure: no globals, never setenv("TZ"), never localtime(); only sched_zone_load reads a file (and $TZDIR).
 *
 * DST rules of sched_next_zone (the README quotes them):
 *   - A wall time that does not exist (spring forward, e.g. 02:30 in Europe/Berlin on 2027-03-28) fires ONCE,
 *     at the first instant after the gap (03:00 CEST = 01:00Z). Several matching minutes inside one gap
 *     (e.g. "*\/15 * * * *" at 02:00, 02:15, 02:30, 02:45) collapse into that one instant.
 *   - A wall time that occurs twice (fall back): a spec whose hour field covers all 24 hours ("*", "0-23",
 *     e.g. "*\/15 * * * *", "0 * * * *") is interval-like and fires in both occurrences; any other spec fires
 *     only at the first occurrence (Vixie cron / cronie behaviour).
 *   - "@every" intervals ignore the zone: absolute, anchored at the Unix epoch.
 * Offsets are whole seconds; a zone whose offset has seconds (historical local mean time) fires at whole
 * minutes of its wall clock, which are then not whole UTC minutes.
 */
#ifndef HOPPER_SCHED_TZ_H
#define HOPPER_SCHED_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "sched_time.h"

/* IANA names are at most 30-odd characters today ("America/Argentina/ComodRivadavia" is 32); 64 leaves room. */
#define SCHED_ZONE_NAME_MAX 64
/* The largest zoneinfo file is under 4 KiB (fat files under 8 KiB); 256 KiB refuses anything else. */
#define SCHED_ZONE_FILE_MAX (256 * 1024)
/* Transitions per file: real zones have at most a few hundred (fat files run to 2037). */
#define SCHED_ZONE_MAX_TRANS 8192
/* Local time types: the file's per-transition index is one byte. */
#define SCHED_ZONE_MAX_TYPES 256
/* The POSIX TZ footer: "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0" is 38 bytes. */
#define SCHED_ZONE_FOOTER_MAX 255
/* |UTC offset| bound (RFC 8536 3.2 says SHOULD be within -25 h..+26 h); anything larger is refused. */
#define SCHED_ZONE_OFFSET_MAX (26 * 3600 - 1)
/* sched_next_zone accepts instants within +-10^15 ms (about 31,000 years) so no arithmetic can overflow. */
#define SCHED_ZONE_RANGE_MS 1000000000000000LL

struct sched_zone;

/* Parse a TZif image buf[0..len). Returns 0 and a new zone in *out (caller frees with sched_zone_free), or -1
 * with a reason in err. The buffer is not kept. Leap-second ("right/") files are refused. */
int sched_zone_parse(const unsigned char *buf, size_t len, struct sched_zone **out, char *err, size_t errlen);

/* Validate an IANA name (1..64 of [A-Za-z0-9_+-/], no leading '/', no empty or dot components) and load
 * $TZDIR/NAME (default /usr/share/zoneinfo). "UTC" and "Etc/UTC" need no file. Returns a new zone (caller frees
 * with sched_zone_free) or NULL with a reason in err. */
struct sched_zone *sched_zone_load(const char *name, char *err, size_t errlen);

/* A zone that is UTC (offset 0 everywhere). Caller frees. NULL only when out of memory. */
struct sched_zone *sched_zone_utc(void);

void sched_zone_free(struct sched_zone *z);

/* The UTC offset in seconds (east positive) at utc_s (Unix seconds). z == NULL is UTC. */
int32_t sched_zone_offset(const struct sched_zone *z, int64_t utc_s);

/* The first fire time (Unix ms) strictly after after_ms with the cron fields evaluated in z's wall time, by the
 * DST rules above; z == NULL is UTC (same as sched_next_utc). -1 when nothing fires within the horizon of
 * sched_next_utc (29 years), or after_ms is outside +-SCHED_ZONE_RANGE_MS. */
int64_t sched_next_zone(const struct sched_spec *spec, const struct sched_zone *z, int64_t after_ms);

#endif

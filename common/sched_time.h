/*
 * sched_time: pure schedule arithmetic. Parses a cron expression (5 fields, Vixie semantics), an @macro or a
 * fixed interval ("@every 30s"), and computes the next fire time after a given instant, in UTC.
 * No I/O, no globals, no setenv("TZ"): the caller passes (buf, len) and gets a value.
 */
#ifndef HOPPER_SCHED_TIME_H
#define HOPPER_SCHED_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Longest accepted spec; a cron line is a few dozen bytes, 256 leaves room for long lists. */
#define SCHED_SPEC_MAX 256
/* @every bounds: 1 s (the daemon's timer granularity) to 366 days. */
#define SCHED_EVERY_MIN_MS 1000LL
#define SCHED_EVERY_MAX_MS (366LL * 86400 * 1000)

struct sched_spec {
	uint64_t minute; /* bit m set: minute m (0-59) */
	uint32_t hour;   /* bits 0-23 */
	uint32_t dom;    /* bits 1-31 */
	uint32_t month;  /* bits 1-12 */
	uint32_t dow;    /* bits 0-6, Sunday = 0 (7 is folded into 0) */
	int dom_star;    /* field began with '*': Vixie ANDs dom/dow only if one of them is a star */
	int dow_star;
	int64_t every_ms; /* > 0: a fixed interval anchored at the Unix epoch, the cron fields are unused */
};

/* Parse spec[0..len). Returns 0, or -1 with a message in err. */
int sched_parse(const char *spec, size_t len, struct sched_spec *out, char *err, size_t errlen);

/* The first fire time strictly after after_ms (Unix ms, UTC), or -1 if none within the search horizon
 * (e.g. "0 0 30 2 *", Feb 30, never fires). */
int64_t sched_next_utc(const struct sched_spec *s, int64_t after_ms);

/* Deterministic jitter in [0, jitter_s * 1000) ms for one fire of one schedule: FNV-1a 64 of name and the
 * fire time, so every daemon computes the same offset without coordination. 0 if jitter_s <= 0. */
int64_t sched_jitter_ms(const char *name, int64_t fire_ms, int64_t jitter_s);

/* Civil date helpers (proleptic Gregorian, UTC), exposed for tests and the zone code. */
int64_t sched_days_from_civil(int64_t y, unsigned m, unsigned d);
void sched_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif

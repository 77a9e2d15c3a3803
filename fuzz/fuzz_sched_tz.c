/*
 * libFuzzer harness for common/sched_tz.c: bytes 0-7 are an instant, byte 8 picks a cron spec, the rest is a
 * TZif image. Any image is accepted or refused with a reason; an accepted zone gives offsets within +-26 h at
 * any instant, and a next fire time strictly after the instant (or -1: never), on a whole second, which asking
 * again from 1 ms before it gives back.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sched_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const specs[] = {"30 2 * * *", "0 * * * *",  "*/15 * * * *",   "0 9 * * 1-5",
                                    "0 0 29 2 *", "@every 90m", "*/10 1-3 * * 0", "0 0 30 2 *"};

static void
check_offset(const struct sched_zone *z, int64_t t)
{
	int32_t o = sched_zone_offset(z, t);
	if (o < -SCHED_ZONE_OFFSET_MAX || o > SCHED_ZONE_OFFSET_MAX)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	uint64_t raw;
	memcpy(&raw, data, 8);
	/* Within +-10^13 ms (about 300 years of the epoch), like fuzz_sched_time. */
	int64_t after = (int64_t)(raw % 20000000000000ULL) - 10000000000000LL;
	const char *spec = specs[data[8] % (sizeof(specs) / sizeof(specs[0]))];
	struct sched_zone *z = NULL;
	char err[256] = "";
	if (sched_zone_parse(data + 9, size - 9, &z, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || z != NULL)
			__builtin_trap();
		return 0;
	}
	static const int64_t probes[] = {0, -1, 1LL << 31, -(1LL << 31), 1LL << 40, -(1LL << 40), INT64_MAX / 2};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		check_offset(z, probes[i]);
	check_offset(z, after / 1000);
	struct sched_spec s;
	if (sched_parse(spec, strlen(spec), &s, NULL, 0) != 0)
		__builtin_trap();
	int64_t next = sched_next_zone(&s, z, after);
	if (next != -1) {
		if (next <= after || next % 1000 != 0)
			__builtin_trap();
		check_offset(z, next / 1000);
		if (sched_next_zone(&s, z, next - 1) != next)
			__builtin_trap();
	}
	sched_zone_free(z);
	return 0;
}

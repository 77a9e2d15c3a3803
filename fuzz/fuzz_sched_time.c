/*
 * libFuzzer harness for common/sched_time.c: the first 8 bytes are an instant, the rest a schedule spec. Any
 * spec is accepted or refused with a reason; an accepted one gives a next fire time strictly after the instant
 * (or -1: never), on a whole minute for cron specs, and asking again from just before it gives it back.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sched_time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t raw;
	memcpy(&raw, data, 8);
	/* Keep the instant within +-10^13 ms (about 300 years of the epoch) so the arithmetic cannot overflow. */
	int64_t after = (int64_t)(raw % 20000000000000ULL) - 10000000000000LL;
	struct sched_spec s;
	char err[128] = "";
	if (sched_parse((const char *)data + 8, size - 8, &s, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	int64_t next = sched_next_utc(&s, after);
	if (next == -1)
		return 0;
	if (next <= after)
		__builtin_trap();
	if (s.every_ms == 0 && ((next % 60000) + 60000) % 60000 != 0)
		__builtin_trap();
	if (sched_next_utc(&s, next - 1) != next)
		__builtin_trap();
	return 0;
}

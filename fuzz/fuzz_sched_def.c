/*
 * libFuzzer harness for common/sched_def.c: the first 8 bytes are "now", the rest a schedule definition (JSON).
 * Any definition is accepted or refused with a reason; for an accepted one, a claim's plan from any stored next
 * fire time lists at most SCHED_PLAN_MAX ascending fire times, none due after now, and moves the schedule on
 * (the new next fire time is after every planned one), and next fire times stay inside the window.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sched_def.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t raw;
	memcpy(&raw, data, 8);
	int64_t now = (int64_t)(raw % 4000000000000ULL); /* 1970 .. ~2096, in ms */
	json_t *v = json_loadb((const char *)data + 8, size - 8, 0, NULL);
	struct sched_def d;
	char err[256] = "";
	if (sched_def_parse(v, &d, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			__builtin_trap();
		json_decref(v);
		return 0;
	}
	int64_t first = sched_def_next(&d, now - 3600 * 1000);
	if (first >= 0) {
		if ((d.start_ms > 0 && first < d.start_ms) || (d.end_ms > 0 && first > d.end_ms))
			__builtin_trap();
		int64_t fires[SCHED_PLAN_MAX];
		size_t n = 0;
		uint64_t missed = 0;
		int64_t next = sched_def_plan(&d, first, now, fires, SCHED_PLAN_MAX, &n, &missed);
		for (size_t i = 0; i < n; i++)
			if (sched_def_due(&d, fires[i]) > now || (i > 0 && fires[i] <= fires[i - 1]))
				__builtin_trap();
		if (n > 0 && next >= 0 && next <= fires[n - 1])
			__builtin_trap();
	}
	sched_def_free(&d);
	json_decref(v);
	return 0;
}

/*
 * libFuzzer harness for the audio engine: any bytes, written to a file, are either analysed into a result
 * without NaN (every number finite, every null with a reason) or refused with a message. libsndfile's parsers
 * get fuzzed along the way; the targets are hopper's: odd rates and channel counts, tiny and lying headers,
 * libsndfile's log parsing (header_overstates), channel maps, the refusal of formats libsndfile does not read,
 * every accumulator on hostile sample values (inf, NaN, huge), waveform peaks and per-frame series.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/audio.h"

static void
check_numbers(json_t *v)
{
	if (json_is_real(v) && !isfinite(json_real_value(v)))
		__builtin_trap();
	const char *k;
	json_t *x;
	size_t i;
	if (json_is_object(v))
		json_object_foreach(v, k, x) check_numbers(x);
	if (json_is_array(v))
		json_array_foreach(v, i, x) check_numbers(x);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/hopper-fuzz-audio.%d", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	/* every feature, the waveform peaks and every series: the whole engine */
	struct audio_opts o = {
	        .features = AUDIO_F_ALL, .max_bytes = 1 << 20, .waveform = 16, .series = (1u << AUDIO_S_COUNT) - 1};
	json_t *res = NULL;
	char err[1024] = "";
	if (audio_analyze_file(path, &o, &res, err, sizeof(err)) == 0) {
		check_numbers(res);
		json_t *reasons = json_object_get(res, "reasons");
		const char *k;
		json_t *x;
		json_object_foreach(res, k, x) if (json_is_null(x) && json_object_get(reasons, k) == NULL)
		        __builtin_trap();
		json_decref(res);
	} else if (err[0] == '\0')
		__builtin_trap();
	return 0;
}

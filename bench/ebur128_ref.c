/*
 * ebur128_ref FILE [--tp-only|--no-lra]: libebur128 (the loudness reference) over a libsndfile decode of FILE, in
 * 4096-frame float blocks. Prints one JSON line: integrated_lufs, loudness_range_lu, true_peak_dbtp (max over
 * channels, libebur128's true peak which includes the sample peak). Used by the audio tests (hopper's own
 * loudness must agree to 0.01 LU / 0.01 dB) and by bench/audio.sh as the speed baseline.
 */
#include <ebur128.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: ebur128_ref FILE [--tp-only]\n");
		return 2;
	}
	int tp_only = argc > 2 && strcmp(argv[2], "--tp-only") == 0;
	SF_INFO info = {0};
	SNDFILE *sf = sf_open(argv[1], SFM_READ, &info);
	if (sf == NULL) {
		fprintf(stderr, "ebur128_ref: %s\n", sf_strerror(NULL));
		return 1;
	}
	int mode = EBUR128_MODE_TRUE_PEAK | (tp_only ? 0 : EBUR128_MODE_I | EBUR128_MODE_LRA);
	ebur128_state *st = ebur128_init((unsigned)info.channels, (unsigned long)info.samplerate, mode);
	/* the file's channel map, as libebur128 positions: LFE unused, side/back surrounds +1.5 dB, the rest front */
	int map[64];
	if (info.channels <= 64 &&
	    sf_command(sf, SFC_GET_CHANNEL_MAP_INFO, map, (int)sizeof(int) * info.channels) == SF_TRUE)
		for (int c = 0; c < info.channels; c++) {
			int m = map[c], pos = EBUR128_LEFT;
			if (m == SF_CHANNEL_MAP_LFE)
				pos = EBUR128_UNUSED;
			else if (m == SF_CHANNEL_MAP_SIDE_LEFT || m == SF_CHANNEL_MAP_SIDE_RIGHT ||
			         m == SF_CHANNEL_MAP_REAR_LEFT || m == SF_CHANNEL_MAP_REAR_RIGHT ||
			         m == SF_CHANNEL_MAP_TOP_REAR_LEFT || m == SF_CHANNEL_MAP_TOP_REAR_RIGHT)
				pos = EBUR128_LEFT_SURROUND;
			ebur128_set_channel(st, (unsigned)c, pos);
		}
	float *buf = malloc(sizeof(float) * 4096 * (size_t)info.channels);
	sf_count_t n;
	while ((n = sf_readf_float(sf, buf, 4096)) > 0)
		ebur128_add_frames_float(st, buf, (size_t)n);
	double I = NAN, lra = NAN, tp = 0;
	if (!tp_only) {
		ebur128_loudness_global(st, &I);
		ebur128_loudness_range(st, &lra);
	}
	for (int c = 0; c < info.channels; c++) {
		double v;
		ebur128_true_peak(st, (unsigned)c, &v);
		tp = v > tp ? v : tp;
	}
	printf("{\"integrated_lufs\": %.4f, \"loudness_range_lu\": %.4f, \"true_peak_dbtp\": %.4f}\n",
	       isfinite(I) ? I : -999.0, isfinite(lra) ? lra : -999.0, tp > 0 ? 20 * log10(tp) : -999.0);
	ebur128_destroy(&st);
	free(buf);
	sf_close(sf);
	return 0;
}

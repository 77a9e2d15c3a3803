/*
 * hopper-analyze FILE...: runs the audio engine (worker/audio) on each file and prints the same JSON object as
 * the audio.analyze job's result, one per line. For scripts, tests and benchmarks.
 *   -f, --features LIST   comma-separated feature groups (levels,true_peak,loudness,silence,zcr,spectral,
 *                         onsets,tempo,key,mfcc,chroma,contrast; default all but contrast)
 *   -s, --series LIST     per-frame series (centroid,bandwidth,rolloff,flatness,onset_strength)
 *   -w, --waveform N      N min/max pairs per channel for drawing
 *   -p, --progress        progress lines "PCT STAGE" on stderr
 *   -r, --roots DIRS      colon-separated allowed roots (default: any path)
 *   -m, --max-bytes N     refuse larger files (default: no limit)
 * Exit status: 0 when every file was analysed, 1 when one failed (its error on stderr), 2 for usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "audio/audio.h"
#include "jsonx.h"

static const char usage[] =
        "usage: hopper-analyze [-f FEATURES] [-s SERIES] [-w N] [-p] [-r ROOTS] [-m MAX_BYTES] FILE...\n"
        "Analyses each audio file in one pass and prints one JSON object per line (schema/audio-result.schema.json).\n"
        "  -f, --features LIST  levels,true_peak,loudness,silence,zcr,spectral,onsets,tempo,key,mfcc,chroma,contrast "
        "(default "
        "all but contrast; 'all' adds it)\n"
        "  -s, --series LIST    per-frame series: centroid,bandwidth,rolloff,flatness,onset_strength\n"
        "  -w, --waveform N     N min/max pairs per channel for drawing (1-10000)\n"
        "  -p, --progress       progress lines \"PCT STAGE\" on stderr\n"
        "  -r, --roots DIRS     colon-separated allowed roots (default: any path)\n"
        "  -m, --max-bytes N    refuse larger files (default: no limit)\n"
        "Exit status: 0 all analysed, 1 one failed (its error on stderr), 2 usage.\n";

static void
progress(void *arg, int pct, const char *stage)
{
	fprintf(stderr, "%d %s\n", pct, stage);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"features", required_argument, NULL, 'f'}, {"progress", no_argument, NULL, 'p'},
	        {"roots", required_argument, NULL, 'r'},    {"max-bytes", required_argument, NULL, 'm'},
	        {"series", required_argument, NULL, 's'},   {"waveform", required_argument, NULL, 'w'},
	        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
	struct audio_opts o = {0};
	char err[1024];
	int c;
	while ((c = getopt_long(argc, argv, "f:pr:m:s:w:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (audio_features_parse_list(optarg, &o.features, err, sizeof(err)) < 0) {
				fprintf(stderr, "hopper-analyze: %s\n", err);
				return 2;
			}
			break;
		case 's':
			if (audio_series_parse_list(optarg, &o.series, err, sizeof(err)) < 0) {
				fprintf(stderr, "hopper-analyze: %s\n", err);
				return 2;
			}
			break;
		case 'w':
			o.waveform = atoi(optarg);
			if (o.waveform < 1 || o.waveform > AUDIO_WAVEFORM_MAX) {
				fprintf(stderr, "hopper-analyze: --waveform takes 1 to %d\n", AUDIO_WAVEFORM_MAX);
				return 2;
			}
			break;
		case 'p': o.progress = progress; break;
		case 'r': o.roots = optarg; break;
		case 'm': o.max_bytes = strtoll(optarg, NULL, 10); break;
		default: fputs(usage, c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	int status = 0;
	for (int i = optind; i < argc; i++) {
		json_t *res = NULL;
		if (audio_analyze_file(argv[i], &o, &res, err, sizeof(err)) != 0) {
			fprintf(stderr, "hopper-analyze: %s\n", err);
			status = 1;
			continue;
		}
		char *s = jsonx_dump(res);
		printf("%s\n", s);
		free(s);
		json_decref(res);
	}
	return status;
}

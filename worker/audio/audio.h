/*
 * audio.h: hopper's audio analysis engine, a library with no Redis, SQLite or daemon in it. One streaming pass
 * over libsndfile-decoded float blocks computes levels, loudness (BS.1770-4 / EBU R128), true peak, silence,
 * zero crossings, spectral features, onsets, tempo and key in constant memory, whatever the file's length.
 * Used by the audio.analyze job handler (worker/handlers.c) and by the hopper-analyze command.
 * The result's keys are defined in schema/audio-result.schema.json.
 */
#ifndef HOPPER_AUDIO_H
#define HOPPER_AUDIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Feature groups, selectable with audio_features_parse. format/subtype/rate/channels/frames/duration always. */
enum {
	AUDIO_F_LEVELS = 1 << 0,    /* peak_dbfs, rms_dbfs, dc_offset, clipped_samples */
	AUDIO_F_TRUE_PEAK = 1 << 1, /* true_peak_dbtp */
	AUDIO_F_LOUDNESS = 1 << 2,  /* integrated_lufs, loudness_range_lu */
	AUDIO_F_SILENCE = 1 << 3,   /* leading/trailing_silence_s, silence_ratio */
	AUDIO_F_ZCR = 1 << 4,       /* zero_crossing_rate */
	AUDIO_F_SPECTRAL = 1 << 5,  /* spectral_centroid_hz, spectral_rolloff_hz, spectral_flatness */
	AUDIO_F_ONSETS = 1 << 6,    /* onsets, onset_times_s */
	AUDIO_F_TEMPO = 1 << 7,     /* tempo_bpm, tempo_confidence */
	AUDIO_F_KEY = 1 << 8,       /* key, key_confidence, pitch_class_profile */
	AUDIO_F_ALL = (1 << 9) - 1,
};

struct audio_opts {
	unsigned features; /* AUDIO_F_* bits; 0 means all */
	/* Allowed roots, colon-separated directories (NULL or "": any path). The path must resolve (realpath) under
	 * one of them. Borrowed. */
	const char *roots;
	int64_t max_bytes; /* files larger than this are refused before opening; 0: no limit */
	/* Called with a stage name and 0-100 every 2% and at least every 0.5 s of the pass. May be NULL. */
	void (*progress)(void *arg, int pct, const char *stage);
	/* Polled once per decoded block (4096 frames); a non-zero return stops the analysis with an error. */
	int (*cancelled)(void *arg);
	void *arg; /* passed to both callbacks */
};

/* Analysis failures, so callers can tell what a retry could fix. */
enum audio_err {
	AUDIO_OK = 0,
	AUDIO_EPOLICY = 1, /* outside the roots, too big, not a regular file: retrying cannot help */
	AUDIO_EFORMAT = 2, /* unreadable, truncated, no frames: retrying cannot help */
	AUDIO_EIO = 3,     /* an I/O error or the file changed while read: a retry may help */
	AUDIO_ECANCEL = 4, /* opts->cancelled said stop */
};

/* Parses a JSON array of feature names (NULL: all) into *mask; -1 with err set on an unknown name. */
int audio_features_parse(const json_t *arr, unsigned *mask, char *err, size_t errlen);
/* Parses "a,b,c" feature names; same contract. */
int audio_features_parse_list(const char *list, unsigned *mask, char *err, size_t errlen);

/* Analyses the file at path. Returns AUDIO_OK with *result set to a new JSON object the caller owns, or an
 * enum audio_err with err set and *result NULL. Keeps no state between calls; everything it allocates is freed
 * before it returns. Not for concurrent use from several threads: FFTW's planner is not thread safe. */
int audio_analyze_file(const char *path, const struct audio_opts *opts, json_t **result, char *err, size_t errlen);

#endif

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
	AUDIO_F_LOUDNESS = 1 << 2,  /* integrated_lufs, loudness_range_lu, momentary/short-term maxima */
	AUDIO_F_SILENCE = 1 << 3,   /* leading/trailing_silence_s, silence_ratio */
	AUDIO_F_ZCR = 1 << 4,       /* zero_crossing_rate */
	AUDIO_F_SPECTRAL = 1 << 5,  /* spectral_centroid/bandwidth/rolloff_hz, spectral_flatness */
	AUDIO_F_ONSETS = 1 << 6,    /* onsets, onset_times_s, onset_strength */
	AUDIO_F_TEMPO = 1 << 7,     /* tempo_bpm, tempo_confidence, tempo_candidates, beats, beat_times_s */
	AUDIO_F_KEY = 1 << 8,       /* key, key_confidence, key_notation, key_alternatives */
	AUDIO_F_MFCC = 1 << 9,      /* mfcc_mean, mfcc_std */
	AUDIO_F_CHROMA = 1 << 10,   /* chroma_mean */
	AUDIO_F_CONTRAST = 1 << 11, /* spectral_contrast_db */
	AUDIO_F_ALL = (1 << 12) - 1,
	/* What an analysis without args.features computes: all but contrast, which adds 15-20% to the full
	 * analysis (the 500x-real-time goal is for this set); "all" or "contrast" asks for it. */
	AUDIO_F_DEFAULT = AUDIO_F_ALL & ~AUDIO_F_CONTRAST,
};

/* Per-frame series a caller can ask for (args.series), one value per spectrogram frame. */
enum {
	AUDIO_S_CENTROID,
	AUDIO_S_BANDWIDTH,
	AUDIO_S_ROLLOFF,
	AUDIO_S_FLATNESS,
	AUDIO_S_ONSET,
	AUDIO_S_COUNT,
};
#define AUDIO_SERIES_MAX_FRAMES 100000 /* ~19 min at 44.1 kHz: a series past that is cut (and says so) */
#define AUDIO_WAVEFORM_MAX      10000  /* most min/max pairs per channel args.waveform may ask for */

struct audio_series_req {
	unsigned mask; /* 1 << AUDIO_S_* */
};

struct audio_opts {
	unsigned features; /* AUDIO_F_* bits; 0 means all */
	unsigned series;   /* 1 << AUDIO_S_* bits: per-frame series to return (0: none) */
	int waveform;      /* min/max pairs per channel for drawing (0: none; at most AUDIO_WAVEFORM_MAX) */
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
/* Reads the job's args.features, args.series and args.waveform (N: 1..AUDIO_WAVEFORM_MAX) into o; -1 with err
 * set on a bad value. Leaves o's other fields alone. */
int audio_args_parse(const json_t *args, struct audio_opts *o, char *err, size_t errlen);
/* Parses a JSON array of series names (NULL: none) / "a,b" into *mask; -1 with err set on an unknown name. */
int audio_series_parse(const json_t *arr, unsigned *mask, char *err, size_t errlen);
int audio_series_parse_list(const char *list, unsigned *mask, char *err, size_t errlen);

/* Analyses the file at path. Returns AUDIO_OK with *result set to a new JSON object the caller owns, or an
 * enum audio_err with err set and *result NULL. Keeps no state between calls; everything it allocates is freed
 * before it returns. Not for concurrent use from several threads: FFTW's planner is not thread safe. */
int audio_analyze_file(const char *path, const struct audio_opts *opts, json_t **result, char *err, size_t errlen);

#endif

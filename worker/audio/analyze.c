/*
 * analyze: the audio engine's driver and its only libsndfile user. Checks the path policy (allowed roots after
 * realpath, size limit, regular file), opens the resolved path with O_NOFOLLOW and hands the descriptor to
 * libsndfile (which detects the format by content), then makes one pass over 4096-frame float blocks feeding
 * the levels/silence/zero-crossing accumulators here and the loudness (loudness.c) and spectral (spectral.c)
 * parts, and finally builds the result object (schema/audio-result.schema.json).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define BLOCK_FRAMES 4096
#define MAX_CHANNELS 64

static const struct {
	const char *name;
	unsigned bit;
} feature_names[] = {
        {"levels", AUDIO_F_LEVELS},     {"true_peak", AUDIO_F_TRUE_PEAK},
        {"loudness", AUDIO_F_LOUDNESS}, {"silence", AUDIO_F_SILENCE},
        {"zcr", AUDIO_F_ZCR},           {"spectral", AUDIO_F_SPECTRAL},
        {"onsets", AUDIO_F_ONSETS},     {"tempo", AUDIO_F_TEMPO},
        {"key", AUDIO_F_KEY},           {"mfcc", AUDIO_F_MFCC},
        {"chroma", AUDIO_F_CHROMA},     {"contrast", AUDIO_F_CONTRAST},
        {"all", AUDIO_F_ALL},
};

static int
feature_bit(const char *name, size_t len, unsigned *mask, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		if (strlen(feature_names[i].name) == len && strncmp(feature_names[i].name, name, len) == 0) {
			*mask |= feature_names[i].bit;
			return 0;
		}
	snprintf(err, errlen,
	         "unknown feature \"%.*s\" (known: levels, true_peak, loudness, silence, zcr, spectral, onsets, tempo, "
	         "key, mfcc, chroma, contrast, all)",
	         (int)(len > 64 ? 64 : len), name);
	return -1;
}

int
audio_features_parse(const json_t *arr, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	if (arr == NULL || json_is_null(arr)) {
		*mask = AUDIO_F_DEFAULT;
		return 0;
	}
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 32) {
		snprintf(err, errlen, "features must be a non-empty array of feature names");
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v)) {
			snprintf(err, errlen, "features[%zu] is not a string", i);
			return -1;
		}
		if (feature_bit(json_string_value(v), json_string_length(v), mask, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int
audio_features_parse_list(const char *list, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	while (*list) {
		size_t n = strcspn(list, ",");
		if (n > 0 && feature_bit(list, n, mask, err, errlen) < 0)
			return -1;
		list += n + (list[n] == ',');
	}
	if (*mask == 0)
		*mask = AUDIO_F_DEFAULT;
	return 0;
}

void
audio_set_null(json_t *res, const char *key, const char *why)
{
	json_object_set_new(res, key, json_null());
	json_t *r = json_object_get(res, "reasons");
	if (r == NULL) {
		r = json_object();
		json_object_set_new(res, "reasons", r);
	}
	json_object_set_new(r, key, json_string(why));
}

void
audio_set_num(json_t *res, const char *key, double v, const char *why_null)
{
	if (isfinite(v))
		json_object_set_new(res, key, json_real(v));
	else
		audio_set_null(res, key, why_null);
}

static double
db(double lin)
{
	return lin > 0 ? 20.0 * log10(lin) : NAN;
}

static double
r2(double v) /* dB and LU to 0.001: below every tolerance the result promises, above float noise */
{
	return isfinite(v) ? round(v * 1000) / 1000 : v;
}

double
audio_sig(double v, int digits)
{
	if (!isfinite(v) || v == 0)
		return v;
	double p = pow(10.0, digits - 1 - (int)floor(log10(fabs(v))));
	double out = round(v * p) / p;
	return isfinite(out) ? out : v;
}

static int
series_one(const char *name, size_t len, unsigned *mask, char *err, size_t errlen)
{
	int b = series_name_bit(name, len);
	if (b < 0) {
		snprintf(err, errlen,
		         "unknown series \"%.*s\" (known: centroid, bandwidth, rolloff, flatness, onset_strength)",
		         (int)(len > 64 ? 64 : len), name);
		return -1;
	}
	*mask |= 1u << b;
	return 0;
}

int
audio_series_parse(const json_t *arr, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > AUDIO_S_COUNT * 2) {
		snprintf(err, errlen, "series must be an array of series names");
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v)) {
			snprintf(err, errlen, "series[%zu] is not a string", i);
			return -1;
		}
		if (series_one(json_string_value(v), json_string_length(v), mask, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int
audio_args_parse(const json_t *args, struct audio_opts *o, char *err, size_t errlen)
{
	if (audio_features_parse(json_object_get(args, "features"), &o->features, err, errlen) < 0 ||
	    audio_series_parse(json_object_get(args, "series"), &o->series, err, errlen) < 0)
		return -1;
	const json_t *w = json_object_get(args, "waveform");
	o->waveform = 0;
	if (w != NULL && !json_is_null(w)) {
		if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > AUDIO_WAVEFORM_MAX) {
			snprintf(err, errlen, "waveform must be an integer from 1 to %d (min/max pairs per channel)",
			         AUDIO_WAVEFORM_MAX);
			return -1;
		}
		o->waveform = (int)json_integer_value(w);
	}
	return 0;
}

int
audio_series_parse_list(const char *list, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	while (*list) {
		size_t n = strcspn(list, ",");
		if (n > 0 && series_one(list, n, mask, err, errlen) < 0)
			return -1;
		list += n + (list[n] == ',');
	}
	return 0;
}

/* Is path (already resolved) inside one of the colon-separated roots? */
static int
under_roots(const char *real, const char *roots)
{
	if (roots == NULL || *roots == '\0')
		return 1;
	char root[PATH_MAX], rreal[PATH_MAX];
	while (*roots) {
		size_t n = strcspn(roots, ":");
		if (n > 0 && n < sizeof(root)) {
			memcpy(root, roots, n);
			root[n] = '\0';
			if (realpath(root, rreal) != NULL) {
				size_t rl = strlen(rreal);
				if (strncmp(real, rreal, rl) == 0 && (real[rl] == '/' || real[rl] == '\0' || rl == 1))
					return 1;
			}
		}
		roots += n + (roots[n] == ':');
	}
	return 0;
}

/* Applies the path policy and opens the file; returns an fd or -1 with err set and *code set. */
static int
open_checked(const char *path, const struct audio_opts *o, struct stat *st, char *err, size_t errlen, int *code)
{
	char real[PATH_MAX];
	*code = AUDIO_EPOLICY;
	if (realpath(path, real) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		*code = errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ELOOP ? AUDIO_EPOLICY
		                                                                                 : AUDIO_EIO;
		return -1;
	}
	if (!under_roots(real, o->roots)) {
		snprintf(err, errlen, "%s: resolves to %s, outside the allowed audio roots (%s)", path, real, o->roots);
		return -1;
	}
	if (stat(real, st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (o->max_bytes > 0 && st->st_size > o->max_bytes) {
		snprintf(err, errlen, "%s: %lld bytes, over the limit of %lld bytes", path, (long long)st->st_size,
		         (long long)o->max_bytes);
		return -1;
	}
	int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* the file may have been swapped between stat and open: check what was opened */
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (o->max_bytes > 0 && st->st_size > o->max_bytes)) {
		snprintf(err, errlen, "%s: changed while being opened (not a regular file or over the size limit)",
		         path);
		close(fd);
		return -1;
	}
	*code = AUDIO_OK;
	return fd;
}

/* Float files can hold NaN, infinities and absurd values: such samples become 0 (NaN, inf; counted) or are
 * limited to +-1e6 (120 dB over full scale), so no accumulator ever sees a non-finite number. */
static uint64_t
sanitize(float *x, size_t n)
{
	uint64_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		if (!isfinite(v)) {
			x[i] = 0;
			bad++;
		} else if (fabsf(v) > 1e6f)
			x[i] = v > 0 ? 1e6f : -1e6f;
	}
	return bad;
}

static const char *
format_name(int fmt, int mask, char *buf, size_t len)
{
	SF_FORMAT_INFO info = {.format = fmt & mask};
	if (sf_command(NULL, SFC_GET_FORMAT_INFO, &info, sizeof(info)) == 0 && info.name != NULL)
		snprintf(buf, len, "%s", info.name);
	else
		snprintf(buf, len, "0x%x", fmt & mask);
	return buf;
}

/* The largest value an integer subtype can hold, as libsndfile scales it to float: reaching it is clipping. */
static float
clip_level(int fmt)
{
	switch (fmt & SF_FORMAT_SUBMASK) {
	case SF_FORMAT_PCM_S8:
	case SF_FORMAT_PCM_U8: return 127.0f / 128.0f;
	case SF_FORMAT_PCM_16: return 32767.0f / 32768.0f;
	case SF_FORMAT_PCM_24: return 8388607.0f / 8388608.0f;
	default: return 1.0f;
	}
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* BS.1770-4 channel weights (Table 3: G_i) by position: 1.0 in front, 1.41 (+1.5 dB) for the surrounds
 * (side and back, and top back, as ffmpeg's ebur128 and libebur128's Mp110/Mp060/Mp090 do), 0 for LFE. */
static const struct {
	int pos;
	const char *name;
	double w;
} chmap[] = {
        {SF_CHANNEL_MAP_MONO, "M", 1.0},
        {SF_CHANNEL_MAP_LEFT, "L", 1.0},
        {SF_CHANNEL_MAP_RIGHT, "R", 1.0},
        {SF_CHANNEL_MAP_CENTER, "C", 1.0},
        {SF_CHANNEL_MAP_FRONT_LEFT, "L", 1.0},
        {SF_CHANNEL_MAP_FRONT_RIGHT, "R", 1.0},
        {SF_CHANNEL_MAP_FRONT_CENTER, "C", 1.0},
        {SF_CHANNEL_MAP_REAR_CENTER, "Cs", 1.0},
        {SF_CHANNEL_MAP_REAR_LEFT, "Lb", 1.41},
        {SF_CHANNEL_MAP_REAR_RIGHT, "Rb", 1.41},
        {SF_CHANNEL_MAP_LFE, "LFE", 0.0},
        {SF_CHANNEL_MAP_FRONT_LEFT_OF_CENTER, "Lc", 1.0},
        {SF_CHANNEL_MAP_FRONT_RIGHT_OF_CENTER, "Rc", 1.0},
        {SF_CHANNEL_MAP_SIDE_LEFT, "Ls", 1.41},
        {SF_CHANNEL_MAP_SIDE_RIGHT, "Rs", 1.41},
        {SF_CHANNEL_MAP_TOP_CENTER, "Tc", 1.0},
        {SF_CHANNEL_MAP_TOP_FRONT_LEFT, "Tfl", 1.0},
        {SF_CHANNEL_MAP_TOP_FRONT_RIGHT, "Tfr", 1.0},
        {SF_CHANNEL_MAP_TOP_FRONT_CENTER, "Tfc", 1.0},
        {SF_CHANNEL_MAP_TOP_REAR_LEFT, "Tbl", 1.41},
        {SF_CHANNEL_MAP_TOP_REAR_RIGHT, "Tbr", 1.41},
        {SF_CHANNEL_MAP_TOP_REAR_CENTER, "Tbc", 1.0},
};

/* libebur128's default map when the file has none: L R C by count, 4 channels L R Ls Rs, 5 L R C Ls Rs,
 * 6 and more L R C LFE Ls Rs and then unused (weight 0). */
static void
default_map(int C, const char **names, double *w)
{
	static const char *const n6[6] = {"L", "R", "C", "LFE", "Ls", "Rs"};
	static const double w6[6] = {1.0, 1.0, 1.0, 0.0, 1.41, 1.41};
	static const char *const n4[4] = {"L", "R", "Ls", "Rs"}, *const n5[5] = {"L", "R", "C", "Ls", "Rs"};
	for (int c = 0; c < C; c++) {
		if (C == 1) {
			names[c] = "M";
			w[c] = 1.0;
		} else if (C == 4) {
			names[c] = n4[c];
			w[c] = c < 2 ? 1.0 : 1.41;
		} else if (C == 5) {
			names[c] = n5[c];
			w[c] = c < 3 ? 1.0 : 1.41;
		} else {
			names[c] = c < 6 ? n6[c] : "unused";
			w[c] = c < 6 ? w6[c] : 0.0;
		}
	}
}

/* The file's channel map (WAVEFORMATEXTENSIBLE mask, CAF/AIFF chan chunk) or the default: names and weights.
 * Returns 1 when the file had one. */
static int
channel_map(SNDFILE *sf, int C, const char **names, double *w)
{
	int map[MAX_CHANNELS];
	default_map(C, names, w);
	if (sf_command(sf, SFC_GET_CHANNEL_MAP_INFO, map, (int)(sizeof(int) * (size_t)C)) != SF_TRUE)
		return 0;
	for (int c = 0; c < C; c++) {
		names[c] = "unknown";
		w[c] = 1.0; /* a position BS.1770 does not list counts like a front channel */
		for (size_t i = 0; i < sizeof(chmap) / sizeof(chmap[0]); i++)
			if (chmap[i].pos == map[c]) {
				names[c] = chmap[i].name;
				w[c] = chmap[i].w;
			}
	}
	return 1;
}

static void
report(json_t *res, const SF_INFO *info, struct levels *lv, struct loud *loud, struct spec *sp, unsigned f,
       uint64_t frames)
{
	int C = info->channels;
	double N = (double)frames;
	levels_report(lv, res, info->samplerate);
	if (f & AUDIO_F_TRUE_PEAK) {
		json_t *tp = json_array();
		double tmax = 0;
		for (int c = 0; c < C; c++) {
			double t = loud_true_peak(loud, c), pk = levels_peak(lv, c);
			t = pk > t ? pk : t;
			json_array_append_new(tp, t > 0 ? json_real(r2(db(t))) : json_null());
			tmax = t > tmax ? t : tmax;
		}
		audio_set_num(res, "true_peak_dbtp", r2(db(tmax)), "silent: every sample is zero");
		json_object_set_new(res, "true_peak_dbtp_per_channel", tp);
		json_object_set_new(res, "true_peak_oversampling", json_integer(loud_oversampling(loud)));
	}
	if (f & AUDIO_F_LOUDNESS) {
		const char *lowrate = "sample rate under 3364 Hz: the K-weighting shelf (1682 Hz) lies above Nyquist";
		int ok = loud_rate_ok(info->samplerate);
		audio_set_num(res, "integrated_lufs", r2(loud_integrated(loud)),
		              !ok ? lowrate
		              : N < info->samplerate * 0.4
		                      ? "shorter than one 400 ms gating block"
		                      : "no 400 ms block above the -70 LUFS absolute gate (silence)");
		audio_set_num(res, "loudness_range_lu", r2(loud_range(loud)), lowrate);
		audio_set_num(res, "momentary_max_lufs", r2(loud_momentary_max(loud)),
		              !ok                          ? lowrate
		              : N < info->samplerate * 0.4 ? "shorter than one 400 ms block"
		                                           : "silent: every sample is zero");
		audio_set_num(res, "short_term_max_lufs", r2(loud_short_term_max(loud)),
		              !ok                        ? lowrate
		              : N < info->samplerate * 3 ? "shorter than one 3 s block"
		                                         : "silent: every sample is zero");
	}
	if (sp)
		spec_report(sp, res, f);
}

/* libsndfile reads a WAV/AIFF whose header declares more data than the file holds as if it were shorter, and
 * only says so in its log ("data : DECLARED (should be PRESENT)"). Such a file is truncated (an interrupted
 * upload, say): report it, unless the declared size is one of the "length unknown" markers of streamed files. */
static int
header_overstates(SNDFILE *sf, char *msg, size_t len)
{
	char log[8192];
	sf_command(sf, SFC_GET_LOG_INFO, log, sizeof(log));
	for (const char *p = log; (p = strstr(p, "(should be ")) != NULL; p++) {
		const char *line = p;
		while (line > log && line[-1] != '\n')
			line--;
		unsigned long long declared, present;
		if (sscanf(line, "%*[^:]: %llu (should be %llu)", &declared, &present) == 2 && declared > present &&
		    declared != 0xffffffffULL && declared != 0x7fffffffULL && declared != 0xffffffffffffffffULL) {
			snprintf(msg, len, "truncated: the header declares %llu bytes of data, the file holds %llu",
			         declared, present);
			return 1;
		}
	}
	return 0;
}

/* Formats libsndfile does not read, recognised by their first bytes so the refusal names them. hopper has no
 * second decoder (README: why not libavcodec); these get a clear error instead of "format not recognised". */
static const struct {
	size_t off, len;
	const char *magic, *name;
} foreign[] = {
        {4, 4, "ftyp", "MPEG-4 audio (M4A/MP4: AAC or ALAC)"},
        {0, 16, "\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c", "ASF (WMA)"},
        {0, 2, "\x0b\x77", "AC-3"},
        {0, 4, "MAC ", "Monkey's Audio (APE)"},
        {0, 4, "wvpk", "WavPack"},
        {0, 4, "\x1a\x45\xdf\xa3", "Matroska/WebM"},
        {0, 4, "ADIF", "AAC (ADIF)"},
};

static const char *
foreign_format(int fd)
{
	unsigned char b[32];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	if (n < 2)
		return NULL;
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		if ((size_t)n >= foreign[i].off + foreign[i].len &&
		    memcmp(b + foreign[i].off, foreign[i].magic, foreign[i].len) == 0)
			return foreign[i].name;
	if (b[0] == 0xff && (b[1] & 0xf6) == 0xf0) /* ADTS sync word, layer 0: AAC, not MPEG-1/2 layer III */
		return "AAC (ADTS)";
	return NULL;
}

/* Sets err to "PATH: WHAT" and returns code. */
static int
fail(char *err, size_t errlen, int code, const char *path, const char *what)
{
	snprintf(err, errlen, "%s: %s", path, what);
	return code;
}

static int
fail_sf(char *err, size_t errlen, const char *path, const char *msg)
{
	snprintf(err, errlen, "%s: libsndfile: %s", path, msg);
	return AUDIO_EFORMAT;
}

int
audio_analyze_file(const char *path, const struct audio_opts *o, json_t **result, char *err, size_t errlen)
{
	*result = NULL;
	struct stat st0;
	int code;
	int fd = open_checked(path, o, &st0, err, errlen, &code);
	if (fd < 0)
		return code;
	unsigned f = o->features ? o->features : AUDIO_F_DEFAULT;
	SF_INFO info = {0};
	const char *foreign_name = foreign_format(fd);
	if (foreign_name != NULL) {
		close(fd);
		snprintf(err, errlen,
		         "%s: %s is not supported: hopper reads what libsndfile reads (WAV, AIFF, FLAC, Ogg "
		         "Vorbis/Opus, MP3, "
		         "CAF, W64, RF64...); convert it first, e.g. ffmpeg -i IN -c:a flac OUT.flac",
		         path, foreign_name);
		return AUDIO_EFORMAT;
	}
	SNDFILE *sf = sf_open_fd(fd, SFM_READ, &info, 1);
	if (sf == NULL) {
		close(fd);
		return fail_sf(err, errlen, path, sf_strerror(NULL));
	}
	if (info.channels < 1 || info.channels > MAX_CHANNELS || info.samplerate < 1 || info.samplerate > 768000) {
		sf_close(sf);
		return fail(err, errlen, AUDIO_EFORMAT, path, "unsupported channel count or sample rate");
	}
	char why[160];
	if (header_overstates(sf, why, sizeof(why))) {
		sf_close(sf);
		return fail(err, errlen, AUDIO_EFORMAT, path, why);
	}
	if (info.frames <= 0) {
		sf_close(sf);
		return fail(err, errlen, AUDIO_EFORMAT, path, "no audio frames");
	}
	int C = info.channels;
	float clip_at = clip_level(info.format);
	int sub = info.format & SF_FORMAT_SUBMASK; /* only float subtypes can decode to NaN or inf */
	int float_data = sub == SF_FORMAT_FLOAT || sub == SF_FORMAT_DOUBLE || clip_at == 1.0f;
	const char *names[MAX_CHANNELS];
	double weights[MAX_CHANNELS];
	int from_file = channel_map(sf, C, names, weights);
	unsigned fc = f; /* what to compute: the true peak includes the sample peak */
	if (f & AUDIO_F_TRUE_PEAK)
		fc |= AUDIO_F_LEVELS;
	int wave = o->waveform > AUDIO_WAVEFORM_MAX ? AUDIO_WAVEFORM_MAX : o->waveform;
	struct levels *lv = levels_new(C, info.samplerate, (uint64_t)info.frames, clip_at, fc, wave);
	struct loud *loud = NULL;
	if (f & (AUDIO_F_LOUDNESS | AUDIO_F_TRUE_PEAK))
		loud = loud_new(info.samplerate, C, weights, !!(f & AUDIO_F_LOUDNESS), !!(f & AUDIO_F_TRUE_PEAK));
	struct spec *sp = NULL;
	struct audio_series_req sreq = {.mask = o->series};
	if (f & (AUDIO_F_SPECTRAL | AUDIO_F_ONSETS | AUDIO_F_TEMPO | AUDIO_F_KEY | AUDIO_F_MFCC | AUDIO_F_CHROMA |
	         AUDIO_F_CONTRAST) ||
	    o->series)
		sp = spec_new(info.samplerate, C, f, o->series ? &sreq : NULL);
	uint64_t nonfinite = 0;
	float *buf = xmalloc(sizeof(float) * BLOCK_FRAMES * (size_t)C);
	uint64_t done = 0, total = (uint64_t)info.frames;
	int last_pct = -1, rc = AUDIO_OK;
	double last_t = now_s();
	if (o->progress)
		o->progress(o->arg, 0, "analysing");
	for (;;) {
		if (o->cancelled && o->cancelled(o->arg)) {
			rc = fail(err, errlen, AUDIO_ECANCEL, path, "analysis cancelled (stop requested)");
			break;
		}
		sf_count_t n = sf_readf_float(sf, buf, BLOCK_FRAMES);
		if (n <= 0)
			break;
		if (float_data)
			nonfinite += sanitize(buf, (size_t)n * (size_t)C);
		levels_add(lv, buf, (size_t)n, done);
		if (loud)
			loud_add(loud, buf, (size_t)n);
		if (sp)
			spec_add(sp, buf, (size_t)n, C);
		done += (uint64_t)n;
		int pct = (int)(done * 99 / (total ? total : 1));
		double t = now_s();
		if (o->progress && (pct >= last_pct + 2 || t - last_t >= 0.5)) {
			o->progress(o->arg, pct > 99 ? 99 : pct, "analysing");
			last_pct = pct;
			last_t = t;
		}
	}
	if (rc == AUDIO_OK && sf_error(sf) != SF_ERR_NO_ERROR)
		rc = fail_sf(err, errlen, path, sf_strerror(sf));
	struct stat st1;
	if (rc == AUDIO_OK && (fstat(fd, &st1) < 0 || st1.st_size != st0.st_size ||
	                       st1.st_mtim.tv_sec != st0.st_mtim.tv_sec || st1.st_mtim.tv_nsec != st0.st_mtim.tv_nsec))
		rc = fail(err, errlen, AUDIO_EIO, path, "the file changed while it was being read");
	if (rc == AUDIO_OK && done < total) {
		char msg[160];
		snprintf(msg, sizeof(msg), "truncated: the header declares %lld frames, only %llu could be decoded",
		         (long long)total, (unsigned long long)done);
		rc = fail(err, errlen, AUDIO_EFORMAT, path, msg);
	}
	if (rc == AUDIO_OK && o->progress)
		o->progress(o->arg, 99, "summarising");
	if (rc == AUDIO_OK) {
		json_t *res = json_object();
		char fb[128], sb[128];
		json_object_set_new(res, "format",
		                    json_string(format_name(info.format, SF_FORMAT_TYPEMASK, fb, sizeof(fb))));
		json_object_set_new(res, "subtype",
		                    json_string(format_name(info.format, SF_FORMAT_SUBMASK, sb, sizeof(sb))));
		json_object_set_new(res, "sample_rate", json_integer(info.samplerate));
		json_object_set_new(res, "channels", json_integer(C));
		json_object_set_new(res, "frames", json_integer((json_int_t)done));
		json_object_set_new(res, "duration_s", json_real(round((double)done / info.samplerate * 1e6) / 1e6));
		json_t *layout = json_array(), *wj = json_array();
		for (int c = 0; c < C; c++) {
			json_array_append_new(layout, json_string(names[c]));
			json_array_append_new(wj, json_real(weights[c]));
		}
		json_object_set_new(res, "channel_layout", layout);
		json_object_set_new(res, "channel_layout_source", json_string(from_file ? "file" : "default"));
		json_object_set_new(res, "loudness_channel_weights", wj);
		json_object_set_new(res, "decoder", json_string("libsndfile"));
		if (fc & AUDIO_F_LEVELS)
			json_object_set_new(res, "non_finite_samples", json_integer((json_int_t)nonfinite));
		if (sp)
			spec_finish(sp);
		report(res, &info, lv, loud, sp, f, done);
		if (json_object_get(res, "reasons") == NULL)
			json_object_set_new(res, "reasons", json_object());
		*result = res;
	}
	free(buf);
	levels_free(lv);
	loud_free(loud);
	spec_free(sp);
	sf_close(sf);
	return rc;
}

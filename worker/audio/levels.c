/*
 * levels: the time-domain accumulators of one pass: sample peak, RMS, DC and clipping per channel, silence
 * (leading/trailing and the ratio of silent 50 ms windows), the zero-crossing rate and the waveform peaks.
 *
 * Zero-crossing rate: librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=n_fft/4, center=True)
 * (edge padding of n_fft/2, |x| <= 1e-10 counts as 0, 0 counts as positive), averaged over its frames, computed
 * per channel and then averaged over the channels. Each crossing between samples j-1 and j lies in a known number
 * of frames, so the mean over frames is an exact weighted count: nothing is framed.
 *
 * Waveform: N buckets of equal length over the file's frames, each with every channel's minimum and maximum.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define SILENCE_LIN   0.001 /* -60 dBFS: a frame whose every channel is below this is silent */
#define SILENCE_WIN_S 0.05
#define ZCR_THRESHOLD 1e-10f

struct levels {
	int ch;
	unsigned f;
	double *peak, *sumsq, *sum;
	uint64_t clipped;
	float clip_at;
	/* silence */
	int64_t first_loud, last_loud;
	uint64_t win_len, win_pos, win_silent, wins;
	double win_sumsq;
	/* zero crossings: per channel the previous sign and the weighted count */
	unsigned char *zsign;
	double *zweight;
	int zl, zh; /* frame length and hop */
	uint64_t total;
	/* waveform */
	int wn;
	float *wmin, *wmax; /* wn x ch */
	uint64_t frames;
};

struct levels *
levels_new(int channels, int rate, uint64_t total_frames, float clip_at, unsigned features, int waveform)
{
	struct levels *lv = xcalloc(1, sizeof(*lv));
	lv->ch = channels;
	lv->f = features;
	lv->peak = xcalloc((size_t)channels, sizeof(double));
	lv->sumsq = xcalloc((size_t)channels, sizeof(double));
	lv->sum = xcalloc((size_t)channels, sizeof(double));
	lv->clip_at = clip_at;
	lv->first_loud = lv->last_loud = -1;
	lv->win_len = (uint64_t)ceil(rate * SILENCE_WIN_S);
	lv->zsign = xcalloc((size_t)channels, 1);
	lv->zweight = xcalloc((size_t)channels, sizeof(double));
	lv->zl = spec_fft_size(rate);
	lv->zh = lv->zl / 4;
	lv->total = total_frames;
	if (waveform > 0 && total_frames > 0) {
		lv->wn = waveform;
		lv->wmin = xcalloc((size_t)waveform * channels, sizeof(float));
		lv->wmax = xcalloc((size_t)waveform * channels, sizeof(float));
	}
	return lv;
}

void
levels_free(struct levels *lv)
{
	if (lv == NULL)
		return;
	free(lv->peak);
	free(lv->sumsq);
	free(lv->sum);
	free(lv->zsign);
	free(lv->zweight);
	free(lv->wmin);
	free(lv->wmax);
	free(lv);
}

/* How many of librosa's frames count the crossing at padded position p (between p-1 and p). */
static double
zc_frames(const struct levels *lv, uint64_t p)
{
	int64_t L = lv->zl, h = lv->zh, T = (int64_t)(1 + lv->total / (uint64_t)h);
	int64_t pp = (int64_t)p;
	int64_t hi = (pp - 1) / h, lo = pp - L + 1 <= 0 ? 0 : (pp - L + 1 + h - 1) / h;
	hi = hi > T - 1 ? T - 1 : hi;
	return hi >= lo ? (double)(hi - lo + 1) : 0;
}

static void
zcr_add(struct levels *lv, const float *x, size_t n, uint64_t base)
{
	int C = lv->ch;
	uint64_t pad = (uint64_t)(lv->zl / 2);
	for (int c = 0; c < C; c++) {
		unsigned char prev = lv->zsign[c];
		double w = 0;
		for (size_t i = 0; i < n; i++) {
			float v = x[i * (size_t)C + (size_t)c];
			unsigned char s = v < -ZCR_THRESHOLD;
			if (s != prev && base + i > 0)
				w += zc_frames(lv, base + i + pad);
			prev = s;
		}
		lv->zsign[c] = prev;
		lv->zweight[c] += w;
	}
}

static void
waveform_add(struct levels *lv, const float *x, size_t n, uint64_t base)
{
	int C = lv->ch;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = (base + i) * (uint64_t)lv->wn / lv->total;
		if (b >= (uint64_t)lv->wn)
			b = (uint64_t)lv->wn - 1;
		float *mn = lv->wmin + b * (uint64_t)C, *mx = lv->wmax + b * (uint64_t)C;
		for (int c = 0; c < C; c++) {
			float v = x[i * (size_t)C + (size_t)c];
			mn[c] = v < mn[c] ? v : mn[c];
			mx[c] = v > mx[c] ? v : mx[c];
		}
	}
}

/* Sum of squares of m contiguous samples, 8 lanes. */
static double
sumsq(const float *x, size_t m)
{
	double acc[8] = {0};
	size_t i = 0;
	for (; i + 8 <= m; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += (double)x[i + (size_t)j] * x[i + (size_t)j];
	for (; i < m; i++)
		acc[0] += (double)x[i] * x[i];
	return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

/* The first and last frames with a sample at or above -60 dBFS, and the silent 50 ms windows. */
static void
silence_add(struct levels *lv, const float *x, size_t n, uint64_t base)
{
	size_t C = (size_t)lv->ch, total = n * C;
	if (lv->first_loud < 0)
		for (size_t i = 0; i < total; i++)
			if (fabsf(x[i]) >= SILENCE_LIN) {
				lv->first_loud = (int64_t)(base + i / C);
				break;
			}
	for (size_t i = total; i-- > 0;)
		if (fabsf(x[i]) >= SILENCE_LIN) {
			lv->last_loud = (int64_t)(base + i / C);
			break;
		}
	for (size_t i = 0; i < n;) {
		size_t m = n - i < lv->win_len - lv->win_pos ? n - i : lv->win_len - lv->win_pos;
		lv->win_sumsq += sumsq(x + i * C, m * C) / (double)C;
		lv->win_pos += m;
		i += m;
		if (lv->win_pos == lv->win_len) {
			lv->win_silent += sqrt(lv->win_sumsq / (double)lv->win_len) < SILENCE_LIN;
			lv->wins++;
			lv->win_pos = 0;
			lv->win_sumsq = 0;
		}
	}
}

/* Peak, sums and clipping with one channel at a time (any channel count). */
static void
levels_strided(struct levels *lv, const float *x, size_t n)
{
	int C = lv->ch;
	for (int c = 0; c < C; c++) {
		float pk = (float)lv->peak[c];
		double s2 = 0, s1 = 0;
		uint64_t clip = 0;
		for (size_t i = 0; i < n; i++) {
			float v = x[i * (size_t)C + (size_t)c], a = fabsf(v);
			pk = a > pk ? a : pk;
			s2 += (double)v * v;
			s1 += v;
			clip += a >= lv->clip_at;
		}
		lv->peak[c] = pk;
		lv->sumsq[c] += s2;
		lv->sum[c] += s1;
		lv->clipped += clip;
	}
}

/* The same over the interleaved block as 8 independent lanes (lane j holds channel j % C when C divides 8),
 * which the compiler turns into SIMD: no strided loads, no serial double chain. */
static void
levels_lanes(struct levels *lv, const float *x, size_t n)
{
	int C = lv->ch;
	size_t total = n * (size_t)C, i = 0;
	float pk[8] = {0};
	double s2[8] = {0}, s1[8] = {0};
	uint32_t clip[8] = {0};
	const float at = lv->clip_at;
	for (; i + 8 <= total; i += 8)
		for (int j = 0; j < 8; j++) {
			float v = x[i + (size_t)j], a = fabsf(v);
			pk[j] = a > pk[j] ? a : pk[j];
			s2[j] += (double)v * v;
			s1[j] += v;
			clip[j] += a >= at;
		}
	for (int j = 0; i < total; i++, j++) { /* the tail: lanes continue in order, so lane j is channel j % C */
		float v = x[i], a = fabsf(v);
		pk[j] = a > pk[j] ? a : pk[j];
		s2[j] += (double)v * v;
		s1[j] += v;
		clip[j] += a >= at;
	}
	for (int j = 0; j < 8; j++) {
		int c = j % C;
		lv->peak[c] = pk[j] > lv->peak[c] ? pk[j] : lv->peak[c];
		lv->sumsq[c] += s2[j];
		lv->sum[c] += s1[j];
		lv->clipped += clip[j];
	}
}

void
levels_add(struct levels *lv, const float *x, size_t n, uint64_t base)
{
	int C = lv->ch;
	unsigned f = lv->f;
	if (f & AUDIO_F_LEVELS) {
		if (8 % C == 0)
			levels_lanes(lv, x, n);
		else
			levels_strided(lv, x, n);
	}
	if (f & AUDIO_F_SILENCE)
		silence_add(lv, x, n, base);
	if (f & AUDIO_F_ZCR)
		zcr_add(lv, x, n, base);
	if (lv->wn > 0)
		waveform_add(lv, x, n, base);
	lv->frames = base + n;
}

double
levels_peak(const struct levels *lv, int c)
{
	return lv->peak[c];
}

static double
db(double lin)
{
	return lin > 0 ? 20.0 * log10(lin) : NAN;
}

static double
r3(double v)
{
	return isfinite(v) ? round(v * 1000) / 1000 : v;
}

void
levels_report(const struct levels *lv, json_t *res, int rate)
{
	int C = lv->ch;
	double N = (double)lv->frames;
	if (lv->f & AUDIO_F_LEVELS) {
		json_t *pk = json_array(), *rms = json_array(), *dc = json_array();
		double pmax = 0, s2 = 0, s1 = 0;
		for (int c = 0; c < C; c++) {
			double rr = sqrt(lv->sumsq[c] / N);
			json_array_append_new(pk, lv->peak[c] > 0 ? json_real(r3(db(lv->peak[c]))) : json_null());
			json_array_append_new(rms, rr > 0 ? json_real(r3(db(rr))) : json_null());
			json_array_append_new(dc, json_real(round(lv->sum[c] / N * 1e6) / 1e6));
			pmax = lv->peak[c] > pmax ? lv->peak[c] : pmax;
			s2 += lv->sumsq[c];
			s1 += lv->sum[c];
		}
		audio_set_num(res, "peak_dbfs", r3(db(pmax)), "silent: every sample is zero");
		json_object_set_new(res, "peak_dbfs_per_channel", pk);
		audio_set_num(res, "rms_dbfs", r3(db(sqrt(s2 / (N * C)))), "silent: every sample is zero");
		json_object_set_new(res, "rms_dbfs_per_channel", rms);
		json_object_set_new(res, "dc_offset", json_real(round(s1 / (N * C) * 1e6) / 1e6));
		json_object_set_new(res, "dc_offset_per_channel", dc);
		json_object_set_new(res, "clipped_samples", json_integer((json_int_t)lv->clipped));
		json_object_set_new(res, "clip_level", json_real(audio_sig(lv->clip_at, 8)));
	}
	if (lv->f & AUDIO_F_SILENCE) {
		double sr = rate;
		if (lv->first_loud < 0) {
			json_object_set_new(res, "leading_silence_s", json_real(round(N / sr * 1e4) / 1e4));
			json_object_set_new(res, "trailing_silence_s", json_real(round(N / sr * 1e4) / 1e4));
		} else {
			json_object_set_new(res, "leading_silence_s",
			                    json_real(round((double)lv->first_loud / sr * 1e4) / 1e4));
			json_object_set_new(res, "trailing_silence_s",
			                    json_real(round((N - 1 - (double)lv->last_loud) / sr * 1e4) / 1e4));
		}
		uint64_t wins = lv->wins + (lv->win_pos > 0), silent = lv->win_silent;
		if (lv->win_pos > 0)
			silent += sqrt(lv->win_sumsq / (double)lv->win_pos) < SILENCE_LIN;
		audio_set_num(res, "silence_ratio", wins ? round((double)silent / wins * 1e4) / 1e4 : NAN, "no frames");
	}
	if (lv->f & AUDIO_F_ZCR) {
		double T = (double)(1 + lv->total / (uint64_t)lv->zh), sum = 0;
		json_t *per = json_array();
		for (int c = 0; c < C; c++) {
			double z = lv->zweight[c] / (T * lv->zl);
			sum += z;
			json_array_append_new(per, json_real(audio_sig(z, 5)));
		}
		json_object_set_new(res, "zero_crossing_rate", json_real(audio_sig(sum / C, 5)));
		json_object_set_new(res, "zero_crossing_rate_per_channel", per);
	}
	if (lv->wn > 0) {
		json_t *w = json_object(), *chs = json_array();
		json_object_set_new(w, "points", json_integer(lv->wn));
		json_object_set_new(w, "frames_per_point", json_real(audio_sig((double)lv->total / lv->wn, 6)));
		for (int c = 0; c < C; c++) {
			json_t *mn = json_array(), *mx = json_array();
			for (int b = 0; b < lv->wn; b++) {
				json_array_append_new(mn, json_real(audio_sig(lv->wmin[(size_t)b * C + c], 4)));
				json_array_append_new(mx, json_real(audio_sig(lv->wmax[(size_t)b * C + c], 4)));
			}
			json_t *o = json_object();
			json_object_set_new(o, "min", mn);
			json_object_set_new(o, "max", mx);
			json_array_append_new(chs, o);
		}
		json_object_set_new(w, "channels", chs);
		json_object_set_new(res, "waveform", w);
	}
}

/*
 * spectral: short-time spectra of the mono mix (the mean of the channels) with FFTW, Hann window, size N
 * (2048 at 44.1/48 kHz; the power of two giving bins of at most ~23 Hz) and hop N/4. From each frame:
 *   - centroid (power-weighted mean frequency), rolloff (the frequency below which 85% of the power lies) and
 *     flatness (geometric over arithmetic mean of the power spectrum, as librosa), averaged over the frames that
 *     are not silent (frame RMS at or above -60 dBFS). librosa weights centroid and rolloff by magnitude; power
 *     weighting keeps a quantisation noise floor from dragging the centroid of a pure tone by several percent;
 *   - onset strength: spectral flux of log-compressed energies in 1/4-octave bands (half-wave rectified), fed to
 *     an onset picker (local maximum over +-3 frames above an adaptive threshold: 1.5x the mean flux of the
 *     previous ~0.2 s plus a floor) and to a running autocorrelation over lags up to 6 s, from which the tempo
 *     is read at the end (a comb over 4 multiples of the beat period, then the fastest period scoring within
 *     15% of the best, which rules out the half-tempo octave error);
 *   - a 12-bin pitch-class profile from the frame's spectral peaks (interpolated frequency, 65 Hz - 5 kHz),
 *     correlated at the end with the Krumhansl-Kessler key profiles in all 24 keys.
 * Everything is a ring or a fixed-size accumulator: memory does not grow with the file.
 */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define NBANDS_MAX     48
#define FLUX_RING      32    /* onset picker history, frames */
#define ONSET_LIST_MAX 1000  /* onset times kept in the result; the count is exact */
#define PICK_HALF      3     /* local-maximum half width, frames */
#define PICK_MEAN      16    /* adaptive threshold window, frames before the candidate */
#define SILENT_RMS     0.001 /* -60 dBFS */

struct spec {
	int rate, ch, n, hop, nbins;
	unsigned features;
	float *ring; /* the last n mono samples, ring */
	size_t ring_pos, filled, since_hop;
	float *win, *in;
	fftwf_complex *out;
	fftwf_plan plan;
	float *mag;
	float wsum; /* window sum: mag * 2 / wsum is a sine's amplitude */
	/* per-frame feature sums over non-silent frames */
	double centroid_sum, rolloff_sum, flat_sum;
	uint64_t frames, voiced;
	/* bands */
	int nbands;
	int band_lo[NBANDS_MAX], band_hi[NBANDS_MAX];
	float band_prev[NBANDS_MAX];
	/* onsets */
	float flux[FLUX_RING];
	uint64_t nflux, last_onset, onsets;
	json_t *onset_times;
	/* tempo: running autocorrelation of the flux */
	int maxlag;
	float *fring; /* the last maxlag flux values */
	double *ac;
	double flux_sum;
	/* key */
	double chroma[12];
};

static int
fft_size(int rate)
{
	int n = 256;
	while ((double)rate / n > 23.0 && n < 16384)
		n *= 2;
	return n;
}

struct spec *
spec_new(int rate, int channels, unsigned features)
{
	struct spec *s = xcalloc(1, sizeof(*s));
	s->rate = rate;
	s->ch = channels;
	s->features = features;
	s->n = fft_size(rate);
	s->hop = s->n / 4;
	s->nbins = s->n / 2 + 1;
	s->ring = xcalloc((size_t)s->n, sizeof(float));
	s->win = xcalloc((size_t)s->n, sizeof(float));
	s->in = fftwf_malloc(sizeof(float) * (size_t)s->n);
	s->out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)s->nbins);
	s->mag = xcalloc((size_t)s->nbins, sizeof(float));
	if (s->in == NULL || s->out == NULL)
		abort();
	s->plan = fftwf_plan_dft_r2c_1d(s->n, s->in, s->out, FFTW_ESTIMATE);
	for (int i = 0; i < s->n; i++) {
		s->win[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * i / s->n)); /* periodic Hann */
		s->wsum += s->win[i];
	}
	/* quarter-octave bands from 30 Hz up to Nyquist or 16 kHz */
	double binhz = (double)rate / s->n, f = 30.0, top = rate / 2.0 < 16000 ? rate / 2.0 : 16000;
	while (s->nbands < NBANDS_MAX && f < top) {
		double f2 = f * pow(2.0, 0.25);
		int lo = (int)ceil(f / binhz), hi = (int)floor(f2 / binhz);
		if (hi >= s->nbins)
			hi = s->nbins - 1;
		if (hi >= lo) {
			s->band_lo[s->nbands] = lo;
			s->band_hi[s->nbands] = hi;
			s->nbands++;
		}
		f = f2;
	}
	double fps = (double)rate / s->hop;
	s->maxlag = (int)ceil(6.0 * fps) + 2;
	s->fring = xcalloc((size_t)s->maxlag, sizeof(float));
	s->ac = xcalloc((size_t)s->maxlag, sizeof(double));
	s->onset_times = json_array();
	return s;
}

void
spec_free(struct spec *s)
{
	if (s == NULL)
		return;
	fftwf_destroy_plan(s->plan);
	fftwf_free(s->in);
	fftwf_free(s->out);
	free(s->ring);
	free(s->win);
	free(s->mag);
	free(s->fring);
	free(s->ac);
	json_decref(s->onset_times);
	free(s);
}

/* Geometric over arithmetic mean of the power spectrum (floor 1e-10, as librosa), logs taken per 16 bins. */
static double
flatness(const float *mag, int nbins)
{
	double logsum = 0, sum = 0;
	for (int i = 0; i < nbins;) {
		double prod = 1.0;
		int end = i + 16 < nbins ? i + 16 : nbins;
		for (; i < end; i++) {
			double p = (double)mag[i] * mag[i];
			p = p < 1e-10 ? 1e-10 : p;
			prod *= p;
			sum += p;
		}
		logsum += log(prod);
	}
	double am = sum / nbins;
	return am > 0 ? exp(logsum / nbins) / am : NAN;
}

static void
onset_pick(struct spec *s)
{
	/* the candidate is PICK_HALF frames back, so its right-hand neighbours are known */
	if (s->nflux < (uint64_t)(PICK_HALF + 1))
		return;
	uint64_t c = s->nflux - 1 - PICK_HALF;
	float v = s->flux[c % FLUX_RING];
	for (uint64_t j = c >= PICK_HALF ? c - PICK_HALF : 0; j <= c + PICK_HALF; j++)
		if (s->flux[j % FLUX_RING] > v || (j < c && s->flux[j % FLUX_RING] == v))
			return;
	double mean = 0;
	int m = 0;
	for (uint64_t j = c >= PICK_MEAN ? c - PICK_MEAN : 0; j <= c + PICK_HALF; j++, m++)
		mean += s->flux[j % FLUX_RING];
	mean /= m;
	double fps = (double)s->rate / s->hop;
	if (v < 1.5 * mean + 0.02 * s->nbands || (s->onsets > 0 && (double)(c - s->last_onset) < 0.05 * fps))
		return;
	s->onsets++;
	s->last_onset = c;
	if (json_array_size(s->onset_times) < ONSET_LIST_MAX) {
		/* the frame's centre (frame c ends at sample (c + 1) * hop) */
		double t = ((double)(c + 1) * s->hop - s->n / 2.0) / s->rate;
		t = t < 0 ? 0 : t;
		json_array_append_new(s->onset_times, json_real(round(t * 1000) / 1000));
	}
}

static void
tempo_add(struct spec *s, float f)
{
	uint64_t t = s->nflux - 1;
	s->fring[t % (uint64_t)s->maxlag] = f;
	s->flux_sum += f;
	int L = t + 1 < (uint64_t)s->maxlag ? (int)t + 1 : s->maxlag;
	for (int l = 0; l < L; l++)
		s->ac[l] += (double)f * s->fring[(t - (uint64_t)l) % (uint64_t)s->maxlag];
}

/* Folds spectral peaks into the pitch-class profile. */
static void
chroma_add(struct spec *s, float mx)
{
	double binhz = (double)s->rate / s->n;
	int lo = (int)(65.0 / binhz) + 1, hi = (int)(5000.0 / binhz);
	if (hi > s->nbins - 2)
		hi = s->nbins - 2;
	const float *m = s->mag;
	for (int k = lo > 1 ? lo : 1; k <= hi; k++) {
		if (!(m[k] > m[k - 1] && m[k] >= m[k + 1] && m[k] > 0.01f * mx))
			continue;
		/* parabolic interpolation on log magnitude */
		double a = log(m[k - 1] + 1e-12), b = log(m[k]), c = log(m[k + 1] + 1e-12);
		double den = a - 2 * b + c, d = den < 0 ? 0.5 * (a - c) / den : 0;
		double f = (k + d) * binhz;
		double midi = 69.0 + 12.0 * log2(f / 440.0);
		int pc = ((int)lround(midi) % 12 + 12) % 12;
		s->chroma[pc] += m[k];
	}
}

static void
frame_done(struct spec *s)
{
	size_t n = (size_t)s->n;
	double e = 0;
	for (size_t i = 0; i < n; i++) {
		float v = s->ring[(s->ring_pos + i) & (n - 1)];
		s->in[i] = v * s->win[i];
		e += (double)v * v;
	}
	fftwf_execute(s->plan);
	float scale = 2.0f / s->wsum, mx = 0;
	for (int k = 0; k < s->nbins; k++) {
		float re = s->out[k][0], im = s->out[k][1];
		s->mag[k] = sqrtf(re * re + im * im) * scale;
		mx = s->mag[k] > mx ? s->mag[k] : mx;
	}
	s->frames++;
	int voiced = sqrt(e / n) >= SILENT_RMS;
	double binhz = (double)s->rate / s->n;
	if (voiced && (s->features & AUDIO_F_SPECTRAL)) {
		double sum = 0, fsum = 0;
		for (int k = 0; k < s->nbins; k++) {
			double p = (double)s->mag[k] * s->mag[k];
			sum += p;
			fsum += p * k;
		}
		fsum *= binhz;
		double acc = 0, target = 0.85 * sum;
		int k = 0;
		for (; k < s->nbins - 1 && acc + (double)s->mag[k] * s->mag[k] < target; k++)
			acc += (double)s->mag[k] * s->mag[k];
		if (sum > 0) {
			s->centroid_sum += fsum / sum;
			s->rolloff_sum += k * binhz;
			double fl = flatness(s->mag, s->nbins);
			s->flat_sum += isfinite(fl) ? fl : 0;
			s->voiced++;
		}
	}
	if (s->features & (AUDIO_F_ONSETS | AUDIO_F_TEMPO)) {
		double flux = 0;
		for (int b = 0; b < s->nbands; b++) {
			double be = 0;
			for (int k = s->band_lo[b]; k <= s->band_hi[b]; k++)
				be += (double)s->mag[k] * s->mag[k];
			float lv = (float)log1p(1e4 * be / (s->band_hi[b] - s->band_lo[b] + 1));
			if (lv > s->band_prev[b])
				flux += lv - s->band_prev[b];
			s->band_prev[b] = lv;
		}
		s->flux[s->nflux % FLUX_RING] = (float)flux;
		s->nflux++;
		onset_pick(s); /* tempo needs the onset count too */
		if (s->features & AUDIO_F_TEMPO)
			tempo_add(s, (float)flux);
	}
	if (voiced && (s->features & AUDIO_F_KEY))
		chroma_add(s, mx);
}

void
spec_add(struct spec *s, const float *x, size_t frames)
{
	size_t n = (size_t)s->n;
	float inv = 1.0f / s->ch;
	for (size_t i = 0; i < frames; i++) {
		float m = 0;
		for (int c = 0; c < s->ch; c++)
			m += x[i * (size_t)s->ch + (size_t)c];
		s->ring[s->ring_pos] = m * inv;
		s->ring_pos = (s->ring_pos + 1) & (n - 1); /* n is a power of two */
		if (s->filled < n)
			s->filled++;
		if (++s->since_hop == (size_t)s->hop) {
			s->since_hop = 0;
			frame_done(s); /* the ring starts as silence, so an onset at 0 s is seen */
		}
	}
}

/* Linear interpolation of the mean-removed, lag-0-normalised autocorrelation. */
static double
acn(const struct spec *s, double lag)
{
	int i = (int)lag;
	if (i + 1 >= s->maxlag)
		return 0;
	double fr = lag - i, N = (double)s->nflux, m = s->flux_sum / N;
	double a0 = s->ac[0] - N * m * m;
	double v1 = s->ac[i] - (N - i) * m * m, v2 = s->ac[i + 1] - (N - i - 1) * m * m;
	return a0 > 0 ? ((1 - fr) * v1 + fr * v2) / a0 : 0;
}

static double
comb(const struct spec *s, double p)
{
	double sc = 0;
	for (int k = 1; k <= 4; k++)
		sc += acn(s, k * p);
	return sc / 4;
}

static void
tempo_report(const struct spec *s, json_t *res)
{
	double fps = (double)s->rate / s->hop;
	double pmin = fps * 60.0 / 300.0, pmax = fps * 60.0 / 40.0;
	if (s->onsets < 4) {
		audio_set_null(res, "tempo_bpm", "fewer than 4 onsets");
		audio_set_null(res, "tempo_confidence", "no tempo");
		return;
	}
	if (s->nflux < (uint64_t)(4 * pmax / 2) || s->ac[0] <= 0) {
		audio_set_null(res, "tempo_bpm",
		               s->ac[0] <= 0 && s->nflux > 0 ? "no onsets (silence or steady tone)"
		                                             : "too short for tempo (under ~6 s)");
		audio_set_null(res, "tempo_confidence", "no tempo");
		return;
	}
	/* coarse grid, its local maxima, then the fastest one within 15% of the best */
	double step = 0.1, best = -1;
	enum { MAXC = 64 };
	double cand[MAXC], cs[MAXC];
	int nc = 0;
	double prev2 = -1e9, prev1 = -1e9;
	for (double p = pmin; p <= pmax + step; p += step) {
		double v = comb(s, p);
		if (prev1 > prev2 && prev1 >= v && nc < MAXC && prev1 > 0) {
			cand[nc] = p - step;
			cs[nc++] = prev1;
		}
		prev2 = prev1;
		prev1 = v;
	}
	for (int i = 0; i < nc; i++)
		best = cs[i] > best ? cs[i] : best;
	if (nc == 0 || best <= 0.05) {
		audio_set_null(res, "tempo_bpm", "no periodic onsets");
		audio_set_null(res, "tempo_confidence", "no tempo");
		return;
	}
	double p = 0, sc = 0;
	for (int i = 0; i < nc; i++)
		if (cs[i] >= 0.85 * best) {
			p = cand[i];
			sc = cs[i];
			break;
		}
	/* refine to 0.002 frames */
	double lo = p - step, hi = p + step, bp = p;
	for (double q = lo; q <= hi; q += 0.002) {
		double v = comb(s, q);
		if (v > sc) {
			sc = v;
			bp = q;
		}
	}
	double bpm = 60.0 * fps / bp;
	audio_set_num(res, "tempo_bpm", round(bpm * 100) / 100, "no tempo");
	audio_set_num(res, "tempo_confidence", round((sc < 0 ? 0 : sc > 1 ? 1 : sc) * 1000) / 1000, "no tempo");
}

static const char *const pc_names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
/* Krumhansl & Kessler (1982) probe-tone ratings, tonic first. */
static const double kk_major[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
static const double kk_minor[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17};

static double
pearson(const double *x, const double *prof, int rot)
{
	double mx = 0, my = 0;
	for (int i = 0; i < 12; i++) {
		mx += x[i];
		my += prof[i];
	}
	mx /= 12;
	my /= 12;
	double sxy = 0, sxx = 0, syy = 0;
	for (int i = 0; i < 12; i++) {
		double a = x[(i + rot) % 12] - mx, b = prof[i] - my;
		sxy += a * b;
		sxx += a * a;
		syy += b * b;
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

static void
key_report(const struct spec *s, json_t *res)
{
	double mx = 0;
	for (int i = 0; i < 12; i++)
		mx = s->chroma[i] > mx ? s->chroma[i] : mx;
	if (!(mx > 0)) {
		audio_set_null(res, "key", "no pitched content (silence or too short)");
		audio_set_null(res, "key_confidence", "no key");
		audio_set_null(res, "pitch_class_profile", "no pitched content");
		return;
	}
	double prof[12], best = -2;
	json_t *arr = json_array();
	for (int i = 0; i < 12; i++) {
		prof[i] = s->chroma[i] / mx;
		json_array_append_new(arr, json_real(round(prof[i] * 1000) / 1000));
	}
	int bk = 0, minor = 0;
	for (int r = 0; r < 12; r++)
		for (int mode = 0; mode < 2; mode++) {
			double c = pearson(prof, mode ? kk_minor : kk_major, r);
			if (c > best) {
				best = c;
				bk = r;
				minor = mode;
			}
		}
	char name[16];
	snprintf(name, sizeof(name), "%s %s", pc_names[bk], minor ? "minor" : "major");
	json_object_set_new(res, "key", json_string(name));
	audio_set_num(res, "key_confidence", round((best < 0 ? 0 : best) * 1000) / 1000, "no key");
	json_object_set_new(res, "pitch_class_profile", arr);
}

void
spec_report(struct spec *s, json_t *res, unsigned features)
{
	if (features & AUDIO_F_SPECTRAL) {
		const char *why =
		        s->frames == 0 ? "shorter than one analysis frame" : "silent: no frame at or above -60 dBFS";
		double v = (double)s->voiced;
		audio_set_num(res, "spectral_centroid_hz", s->voiced ? round(s->centroid_sum / v * 100) / 100 : NAN,
		              why);
		audio_set_num(res, "spectral_rolloff_hz", s->voiced ? round(s->rolloff_sum / v * 100) / 100 : NAN, why);
		audio_set_num(res, "spectral_flatness", s->voiced ? s->flat_sum / v : NAN, why);
	}
	if (features & AUDIO_F_ONSETS) {
		json_object_set_new(res, "onsets", json_integer((json_int_t)s->onsets));
		json_object_set_new(res, "onset_times_s", json_incref(s->onset_times));
	}
	if (features & AUDIO_F_TEMPO)
		tempo_report(s, res);
	if (features & AUDIO_F_KEY)
		key_report(s, res);
}

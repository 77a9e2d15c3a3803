/*
 * spectral: the short-time spectra of the mono mix (the mean of the channels, as librosa.load(mono=True)), framed
 * as librosa.stft(center=True, pad_mode="constant") frames them: frame t is centred on sample t * hop, the
 * signal is padded with n/2 zeros at both ends, and there are 1 + len // hop frames. Periodic Hann window, size
 * n = 2048 * 2^round(log2(rate / 44100)) (2048 at 44.1 and 48 kHz, 512 at 8 kHz, 8192 at 192 kHz), hop n/4.
 * FFTW plans are made once per process (one per size) and kept.
 *
 * From each frame's magnitude spectrum S = |X| (librosa's definitions, averaged over every frame, silent ones
 * included, as np.mean(librosa.feature.X(...)) gives):
 *   centroid  sum(f S) / sum(S)                                  (0 for a silent frame)
 *   bandwidth (sum(S/sum(S) * (f - centroid)^2))^(1/2)              (p = 2, norm = True)
 *   rolloff   the lowest bin frequency where cumsum(S) >= 0.85 sum(S)
 *   flatness  gmean(max(S^2, 1e-10)) / mean(max(S^2, 1e-10))     (power = 2, amin = 1e-10)
 * The mel spectrogram (128 Slaney mel bands, 0 Hz to Nyquist, Slaney area normalisation, power 2) in dB feeds
 * the MFCCs (DCT-II, ortho, 13 coefficients: mean and std) and the onset strength (rhythm.c); the chroma
 * filterbank of librosa.filters.chroma (tuning 0) feeds chroma_stft's per-frame max-normalised chroma (key.c).
 * Every accumulator is a fixed-size sum: memory does not grow with the file.
 */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define NMEL       128
#define NMFCC      13
#define AMIN       1e-10f
#define TOP_DB     80.0f
#define ROLL_PCT   0.85
#define PLAN_CACHE 8
/* Chroma weights are Gaussians in pitch: past a few semitones they fall below 1e-6 of a row's peak and change
 * no printed digit, so each row keeps only the bins above that. */
#define CHROMA_PRUNE 1e-6
#define MIN_FFT      16
#define MAX_FFT      65536

/* FFTW plans outlive analyses: planning is the expensive part, and a worker analyses many files. */
static struct {
	int n;
	float *in;
	fftwf_complex *out;
	fftwf_plan plan;
} plans[PLAN_CACHE];

static int
plan_get(int n)
{
	int free_slot = -1;
	for (int i = 0; i < PLAN_CACHE; i++) {
		if (plans[i].n == n)
			return i;
		if (plans[i].n == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0) { /* more sizes than slots (only with many sample rates): replace the first */
		free_slot = 0;
		fftwf_destroy_plan(plans[0].plan);
		fftwf_free(plans[0].in);
		fftwf_free(plans[0].out);
	}
	plans[free_slot].n = n;
	plans[free_slot].in = fftwf_malloc(sizeof(float) * (size_t)n);
	plans[free_slot].out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(n / 2 + 1));
	if (plans[free_slot].in == NULL || plans[free_slot].out == NULL)
		abort();
	plans[free_slot].plan =
	        fftwf_plan_dft_r2c_1d(n, plans[free_slot].in, plans[free_slot].out, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
	return free_slot;
}

struct spec {
	int rate, n, hop, nbins, slot;
	unsigned features;
	float *ring;      /* the last n padded mono samples; n is a power of two */
	uint64_t pushed;  /* padded samples pushed, the leading n/2 zeros included */
	size_t until;     /* samples to push before the next frame is complete */
	uint64_t samples; /* real samples */
	uint64_t frames;
	float *win, *mag, *pw, *freq;
	/* spectral shape sums */
	double cent_sum, bw_sum, roll_sum, flat_sum;
	/* mel */
	int *mel_lo, *mel_hi, *mel_off;
	float *mel_w, *mel_db;
	float db_max; /* the largest mel dB so far: the top_db floor follows it */
	float dct[NMFCC][NMEL];
	double mfcc_sum[NMFCC], mfcc_sq[NMFCC];
	/* chroma */
	float *cw; /* the chroma filterbank, sparse: row c's weights cw[coff[c] .. coff[c + 1]) */
	int *cidx; /* their bins */
	int coff[13];
	double chroma_sum[12];
	struct rhythm *rh;
	struct contrast *ct;
	struct series *ser;
};

static int
fft_size(int rate)
{
	double e = round(log2((double)rate / 44100.0));
	double n = 2048.0 * pow(2.0, e);
	return n < MIN_FFT ? MIN_FFT : n > MAX_FFT ? MAX_FFT : (int)n;
}

int
spec_fft_size(int rate)
{
	return fft_size(rate);
}

/* librosa's Slaney mel scale (htk = False) */
static double
hz_to_mel(double f)
{
	const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
	return f < min_log_hz ? f / f_sp : min_log_mel + log(f / min_log_hz) / logstep;
}

static double
mel_to_hz(double m)
{
	const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
	return m < min_log_mel ? f_sp * m : min_log_hz * exp(logstep * (m - min_log_mel));
}

/* librosa.filters.mel(sr, n_fft, n_mels=128, fmin=0, fmax=sr/2, htk=False, norm="slaney"), stored sparse. */
static void
mel_design(struct spec *s)
{
	double mf[NMEL + 2], top = hz_to_mel(s->rate / 2.0);
	for (int i = 0; i < NMEL + 2; i++)
		mf[i] = mel_to_hz(top * i / (NMEL + 1));
	s->mel_lo = xcalloc(NMEL, sizeof(int));
	s->mel_hi = xcalloc(NMEL, sizeof(int));
	s->mel_off = xcalloc(NMEL + 1, sizeof(int));
	float *tmp = xcalloc((size_t)s->nbins, sizeof(float));
	size_t cap = 0;
	s->mel_w = NULL;
	for (int m = 0; m < NMEL; m++) {
		double enorm = 2.0 / (mf[m + 2] - mf[m]);
		int lo = -1, hi = -1;
		for (int k = 0; k < s->nbins; k++) {
			double lower = (s->freq[k] - mf[m]) / (mf[m + 1] - mf[m]);
			double upper = (mf[m + 2] - s->freq[k]) / (mf[m + 2] - mf[m + 1]);
			double w = fmax(0.0, fmin(lower, upper)) * enorm;
			tmp[k] = (float)w;
			if (tmp[k] > 0) {
				lo = lo < 0 ? k : lo;
				hi = k;
			}
		}
		if (lo < 0)
			lo = 0, hi = -1; /* an empty filter (few bins, many bands): librosa leaves it empty too */
		s->mel_lo[m] = lo;
		s->mel_hi[m] = hi;
		s->mel_off[m] = (int)cap;
		size_t need = cap + (size_t)(hi - lo + 1);
		s->mel_w = xrealloc(s->mel_w, sizeof(float) * (need ? need : 1));
		for (int k = lo; k <= hi; k++)
			s->mel_w[cap++] = tmp[k];
	}
	s->mel_off[NMEL] = (int)cap;
	free(tmp);
	for (int k = 0; k < NMFCC; k++)
		for (int m = 0; m < NMEL; m++)
			s->dct[k][m] = (float)(cos(M_PI * k * (2 * m + 1) / (2.0 * NMEL)) *
			                       (k == 0 ? sqrt(1.0 / NMEL) : sqrt(2.0 / NMEL)));
}

/* librosa.filters.chroma(sr, n_fft, n_chroma=12, tuning=0, ctroct=5, octwidth=2, norm=2, base_c=True) */
static void
chroma_design(struct spec *s)
{
	int n = s->n, nb = s->nbins;
	double *frq = xcalloc((size_t)n, sizeof(double)), *bw = xcalloc((size_t)n, sizeof(double));
	for (int k = 1; k < n; k++) {
		double f = (double)s->rate * k / n;
		frq[k] = 12.0 * log2(f / (440.0 / 16.0));
	}
	frq[0] = (n > 1 ? frq[1] : 0) - 1.5 * 12;
	for (int k = 0; k < n - 1; k++)
		bw[k] = fmax(frq[k + 1] - frq[k], 1.0);
	bw[n - 1] = 1.0;
	double *w = xcalloc((size_t)12 * n, sizeof(double));
	for (int k = 0; k < n; k++) {
		double norm = 0;
		for (int c = 0; c < 12; c++) {
			double d = fmod(frq[k] - c + 6.0 + 120.0, 12.0);
			d = (d < 0 ? d + 12.0 : d) - 6.0;
			double v = exp(-0.5 * pow(2.0 * d / bw[k], 2));
			w[c * n + k] = v;
			norm += v * v;
		}
		norm = sqrt(norm);
		double oct = exp(-0.5 * pow((frq[k] / 12.0 - 5.0) / 2.0, 2));
		for (int c = 0; c < 12; c++)
			w[c * n + k] = (norm > 0 ? w[c * n + k] / norm : 0) * oct;
	}
	s->cw = xcalloc((size_t)12 * nb, sizeof(float));
	s->cidx = xcalloc((size_t)12 * nb, sizeof(int));
	int used = 0;
	for (int c = 0; c < 12; c++) { /* base_c: roll by -3 so that row 0 is C */
		const double *row = w + (size_t)((c + 3) % 12) * n;
		double mx = 0;
		for (int k = 0; k < nb; k++)
			mx = row[k] > mx ? row[k] : mx;
		s->coff[c] = used;
		for (int k = 0; k < nb; k++)
			if (row[k] > CHROMA_PRUNE * mx) {
				s->cw[used] = (float)row[k];
				s->cidx[used++] = k;
			}
	}
	s->coff[12] = used;
	free(w);
	free(frq);
	free(bw);
}

struct spec *
spec_new(int rate, int channels, unsigned features, const struct audio_series_req *series)
{
	struct spec *s = xcalloc(1, sizeof(*s));
	s->rate = rate;
	s->features = features;
	s->n = fft_size(rate);
	s->hop = s->n / 4;
	s->nbins = s->n / 2 + 1;
	s->slot = plan_get(s->n);
	s->ring = xcalloc((size_t)s->n, sizeof(float));
	s->win = xcalloc((size_t)s->n, sizeof(float));
	s->mag = xcalloc((size_t)s->nbins, sizeof(float));
	s->pw = xcalloc((size_t)s->nbins, sizeof(float));
	s->freq = xcalloc((size_t)s->nbins, sizeof(float));
	s->mel_db = xcalloc(NMEL, sizeof(float));
	for (int i = 0; i < s->n; i++)
		s->win[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * i / s->n)); /* periodic Hann */
	for (int k = 0; k < s->nbins; k++)
		s->freq[k] = (float)((double)rate * k / s->n);
	s->pushed = (uint64_t)(s->n / 2); /* the leading pad: the ring starts as zeros */
	s->until = (size_t)(s->n / 2);
	s->db_max = -1e30f;
	if (features & (AUDIO_F_ONSETS | AUDIO_F_TEMPO | AUDIO_F_MFCC))
		mel_design(s);
	if (features & (AUDIO_F_KEY | AUDIO_F_CHROMA))
		chroma_design(s);
	if (features & (AUDIO_F_ONSETS | AUDIO_F_TEMPO))
		s->rh = rhythm_new((double)rate / s->hop, s->hop, rate, features);
	if (features & AUDIO_F_CONTRAST)
		s->ct = contrast_new(rate, s->n);
	if (series)
		s->ser = series_new(series, (double)rate / s->hop);
	return s;
}

void
spec_free(struct spec *s)
{
	if (s == NULL)
		return;
	free(s->ring);
	free(s->win);
	free(s->mag);
	free(s->pw);
	free(s->freq);
	free(s->mel_lo);
	free(s->mel_hi);
	free(s->mel_off);
	free(s->mel_w);
	free(s->mel_db);
	free(s->cw);
	free(s->cidx);
	rhythm_free(s->rh);
	contrast_free(s->ct);
	series_free(s->ser);
	free(s);
}

static void
shape_add(struct spec *s)
{
	const float *S = s->mag, *f = s->freq;
	int nb = s->nbins;
	double sum = 0, fs = 0;
	for (int k = 0; k < nb; k++) {
		sum += S[k];
		fs += (double)f[k] * S[k];
	}
	double cent = 0, bw = 0, roll = 0, flat;
	if (sum > 0) {
		cent = fs / sum;
		for (int k = 0; k < nb; k++) {
			double d = f[k] - cent;
			bw += S[k] * d * d;
		}
		bw = sqrt(bw / sum);
		double target = ROLL_PCT * sum, acc = 0;
		int k = 0;
		for (; k < nb - 1; k++) {
			acc += S[k];
			if (acc >= target)
				break;
		}
		roll = f[k];
	}
	/* one log per 16 bins: a product of 16 powers in [1e-10, 1e12] stays within a double's range */
	double lsum = 0, psum = 0;
	for (int k = 0; k < nb;) {
		double prod = 1.0;
		int end = k + 16 < nb ? k + 16 : nb;
		for (; k < end; k++) {
			double p = s->pw[k] > AMIN ? s->pw[k] : AMIN;
			prod *= p;
			psum += p;
		}
		lsum += log(prod);
	}
	flat = exp(lsum / nb) / (psum / nb);
	s->cent_sum += cent;
	s->bw_sum += bw;
	s->roll_sum += roll;
	s->flat_sum += flat;
	if (s->ser) {
		series_put(s->ser, AUDIO_S_CENTROID, (float)cent);
		series_put(s->ser, AUDIO_S_BANDWIDTH, (float)bw);
		series_put(s->ser, AUDIO_S_ROLLOFF, (float)roll);
		series_put(s->ser, AUDIO_S_FLATNESS, (float)flat);
	}
}

/* Mel power in dB (power_to_db, ref 1, amin 1e-10, top_db 80 below the largest value so far). Returns 0 when
 * no mel band has any bin (tiny FFT sizes). */
static void
mel_add(struct spec *s)
{
	float fmax = -1e30f;
	for (int m = 0; m < NMEL; m++) {
		const float *w = s->mel_w + s->mel_off[m];
		float e = 0;
		for (int k = s->mel_lo[m]; k <= s->mel_hi[m]; k++)
			e += *w++ * s->pw[k];
		float d = 10.0f * log10f(e > AMIN ? e : AMIN);
		s->mel_db[m] = d;
		fmax = d > fmax ? d : fmax;
	}
	s->db_max = fmax > s->db_max ? fmax : s->db_max;
	float floor = s->db_max - TOP_DB;
	for (int m = 0; m < NMEL; m++)
		s->mel_db[m] = s->mel_db[m] < floor ? floor : s->mel_db[m];
	if (s->features & AUDIO_F_MFCC)
		for (int k = 0; k < NMFCC; k++) {
			float c = 0;
			for (int m = 0; m < NMEL; m++)
				c += s->dct[k][m] * s->mel_db[m];
			s->mfcc_sum[k] += c;
			s->mfcc_sq[k] += (double)c * c;
		}
	if (s->rh)
		rhythm_frame(s->rh, s->mel_db, NMEL, s->ser);
}

static void
chroma_add(struct spec *s)
{
	double v[12], mx = 0;
	for (int c = 0; c < 12; c++) {
		float e = 0;
		for (int j = s->coff[c]; j < s->coff[c + 1]; j++)
			e += s->cw[j] * s->pw[s->cidx[j]];
		v[c] = e;
		mx = e > mx ? e : mx;
	}
	if (mx > 1e-30) /* util.normalize(norm=inf): a silent frame stays zero */
		for (int c = 0; c < 12; c++)
			s->chroma_sum[c] += v[c] / mx;
}

static void
frame_done(struct spec *s)
{
	size_t n = (size_t)s->n;
	const struct {
		float *in;
		fftwf_complex *out;
	} p = {plans[s->slot].in, plans[s->slot].out};
	size_t start = (size_t)(s->pushed & (n - 1)); /* the oldest sample of the ring */
	for (size_t i = 0; i < n; i++)
		p.in[i] = s->ring[(start + i) & (n - 1)] * s->win[i];
	fftwf_execute_dft_r2c(plans[s->slot].plan, p.in, p.out);
	for (int k = 0; k < s->nbins; k++) {
		float re = p.out[k][0], im = p.out[k][1], q = re * re + im * im;
		s->pw[k] = q;
		s->mag[k] = sqrtf(q);
	}
	s->frames++;
	if (s->features & AUDIO_F_SPECTRAL)
		shape_add(s);
	if (s->features & (AUDIO_F_ONSETS | AUDIO_F_TEMPO | AUDIO_F_MFCC))
		mel_add(s);
	if (s->features & (AUDIO_F_KEY | AUDIO_F_CHROMA))
		chroma_add(s);
	if (s->ct)
		contrast_frame(s->ct, s->mag);
	if (s->ser)
		series_next(s->ser);
}

/* Frame t spans padded samples [t * hop, t * hop + n): it is complete when t * hop + n are in. */
static inline void
push(struct spec *s, float v)
{
	s->ring[s->pushed & (uint64_t)(s->n - 1)] = v;
	s->pushed++;
	if (--s->until == 0) {
		frame_done(s);
		s->until = (size_t)s->hop;
	}
}

void
spec_add(struct spec *s, const float *x, size_t frames, int channels)
{
	float inv = 1.0f / (float)channels;
	if (channels == 1) {
		for (size_t i = 0; i < frames; i++)
			push(s, x[i]);
	} else if (channels == 2) {
		for (size_t i = 0; i < frames; i++)
			push(s, (x[2 * i] + x[2 * i + 1]) * 0.5f);
	} else {
		for (size_t i = 0; i < frames; i++) {
			float m = 0;
			for (int c = 0; c < channels; c++)
				m += x[i * (size_t)channels + (size_t)c];
			push(s, m * inv);
		}
	}
	s->samples += frames;
}

/* The trailing pad: zeros until the last frame (t = len // hop) is complete. */
void
spec_finish(struct spec *s)
{
	uint64_t last = s->samples / (uint64_t)s->hop, need = last * (uint64_t)s->hop + (uint64_t)s->n;
	while (s->pushed < need)
		push(s, 0.0f);
}

static double
r(double v, double scale)
{
	return round(v * scale) / scale;
}

void
spec_report(struct spec *s, json_t *res, unsigned features)
{
	double F = (double)s->frames;
	json_t *fr = json_object();
	json_object_set_new(fr, "n_fft", json_integer(s->n));
	json_object_set_new(fr, "hop_length", json_integer(s->hop));
	json_object_set_new(fr, "frames", json_integer((json_int_t)s->frames));
	json_object_set_new(res, "spectral_frames", fr);
	if (features & AUDIO_F_SPECTRAL) {
		audio_set_num(res, "spectral_centroid_hz", F > 0 ? r(s->cent_sum / F, 10) : NAN, "no frame");
		audio_set_num(res, "spectral_bandwidth_hz", F > 0 ? r(s->bw_sum / F, 10) : NAN, "no frame");
		audio_set_num(res, "spectral_rolloff_hz", F > 0 ? r(s->roll_sum / F, 10) : NAN, "no frame");
		audio_set_num(res, "spectral_flatness", F > 0 ? audio_sig(s->flat_sum / F, 4) : NAN, "no frame");
	}
	if (features & AUDIO_F_MFCC) {
		json_t *m = json_array(), *sd = json_array();
		for (int k = 0; k < NMFCC; k++) {
			double mean = s->mfcc_sum[k] / F, var = s->mfcc_sq[k] / F - mean * mean;
			json_array_append_new(m, json_real(r(mean, 1000)));
			json_array_append_new(sd, json_real(r(sqrt(var > 0 ? var : 0), 1000)));
		}
		json_object_set_new(res, "mfcc_mean", m);
		json_object_set_new(res, "mfcc_std", sd);
	}
	double chroma[12];
	for (int c = 0; c < 12; c++)
		chroma[c] = F > 0 ? s->chroma_sum[c] / F : 0;
	if (features & AUDIO_F_CHROMA) {
		json_t *a = json_array();
		for (int c = 0; c < 12; c++)
			json_array_append_new(a, json_real(r(chroma[c], 1000)));
		json_object_set_new(res, "chroma_mean", a);
	}
	if (features & AUDIO_F_KEY)
		key_report(chroma, res);
	if (s->ct)
		contrast_report(s->ct, res);
	if (s->rh)
		rhythm_report(s->rh, res, features);
	if (s->ser)
		series_report(s->ser, res, s->hop, s->rate);
}

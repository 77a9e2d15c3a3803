/*
 * loudness: ITU-R BS.1770-4 / EBU R128 loudness and true peak in one pass and constant memory.
 *
 * K-weighting is the two biquads of BS.1770 re-derived for any sample rate (the same bilinear design as
 * libebur128, so the two agree to well under 0.01 LU), run in double precision: the 38 Hz high-pass loses
 * accuracy in float at high rates. Energies are summed per 100 ms sub-block; a 400 ms gating block (75% overlap)
 * ends every 100 ms and a 3 s short-term block every 1 s, as libebur128 does. Instead of keeping every block
 * (memory growing with the file), block energies go into histograms of 0.01 dB bins from -70 to +20 LUFS that
 * keep each bin's exact energy sum: the gates then cost one pass over the bins, and only blocks sharing the
 * relative gate's 0.01 dB bin can land on the wrong side of it.
 *
 * Channel weights come from the caller (analyze.c reads the file's channel map): BS.1770-4 Table 3's G_i, 1.0 for
 * front channels, 1.41 for surrounds, 0 for LFE and unused channels.
 *
 * Momentary (400 ms) and short-term (3 s) loudness maxima are taken over every complete window ending on a
 * 100 ms boundary (EBU Tech 3341 asks for at least 10 updates a second).
 *
 * True peak: 4x oversampling below 96 kHz, 2x below 192 kHz, none above (BS.1770-4 Annex 2; libebur128's
 * factors), with a 49-tap Hann-windowed sinc split into polyphase sub-filters of 13 (4x) or 25 (2x) taps. Each phase is
 * a straight multiply-add loop over a block of one channel's samples, which compilers vectorise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "xmalloc.h"

#define HIST_MIN_LUFS (-70.0)
#define HIST_MAX_LUFS 20.0
#define HIST_STEP     0.01
#define HIST_BINS     9000 /* (20 - -70) / 0.01 */
#define TP_TAPS       49   /* libebur128's interpolator length */
#define TP_MAXPH      4
#define TP_PHTAPS     25   /* the longest phase: ceil(49 / 2) at 2x */
#define BLOCK         1024 /* frames per true-peak work block (each is skipped when it cannot hold a new peak) */
/* The K-weighting shelf sits at 1681.97 Hz: below twice that the bilinear design folds it past Nyquist and the
 * filter no longer is BS.1770's, so loudness is not measured (null with a reason). */
#define LOUD_MIN_RATE 3364

struct hist {
	double sum[HIST_BINS]; /* energy sum of the blocks in each bin */
	uint64_t n[HIST_BINS];
};

struct loud {
	int ch, want_loud, want_tp;
	double b1[3], a1[3], b2[3], a2[3]; /* shelf and high-pass biquads */
	double *z;                         /* 4 filter states per channel */
	double *w;                         /* channel weights */
	size_t n100;                       /* frames per 100 ms */
	size_t pos100;                     /* frames into the current sub-block */
	double acc;                        /* weighted energy of the current sub-block */
	double sub[30];                    /* the last 30 sub-block energies, ring */
	uint64_t nsub;                     /* sub-blocks completed */
	uint64_t st_counter;               /* sub-blocks since the last short-term block (libebur128 timing) */
	double m_max, s_max;               /* largest momentary and short-term block energies (0: none yet) */
	struct hist *blk, *st;
	/* true peak */
	int factor;
	float h[TP_MAXPH][TP_PHTAPS];
	int phtaps;
	float hsum;    /* the largest sum of |taps| over the phases */
	float *tpbuf;  /* per channel: phtaps-1 history + BLOCK samples */
	float *tpout;  /* BLOCK scratch */
	double *tpmax; /* per channel, linear */
};

static int
hist_bin(double lufs)
{
	double d = floor((lufs - HIST_MIN_LUFS) / HIST_STEP); /* compared as a double: no overflowing cast */
	return !(d >= 0) ? -1 : (d >= HIST_BINS ? HIST_BINS - 1 : (int)d);
}

static double
energy_lufs(double e)
{
	return -0.691 + 10.0 * log10(e);
}

static void
hist_add(struct hist *h, double e)
{
	if (!(e > 0))
		return;
	int i = hist_bin(energy_lufs(e));
	if (i < 0)
		return; /* the absolute gate: below -70 LUFS */
	h->sum[i] += e;
	h->n[i]++;
}

/* Coefficients as BS.1770-4 Annex 1 gives them at 48 kHz, re-derived for rate. */
static void
kweight_design(struct loud *l, int rate)
{
	double f0 = 1681.974450955533, G = 3.999843853973347, Q = 0.7071752369554196;
	double K = tan(M_PI * f0 / rate), Vh = pow(10.0, G / 20.0), Vb = pow(Vh, 0.4996667741545416);
	double a0 = 1.0 + K / Q + K * K;
	l->b1[0] = (Vh + Vb * K / Q + K * K) / a0;
	l->b1[1] = 2.0 * (K * K - Vh) / a0;
	l->b1[2] = (Vh - Vb * K / Q + K * K) / a0;
	l->a1[1] = 2.0 * (K * K - 1.0) / a0;
	l->a1[2] = (1.0 - K / Q + K * K) / a0;
	f0 = 38.13547087602444;
	Q = 0.5003270373238773;
	K = tan(M_PI * f0 / rate);
	a0 = 1.0 + K / Q + K * K;
	l->b2[0] = 1.0;
	l->b2[1] = -2.0;
	l->b2[2] = 1.0;
	l->a2[1] = 2.0 * (K * K - 1.0) / a0;
	l->a2[2] = (1.0 - K / Q + K * K) / a0;
}

/* libebur128's interpolator: a Hann-windowed sinc, tap j going to phase j % factor. */
static void
tp_design(struct loud *l, int rate)
{
	l->factor = rate < 96000 ? 4 : (rate < 192000 ? 2 : 1);
	if (l->factor == 1)
		return;
	l->phtaps = (TP_TAPS + l->factor - 1) / l->factor;
	memset(l->h, 0, sizeof(l->h));
	for (int j = 0; j < TP_TAPS; j++) {
		double m = j - (TP_TAPS - 1) / 2.0, c = 1.0;
		if (fabs(m) > 1e-9)
			c = sin(m * M_PI / l->factor) / (m * M_PI / l->factor);
		c *= 0.5 * (1 - cos(2 * M_PI * j / (TP_TAPS - 1)));
		l->h[j % l->factor][j / l->factor] = (float)c;
	}
	l->hsum = 0;
	for (int p = 0; p < l->factor; p++) {
		double sum = 0;
		for (int k = 0; k < l->phtaps; k++)
			sum += fabs(l->h[p][k]);
		l->hsum = sum * 1.001 > l->hsum ? (float)(sum * 1.001) : l->hsum;
	}
}

int
loud_rate_ok(int rate)
{
	return rate >= LOUD_MIN_RATE;
}

struct loud *
loud_new(int rate, int channels, const double *weights, int want_loudness, int want_true_peak)
{
	struct loud *l = xcalloc(1, sizeof(*l));
	l->ch = channels;
	l->want_loud = want_loudness && loud_rate_ok(rate);
	l->want_tp = want_true_peak;
	kweight_design(l, rate);
	l->z = xcalloc((size_t)channels * 4, sizeof(double));
	l->w = xcalloc((size_t)channels, sizeof(double));
	memcpy(l->w, weights, sizeof(double) * (size_t)channels);
	l->n100 = (size_t)((rate + 5) / 10);
	if (l->want_loud) {
		l->blk = xcalloc(1, sizeof(*l->blk));
		l->st = xcalloc(1, sizeof(*l->st));
	}
	l->tpmax = xcalloc((size_t)channels, sizeof(double));
	tp_design(l, rate);
	if (want_true_peak && l->factor > 1) {
		l->tpbuf = xcalloc((size_t)channels * (BLOCK + TP_PHTAPS), sizeof(float));
		l->tpout = xcalloc(BLOCK, sizeof(float));
	}
	return l;
}

void
loud_free(struct loud *l)
{
	if (l == NULL)
		return;
	free(l->z);
	free(l->w);
	free(l->blk);
	free(l->st);
	free(l->tpbuf);
	free(l->tpout);
	free(l->tpmax);
	free(l);
}

/* A 100 ms sub-block is complete: close the 400 ms block ending here, and every 1 s the 3 s block. */
static void
sub_done(struct loud *l)
{
	l->sub[l->nsub % 30] = l->acc;
	l->nsub++;
	l->acc = 0;
	if (l->nsub >= 4) {
		double e = 0;
		for (uint64_t i = l->nsub - 4; i < l->nsub; i++)
			e += l->sub[i % 30];
		e /= 4.0 * (double)l->n100;
		hist_add(l->blk, e);
		l->m_max = e > l->m_max ? e : l->m_max;
	}
	if (l->nsub >= 30) {
		double e = 0;
		for (int i = 0; i < 30; i++)
			e += l->sub[i];
		e /= 30.0 * (double)l->n100;
		l->s_max = e > l->s_max ? e : l->s_max;
	}
	l->st_counter++;
	if (l->st_counter == 30) {
		double e = 0;
		for (int i = 0; i < 30; i++)
			e += l->sub[i];
		hist_add(l->st, e / (30.0 * (double)l->n100));
		l->st_counter = 20;
	}
}

/* K-weights frames [0, n) of x into the current sub-block's energy; one channel at a time so each filter runs
 * as a tight recurrence, two channels' chains interleaved when there are two. */
static void
kweight_span(struct loud *l, const float *x, size_t n)
{
	const double b10 = l->b1[0], b11 = l->b1[1], b12 = l->b1[2], a11 = l->a1[1], a12 = l->a1[2];
	const double a21 = l->a2[1], a22 = l->a2[2];
	int C = l->ch;
	for (int c = 0; c < C; c++) {
		double *z = l->z + 4 * c;
		double s1 = z[0], s2 = z[1], t1 = z[2], t2 = z[3], e = 0;
		for (size_t i = 0; i < n; i++) {
			double in = x[i * (size_t)C + (size_t)c];
			/* direct form II transposed, shelf then high-pass (b = 1, -2, 1) */
			double y = b10 * in + s1;
			s1 = b11 * in - a11 * y + s2;
			s2 = b12 * in - a12 * y;
			double v = y + t1;
			t1 = -2.0 * y - a21 * v + t2;
			t2 = y - a22 * v;
			e += v * v;
		}
		/* flush denormals the way libebur128 does, so long silences cost nothing */
		z[0] = fabs(s1) < 1e-30 ? 0 : s1;
		z[1] = fabs(s2) < 1e-30 ? 0 : s2;
		z[2] = fabs(t1) < 1e-30 ? 0 : t1;
		z[3] = fabs(t2) < 1e-30 ? 0 : t2;
		l->acc += l->w[c] * e;
	}
}

/* Runs the polyphase interpolator over one channel's block; tracks the largest |output|. */
static void
tp_channel(struct loud *l, int c, const float *x, size_t n)
{
	float *buf = l->tpbuf + (size_t)c * (BLOCK + TP_PHTAPS);
	int T = l->phtaps;
	for (size_t i = 0; i < n; i++)
		buf[T - 1 + i] = x[i * (size_t)l->ch + (size_t)c];
	float mx = (float)l->tpmax[c];
	/* An interpolated sample is at most sum|h| times the largest input it is made of: a block that cannot reach
	 * the peak so far is skipped, exactly (most of a music file, once its loudest hit has passed). */
	float inmax = 0;
	for (size_t i = 0; i < n + (size_t)T - 1; i++) {
		float a = fabsf(buf[i]);
		inmax = a > inmax ? a : inmax;
	}
	if (inmax * l->hsum <= mx) {
		memmove(buf, buf + n, (size_t)(T - 1) * sizeof(float));
		return;
	}
	/* phase 0 is the input itself (its only non-zero tap is the centre's 1.0): the sample peak covers it */
	for (int p = 1; p < l->factor; p++) {
		float *restrict out = l->tpout;
		const float *h = l->h[p];
		for (size_t i = 0; i < n; i++)
			out[i] = 0;
		/* out[i] = sum_k h[k] * x[i - k]: vectorised over i for each tap */
		for (int k = 0; k < T; k++) {
			const float hk = h[k];
			const float *restrict src = buf + T - 1 - k;
			for (size_t i = 0; i < n; i++)
				out[i] += hk * src[i];
		}
		for (size_t i = 0; i < n; i++) {
			float a = fabsf(out[i]);
			mx = a > mx ? a : mx;
		}
	}
	l->tpmax[c] = mx;
	memmove(buf, buf + n, (size_t)(T - 1) * sizeof(float));
}

void
loud_add(struct loud *l, const float *x, size_t frames)
{
	if (l->want_tp) {
		for (size_t off = 0; off < frames; off += BLOCK) {
			size_t n = frames - off < BLOCK ? frames - off : BLOCK;
			const float *p = x + off * (size_t)l->ch;
			if (l->factor > 1) {
				for (int c = 0; c < l->ch; c++)
					tp_channel(l, c, p, n);
			} else {
				for (size_t i = 0; i < n * (size_t)l->ch; i++) {
					double a = fabs(p[i]);
					if (a > l->tpmax[i % (size_t)l->ch])
						l->tpmax[i % (size_t)l->ch] = a;
				}
			}
		}
	}
	if (!l->want_loud)
		return;
	while (frames > 0) {
		size_t n = l->n100 - l->pos100;
		if (n > frames)
			n = frames;
		kweight_span(l, x, n);
		x += n * (size_t)l->ch;
		frames -= n;
		l->pos100 += n;
		if (l->pos100 == l->n100) {
			l->pos100 = 0;
			sub_done(l);
		}
	}
}

/* Mean energy of the blocks at or above the bin holding gate_lufs (NAN: none). */
static double
hist_mean_above(const struct hist *h, double gate_lufs, uint64_t *count)
{
	int from = gate_lufs <= HIST_MIN_LUFS ? 0 : hist_bin(gate_lufs);
	double s = 0;
	uint64_t n = 0;
	for (int i = from; i < HIST_BINS; i++) {
		s += h->sum[i];
		n += h->n[i];
	}
	if (count)
		*count = n;
	return n ? s / (double)n : NAN;
}

double
loud_momentary_max(const struct loud *l)
{
	return l->m_max > 0 ? energy_lufs(l->m_max) : NAN;
}

double
loud_short_term_max(const struct loud *l)
{
	return l->s_max > 0 ? energy_lufs(l->s_max) : NAN;
}

double
loud_integrated(const struct loud *l)
{
	if (!l->blk)
		return NAN;
	double m = hist_mean_above(l->blk, HIST_MIN_LUFS, NULL);
	if (!isfinite(m))
		return NAN;
	double gated = hist_mean_above(l->blk, energy_lufs(m) - 10.0, NULL);
	return isfinite(gated) ? energy_lufs(gated) : NAN;
}

/* The mean energy of the k-th (0-based) block in ascending order among bins >= from. */
static double
hist_nth(const struct hist *h, int from, uint64_t k)
{
	for (int i = from; i < HIST_BINS; i++) {
		if (k < h->n[i])
			return h->sum[i] / (double)h->n[i];
		k -= h->n[i];
	}
	return NAN;
}

/* EBU Tech 3342: relative gate -20 LU, then the spread between the 10th and 95th percentiles (libebur128's
 * rounding of the percentile indexes). No short-term block above the absolute gate (silence, a file under 3 s)
 * gives 0 LU, as libebur128 and ffmpeg answer; NAN only when loudness was not measured. */
double
loud_range(const struct loud *l)
{
	if (!l->st)
		return NAN;
	double m = hist_mean_above(l->st, HIST_MIN_LUFS, NULL);
	if (!isfinite(m))
		return 0.0;
	double gate = energy_lufs(m) - 20.0;
	int from = gate <= HIST_MIN_LUFS ? 0 : hist_bin(gate);
	uint64_t n = 0;
	hist_mean_above(l->st, gate, &n);
	if (n == 0)
		return 0.0;
	double lo = hist_nth(l->st, from, (uint64_t)((double)(n - 1) * 0.1 + 0.5));
	double hi = hist_nth(l->st, from, (uint64_t)((double)(n - 1) * 0.95 + 0.5));
	return 10.0 * log10(hi / lo);
}

double
loud_true_peak(const struct loud *l, int ch)
{
	return l->tpmax[ch];
}

int
loud_oversampling(const struct loud *l)
{
	return l->factor;
}

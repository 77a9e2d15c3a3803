/*
 * contrast: librosa.feature.spectral_contrast (librosa 0.10, defaults fmin 200, n_bands 6, quantile 0.02,
 * linear False) on the magnitude frames of spectral.c, averaged over every frame.
 *
 * librosa's definition: octave band edges octa = [0, 200, 400, ..., 12800]; band k takes the bins with
 * octa[k] <= f <= octa[k + 1], plus the bin below for k > 0 and every bin above for the last band, and drops its
 * last bin for k < 6; q = max(1, rint(0.02 * bins selected before that drop)); per frame the valley is the mean
 * of the q smallest magnitudes, the peak the mean of the q largest; contrast = power_to_db(peak) -
 * power_to_db(valley), power_to_db(x) = max(10 log10(max(x, 1e-10)), max_all - 80) where max_all is the largest
 * value of that whole (7 x frames) array: the peak array and the valley array each get their own floor.
 * librosa raises for sample rates <= 12.8 kHz (6400 Hz at or above Nyquist): hopper answers null.
 *
 * The floor depends on the whole file's maximum, which a single pass knows only at the end. Every per-frame dB
 * value goes into a histogram per (peak/valley, band) of HIST_W-wide bins holding a count and the exact sum of
 * the values: at the end a bin wholly above the floor contributes its sum, one wholly below contributes
 * count * floor, and only the one bin the floor falls in is estimated (count * max(floor, its mean)), an error
 * below HIST_W times that bin's share of the frames. Memory is fixed: it does not grow with the file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define NBANDS   7 /* n_bands + 1 */
#define FMIN     200.0
#define QUANTILE 0.02
#define AMIN     1e-10
#define TOP_DB   80.0
#define HIST_LO  -100.0 /* 10 log10(AMIN): nothing is below it */
#define HIST_HI  200.0  /* values above land in the top bin (their sum stays exact) */
#define HIST_W   0.02
#define HIST_N   15000           /* (HIST_HI - HIST_LO) / HIST_W */
#define MAXQ     512             /* q is at most ~330 (32768-point FFT at 768 kHz): null beyond it */
#define MAXBINS  (65536 / 2 + 1) /* spectral.c's largest FFT */

struct hist {
	uint32_t *count; /* HIST_N per band */
	double *sum;
	double max; /* the largest dB value of the whole array */
};

struct contrast {
	int lo[NBANDS], hi[NBANDS], q[NBANDS]; /* sub-band bins lo..hi inclusive, q values averaged */
	const char *why_null;                  /* set when librosa would raise or a band is empty */
	uint64_t frames;
	int nonfinite;
	struct hist h[2];                      /* 0 peak, 1 valley */
	float cmin[MAXQ], cmax[MAXQ];          /* extremes' column minima and maxima */
	float cand[MAXBINS], cand_hi[MAXBINS]; /* its candidates */
};

static void
bands_design(struct contrast *c, int rate, int n)
{
	int nb = n / 2 + 1;
	double octa[NBANDS + 1] = {0};
	for (int k = 1; k <= NBANDS; k++)
		octa[k] = FMIN * pow(2.0, k - 1);
	if (octa[NBANDS - 1] >= 0.5 * rate) {
		c->why_null =
		        "the top band's edge (6400 Hz) is at or above Nyquist: librosa raises for rates <= 12.8 kHz";
		return;
	}
	for (int k = 0; k < NBANDS; k++) {
		int first = -1, last = -1;
		for (int b = 0; b < nb; b++) {
			double f = (double)rate * b / n;
			if (f >= octa[k] && f <= octa[k + 1]) {
				first = first < 0 ? b : first;
				last = b;
			}
		}
		if (first < 0) {
			c->why_null = "an octave band has no FFT bin (FFT too short for the rate)";
			return;
		}
		int lo = k > 0 ? first - 1 : first, hi = k == NBANDS - 1 ? nb - 1 : last;
		int selected = hi - lo + 1;
		if (k < NBANDS - 1)
			hi--;                           /* librosa drops the band's last bin, after counting it for q */
		int q = (int)rint(QUANTILE * selected); /* np.rint: half to even, as rint in the default mode */
		q = q < 1 ? 1 : q;
		if (q > MAXQ) { /* not reached: spectral.c's FFT sizes give q <= ~330 up to 768 kHz */
			c->why_null = "an octave band averages more bins than hopper keeps";
			return;
		}
		if (hi - lo + 1 < q) {
			c->why_null =
			        "an octave band has fewer FFT bins than librosa averages (FFT too short for the rate)";
			return;
		}
		c->lo[k] = lo;
		c->hi[k] = hi;
		c->q[k] = q;
	}
}

struct contrast *
contrast_new(int rate, int n)
{
	struct contrast *c = xcalloc(1, sizeof(*c));
	bands_design(c, rate, n);
	if (c->why_null)
		return c;
	for (int i = 0; i < 2; i++) {
		c->h[i].count = xcalloc((size_t)NBANDS * HIST_N, sizeof(uint32_t));
		c->h[i].sum = xcalloc((size_t)NBANDS * HIST_N, sizeof(double));
		c->h[i].max = -INFINITY;
	}
	return c;
}

void
contrast_free(struct contrast *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		free(c->h[i].count);
		free(c->h[i].sum);
	}
	free(c);
}

/* Wirth's selection: rearranges a[0..n) so that a[k] is its k-th smallest (from 0), a[0..k) <= a[k] <= a[k+1..);
 * expected O(n). The pivot is a value of the array, so the inner scans stop without bounds checks. */
static void
select_k(float *a, int n, int k)
{
	int lo = 0, hi = n - 1;
	while (hi > lo) {
		float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
		float p = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y); /* median of three */
		int i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j) {
				float t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return; /* a[j + 1 .. i - 1] all equal p */
	}
}

/* The means of the q smallest and the q largest of x[0..n). The band is read as rows of q values: the largest
 * of the q column minima, tb, has at least q values <= it (each column's minimum), so the q smallest all are
 * <= tb; likewise the smallest column maximum tt for the q largest. Only the values strictly past them (on
 * spectra, a few q) are selected among, and the threshold itself fills the rest (ties: silent frames, flat
 * spectra). The column pass is vectorised; nothing is sorted. */
static void
extremes(struct contrast *c, const float *x, int n, int q, double *lo_mean, double *hi_mean)
{
	if (q == 1) { /* the low bands at usual rates: a plain (vectorised) minimum and maximum */
		float mn = x[0], mx = x[0];
		for (int i = 1; i < n; i++) {
			mn = x[i] < mn ? x[i] : mn;
			mx = x[i] > mx ? x[i] : mx;
		}
		*lo_mean = mn;
		*hi_mean = mx;
		return;
	}
	float *cmin = c->cmin, *cmax = c->cmax;
	memcpy(cmin, x, sizeof(float) * (size_t)q); /* n >= q (bands_design) */
	memcpy(cmax, x, sizeof(float) * (size_t)q);
	for (int r = q; r < n; r += q) {
		const float *row = x + r;
		int lim = n - r < q ? n - r : q;
		for (int k = 0; k < lim; k++) {
			cmin[k] = row[k] < cmin[k] ? row[k] : cmin[k];
			cmax[k] = row[k] > cmax[k] ? row[k] : cmax[k];
		}
	}
	float tb = cmin[0], tt = cmax[0];
	for (int k = 1; k < q; k++) {
		tb = cmin[k] > tb ? cmin[k] : tb;
		tt = cmax[k] < tt ? cmax[k] : tt;
	}
	/* branch-free compaction: every value is stored, the count moves only for a candidate */
	float *lo = c->cand, *hi = c->cand_hi;
	int ml = 0, mh = 0;
	for (int i = 0; i < n; i++) {
		float v = x[i];
		lo[ml] = v;
		ml += v < tb;
		hi[mh] = v;
		mh += v > tt;
	}
	if (ml > q)
		select_k(lo, ml, q - 1);
	if (mh > q)
		select_k(hi, mh, mh - q);
	double sl = (ml < q ? q - ml : 0) * (double)tb, sh = (mh < q ? q - mh : 0) * (double)tt;
	for (int j = 0; j < (ml < q ? ml : q); j++)
		sl += lo[j];
	for (int j = mh > q ? mh - q : 0; j < mh; j++)
		sh += hi[j];
	*lo_mean = sl / q;
	*hi_mean = sh / q;
}

static void
hist_add(struct contrast *c, struct hist *h, int band, double lin)
{
	double d = 10.0f * log10f((float)(lin > AMIN ? lin : AMIN)); /* float: 1e-5 dB, well under the output step */
	if (!isfinite(d)) { /* an infinite magnitude (float samples near FLT_MAX): no finite contrast */
		c->nonfinite = 1;
		return;
	}
	h->max = d > h->max ? d : h->max;
	double pos = (d - HIST_LO) / HIST_W;
	int i = pos < 0 ? 0 : pos >= HIST_N - 1 ? HIST_N - 1 : (int)pos;
	h->count[(size_t)band * HIST_N + (size_t)i]++;
	h->sum[(size_t)band * HIST_N + (size_t)i] += d;
}

void
contrast_frame(struct contrast *c, const float *mag)
{
	c->frames++;
	if (c->why_null)
		return;
	for (int k = 0; k < NBANDS; k++) {
		double valley, peak;
		extremes(c, mag + c->lo[k], c->hi[k] - c->lo[k] + 1, c->q[k], &valley, &peak);
		hist_add(c, &c->h[0], k, peak);
		hist_add(c, &c->h[1], k, valley);
	}
}

/* The mean over frames of max(value, floor) for one band, from its histogram. */
static double
clamped_mean(const struct hist *h, int band, uint64_t frames)
{
	double floor_db = h->max - TOP_DB, total = 0;
	const uint32_t *cnt = h->count + (size_t)band * HIST_N;
	const double *sum = h->sum + (size_t)band * HIST_N;
	for (int i = 0; i < HIST_N; i++) {
		if (cnt[i] == 0)
			continue;
		/* wholly above the floor: its exact sum; wholly below: count * floor (its mean is below too); the bin
		 * the floor falls in: count * max(floor, its mean) */
		double lo = HIST_LO + i * HIST_W;
		total += lo >= floor_db ? sum[i] : cnt[i] * fmax(floor_db, sum[i] / cnt[i]);
	}
	return total / (double)frames;
}

void
contrast_report(const struct contrast *c, json_t *res)
{
	if (c->why_null) {
		audio_set_null(res, "spectral_contrast_db", c->why_null);
		return;
	}
	if (c->frames == 0 || c->nonfinite) {
		audio_set_null(res, "spectral_contrast_db", c->frames == 0 ? "no frame" : "non-finite spectrum");
		return;
	}
	json_t *a = json_array();
	for (int k = 0; k < NBANDS; k++) {
		double v = clamped_mean(&c->h[0], k, c->frames) - clamped_mean(&c->h[1], k, c->frames);
		json_array_append_new(a, json_real(round(v * 100) / 100));
	}
	json_object_set_new(res, "spectral_contrast_db", a);
}

/*
 * rhythm: onset strength, onsets, tempo and beats from the mel spectrogram in dB (spectral.c), in constant memory.
 *
 * Onset strength is librosa.onset.onset_strength's: the mean over the 128 mel bands of max(0, S_dB[t] - S_dB[t-1]),
 * shifted by lag + n_fft / (2 hop) = 3 frames and trimmed to the frame count, as librosa does.
 *
 * Onsets follow librosa.onset.onset_detect's peak picking (librosa.util.peak_pick with its defaults at this frame
 * rate: pre_max 30 ms, post_max 1 frame, pre_avg 100 ms, post_avg 100 ms + 1 frame, wait 30 ms, delta 0.07 of the
 * normalised envelope). librosa normalises by the whole file's range; a streaming pass normalises by the range
 * of the envelope within 5 s either side of the candidate (NORM_HALF_S), which is the same on steady material and
 * adapts to a quiet intro instead of losing it.
 *
 * Tempo: a running autocorrelation of the onset strength over lags up to 6 s. A comb score S(P) (the mean
 * normalised autocorrelation at P, 2P, 3P, 4P) finds the period family; its slowest member of at least 40 BPM is
 * taken, then halved while the autocorrelation at half the period is at least HALF_RATIO of that at the period
 * (the events between the beats are as strong as those on them: the beat is the faster pulse). Kick-on-the-beat
 * music with off-beat hats therefore reads at the kick's rate, a click track at the click rate, whatever the
 * octave the autocorrelation prefers. Candidates: the tempo, half and double, each scored
 * S(P) * ratio(2P) * (1 - ratio(P)) and normalised to sum 1.
 *
 * Beats: a phase-locked tracker over the last RING_S seconds of onset strength: from the first strong onset,
 * each next beat is the strongest onset within +-20% of one period after the previous (Gaussian-weighted towards
 * the expected place), the period being the running tempo estimate.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

#define NORM_HALF_S    5.0
#define RING_S         16.0
#define MAXLAG_S       6.0
#define BPM_MIN        40.0
#define BPM_MAX        250.0
#define HALF_RATIO     0.67
#define LIST_MAX       2000 /* onset and beat times kept in the result; the counts are exact */
#define TEMPO_START_S  6.0  /* the beat tracker starts once this much onset strength is in */
#define TEMPO_UPDATE_S 2.0
#define LOW_HZ         250.0 /* the kick drum's range */
#define LOW_RANGE_DB   40.0f /* the low-band envelope ignores what lies this far below the loudest band so far */
#define LOW_PERIODIC   0.3   /* comb score from which the low-band envelope sets the tempo */

struct rhythm {
	double fps;
	int hop, rate;
	unsigned features;
	float *prev;  /* previous mel dB frame */
	int nlow;     /* mel bands centred at or below LOW_HZ */
	float db_max; /* the largest mel dB so far */
	int have_prev;
	uint64_t sframes; /* spectrogram frames seen */
	float held[2];    /* librosa trims the last two shifted values: they wait here */
	int nheld;
	/* the onset strength ring */
	float *env, *tenv;   /* onset strength (librosa, all bands) and its low-band part (the kick's range) */
	uint64_t ring, nenv; /* ring size (power of two), values in */
	double sum[2];       /* of env and tenv */
	int sel;             /* the envelope tempo and beats use: 0 all bands, 1 low bands */
	float held_t[2];
	/* peak picking */
	int pre_max, post_max, pre_avg, post_avg, wait, half;
	uint64_t next_cand;
	int64_t last_onset;
	uint64_t onsets;
	json_t *onset_times;
	double os_sum, os_sq, os_max;
	/* tempo */
	int maxlag;
	double *acs[2], *ac; /* autocorrelations of env and tenv; ac points at the selected one */
	/* beats */
	double period; /* frames, 0: not yet */
	double last_beat;
	int beat_started;
	uint64_t next_update, beats;
	json_t *beat_times;
};

struct rhythm *
rhythm_new(double fps, int hop, int rate, unsigned features)
{
	struct rhythm *r = xcalloc(1, sizeof(*r));
	r->fps = fps;
	r->hop = hop;
	r->rate = rate;
	r->features = features;
	r->prev = xcalloc(128, sizeof(float));
	r->db_max = -1e30f;
	/* librosa: 0.03 * sr // hop etc. */
	r->pre_max = (int)floor(0.03 * fps);
	r->post_max = 1;
	r->pre_avg = (int)floor(0.10 * fps);
	r->post_avg = (int)floor(0.10 * fps) + 1;
	r->wait = (int)floor(0.03 * fps);
	r->half = (int)ceil(NORM_HALF_S * fps);
	uint64_t need = (uint64_t)(2 * r->half + r->pre_avg + r->post_avg + 8);
	double ring_frames = RING_S * fps + 8;
	if (need < (uint64_t)ring_frames)
		need = (uint64_t)ring_frames;
	r->ring = 64;
	while (r->ring < need)
		r->ring *= 2;
	r->env = xcalloc(r->ring, sizeof(float));
	r->tenv = xcalloc(r->ring, sizeof(float));
	/* Slaney mel: linear below 1 kHz at 200/3 Hz per mel; 128 bands up to Nyquist */
	double mel_top =
	        rate / 2.0 < 1000 ? rate / 2.0 / (200.0 / 3) : 15.0 + log(rate / 2.0 / 1000.0) / (log(6.4) / 27);
	r->nlow = (int)floor(LOW_HZ / (200.0 / 3) / mel_top * 129) - 1;
	r->nlow = r->nlow < 1 ? 1 : r->nlow > 128 ? 128 : r->nlow;
	r->maxlag = (int)ceil(MAXLAG_S * fps) + 2;
	if ((uint64_t)r->maxlag > r->ring)
		r->maxlag = (int)r->ring;
	r->acs[0] = xcalloc((size_t)r->maxlag, sizeof(double));
	r->acs[1] = xcalloc((size_t)r->maxlag, sizeof(double));
	r->ac = r->acs[0];
	r->last_onset = INT64_MIN / 2;
	r->onset_times = json_array();
	r->beat_times = json_array();
	r->next_update = (uint64_t)ceil(TEMPO_START_S * fps);
	return r;
}

void
rhythm_free(struct rhythm *r)
{
	if (r == NULL)
		return;
	free(r->prev);
	free(r->env);
	free(r->tenv);
	free(r->acs[0]);
	free(r->acs[1]);
	json_decref(r->onset_times);
	json_decref(r->beat_times);
	free(r);
}

static float
E(const struct rhythm *r, uint64_t i)
{
	return r->env[i & (r->ring - 1)];
}

static float
TE(const struct rhythm *r, uint64_t i)
{
	return (r->sel ? r->tenv : r->env)[i & (r->ring - 1)];
}

static void
add_time(json_t *list, uint64_t *count, double t)
{
	(*count)++;
	if (json_array_size(list) < LIST_MAX)
		json_array_append_new(list, json_real(round(t * 1000) / 1000));
}

/* Decides whether envelope value c is an onset; every index it reads is in the ring (or past the end: done). */
static void
pick(struct rhythm *r, uint64_t c)
{
	float x = E(r, c);
	uint64_t n = r->nenv;
	uint64_t lo = c >= (uint64_t)r->pre_max ? c - (uint64_t)r->pre_max : 0;
	for (uint64_t j = lo; j < c + (uint64_t)r->post_max && j < n; j++)
		if (E(r, j) > x)
			return;
	uint64_t alo = c >= (uint64_t)r->pre_avg ? c - (uint64_t)r->pre_avg : 0, ahi = c + (uint64_t)r->post_avg;
	ahi = ahi > n ? n : ahi;
	double avg = 0;
	for (uint64_t j = alo; j < ahi; j++)
		avg += E(r, j);
	avg /= (double)(ahi - alo);
	uint64_t nlo = c >= (uint64_t)r->half ? c - (uint64_t)r->half : 0, nhi = c + (uint64_t)r->half + 1;
	nhi = nhi > n ? n : nhi;
	float mn = x, mx = x;
	for (uint64_t j = nlo; j < nhi; j++) {
		float v = E(r, j);
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
	}
	if (!(x > mn) || x < avg + 0.07 * (mx - mn))
		return;
	if ((int64_t)c <= r->last_onset + r->wait)
		return;
	r->last_onset = (int64_t)c;
	add_time(r->onset_times, &r->onsets, (double)c * r->hop / r->rate);
}

/* Normalised, mean-removed autocorrelation at a fractional lag (0 past the largest lag). */
static double
acn(const struct rhythm *r, double lag)
{
	int i = (int)lag;
	if (lag < 0 || i + 1 >= r->maxlag || r->nenv < 2)
		return 0;
	double fr = lag - i, N = (double)r->nenv, m = r->sum[r->sel] / N;
	double a0 = r->ac[0] - N * m * m;
	double v1 = r->ac[i] - (N - i) * m * m, v2 = r->ac[i + 1] - (N - i - 1) * m * m;
	return a0 > 0 ? ((1 - fr) * v1 + fr * v2) / a0 : 0;
}

static double
comb(const struct rhythm *r, double p)
{
	double sc = 0;
	int k = 0;
	for (; k < 4 && (k + 1) * p + 1 < r->maxlag; k++)
		sc += acn(r, (k + 1) * p);
	return k ? sc / k : 0;
}

/* The half-period ratio: how strong the events half way between beats are, relative to those on them. */
static double
half_ratio(const struct rhythm *r, double p)
{
	double a = acn(r, p), h = acn(r, p / 2);
	if (!(a > 0))
		return h > 0 ? 1 : 0;
	double v = h / a;
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* The best comb period within +-frac of p. */
static double
refine(const struct rhythm *r, double p, double frac, double *score)
{
	double best = p, bs = -1e9;
	double step = p * 0.0005;
	for (double q = p * (1 - frac); q <= p * (1 + frac); q += step) {
		double v = comb(r, q);
		if (v > bs) {
			bs = v;
			best = q;
		}
	}
	if (score)
		*score = bs;
	return best;
}

struct tempo {
	double bpm, conf, comb;
	double cand_bpm[3], cand_score[3];
	int ncand;
};

static double
best_comb(const struct rhythm *r, double pmin, double pmax, double *bp)
{
	double best = -1;
	for (double p = pmin; p <= pmax; p *= 1.002) {
		double v = comb(r, p);
		if (v > best) {
			best = v;
			*bp = p;
		}
	}
	return best;
}

/* Selects the envelope (the low bands when they are periodic: the kick sets the beat in the music a DJ plays;
 * all bands otherwise) and estimates the tempo from it. */
static int
tempo_estimate(struct rhythm *r, struct tempo *t)
{
	memset(t, 0, sizeof(*t));
	double pmin = r->fps * 60.0 / 240.0, pmax = r->fps * 60.0 / 30.0;
	if (pmax * 1.05 + 1 >= r->maxlag)
		pmax = (r->maxlag - 2) / 1.05;
	if (pmin < 2)
		pmin = 2;
	if (!(pmax > pmin))
		return -1;
	double bp = 0, best;
	r->sel = 1;
	r->ac = r->acs[1];
	best = best_comb(r, pmin, pmax, &bp);
	if (!(best > LOW_PERIODIC)) {
		r->sel = 0;
		r->ac = r->acs[0];
		best = best_comb(r, pmin, pmax, &bp);
	}
	if (!(best > 0.05))
		return -1;
	bp = refine(r, bp, 0.004, NULL);
	/* the pulse: the shortest bp / k whose events are as strong as those at bp (a click track at 200 BPM
	 * peaks at 3 periods as much as at one) */
	double a_bp = acn(r, bp);
	for (int k = 8; k >= 2; k--) {
		double q = bp / k;
		if (q < 2 || 60.0 * r->fps / q > BPM_MAX)
			continue;
		double qq = refine(r, q, 0.01, NULL);
		if (acn(r, qq) >= HALF_RATIO * a_bp) {
			bp = qq;
			break;
		}
	}
	double slow = r->fps * 60.0 / BPM_MIN;
	while (bp > slow)
		bp = refine(r, bp / 2, 0.01, NULL);
	while (60.0 * r->fps / (bp / 2) <= BPM_MAX && bp / 2 >= 2 && half_ratio(r, bp) >= HALF_RATIO)
		bp = refine(r, bp / 2, 0.01, NULL);
	double sc;
	bp = refine(r, bp, 0.01, &sc);
	const double mult[3] = {1.0, 2.0, 0.5};
	double sum = 0, raw[3];
	for (int i = 0; i < 3; i++) {
		double p = bp * mult[i], bpm = 60.0 * r->fps / p;
		if (bpm < 20 || bpm > 400 || p + 1 >= r->maxlag)
			continue;
		double c = comb(r, p);
		double v = (c > 0 ? c : 0) * half_ratio(r, 2 * p) * (1 - half_ratio(r, p));
		t->cand_bpm[t->ncand] = bpm;
		raw[t->ncand] = v;
		sum += v;
		t->ncand++;
	}
	for (int i = 0; i < t->ncand; i++)
		t->cand_score[i] = sum > 0 ? raw[i] / sum : (i == 0 ? 1 : 0);
	t->bpm = 60.0 * r->fps / bp;
	t->comb = sc < 0 ? 0 : sc > 1 ? 1 : sc;
	t->conf = t->cand_score[0] * t->comb;
	return 0;
}

/* Places the beats whose search windows lie wholly in the envelope seen so far (all of them at the end). */
static void
track(struct rhythm *r, int final)
{
	double P = r->period;
	if (!(P > 0))
		return;
	uint64_t n = r->nenv, oldest = n > r->ring ? n - r->ring : 0;
	if (!r->beat_started) {
		/* the first beat: the first onset reaching a third of the largest within the first period (and a bit)
		 */
		uint64_t hi = (uint64_t)ceil(P * 1.5) + 1;
		hi = hi > n ? n : hi;
		uint64_t start = oldest;
		float mx = 0;
		for (uint64_t j = start; j < n; j++)
			mx = TE(r, j) > mx ? TE(r, j) : mx;
		if (!(mx > 0))
			return;
		uint64_t first = n;
		for (uint64_t j = start; j < n; j++)
			if (TE(r, j) >= mx / 3) {
				first = j;
				break;
			}
		if (first == n)
			return;
		uint64_t peak = first;
		for (uint64_t j = first; j < n && j <= first + (uint64_t)(P / 4); j++)
			peak = TE(r, j) > TE(r, peak) ? j : peak;
		(void)hi;
		r->beat_started = 1;
		r->last_beat = (double)peak;
		add_time(r->beat_times, &r->beats, (double)peak * r->hop / r->rate);
	}
	for (;;) {
		double expect = r->last_beat + P, lo = expect - 0.2 * P, hi = expect + 0.2 * P;
		if (!final && hi + 1 >= (double)n)
			return;
		if (lo >= (double)n)
			return;
		uint64_t a = lo < (double)oldest ? oldest : (uint64_t)ceil(lo), b = (uint64_t)floor(hi);
		b = b >= n ? n - 1 : b;
		double bestv = 0, best = expect;
		for (uint64_t j = a; j <= b; j++) {
			double d = ((double)j - expect) / (0.1 * P);
			double v = TE(r, j) * exp(-0.5 * d * d);
			if (v > bestv) {
				bestv = v;
				best = (double)j;
			}
		}
		if (final && best >= (double)n)
			return;
		r->last_beat = bestv > 0 ? best : expect;
		if (r->last_beat >= (double)n)
			return;
		add_time(r->beat_times, &r->beats, r->last_beat * r->hop / r->rate);
	}
}

static void
env_push(struct rhythm *r, float v, float tv)
{
	uint64_t t = r->nenv;
	r->env[t & (r->ring - 1)] = v;
	r->tenv[t & (r->ring - 1)] = tv;
	r->nenv++;
	r->sum[0] += v;
	r->sum[1] += tv;
	r->os_sum += v;
	r->os_sq += (double)v * v;
	r->os_max = v > r->os_max ? v : r->os_max;
	if (r->features & AUDIO_F_TEMPO) {
		int L = t + 1 < (uint64_t)r->maxlag ? (int)t + 1 : r->maxlag;
		const float *e = r->env, *te = r->tenv;
		uint64_t mask = r->ring - 1;
		double *ac = r->acs[0], *tac = r->acs[1];
		for (int l = 0; l < L; l++) {
			uint64_t j = (t - (uint64_t)l) & mask;
			ac[l] += (double)v * e[j];
			tac[l] += (double)tv * te[j];
		}
	}
	/* a candidate is decided once the normalisation window's right half is in */
	while (r->next_cand + (uint64_t)r->half < r->nenv) {
		pick(r, r->next_cand);
		r->next_cand++;
	}
	if ((r->features & AUDIO_F_TEMPO) && r->nenv >= r->next_update) {
		struct tempo tp;
		if (tempo_estimate(r, &tp) == 0)
			r->period = 60.0 * r->fps / tp.bpm;
		r->next_update = r->nenv + (uint64_t)ceil(TEMPO_UPDATE_S * r->fps);
	}
	if (r->features & AUDIO_F_TEMPO)
		track(r, 0);
}

void
rhythm_frame(struct rhythm *r, const float *db, int nmel, struct series *ser)
{
	float o = 0;
	if (r->sframes == 0) {
		/* librosa's lag + n_fft / (2 hop) = 3 leading zeros */
		for (int i = 0; i < 3; i++) {
			env_push(r, 0, 0);
			if (ser)
				series_put_at(ser, AUDIO_S_ONSET, (uint64_t)i, 0);
		}
		r->nheld = 0;
	} else {
		float lo = 0, fl = r->db_max - LOW_RANGE_DB;
		for (int m = 0; m < nmel; m++) {
			float d = db[m] - r->prev[m];
			o += d > 0 ? d : 0;
		}
		for (int m = 0; m < r->nlow && m < nmel; m++) {
			float a = db[m] > fl ? db[m] : fl, b = r->prev[m] > fl ? r->prev[m] : fl;
			lo += a > b ? a - b : 0;
		}
		o /= (float)nmel;
		float to = lo / (float)r->nlow;
		/* the value belongs at index sframes + 2; the last two of the file are trimmed, so hold two back */
		if (r->nheld == 2) {
			env_push(r, r->held[0], r->held_t[0]);
			if (ser)
				series_put_at(ser, AUDIO_S_ONSET, r->nenv - 1, r->held[0]);
			r->held[0] = r->held[1];
			r->held_t[0] = r->held_t[1];
			r->held[1] = o;
			r->held_t[1] = to;
		} else {
			r->held_t[r->nheld] = to;
			r->held[r->nheld++] = o;
		}
	}
	memcpy(r->prev, db, sizeof(float) * (size_t)nmel);
	for (int m = 0; m < nmel; m++)
		r->db_max = db[m] > r->db_max ? db[m] : r->db_max;
	r->sframes++;
}

void
rhythm_report(struct rhythm *r, json_t *res, unsigned features)
{
	/* librosa trims to the frame count: the held values would fall past it, except in a file of 1-2 frames */
	while (r->nenv < r->sframes && r->nheld > 0) {
		env_push(r, r->held[0], r->held_t[0]);
		r->held[0] = r->held[1];
		r->held_t[0] = r->held_t[1];
		r->nheld--;
	}
	while (r->next_cand < r->nenv) {
		pick(r, r->next_cand);
		r->next_cand++;
	}
	if (features & AUDIO_F_ONSETS) {
		json_object_set_new(res, "onsets", json_integer((json_int_t)r->onsets));
		json_object_set_new(res, "onset_times_s", json_incref(r->onset_times));
		double N = (double)r->nenv, m = N > 0 ? r->os_sum / N : 0, v = N > 0 ? r->os_sq / N - m * m : 0;
		json_t *o = json_object();
		json_object_set_new(o, "mean", json_real(round(m * 1000) / 1000));
		json_object_set_new(o, "std", json_real(round(sqrt(v > 0 ? v : 0) * 1000) / 1000));
		json_object_set_new(o, "max", json_real(round(r->os_max * 1000) / 1000));
		json_object_set_new(o, "rate_per_s",
		                    json_real(N > 0 ? round(r->onsets / (N / r->fps) * 1000) / 1000 : 0));
		json_object_set_new(res, "onset_strength", o);
	}
	if (!(features & AUDIO_F_TEMPO))
		return;
	struct tempo t;
	double dur = (double)r->nenv / r->fps;
	if (r->nenv == 0 || (r->acs[0][0] <= 0 && r->acs[1][0] <= 0) || tempo_estimate(r, &t) < 0) {
		const char *why = dur < 4.0        ? "too short for tempo (under 4 s)"
		                  : r->os_max <= 0 ? "no onsets (silence or a steady tone)"
		                                   : "no periodic onsets";
		audio_set_null(res, "tempo_bpm", why);
		audio_set_null(res, "tempo_confidence", why);
		audio_set_null(res, "tempo_candidates", why);
		audio_set_null(res, "beat_times_s", why);
		return;
	}
	r->period = 60.0 * r->fps / t.bpm;
	track(r, 1);
	json_object_set_new(res, "tempo_bpm", json_real(round(t.bpm * 10) / 10));
	json_object_set_new(res, "tempo_confidence", json_real(round(t.conf * 1000) / 1000));
	json_t *c = json_array();
	for (int i = 0; i < t.ncand; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "bpm", json_real(round(t.cand_bpm[i] * 10) / 10));
		json_object_set_new(o, "score", json_real(round(t.cand_score[i] * 1000) / 1000));
		json_array_append_new(c, o);
	}
	json_object_set_new(res, "tempo_candidates", c);
	json_object_set_new(res, "beats", json_integer((json_int_t)r->beats));
	json_object_set_new(res, "beat_times_s", json_incref(r->beat_times));
}

/*
 * key: the musical key from the mean chroma (spectral.c: librosa.feature.chroma_stft with tuning 0, averaged over
 * every frame), by Pearson correlation with a major and a minor key profile rotated to each of the 12 tonics.
 *
 * The profiles are Faraldo et al.'s "edma" profiles (Á. Faraldo, E. Gómez, S. Jordà, P. Herrera, "Key Estimation
 * in Electronic Dance Music", ECIR 2016; the values Essentia's Key algorithm ships as profileType "edma"), derived
 * from electronic dance music, where the Krumhansl-Kessler probe-tone profiles (classical listeners) confuse
 * minor keys with their relative major more often. The result names the key the ways DJ software does: sharp
 * and flat spellings, Camelot (C major = 8B, A minor = 8A, +1 per fifth up) and Open Key (C major = 1d,
 * A minor = 1m).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const double edma_major[12] = {0.16519551, 0.04749026, 0.08293076, 0.06687112, 0.09994645, 0.09274123,
                                      0.05294487, 0.13159476, 0.05218986, 0.07443653, 0.06940723, 0.0642515};
static const double edma_minor[12] = {0.17235348, 0.05336489, 0.0761009,  0.10043649, 0.05621498, 0.08527853,
                                      0.0497915,  0.13451001, 0.07458916, 0.05003023, 0.09187879, 0.05545106};
static const char *const sharp[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
static const char *const flat[12] = {"C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"};

static double
pearson(const double *x, const double *prof, int tonic)
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
		double a = x[(i + tonic) % 12] - mx, b = prof[i] - my;
		sxy += a * b;
		sxx += a * a;
		syy += b * b;
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

/* One key's names: {"key": "D# major", "flat": "Eb major", "camelot": "5B", "open_key": "10d"}. */
static void
key_names(json_t *o, int tonic, int minor)
{
	char b[32];
	const char *mode = minor ? "minor" : "major";
	snprintf(b, sizeof(b), "%s %s", sharp[tonic], mode);
	json_object_set_new(o, "key", json_string(b));
	snprintf(b, sizeof(b), "%s %s", flat[tonic], mode);
	json_object_set_new(o, "flat", json_string(b));
	int major_pc = minor ? (tonic + 3) % 12 : tonic; /* a minor key sits with its relative major */
	int cam = (7 * major_pc + 8) % 12, open = ((cam - 7) % 12 + 12) % 12;
	snprintf(b, sizeof(b), "%d%c", cam ? cam : 12, minor ? 'A' : 'B');
	json_object_set_new(o, "camelot", json_string(b));
	snprintf(b, sizeof(b), "%d%c", open ? open : 12, minor ? 'm' : 'd');
	json_object_set_new(o, "open_key", json_string(b));
}

void
key_report(const double *chroma, json_t *res)
{
	double mx = 0;
	for (int i = 0; i < 12; i++)
		mx = chroma[i] > mx ? chroma[i] : mx;
	if (!(mx > 0)) {
		audio_set_null(res, "key", "no pitched content (silence)");
		audio_set_null(res, "key_confidence", "no key");
		audio_set_null(res, "key_notation", "no key");
		audio_set_null(res, "key_alternatives", "no key");
		return;
	}
	double sc[24];
	for (int k = 0; k < 24; k++)
		sc[k] = pearson(chroma, k < 12 ? edma_major : edma_minor, k % 12);
	int order[24];
	for (int k = 0; k < 24; k++)
		order[k] = k;
	for (int i = 0; i < 3; i++) /* the three best, in order */
		for (int j = i + 1; j < 24; j++)
			if (sc[order[j]] > sc[order[i]]) {
				int t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
	int best = order[0];
	json_t *names = json_object();
	key_names(names, best % 12, best >= 12);
	json_object_set(res, "key", json_object_get(names, "key"));
	json_object_set_new(res, "key_notation", names);
	/* confidence: the best correlation, scaled by its margin over the runner-up */
	double b = sc[best] > 0 ? sc[best] : 0, margin = sc[best] - sc[order[1]];
	double conf = b * (margin > 0.1 ? 1.0 : margin / 0.1 * 0.5 + 0.5);
	json_object_set_new(res, "key_confidence", json_real(round(conf * 1000) / 1000));
	json_t *alts = json_array();
	for (int i = 0; i < 3; i++) {
		json_t *o = json_object();
		key_names(o, order[i] % 12, order[i] >= 12);
		json_object_set_new(o, "score", json_real(round(sc[order[i]] * 1000) / 1000));
		json_array_append_new(alts, o);
	}
	json_object_set_new(res, "key_alternatives", alts);
}

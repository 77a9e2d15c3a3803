/*
 * internal.h: the audio engine's parts, shared by analyze.c (the driver) and the per-concern modules.
 * Each part is fed interleaved float blocks in order and reports into a JSON object at the end.
 */
#ifndef HOPPER_AUDIO_INTERNAL_H
#define HOPPER_AUDIO_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Sets key to a number, or to null with a reason in result.reasons.key when v is not finite. */
void audio_set_num(json_t *res, const char *key, double v, const char *why_null);
void audio_set_null(json_t *res, const char *key, const char *why);

/* loudness.c: BS.1770-4 K-weighting, 400 ms / 3 s gating (integrated, LRA) and true peak (polyphase FIR). */
struct loud;
/* Returns a new state (caller frees with loud_free), or NULL for an unsupported rate/channel count. */
struct loud *loud_new(int rate, int channels, int want_loudness, int want_true_peak);
void loud_add(struct loud *l, const float *x, size_t frames);
double loud_integrated(const struct loud *l);        /* LUFS, or NAN when no block passed the gates */
double loud_range(const struct loud *l);             /* LU, or NAN when there is no short-term block */
double loud_true_peak(const struct loud *l, int ch); /* linear, including the sample peak */
int loud_oversampling(const struct loud *l);
void loud_free(struct loud *l);

/* spectral.c: FFT frames of the mono mix: centroid, rolloff, flatness, onsets, tempo, key. */
struct spec;
struct spec *spec_new(int rate, int channels, unsigned features);
void spec_add(struct spec *s, const float *x, size_t frames);
void spec_report(struct spec *s, json_t *res, unsigned features);
void spec_free(struct spec *s);

#endif

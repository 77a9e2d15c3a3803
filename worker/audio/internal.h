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

/* levels.c: peak, RMS, DC, clipping, silence, zero-crossing rate (librosa), waveform peaks. Caller frees. */
struct levels;
struct levels *levels_new(int channels, int rate, uint64_t total_frames, float clip_at, unsigned features,
                          int waveform);
void levels_add(struct levels *lv, const float *x, size_t frames, uint64_t first_frame);
double levels_peak(const struct levels *lv, int channel); /* linear */
void levels_report(const struct levels *lv, json_t *res, int rate);
void levels_free(struct levels *lv);

/* loudness.c: BS.1770-4 K-weighting, 400 ms / 3 s gating (integrated, LRA) and true peak (polyphase FIR). */
struct loud;
/* Returns a new state (caller frees with loud_free). weights: one BS.1770 G_i per channel (copied). Loudness is
 * measured only when loud_rate_ok(rate); true peak at any rate. */
struct loud *loud_new(int rate, int channels, const double *weights, int want_loudness, int want_true_peak);
int loud_rate_ok(int rate);
void loud_add(struct loud *l, const float *x, size_t frames);
double loud_integrated(const struct loud *l);        /* LUFS, or NAN when no block passed the gates */
double loud_range(const struct loud *l);             /* LU (0 without a gated short-term block); NAN: not measured */
double loud_momentary_max(const struct loud *l);     /* LUFS, NAN: no 400 ms block or silence */
double loud_short_term_max(const struct loud *l);    /* LUFS, NAN: no 3 s block or silence */
double loud_true_peak(const struct loud *l, int ch); /* linear, including the sample peak */
int loud_oversampling(const struct loud *l);
void loud_free(struct loud *l);

/* Rounds v to digits significant digits (NAN stays NAN). */
double audio_sig(double v, int digits);

struct series;
struct audio_series_req;

/* spectral.c: librosa-framed FFT frames of the mono mix: spectral shape, mel/MFCC, chroma; feeds rhythm and key.
 * spec_finish adds the trailing pad (call once, after the last spec_add). Caller frees with spec_free. */
struct spec;
struct spec *spec_new(int rate, int channels, unsigned features, const struct audio_series_req *series);
void spec_add(struct spec *s, const float *x, size_t frames, int channels);
void spec_finish(struct spec *s);
void spec_report(struct spec *s, json_t *res, unsigned features);
void spec_free(struct spec *s);
int spec_fft_size(int rate);

/* contrast.c: librosa.feature.spectral_contrast (7 bands), mean over frames, top_db applied exactly at the end
 * (n: the FFT size). Caller frees. */
struct contrast;
struct contrast *contrast_new(int rate, int n);
void contrast_frame(struct contrast *c, const float *mag);
void contrast_report(const struct contrast *c, json_t *res);
void contrast_free(struct contrast *c);

/* rhythm.c: onset strength from mel dB frames; onsets, tempo (with candidates), beats. Caller frees. */
struct rhythm;
struct rhythm *rhythm_new(double fps, int hop, int rate, unsigned features);
void rhythm_frame(struct rhythm *r, const float *mel_db, int nmel, struct series *ser);
void rhythm_report(struct rhythm *r, json_t *res, unsigned features);
void rhythm_free(struct rhythm *r);

/* key.c: key, confidence, DJ notations and alternatives from the 12-bin mean chroma (C first). */
void key_report(const double *chroma, json_t *res);

/* series.c: opt-in per-frame series (args.series), capped at AUDIO_SERIES_MAX_FRAMES. Caller frees. */
struct series *series_new(const struct audio_series_req *req, double fps);
void series_put(struct series *s, int which, float v);                    /* the current frame's value */
void series_put_at(struct series *s, int which, uint64_t frame, float v); /* a value for a given frame */
void series_next(struct series *s);                                       /* the current frame is done */
void series_report(struct series *s, json_t *res, int hop, int rate);
void series_free(struct series *s);
int series_name_bit(const char *name, size_t len); /* AUDIO_S_* or -1 */

#endif

/*
 * series: the opt-in per-frame values (args.series) for apps that plot, one JSON array per requested series, a
 * value per spectrogram frame (frame t centred at t * hop_length / sample_rate seconds). Only these grow with the
 * file, and only when asked for: each is cut at AUDIO_SERIES_MAX_FRAMES values (the result says so).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "internal.h"
#include "xmalloc.h"

static const char *const series_names[AUDIO_S_COUNT] = {"spectral_centroid_hz", "spectral_bandwidth_hz",
                                                        "spectral_rolloff_hz", "spectral_flatness", "onset_strength"};

struct series {
	unsigned mask;
	uint64_t frame;
	json_t *arr[AUDIO_S_COUNT];
	int cut;
};

struct series *
series_new(const struct audio_series_req *req, double fps)
{
	if (req == NULL || req->mask == 0)
		return NULL;
	struct series *s = xcalloc(1, sizeof(*s));
	s->mask = req->mask;
	for (int i = 0; i < AUDIO_S_COUNT; i++)
		if (s->mask & (1u << i))
			s->arr[i] = json_array();
	return s;
}

void
series_free(struct series *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < AUDIO_S_COUNT; i++)
		json_decref(s->arr[i]);
	free(s);
}

void
series_put_at(struct series *s, int which, uint64_t frame, float v)
{
	json_t *a = s->arr[which];
	if (a == NULL)
		return;
	if (frame >= AUDIO_SERIES_MAX_FRAMES) {
		s->cut = 1;
		return;
	}
	while (json_array_size(a) < frame)
		json_array_append_new(a, json_real(0));
	json_t *num = json_real(isfinite(v) ? audio_sig(v, 5) : 0);
	if (json_array_size(a) == frame)
		json_array_append_new(a, num);
	else
		json_array_set_new(a, (size_t)frame, num);
}

void
series_put(struct series *s, int which, float v)
{
	series_put_at(s, which, s->frame, v);
}

void
series_next(struct series *s)
{
	s->frame++;
}

void
series_report(struct series *s, json_t *res, int hop, int rate)
{
	json_t *o = json_object();
	json_object_set_new(o, "hop_length", json_integer(hop));
	json_object_set_new(o, "hop_s", json_real(audio_sig((double)hop / rate, 6)));
	json_object_set_new(o, "truncated", json_boolean(s->cut));
	for (int i = 0; i < AUDIO_S_COUNT; i++)
		if (s->arr[i])
			json_object_set(o, series_names[i], s->arr[i]);
	json_object_set_new(res, "series", o);
}

int
series_name_bit(const char *name, size_t len)
{
	static const char *const short_names[AUDIO_S_COUNT] = {"centroid", "bandwidth", "rolloff", "flatness",
	                                                       "onset_strength"};
	for (int i = 0; i < AUDIO_S_COUNT; i++)
		if ((strlen(short_names[i]) == len && strncmp(short_names[i], name, len) == 0) ||
		    (strlen(series_names[i]) == len && strncmp(series_names[i], name, len) == 0))
			return i;
	return -1;
}

/*
 * evid: the SSE event ids of GET /v1/jobs/ID/events and the resume decision (pure).
 *
 * An id is "<at_ms>-<hash>": the event's own time (its "at", Redis's clock, in milliseconds) and the FNV-1a
 * hash (8 hex digits) of its canonical JSON (compact, keys sorted). It names the event itself, not its
 * position in one watch, so it means the same on every stream of the job and after the daemon trimmed the
 * job's event list to its last events_max (positions shift then; ids do not).
 *
 * Resuming after id X: a new watch sends the job's stored events, oldest first, then live ones. Their "at"
 * never decreases (every event is stamped by Redis's TIME inside the function that appends it), so while
 * looking for X, an event before X's time was seen by the client; one at X's time but another hash may be
 * before or after X and is held until that is known; X itself ends the search (what follows is new). An event
 * after X's time with X not seen means X was trimmed from the list: events between X and it may be missing,
 * and the stream says so (event "lost") before it goes on, never skipping silently. So does an id that does
 * not parse, or a search the job's end cuts short.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

static uint32_t
fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

void
evid_of(const json_t *ev, struct evid *out)
{
	double at = json_number_value(json_object_get(ev, "at"));
	out->at_ms = isfinite(at) && at > 0 && at < 1e13 ? llround(at * 1000) : 0;
	char *canon = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	out->hash = canon != NULL ? fnv1a(canon) : 0;
	free(canon);
}

void
evid_format(const struct evid *id, char out[EVID_TEXT_MAX])
{
	snprintf(out, EVID_TEXT_MAX, "%lld-%08x", id->at_ms, (unsigned)id->hash);
}

int
evid_parse(const char *s, struct evid *out)
{
	if (s == NULL)
		return -1;
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 15 || s[n] != '-' || strlen(s + n + 1) != 8 || strspn(s + n + 1, "0123456789abcdef") != 8)
		return -1;
	out->at_ms = strtoll(s, NULL, 10);
	out->hash = (uint32_t)strtoul(s + n + 1, NULL, 16);
	return 0;
}

enum evid_step
evid_resume_step(const struct evid *want, int want_ok, const struct evid *got)
{
	if (!want_ok)
		return EVID_LOST;
	if (got->at_ms < want->at_ms)
		return EVID_SKIP;
	if (got->at_ms > want->at_ms)
		return EVID_LOST;
	return got->hash == want->hash ? EVID_FOUND : EVID_HOLD;
}

/*
 * sched_time.c: cron / @macro / @every parsing and next-fire computation in UTC. See sched_time.h.
 * Cron semantics follow Vixie cron: fields minute hour dom month dow; '*', lists, ranges, steps, month and
 * weekday names; when both dom and dow are restricted (neither starts with '*') a day matches if EITHER does.
 */
#include "sched_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Search horizon for sched_next_utc: 29 years of days covers every dom/dow/month combination that can ever
 * occur (the Gregorian weekday/date pattern of Feb 29 repeats within 28 years, 2100 aside). */
#define SCHED_HORIZON_DAYS (29LL * 366)

struct field_def {
	int lo, hi;
	const char *const *names; /* names[i] is value lo+i (or i for dow), NULL if the field has none */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct field_def fields[5] = {
        {0, 59, NULL}, {0, 23, NULL}, {1, 31, NULL}, {1, 12, month_names}, {0, 7, dow_names},
};

static const struct {
	const char *name;
	const char *expansion;
} macros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

static const struct {
	char suffix;
	int64_t ms;
} units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};

static int
fail(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

/* One number or name in [f->lo, f->hi]; advances *p. */
static int
parse_value(const char **p, const char *end, const struct field_def *f, int *out)
{
	const char *s = *p;
	if (s < end && isdigit((unsigned char)*s)) {
		int v = 0;
		while (s < end && isdigit((unsigned char)*s) && v <= 1000)
			v = v * 10 + (*s++ - '0');
		if (v < f->lo || v > f->hi)
			return -1;
		*out = v;
		*p = s;
		return 0;
	}
	if (!f->names || end - s < 3)
		return -1;
	for (int i = 0; f->names[i]; i++) {
		if (strncasecmp(s, f->names[i], 3) == 0) {
			*out = f->names == dow_names ? i : i + 1;
			*p = s + 3;
			return 0;
		}
	}
	return -1;
}

/* One comma-separated field into a bitmask; *star set if it began with '*'. */
static int
parse_field(const char *s, const char *end, const struct field_def *f, uint64_t *bits, int *star)
{
	*bits = 0;
	*star = s < end && *s == '*';
	for (;;) {
		int lo, hi, step = 1;
		if (s < end && *s == '*') {
			lo = f->lo;
			hi = f->hi;
			s++;
		} else {
			if (parse_value(&s, end, f, &lo) < 0)
				return -1;
			hi = lo;
			if (s < end && *s == '-') {
				s++;
				if (parse_value(&s, end, f, &hi) < 0 || hi < lo)
					return -1;
			}
		}
		if (s < end && *s == '/') {
			s++;
			if (s == end || !isdigit((unsigned char)*s))
				return -1;
			step = 0;
			while (s < end && isdigit((unsigned char)*s) && step <= 1000)
				step = step * 10 + (*s++ - '0');
			if (step < 1 || step > f->hi)
				return -1;
			if (lo == hi) /* "5/15": from 5 to the end, step 15 (a common extension) */
				hi = f->hi;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << v;
		if (s == end)
			return 0;
		if (*s != ',')
			return -1;
		s++;
	}
}

static int
parse_every(const char *s, const char *end, struct sched_spec *out)
{
	int64_t total = 0;
	if (s == end)
		return -1;
	while (s < end) {
		int64_t n = 0;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (s < end && isdigit((unsigned char)*s)) {
			n = n * 10 + (*s++ - '0');
			if (n > SCHED_EVERY_MAX_MS)
				return -1;
		}
		if (s == end)
			return -1;
		size_t u = 0;
		while (u < sizeof(units) / sizeof(units[0]) && units[u].suffix != *s)
			u++;
		if (u == sizeof(units) / sizeof(units[0]))
			return -1;
		s++;
		total += n * units[u].ms;
		if (total > SCHED_EVERY_MAX_MS)
			return -1;
	}
	if (total < SCHED_EVERY_MIN_MS || total % 1000)
		return -1;
	out->every_ms = total;
	return 0;
}

static int
parse_cron(const char *s, const char *end, struct sched_spec *out, char *err, size_t errlen)
{
	static const char *const names[5] = {"minute", "hour", "day of month", "month", "day of week"};
	for (int i = 0; i < 5; i++) {
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		const char *fe = s;
		while (fe < end && *fe != ' ' && *fe != '\t')
			fe++;
		if (fe == s)
			return fail(err, errlen, "cron needs 5 fields: minute hour dom month dow");
		uint64_t bits;
		int star;
		if (parse_field(s, fe, &fields[i], &bits, &star) < 0) {
			char m[64];
			snprintf(m, sizeof(m), "bad %s field", names[i]);
			return fail(err, errlen, m);
		}
		switch (i) {
		case 0: out->minute = bits; break;
		case 1: out->hour = (uint32_t)bits; break;
		case 2: out->dom = (uint32_t)bits, out->dom_star = star; break;
		case 3: out->month = (uint32_t)bits; break;
		case 4: out->dow = (uint32_t)((bits | (bits >> 7)) & 0x7f), out->dow_star = star; break;
		}
		s = fe;
	}
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s != end)
		return fail(err, errlen, "cron has more than 5 fields");
	return 0;
}

int
sched_parse(const char *spec, size_t len, struct sched_spec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > SCHED_SPEC_MAX)
		return fail(err, errlen, "schedule spec empty or too long");
	if (memchr(spec, '\0', len))
		return fail(err, errlen, "schedule spec contains NUL");
	const char *end = spec + len;
	if (len > 7 && strncmp(spec, "@every ", 7) == 0) {
		if (parse_every(spec + 7, end, out) < 0)
			return fail(err, errlen,
			            "bad @every interval (e.g. 30s, 5m, 1h30m; 1s to 366d, whole seconds)");
		return 0;
	}
	if (spec[0] == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
			const char *m = macros[i].name;
			if (strlen(m) == len && strncmp(m, spec, len) == 0)
				return parse_cron(macros[i].expansion,
				                  macros[i].expansion + strlen(macros[i].expansion), out, err, errlen);
		}
		return fail(err, errlen, "unknown @macro");
	}
	return parse_cron(spec, end, out, err, errlen);
}

/* Howard Hinnant's days_from_civil / civil_from_days: exact for the proleptic Gregorian calendar. */
int64_t
sched_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void
sched_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int
day_matches(const struct sched_spec *s, int64_t days)
{
	int64_t y;
	unsigned m, d;
	sched_civil_from_days(days, &y, &m, &d);
	if (!(s->month & (1u << m)))
		return 0;
	int dow = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
	int dom_ok = (s->dom >> d) & 1, dow_ok = (s->dow >> dow) & 1;
	if (s->dom_star || s->dow_star)
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

int64_t
sched_next_utc(const struct sched_spec *s, int64_t after_ms)
{
	if (s->every_ms > 0)
		return (floor_div(after_ms, s->every_ms) + 1) * s->every_ms;
	int64_t min0 = floor_div(after_ms, 60000) + 1; /* first whole minute strictly after */
	int64_t day = floor_div(min0, 1440);
	int start = (int)(min0 - day * 1440);
	for (int64_t n = 0; n < SCHED_HORIZON_DAYS; n++, day++, start = 0) {
		if (!day_matches(s, day))
			continue;
		for (int mod = start; mod < 1440; mod++) {
			int h = mod / 60, mi = mod % 60;
			if (!((s->hour >> h) & 1)) {
				mod = h * 60 + 59;
				continue;
			}
			if ((s->minute >> mi) & 1)
				return (day * 1440 + mod) * 60000;
		}
	}
	return -1;
}

int64_t
sched_jitter_ms(const char *name, int64_t fire_ms, int64_t jitter_s)
{
	if (jitter_s <= 0)
		return 0;
	uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 offset basis and prime */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	uint64_t f = (uint64_t)fire_ms;
	for (int i = 0; i < 8; i++, f >>= 8)
		h = (h ^ (f & 0xff)) * 1099511628211ULL;
	return (int64_t)(h % (uint64_t)(jitter_s * 1000));
}

/*
 * sched_tz.c: TZif (RFC 8536) parsing, POSIX TZ footer rules, offsets and zoned next-fire times. See sched_tz.h.
 */
#include "sched_tz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZIF_HEADER_LEN 44
/* Transition times beyond +-2^60 s are refused: zic writes -2^59 as its "big bang", and the bound keeps
 * time + offset and time * 1000 (within the search range) from overflowing. */
#define TZIF_TIME_MAX (1LL << 60)
/* sched_next_utc searches 29 years of days (sched_time.c); the zoned search uses the same horizon. */
#define SCHED_TZ_HORIZON_S (29LL * 366 * 86400)
/* A backward step is at most 2 * SCHED_ZONE_OFFSET_MAX; looking back 3 days finds the wall time already seen. */
#define SCHED_TZ_LOOKBACK_S (3LL * 86400)

/* One date of a POSIX TZ rule: Jn (1-365, Feb 29 never counted), n (0-365) or Mm.w.d. */
struct tz_date {
	char kind; /* 'J', 'N' or 'M' */
	int n, m, w, d;
	int32_t secs; /* local time of day of the change; RFC 8536 3.3.1 allows -167 h..+167 h */
};

/* The footer: std_off always, dst_off and the two dates if the zone observes DST. Offsets east positive. */
struct tz_rule {
	int32_t std_off, dst_off;
	int has_dst;
	struct tz_date start, end; /* start: std -> dst, in standard time; end: dst -> std, in daylight time */
};

struct tz_type {
	int32_t utoff;
	uint8_t isdst;
};

struct sched_zone {
	size_t ntrans, ntypes;
	int64_t *trans;        /* strictly ascending Unix seconds */
	uint8_t *idx;          /* idx[i] < ntypes: the type in effect from trans[i] */
	struct tz_type *types; /* types[0] also covers instants before trans[0] (RFC 8536 3.2) */
	int has_rule;          /* footer present and non-empty: it covers instants from trans[ntrans - 1] on */
	struct tz_rule rule;
};

struct tzif_hdr {
	int version; /* 1..4 */
	uint32_t isut, isstd, leap, time, type, chars;
};

static int
fail(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ---- the POSIX TZ footer ---- */

static int
tz_name(const char **p, const char *e)
{
	const char *s = *p, *b;
	if (s < e && *s == '<') {
		for (b = ++s; s < e && (isalnum((unsigned char)*s) || *s == '+' || *s == '-');)
			s++;
		if (s == e || *s != '>' || s - b < 3)
			return -1;
		*p = s + 1;
		return 0;
	}
	for (b = s; s < e && isalpha((unsigned char)*s);)
		s++;
	if (s - b < 3)
		return -1;
	*p = s;
	return 0;
}

/* A decimal of 1-3 digits in [lo, hi]. */
static int
tz_num(const char **p, const char *e, int lo, int hi, int *out)
{
	const char *s = *p;
	int v = 0, nd = 0;
	while (s < e && isdigit((unsigned char)*s) && nd < 3)
		v = v * 10 + (*s++ - '0'), nd++;
	if (nd == 0 || v < lo || v > hi)
		return -1;
	*out = v;
	*p = s;
	return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, as signed seconds. */
static int
tz_hms(const char **p, const char *e, int maxh, int32_t *out)
{
	const char *s = *p;
	int sign = 1, h, m = 0, sec = 0;
	if (s < e && (*s == '+' || *s == '-'))
		sign = *s++ == '-' ? -1 : 1;
	if (tz_num(&s, e, 0, maxh, &h) < 0)
		return -1;
	if (s < e && *s == ':') {
		s++;
		if (tz_num(&s, e, 0, 59, &m) < 0)
			return -1;
		if (s < e && *s == ':') {
			s++;
			if (tz_num(&s, e, 0, 59, &sec) < 0)
				return -1;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	*p = s;
	return 0;
}

static int
tz_date_parse(const char **p, const char *e, struct tz_date *d)
{
	const char *s = *p;
	memset(d, 0, sizeof(*d));
	if (s < e && *s == 'M') {
		s++;
		d->kind = 'M';
		if (tz_num(&s, e, 1, 12, &d->m) < 0 || s == e || *s++ != '.' || tz_num(&s, e, 1, 5, &d->w) < 0 ||
		    s == e || *s++ != '.' || tz_num(&s, e, 0, 6, &d->d) < 0)
			return -1;
	} else if (s < e && *s == 'J') {
		s++;
		d->kind = 'J';
		if (tz_num(&s, e, 1, 365, &d->n) < 0)
			return -1;
	} else {
		d->kind = 'N';
		if (tz_num(&s, e, 0, 365, &d->n) < 0)
			return -1;
	}
	d->secs = 7200; /* POSIX: 02:00:00 when no time is given */
	if (s < e && *s == '/') {
		s++;
		if (tz_hms(&s, e, 167, &d->secs) < 0)
			return -1;
	}
	*p = s;
	return 0;
}

/* std offset [dst [offset] [,start[/time],end[/time]]]. POSIX offsets count west, hence the negations. */
static int
tz_rule_parse(const char *s, size_t len, struct tz_rule *r)
{
	const char *e = s + len;
	int32_t off;
	memset(r, 0, sizeof(*r));
	if (tz_name(&s, e) < 0 || tz_hms(&s, e, 24, &off) < 0)
		return -1;
	r->std_off = -off;
	if (s == e)
		return 0;
	if (tz_name(&s, e) < 0)
		return -1;
	r->has_dst = 1;
	r->dst_off = r->std_off + 3600; /* POSIX: one hour ahead when no offset follows */
	if (s < e && *s != ',') {
		if (tz_hms(&s, e, 24, &off) < 0)
			return -1;
		r->dst_off = -off;
	}
	if (s == e) {
		/* No rule: glibc's default, the US rules since 2007. */
		r->start = (struct tz_date){'M', 0, 3, 2, 0, 7200};
		r->end = (struct tz_date){'M', 0, 11, 1, 0, 7200};
		return 0;
	}
	if (*s++ != ',' || tz_date_parse(&s, e, &r->start) < 0 || s == e || *s++ != ',' ||
	    tz_date_parse(&s, e, &r->end) < 0 || s != e)
		return -1;
	return 0;
}

static int
weekday(int64_t days)
{
	return (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

/* The day (days since the epoch) of a rule date in year y. */
static int64_t
tz_date_day(const struct tz_date *d, int64_t y)
{
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	int64_t jan1 = sched_days_from_civil(y, 1, 1);
	if (d->kind == 'J')
		return jan1 + d->n - 1 + (leap && d->n >= 60);
	if (d->kind == 'N')
		return jan1 + d->n;
	int64_t first = sched_days_from_civil(y, (unsigned)d->m, 1);
	int64_t next =
	        d->m == 12 ? sched_days_from_civil(y + 1, 1, 1) : sched_days_from_civil(y, (unsigned)d->m + 1, 1);
	int64_t day = first + (d->d - weekday(first) + 7) % 7 + (int64_t)(d->w - 1) * 7;
	while (day >= next) /* w == 5: the last such weekday */
		day -= 7;
	return day;
}

/* The rule's transitions of years y-2..y+2 around t, in time order; off[i] is the offset from when[i] on.
 * Within a year the end comes before the start so that a tie (DST all year, RFC 8536 3.3.1) leaves DST. */
#define TZ_CANDS 10
/* Rule instants beyond +-2^61 s (far past any calendar use) are evaluated at the bound. */
#define TZ_RULE_MAX (1LL << 61)
static void
tz_rule_cands(const struct tz_rule *r, int64_t t, int64_t when[TZ_CANDS], int32_t off[TZ_CANDS])
{
	int64_t y;
	unsigned m, d;
	sched_civil_from_days(floor_div(t, 86400), &y, &m, &d);
	for (int k = 0; k < TZ_CANDS / 2; k++) {
		int64_t yy = y - 2 + k;
		when[2 * k] = tz_date_day(&r->end, yy) * 86400 + r->end.secs - r->dst_off;
		off[2 * k] = r->std_off;
		when[2 * k + 1] = tz_date_day(&r->start, yy) * 86400 + r->start.secs - r->std_off;
		off[2 * k + 1] = r->dst_off;
	}
	for (int i = 1; i < TZ_CANDS; i++) /* stable insertion sort: ten elements */
		for (int j = i; j > 0 && when[j - 1] > when[j]; j--) {
			int64_t tw = when[j];
			int32_t to = off[j];
			when[j] = when[j - 1], off[j] = off[j - 1];
			when[j - 1] = tw, off[j - 1] = to;
		}
}

static int32_t
tz_rule_seg(const struct tz_rule *r, int64_t t, int64_t *next)
{
	*next = INT64_MAX;
	if (!r->has_dst)
		return r->std_off;
	if (t > TZ_RULE_MAX || t < -TZ_RULE_MAX) /* the calendar arithmetic stays in range; the rule repeats */
		t = t > 0 ? TZ_RULE_MAX : -TZ_RULE_MAX;
	int64_t when[TZ_CANDS];
	int32_t off[TZ_CANDS], cur = r->std_off;
	tz_rule_cands(r, t, when, off);
	for (int i = 0; i < TZ_CANDS; i++) {
		if (when[i] > t && t != TZ_RULE_MAX) {
			*next = when[i];
			break;
		}
		cur = off[i];
	}
	return cur;
}

/* The offset at t and the next instant > t where it may change (INT64_MAX: never). The one lookup every
 * other function uses, so offsets and segment bounds always agree. */
static int32_t
zone_seg(const struct sched_zone *z, int64_t t, int64_t *next)
{
	size_t n = z->ntrans;
	if (n > 0 && t < z->trans[0]) {
		*next = z->trans[0];
		return z->types[0].utoff;
	}
	if (n > 0 && t < z->trans[n - 1]) {
		size_t lo = 0, hi = n - 1; /* trans[lo] <= t < trans[hi] */
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;
			if (z->trans[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		*next = z->trans[hi];
		return z->types[z->idx[lo]].utoff;
	}
	if (z->has_rule)
		return tz_rule_seg(&z->rule, t, next);
	*next = INT64_MAX;
	return n > 0 ? z->types[z->idx[n - 1]].utoff : z->types[0].utoff;
}

/* ---- TZif ---- */

static int
tzif_header(const unsigned char *p, size_t avail, struct tzif_hdr *h, char *err, size_t errlen)
{
	if (avail < TZIF_HEADER_LEN)
		return fail(err, errlen, "TZif: truncated header");
	if (memcmp(p, "TZif", 4) != 0)
		return fail(err, errlen, "TZif: bad magic (not a zoneinfo file)");
	switch (p[4]) {
	case 0: h->version = 1; break;
	case '2': h->version = 2; break;
	case '3': h->version = 3; break;
	case '4': h->version = 4; break;
	default: return fail(err, errlen, "TZif: unknown version");
	}
	h->isut = be32(p + 20), h->isstd = be32(p + 24), h->leap = be32(p + 28);
	h->time = be32(p + 32), h->type = be32(p + 36), h->chars = be32(p + 40);
	if (h->type == 0 || h->type > SCHED_ZONE_MAX_TYPES)
		return fail(err, errlen, "TZif: type count 0 or over 256");
	if (h->time > SCHED_ZONE_MAX_TRANS)
		return fail(err, errlen, "TZif: too many transitions");
	if ((h->isut != 0 && h->isut != h->type) || (h->isstd != 0 && h->isstd != h->type))
		return fail(err, errlen, "TZif: isut/isstd count differs from the type count");
	if (h->leap != 0)
		return fail(err, errlen, "TZif: leap-second (right/) zones are not supported");
	if (h->chars > SCHED_ZONE_FILE_MAX)
		return fail(err, errlen, "TZif: designation block too long");
	return 0;
}

static uint64_t
tzif_block_len(const struct tzif_hdr *h, unsigned tsize)
{
	return (uint64_t)h->time * (tsize + 1) + (uint64_t)h->type * 6 + h->chars + (uint64_t)h->leap * (tsize + 4) +
	       h->isstd + h->isut;
}

/* The data block at p (its length already checked) into z's arrays. */
static int
tzif_data(const unsigned char *p, const struct tzif_hdr *h, unsigned tsize, struct sched_zone *z, char *err,
          size_t errlen)
{
	for (uint32_t i = 0; i < h->time; i++, p += tsize) {
		int64_t t = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
		if (t < -TZIF_TIME_MAX || t > TZIF_TIME_MAX)
			return fail(err, errlen, "TZif: transition time out of range");
		if (i > 0 && t <= z->trans[i - 1])
			return fail(err, errlen, "TZif: transition times not ascending");
		z->trans[i] = t;
	}
	for (uint32_t i = 0; i < h->time; i++, p++) {
		if (*p >= h->type)
			return fail(err, errlen, "TZif: transition type index out of range");
		z->idx[i] = *p;
	}
	for (uint32_t i = 0; i < h->type; i++, p += 6) {
		int32_t off = (int32_t)be32(p);
		if (off < -SCHED_ZONE_OFFSET_MAX || off > SCHED_ZONE_OFFSET_MAX)
			return fail(err, errlen, "TZif: UTC offset beyond 26 hours");
		if (p[4] > 1)
			return fail(err, errlen, "TZif: isdst not 0 or 1");
		if (p[5] >= h->chars)
			return fail(err, errlen, "TZif: designation index out of range");
		z->types[i] = (struct tz_type){off, p[4]};
	}
	return 0;
}

/* The footer "\nTZ\n" at buf[pos..len). */
static int
tzif_footer(const unsigned char *buf, size_t len, size_t pos, struct sched_zone *z, char *err, size_t errlen)
{
	if (pos >= len || buf[pos] != '\n')
		return fail(err, errlen, "TZif: missing footer");
	const unsigned char *s = buf + pos + 1;
	size_t avail = len - pos - 1;
	const unsigned char *nl =
	        memchr(s, '\n', avail < SCHED_ZONE_FOOTER_MAX + 1 ? avail : SCHED_ZONE_FOOTER_MAX + 1);
	if (nl == NULL)
		return fail(err, errlen, "TZif: footer unterminated or too long");
	if (nl == s)
		return 0; /* empty: the last transition's type stays */
	if (tz_rule_parse((const char *)s, (size_t)(nl - s), &z->rule) < 0)
		return fail(err, errlen, "TZif: bad POSIX TZ string in footer");
	z->has_rule = 1;
	return 0;
}

static struct sched_zone *
zone_alloc(size_t ntrans, size_t ntypes)
{
	/* One block: the struct, then the times (8-aligned after the struct), the types, the indexes. */
	size_t size = sizeof(struct sched_zone) + ntrans * sizeof(int64_t) + ntypes * sizeof(struct tz_type) + ntrans;
	struct sched_zone *z = calloc(1, size);
	if (z == NULL)
		return NULL;
	z->ntrans = ntrans, z->ntypes = ntypes;
	z->trans = (int64_t *)(z + 1);
	z->types = (struct tz_type *)(z->trans + ntrans);
	z->idx = (uint8_t *)(z->types + ntypes);
	return z;
}

int
sched_zone_parse(const unsigned char *buf, size_t len, struct sched_zone **out, char *err, size_t errlen)
{
	struct tzif_hdr h;
	*out = NULL;
	if (buf == NULL || len > SCHED_ZONE_FILE_MAX)
		return fail(err, errlen, "TZif: no buffer or larger than 256 KiB");
	if (tzif_header(buf, len, &h, err, errlen) < 0)
		return -1;
	uint64_t pos = TZIF_HEADER_LEN, blen = tzif_block_len(&h, 4);
	unsigned tsize = 4;
	if (blen > len - pos)
		return fail(err, errlen, "TZif: truncated v1 data block");
	if (h.version >= 2) {
		/* v2+: skip the 32-bit block; the second header and 64-bit block are authoritative. */
		pos += blen;
		int v1 = h.version;
		if (tzif_header(buf + pos, len - pos, &h, err, errlen) < 0)
			return -1;
		if (h.version != v1)
			return fail(err, errlen, "TZif: second header's version differs");
		pos += TZIF_HEADER_LEN, blen = tzif_block_len(&h, 8), tsize = 8;
		if (blen > len - pos)
			return fail(err, errlen, "TZif: truncated v2 data block");
	}
	struct sched_zone *z = zone_alloc(h.time, h.type);
	if (z == NULL)
		return fail(err, errlen, "TZif: out of memory");
	if (tzif_data(buf + pos, &h, tsize, z, err, errlen) < 0 ||
	    (h.version >= 2 && tzif_footer(buf, len, pos + blen, z, err, errlen) < 0)) {
		free(z);
		return -1;
	}
	*out = z;
	return 0;
}

struct sched_zone *
sched_zone_utc(void)
{
	return zone_alloc(0, 1); /* one type, offset 0, no transitions */
}

void
sched_zone_free(struct sched_zone *z)
{
	free(z);
}

static int
zone_name_ok(const char *name)
{
	size_t n = strnlen(name, SCHED_ZONE_NAME_MAX + 1);
	if (n == 0 || n > SCHED_ZONE_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '+' && c != '-' && c != '/')
			return 0; /* no '.', so no "." or ".." component can exist */
		if (c == '/' && name[i + 1] == '/')
			return 0;
	}
	return 1;
}

/* Read at most SCHED_ZONE_FILE_MAX bytes of a regular file. Caller frees *out. */
static int
read_small_file(const char *path, unsigned char **out, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char m[128];
		snprintf(m, sizeof(m), "time zone file: %s", strerror(errno));
		return fail(err, errlen, m);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SCHED_ZONE_FILE_MAX) {
		close(fd);
		return fail(err, errlen, "time zone file: not a regular file or larger than 256 KiB");
	}
	unsigned char *buf = malloc(SCHED_ZONE_FILE_MAX);
	size_t got = 0;
	ssize_t r = 0;
	while (buf && got < SCHED_ZONE_FILE_MAX && (r = read(fd, buf + got, SCHED_ZONE_FILE_MAX - got)) > 0)
		got += (size_t)r;
	close(fd);
	if (buf == NULL || r < 0) {
		free(buf);
		return fail(err, errlen, "time zone file: read failed");
	}
	*out = buf;
	*len = got;
	return 0;
}

struct sched_zone *
sched_zone_load(const char *name, char *err, size_t errlen)
{
	if (name == NULL || !zone_name_ok(name)) {
		fail(err, errlen, "bad time zone name (1-64 of A-Z a-z 0-9 _ + - /, no leading '/', no '.')");
		return NULL;
	}
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
		struct sched_zone *z = sched_zone_utc();
		if (z == NULL)
			fail(err, errlen, "out of memory");
		return z;
	}
	const char *dir = getenv("TZDIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/zoneinfo";
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		fail(err, errlen, "time zone path too long");
		return NULL;
	}
	unsigned char *buf;
	size_t len;
	if (read_small_file(path, &buf, &len, err, errlen) < 0)
		return NULL;
	struct sched_zone *z;
	int rc = sched_zone_parse(buf, len, &z, err, errlen);
	free(buf);
	return rc == 0 ? z : NULL;
}

int32_t
sched_zone_offset(const struct sched_zone *z, int64_t utc_s)
{
	int64_t next;
	return z == NULL ? 0 : zone_seg(z, utc_s, &next);
}

/* ---- zoned next fire ---- */

/* The highest wall time already shown before t (the end of the latest stretch that ended by t), INT64_MIN if
 * none in the lookback: a non-interval spec never fires at a wall time below it (the second occurrence). */
static int64_t
wall_high_water(const struct sched_zone *z, int64_t t)
{
	int64_t hw = INT64_MIN, s = t - SCHED_TZ_LOOKBACK_S, next;
	for (;;) {
		int32_t o = zone_seg(z, s, &next);
		if (next == INT64_MAX || next > t)
			return hw;
		if (next + o > hw)
			hw = next + o;
		s = next;
	}
}

/* First whole wall minute (wall seconds) >= ws matching the spec, -1 if none within the horizon. */
static int64_t
wall_match(const struct sched_spec *s, int64_t ws)
{
	int64_t r = sched_next_utc(s, ws * 1000 - 1);
	return r < 0 ? -1 : r / 1000;
}

/*
 * Walk the zone's constant-offset stretches from after_ms on. In a stretch [t, next) with offset o the wall
 * clock shows [t + o, next + o); the first matching wall minute w >= ws is looked up once and reused while the
 * wall lower bound ws stays within [from, w] (it is the first match for any bound there), so the walk costs one
 * day-bitmask search per gap or overlap, not per stretch. w inside the stretch fires at w - o; w inside the gap
 * after a forward step fires at the step itself; a backward step raises floor_w so non-interval specs skip the
 * repeated wall times.
 */
int64_t
sched_next_zone(const struct sched_spec *spec, const struct sched_zone *z, int64_t after_ms)
{
	if (z == NULL || spec->every_ms > 0)
		return sched_next_utc(spec, after_ms);
	if (after_ms < -SCHED_ZONE_RANGE_MS || after_ms > SCHED_ZONE_RANGE_MS)
		return -1;
	int every_hour = (spec->hour & 0xffffffu) == 0xffffffu;
	int64_t t = floor_div(after_ms, 1000) + 1, limit = t + SCHED_TZ_HORIZON_S;
	int64_t floor_w = every_hour ? INT64_MIN : wall_high_water(z, t);
	int64_t from = 0, w = -1, prev_next;
	int have = 0;
	/* Starting exactly at a forward step: its gap's fire time is t itself. */
	int32_t o_prev = zone_seg(z, t - 1, &prev_next), o_now = zone_seg(z, t, &prev_next);
	if (o_now > o_prev) {
		int64_t ws = t + o_prev > floor_w ? t + o_prev : floor_w;
		w = wall_match(spec, ws);
		from = ws, have = 1;
		if (w < 0)
			return -1;
		if (w < t + o_now)
			return t * 1000;
	}
	while (t <= limit) {
		int64_t next, dummy;
		int32_t o = zone_seg(z, t, &next);
		int64_t ws = t + o > floor_w ? t + o : floor_w;
		if (!have || ws < from || ws > w) {
			w = wall_match(spec, ws);
			from = ws, have = 1;
			if (w < 0)
				return -1;
		}
		if (next == INT64_MAX || w < next + o)
			return w - o <= limit ? (w - o) * 1000 : -1;
		int32_t o2 = zone_seg(z, next, &dummy);
		if (o2 > o && w < next + o2) /* w lies in the gap: fire once, at the first instant after it */
			return next <= limit ? next * 1000 : -1;
		if (!every_hour && next + o > floor_w)
			floor_w = next + o;
		t = next;
	}
	return -1;
}

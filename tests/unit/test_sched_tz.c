/*
 * sched_tz: TZif parsing, offsets and zoned next fire times on the real files in /usr/share/zoneinfo.
 * Expected instants from zdump -v. Offsets are cross-checked against glibc (localtime_r with TZ set, in a
 * child process per zone, the only place TZ is touched), and sched_next_zone against a minute-by-minute
 * brute force of the documented DST rules around every transition of 2026-2028.
 */
#include "sched_tz.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define NCROSS   10000

static const char *const zones[] = {"Europe/Berlin",
                                    "America/New_York",
                                    "Australia/Lord_Howe",
                                    "Asia/Kolkata",
                                    "Pacific/Apia",
                                    "America/Sao_Paulo",
                                    "UTC"};

static int64_t
utc_s(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
	return sched_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

#define UTC_MS(y, mo, d, h, mi) (utc_s(y, mo, d, h, mi, 0) * 1000)

static struct sched_zone *
load(const char *name)
{
	char err[256] = "";
	struct sched_zone *z = sched_zone_load(name, err, sizeof(err));
	if (z == NULL)
		printf("# load %s: %s\n", name, err);
	return z;
}

static int64_t
next_in(const char *spec, const struct sched_zone *z, int64_t after_ms)
{
	struct sched_spec s;
	char err[128];
	if (sched_parse(spec, strlen(spec), &s, err, sizeof(err)) < 0)
		return -2;
	return sched_next_zone(&s, z, after_ms);
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	unsigned char *buf = malloc(SCHED_ZONE_FILE_MAX);
	*len = fread(buf, 1, SCHED_ZONE_FILE_MAX, f);
	fclose(f);
	return buf;
}

static int
refused(const unsigned char *buf, size_t len)
{
	struct sched_zone *z = (struct sched_zone *)1;
	char err[256] = "";
	int rc = sched_zone_parse(buf, len, &z, err, sizeof(err));
	if (rc == 0)
		sched_zone_free(z);
	return rc == -1 && z == NULL && err[0] != '\0';
}

static int
name_refused(const char *name)
{
	char err[256] = "";
	struct sched_zone *z = sched_zone_load(name, err, sizeof(err));
	sched_zone_free(z);
	return z == NULL && err[0] != '\0';
}

/* A minimal v2 TZif image: no transitions, one type (offset type_off), the footer string. Caller frees. */
static unsigned char *
footer_only(const char *footer, int32_t type_off, size_t *len)
{
	static const unsigned char body[] = {0, 0, 0, 0, 0, 0, 'X', 'X', 'X', 0};
	size_t flen = strlen(footer), blen = sizeof(body), n = 0;
	unsigned char *buf = calloc(1, 2 * (44 + blen) + flen + 2);
	for (int part = 0; part < 2; part++) {
		unsigned char *h = buf + n;
		memcpy(h, "TZif2", 5);
		h[39] = 1; /* typecnt */
		h[43] = 4; /* charcnt */
		memcpy(h + 44, body, blen);
		uint32_t u = (uint32_t)type_off;
		h[44] = (unsigned char)(u >> 24), h[45] = (unsigned char)(u >> 16);
		h[46] = (unsigned char)(u >> 8), h[47] = (unsigned char)u;
		n += 44 + blen;
	}
	buf[n++] = '\n';
	memcpy(buf + n, footer, flen);
	n += flen;
	buf[n++] = '\n';
	*len = n;
	return buf;
}

static struct sched_zone *
footer_zone(const char *footer)
{
	size_t len;
	unsigned char *buf = footer_only(footer, 0, &len);
	struct sched_zone *z = NULL;
	char err[256] = "";
	if (sched_zone_parse(buf, len, &z, err, sizeof(err)) < 0)
		printf("# footer %s: %s\n", footer, err);
	free(buf);
	return z;
}

/* splitmix64: reproducible instants for the cross-check. */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* glibc's offsets at when[0..n) with TZ=tz, computed in a child so this process never changes TZ. */
static int
glibc_offsets(const char *tz, const int64_t *when, int32_t *off, size_t n)
{
	int fd[2];
	if (pipe(fd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		setenv("TZ", tz, 1);
		tzset();
		for (size_t i = 0; i < n; i++) {
			time_t t = (time_t)when[i];
			struct tm tm;
			int32_t o = localtime_r(&t, &tm) ? (int32_t)tm.tm_gmtoff : INT32_MIN;
			if (write(fd[1], &o, sizeof(o)) != sizeof(o))
				_exit(1);
		}
		_exit(0);
	}
	close(fd[1]);
	size_t got = 0;
	ssize_t r;
	while (got < n * sizeof(*off) && (r = read(fd[0], (char *)off + got, n * sizeof(*off) - got)) > 0)
		got += (size_t)r;
	close(fd[0]);
	int st;
	waitpid(pid, &st, 0);
	return got == n * sizeof(*off) && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* NCROSS instants in [lo, hi) plus 2,000 in 2026-2030 (where the footer rules take over). Returns mismatches. */
static int
cross_check(const struct sched_zone *z, const char *tz, int64_t lo, int64_t hi, uint64_t seed)
{
	size_t n = NCROSS + 2000;
	int64_t *when = malloc(n * sizeof(*when));
	int32_t *off = malloc(n * sizeof(*off));
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t a = i < NCROSS ? lo : utc_s(2026, 1, 1, 0, 0, 0),
		        b = i < NCROSS ? hi : utc_s(2030, 1, 1, 0, 0, 0);
		when[i] = a + (int64_t)(rnd(&seed) % (uint64_t)(b - a));
	}
	if (glibc_offsets(tz, when, off, n) < 0)
		bad = -1;
	for (size_t i = 0; bad >= 0 && i < n; i++) {
		if (sched_zone_offset(z, when[i]) != off[i]) {
			if (bad++ < 3)
				printf("# %s at %lld: ours %d glibc %d\n", tz, (long long)when[i],
				       sched_zone_offset(z, when[i]), off[i]);
		}
	}
	free(when);
	free(off);
	return bad;
}

static void
test_offsets(void)
{
	struct sched_zone *be = load("Europe/Berlin"), *ny = load("America/New_York"),
	                  *lh = load("Australia/Lord_Howe");
	struct sched_zone *ko = load("Asia/Kolkata"), *ap = load("Pacific/Apia"), *sp = load("America/Sao_Paulo");
	struct sched_zone *u = load("UTC"), *eu = load("Etc/UTC");
	T_CHECK("all zones load", be && ny && lh && ko && ap && sp && u && eu);
	if (!(be && ny && lh && ko && ap && sp && u && eu))
		return;
	T_CHECK("Berlin winter", sched_zone_offset(be, utc_s(2026, 12, 3, 12, 0, 0)) == 3600);
	T_CHECK("Berlin before spring forward", sched_zone_offset(be, utc_s(2027, 3, 28, 0, 59, 59)) == 3600);
	T_CHECK("Berlin at spring forward", sched_zone_offset(be, utc_s(2027, 3, 28, 1, 0, 0)) == 7200);
	T_CHECK("Berlin before fall back", sched_zone_offset(be, utc_s(2027, 10, 31, 0, 59, 59)) == 7200);
	T_CHECK("Berlin at fall back", sched_zone_offset(be, utc_s(2027, 10, 31, 1, 0, 0)) == 3600);
	T_CHECK("Berlin 2100 summer (footer rule)", sched_zone_offset(be, utc_s(2100, 7, 1, 12, 0, 0)) == 7200);
	T_CHECK("Berlin 2100 winter (footer rule)", sched_zone_offset(be, utc_s(2100, 1, 15, 12, 0, 0)) == 3600);
	T_CHECK("Berlin 2100 spring forward", sched_zone_offset(be, utc_s(2100, 3, 28, 0, 59, 59)) == 3600 &&
	                                              sched_zone_offset(be, utc_s(2100, 3, 28, 1, 0, 0)) == 7200);
	T_CHECK("Berlin 1893 local mean time", sched_zone_offset(be, utc_s(1850, 1, 1, 0, 0, 0)) == 3208);
	T_CHECK("New York EDT", sched_zone_offset(ny, utc_s(2027, 3, 14, 7, 0, 0)) == -14400);
	T_CHECK("New York EST before", sched_zone_offset(ny, utc_s(2027, 3, 14, 6, 59, 59)) == -18000);
	T_CHECK("New York fall back", sched_zone_offset(ny, utc_s(2027, 11, 7, 5, 59, 59)) == -14400 &&
	                                      sched_zone_offset(ny, utc_s(2027, 11, 7, 6, 0, 0)) == -18000);
	T_CHECK("New York 2100 summer", sched_zone_offset(ny, utc_s(2100, 7, 1, 0, 0, 0)) == -14400);
	T_CHECK("Lord Howe 30-min DST starts", sched_zone_offset(lh, utc_s(2027, 10, 2, 15, 29, 59)) == 37800 &&
	                                               sched_zone_offset(lh, utc_s(2027, 10, 2, 15, 30, 0)) == 39600);
	T_CHECK("Lord Howe DST ends", sched_zone_offset(lh, utc_s(2027, 4, 3, 14, 59, 59)) == 39600 &&
	                                      sched_zone_offset(lh, utc_s(2027, 4, 3, 15, 0, 0)) == 37800);
	T_CHECK("Lord Howe 2100 (southern rule)", sched_zone_offset(lh, utc_s(2100, 1, 1, 0, 0, 0)) == 39600 &&
	                                                  sched_zone_offset(lh, utc_s(2100, 7, 1, 0, 0, 0)) == 37800);
	T_CHECK("Kolkata +05:30", sched_zone_offset(ko, utc_s(2026, 12, 3, 0, 0, 0)) == 19800 &&
	                                  sched_zone_offset(ko, utc_s(2100, 6, 1, 0, 0, 0)) == 19800);
	T_CHECK("Apia before the skipped day", sched_zone_offset(ap, utc_s(2011, 12, 30, 9, 59, 59)) == -36000);
	T_CHECK("Apia after the skipped day", sched_zone_offset(ap, utc_s(2011, 12, 30, 10, 0, 0)) == 50400);
	T_CHECK("Apia today (+13, no DST)", sched_zone_offset(ap, utc_s(2030, 1, 1, 0, 0, 0)) == 46800);
	T_CHECK("Sao Paulo DST 2018", sched_zone_offset(sp, utc_s(2018, 12, 1, 0, 0, 0)) == -7200);
	T_CHECK("Sao Paulo after 2019 (no rules)",
	        sched_zone_offset(sp, utc_s(2019, 2, 17, 2, 0, 0)) == -10800 &&
	                sched_zone_offset(sp, utc_s(2030, 1, 15, 0, 0, 0)) == -10800);
	T_CHECK("UTC and Etc/UTC", sched_zone_offset(u, utc_s(2027, 7, 1, 0, 0, 0)) == 0 &&
	                                   sched_zone_offset(eu, utc_s(1900, 1, 1, 0, 0, 0)) == 0);
	T_CHECK("NULL zone is UTC", sched_zone_offset(NULL, 12345) == 0);

	struct sched_zone *all[] = {be, ny, lh, ko, ap, sp, u};
	int64_t lo = utc_s(1920, 1, 1, 0, 0, 0), hi = utc_s(2200, 1, 1, 0, 0, 0);
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		char name[128], tz[128];
		snprintf(tz, sizeof(tz), ":%s%s", ZONEINFO, zones[i]);
		snprintf(name, sizeof(name), "%s: %d random offsets 1920-2200 + 2000 in 2026-2030 agree with glibc",
		         zones[i], NCROSS);
		T_CHECK(name, cross_check(all[i], tz, lo, hi, 42 + i) == 0);
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sched_zone_free(all[i]);
	sched_zone_free(eu);
}

/* POSIX footer forms on synthetic files: Jn, n, negative and >24 h times, all-year DST, <+0330>-3:30. */
static void
test_footers(void)
{
	struct sched_zone *z = footer_zone("<+0330>-3:30");
	T_CHECK("footer <+0330>-3:30", z && sched_zone_offset(z, utc_s(2030, 6, 1, 0, 0, 0)) == 12600);
	sched_zone_free(z);
	/* Jn: J60 is March 1 in every year (Feb 29 never counted); 02:00 local standard time (-3 h) = 05:00Z. */
	z = footer_zone("<-03>3<-02>,J60,J300");
	T_CHECK("footer Jn leap year", z && sched_zone_offset(z, utc_s(2028, 3, 1, 4, 59, 59)) == -10800 &&
	                                       sched_zone_offset(z, utc_s(2028, 3, 1, 5, 0, 0)) == -7200);
	T_CHECK("footer Jn common year", z && sched_zone_offset(z, utc_s(2027, 3, 1, 5, 0, 0)) == -7200 &&
	                                         sched_zone_offset(z, utc_s(2027, 2, 28, 12, 0, 0)) == -10800);
	sched_zone_free(z);
	/* n: zero-based, Feb 29 counted: day 59 is Feb 29 in 2028 and March 1 in 2027. */
	z = footer_zone("<-03>3<-02>,59,299");
	T_CHECK("footer n leap year", z && sched_zone_offset(z, utc_s(2028, 2, 29, 5, 0, 0)) == -7200 &&
	                                      sched_zone_offset(z, utc_s(2028, 2, 29, 4, 59, 59)) == -10800);
	T_CHECK("footer n common year", z && sched_zone_offset(z, utc_s(2027, 3, 1, 5, 0, 0)) == -7200);
	sched_zone_free(z);
	/* Negative time (Nuuk): last Sunday of March at -1:00 local standard = Saturday 23:00 -02 = Sunday 01:00Z. */
	z = footer_zone("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
	T_CHECK("footer negative time", z && sched_zone_offset(z, utc_s(2027, 3, 28, 0, 59, 59)) == -7200 &&
	                                        sched_zone_offset(z, utc_s(2027, 3, 28, 1, 0, 0)) == -3600);
	sched_zone_free(z);
	/* >24 h (Israel-style): 4th Thursday of March at 26:00 = Friday 02:00 IST = 00:00Z (2027-03-26). */
	z = footer_zone("IST-2IDT,M3.4.4/26,M10.5.0");
	T_CHECK("footer time over 24 h", z && sched_zone_offset(z, utc_s(2027, 3, 25, 23, 59, 59)) == 7200 &&
	                                         sched_zone_offset(z, utc_s(2027, 3, 26, 0, 0, 0)) == 10800);
	sched_zone_free(z);
	/* RFC 8536 3.3.1: DST all year. */
	z = footer_zone("EST5EDT,0/0,J365/25");
	T_CHECK("footer DST all year", z && sched_zone_offset(z, utc_s(2030, 1, 1, 0, 30, 0)) == -14400 &&
	                                       sched_zone_offset(z, utc_s(2030, 6, 1, 0, 0, 0)) == -14400 &&
	                                       sched_zone_offset(z, utc_s(2030, 12, 31, 23, 59, 0)) == -14400);
	sched_zone_free(z);
	z = footer_zone("EST5EDT");
	T_CHECK("footer dst without rule: US default", z && sched_zone_offset(z, utc_s(2027, 7, 1, 0, 0, 0)) == -14400);
	sched_zone_free(z);
	/* The same strings through glibc's own POSIX TZ parser. Not "EST5EDT,0/0,J365/25": glibc compares an
	 * instant with its own year's two transitions only, so it shows EST in the first 5 hours (UTC) of each
	 * year, where RFC 8536 3.3.1 means DST all year (checked above). */
	static const char *const posix[] = {"<+0330>-3:30",
	                                    "<-03>3<-02>,J60,J300",
	                                    "<-03>3<-02>,59,299",
	                                    "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
	                                    "IST-2IDT,M3.4.4/26,M10.5.0",
	                                    "CET-1CEST,M3.5.0,M10.5.0/3",
	                                    "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0"};
	for (size_t i = 0; i < sizeof(posix) / sizeof(posix[0]); i++) {
		char name[160];
		z = footer_zone(posix[i]);
		snprintf(name, sizeof(name), "footer %s: offsets 1971-2200 agree with glibc", posix[i]);
		T_CHECK(name, z && cross_check(z, posix[i], utc_s(1971, 1, 1, 0, 0, 0), utc_s(2200, 1, 1, 0, 0, 0),
		                               7 + i) == 0);
		sched_zone_free(z);
	}
	static const char *const badfoot[] = {"CET",
	                                      "CET-1CEST,M3.5.0",
	                                      "CET-25",
	                                      "CET-1CEST,M13.5.0,M10.5.0",
	                                      "CE-1",
	                                      "<CE>-1",
	                                      "CET-1CEST,M3.6.0,M10.5.0",
	                                      "CET-1CEST,J0,J300",
	                                      "CET-1CEST,M3.5.0/168,M10.5.0",
	                                      "CET-1 junk"};
	for (size_t i = 0; i < sizeof(badfoot) / sizeof(badfoot[0]); i++) {
		char name[160];
		size_t len;
		unsigned char *buf = footer_only(badfoot[i], 0, &len);
		snprintf(name, sizeof(name), "footer %s refused", badfoot[i]);
		T_CHECK(name, refused(buf, len));
		free(buf);
	}
}

static void
test_next(void)
{
	struct sched_zone *be = load("Europe/Berlin"), *ny = load("America/New_York"),
	                  *lh = load("Australia/Lord_Howe");
	struct sched_zone *ko = load("Asia/Kolkata"), *ap = load("Pacific/Apia"), *u = load("UTC");
	if (!(be && ny && lh && ko && ap && u))
		return;
	/* Berlin spring forward 2027-03-28 01:00Z: 02:00-02:59 does not exist. */
	T_CHECK("Berlin 30 2 in the gap fires at 03:00 CEST",
	        next_in("30 2 * * *", be, UTC_MS(2027, 3, 27, 12, 0)) == UTC_MS(2027, 3, 28, 1, 0));
	T_CHECK("Berlin 30 2 asked 1 ms before the gap fire",
	        next_in("30 2 * * *", be, UTC_MS(2027, 3, 28, 1, 0) - 1) == UTC_MS(2027, 3, 28, 1, 0));
	T_CHECK("Berlin 30 2 asked 0.5 s before the gap fire",
	        next_in("30 2 * * *", be, UTC_MS(2027, 3, 28, 1, 0) - 500) == UTC_MS(2027, 3, 28, 1, 0));
	T_CHECK("Berlin 30 2 the day after",
	        next_in("30 2 * * *", be, UTC_MS(2027, 3, 28, 1, 0)) == UTC_MS(2027, 3, 29, 0, 30));
	T_CHECK("Berlin 0 * before the gap",
	        next_in("0 * * * *", be, UTC_MS(2027, 3, 27, 23, 30)) == UTC_MS(2027, 3, 28, 0, 0));
	T_CHECK("Berlin 0 * 02:00 collapses into 03:00",
	        next_in("0 * * * *", be, UTC_MS(2027, 3, 28, 0, 0)) == UTC_MS(2027, 3, 28, 1, 0));
	T_CHECK("Berlin 0 * after the gap",
	        next_in("0 * * * *", be, UTC_MS(2027, 3, 28, 1, 0)) == UTC_MS(2027, 3, 28, 2, 0));
	T_CHECK("Berlin */15 gap minutes collapse",
	        next_in("*/15 * * * *", be, UTC_MS(2027, 3, 28, 0, 45)) == UTC_MS(2027, 3, 28, 1, 0));
	T_CHECK("Berlin */15 resumes at 03:15 CEST",
	        next_in("*/15 * * * *", be, UTC_MS(2027, 3, 28, 1, 0)) == UTC_MS(2027, 3, 28, 1, 15));
	T_CHECK("Berlin 0 9 1-5 across spring forward",
	        next_in("0 9 * * 1-5", be, UTC_MS(2027, 3, 26, 8, 0)) == UTC_MS(2027, 3, 29, 7, 0));
	/* Berlin fall back 2027-10-31 01:00Z: 02:00-02:59 occurs twice. */
	T_CHECK("Berlin 30 2 fires at the first 02:30",
	        next_in("30 2 * * *", be, UTC_MS(2027, 10, 30, 12, 0)) == UTC_MS(2027, 10, 31, 0, 30));
	T_CHECK("Berlin 30 2 skips the second 02:30",
	        next_in("30 2 * * *", be, UTC_MS(2027, 10, 31, 0, 30)) == UTC_MS(2027, 11, 1, 1, 30));
	T_CHECK("Berlin 30 2 asked inside the repeated hour skips it",
	        next_in("30 2 * * *", be, UTC_MS(2027, 10, 31, 1, 10)) == UTC_MS(2027, 11, 1, 1, 30));
	T_CHECK("Berlin */15 2 skips the whole second 02:xx",
	        next_in("*/15 2 * * *", be, UTC_MS(2027, 10, 31, 0, 50)) == UTC_MS(2027, 11, 1, 1, 0));
	T_CHECK("Berlin 0 * first 02:00",
	        next_in("0 * * * *", be, UTC_MS(2027, 10, 30, 23, 30)) == UTC_MS(2027, 10, 31, 0, 0));
	T_CHECK("Berlin 0 * second 02:00",
	        next_in("0 * * * *", be, UTC_MS(2027, 10, 31, 0, 0)) == UTC_MS(2027, 10, 31, 1, 0));
	T_CHECK("Berlin 0 * then 03:00 CET",
	        next_in("0 * * * *", be, UTC_MS(2027, 10, 31, 1, 0)) == UTC_MS(2027, 10, 31, 2, 0));
	T_CHECK("Berlin */15 fires in both occurrences",
	        next_in("*/15 * * * *", be, UTC_MS(2027, 10, 31, 0, 45)) == UTC_MS(2027, 10, 31, 1, 0));
	T_CHECK("Berlin 0 9 1-5 across fall back",
	        next_in("0 9 * * 1-5", be, UTC_MS(2027, 10, 29, 7, 0)) == UTC_MS(2027, 11, 1, 8, 0));
	T_CHECK("Berlin 2100 spring forward (footer)",
	        next_in("30 2 * * *", be, UTC_MS(2100, 3, 27, 12, 0)) == UTC_MS(2100, 3, 28, 1, 0));
	T_CHECK("Berlin 2100 fall back (footer)",
	        next_in("30 2 * * *", be, UTC_MS(2100, 10, 31, 0, 30)) == UTC_MS(2100, 11, 1, 1, 30));
	/* New York 2027: spring forward Mar 14 07:00Z, fall back Nov 7 06:00Z (01:00-01:59 twice). */
	T_CHECK("NY 30 2 in the gap",
	        next_in("30 2 * * *", ny, UTC_MS(2027, 3, 13, 12, 0)) == UTC_MS(2027, 3, 14, 7, 0));
	T_CHECK("NY 30 2 next day", next_in("30 2 * * *", ny, UTC_MS(2027, 3, 14, 7, 0)) == UTC_MS(2027, 3, 15, 6, 30));
	T_CHECK("NY 0 * at the gap", next_in("0 * * * *", ny, UTC_MS(2027, 3, 14, 6, 30)) == UTC_MS(2027, 3, 14, 7, 0));
	T_CHECK("NY */15 at the gap",
	        next_in("*/15 * * * *", ny, UTC_MS(2027, 3, 14, 6, 50)) == UTC_MS(2027, 3, 14, 7, 0));
	T_CHECK("NY 0 9 1-5 across spring",
	        next_in("0 9 * * 1-5", ny, UTC_MS(2027, 3, 12, 14, 0)) == UTC_MS(2027, 3, 15, 13, 0));
	T_CHECK("NY 30 1 first occurrence",
	        next_in("30 1 * * *", ny, UTC_MS(2027, 11, 6, 12, 0)) == UTC_MS(2027, 11, 7, 5, 30));
	T_CHECK("NY 30 1 skips the second",
	        next_in("30 1 * * *", ny, UTC_MS(2027, 11, 7, 5, 30)) == UTC_MS(2027, 11, 8, 6, 30));
	T_CHECK("NY 30 2 on fall-back day",
	        next_in("30 2 * * *", ny, UTC_MS(2027, 11, 6, 12, 0)) == UTC_MS(2027, 11, 7, 7, 30));
	T_CHECK("NY 0 * both 01:00", next_in("0 * * * *", ny, UTC_MS(2027, 11, 7, 5, 0)) == UTC_MS(2027, 11, 7, 6, 0));
	T_CHECK("NY */15 both occurrences",
	        next_in("*/15 * * * *", ny, UTC_MS(2027, 11, 7, 5, 50)) == UTC_MS(2027, 11, 7, 6, 0));
	T_CHECK("NY 0 9 1-5 across fall back",
	        next_in("0 9 * * 1-5", ny, UTC_MS(2027, 11, 5, 13, 0)) == UTC_MS(2027, 11, 8, 14, 0));
	/* Lord Howe: 30-minute steps. Spring 2027-10-02 15:30Z (02:00-02:29 missing), fall 2027-04-03 15:00Z. */
	T_CHECK("Lord Howe 0 2 in the half-hour gap",
	        next_in("0 2 * * *", lh, UTC_MS(2027, 10, 2, 0, 0)) == UTC_MS(2027, 10, 2, 15, 30));
	T_CHECK("Lord Howe 30 2 exists",
	        next_in("30 2 * * *", lh, UTC_MS(2027, 10, 2, 0, 0)) == UTC_MS(2027, 10, 2, 15, 30));
	T_CHECK("Lord Howe */15 gap",
	        next_in("*/15 * * * *", lh, UTC_MS(2027, 10, 2, 15, 20)) == UTC_MS(2027, 10, 2, 15, 30));
	T_CHECK("Lord Howe */15 after gap",
	        next_in("*/15 * * * *", lh, UTC_MS(2027, 10, 2, 15, 30)) == UTC_MS(2027, 10, 2, 15, 45));
	T_CHECK("Lord Howe 45 1 first",
	        next_in("45 1 * * *", lh, UTC_MS(2027, 4, 3, 12, 0)) == UTC_MS(2027, 4, 3, 14, 45));
	T_CHECK("Lord Howe 45 1 skips second",
	        next_in("45 1 * * *", lh, UTC_MS(2027, 4, 3, 14, 45)) == UTC_MS(2027, 4, 4, 15, 15));
	T_CHECK("Lord Howe */15 repeats 01:30",
	        next_in("*/15 * * * *", lh, UTC_MS(2027, 4, 3, 14, 50)) == UTC_MS(2027, 4, 3, 15, 0));
	T_CHECK("Lord Howe */15 repeats 01:45",
	        next_in("*/15 * * * *", lh, UTC_MS(2027, 4, 3, 15, 0)) == UTC_MS(2027, 4, 3, 15, 15));
	T_CHECK("Kolkata 0 9", next_in("0 9 * * *", ko, UTC_MS(2026, 12, 3, 0, 0)) == UTC_MS(2026, 12, 3, 3, 30));
	/* Apia skipped 2011-12-30: its 09:00 fires once at the first instant after the gap. */
	T_CHECK("Apia 0 9 on Dec 29",
	        next_in("0 9 * * *", ap, UTC_MS(2011, 12, 29, 0, 0)) == UTC_MS(2011, 12, 29, 19, 0));
	T_CHECK("Apia 0 9 on the skipped day",
	        next_in("0 9 * * *", ap, UTC_MS(2011, 12, 29, 19, 0)) == UTC_MS(2011, 12, 30, 10, 0));
	T_CHECK("Apia 0 9 on Dec 31",
	        next_in("0 9 * * *", ap, UTC_MS(2011, 12, 30, 10, 0)) == UTC_MS(2011, 12, 30, 19, 0));
	T_CHECK("Apia Dec 30 only",
	        next_in("0 9 30 12 *", ap, UTC_MS(2011, 1, 1, 0, 0)) == UTC_MS(2011, 12, 30, 10, 0));
	/* UTC, NULL, @every, never. */
	int64_t t0 = UTC_MS(2026, 12, 3, 11, 41);
	static const char *const specs[] = {"*/15 * * * *", "0 9 * * 1-5", "30 2 * * *", "0 0 29 2 *", "@hourly"};
	int same = 1;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct sched_spec s;
		sched_parse(specs[i], strlen(specs[i]), &s, NULL, 0);
		same &= sched_next_zone(&s, u, t0) == sched_next_utc(&s, t0) &&
		        sched_next_zone(&s, NULL, t0) == sched_next_utc(&s, t0);
	}
	T_CHECK("UTC zone and NULL agree with sched_next_utc", same);
	T_CHECK("@every ignores the zone", next_in("@every 90m", be, t0) == next_in("@every 90m", NULL, t0));
	T_CHECK("Feb 30 never fires in a zone", next_in("0 0 30 2 *", be, t0) == -1);
	T_CHECK("leap day in a zone", next_in("0 0 29 2 *", be, t0) == UTC_MS(2028, 2, 28, 23, 0));
	T_CHECK("out-of-range instant refused", next_in("* * * * *", be, SCHED_ZONE_RANGE_MS + 1) == -1);
	sched_zone_free(be), sched_zone_free(ny), sched_zone_free(lh), sched_zone_free(ko), sched_zone_free(ap);
	sched_zone_free(u);
}

static void
test_refusals(void)
{
	size_t len;
	unsigned char *be = slurp(ZONEINFO "Europe/Berlin", &len);
	T_CHECK("read Berlin", be != NULL && len > 100);
	if (be == NULL)
		return;
	int all = 1;
	for (size_t cut = 0; cut < len; cut++) /* every truncation: the footer's final newline is the last byte */
		all &= refused(be, cut);
	T_CHECK("every truncated Berlin refused", all);
	struct sched_zone *z = NULL;
	T_CHECK("whole Berlin accepted", sched_zone_parse(be, len, &z, NULL, 0) == 0 && z != NULL);
	sched_zone_free(z);
	unsigned char *c = malloc(len);
	static const struct {
		const char *name;
		size_t at;
		unsigned char byte;
	} pokes[] = {
	        {"bad magic", 0, 'X'}, {"bad version", 4, '9'}, {"type count 0", 39, 0}, {"type count huge", 36, 0x7f}};
	for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		memcpy(c, be, len);
		c[pokes[i].at] = pokes[i].byte;
		if (pokes[i].at == 39)
			c[36] = c[37] = c[38] = 0;
		T_CHECK(pokes[i].name, refused(c, len));
	}
	/* The v2 header and block: counts at known places, so poke a type index, a time and an offset. */
	uint32_t v1len = 0;
	{
		uint32_t tc = (uint32_t)be[32] << 24 | be[33] << 16 | be[34] << 8 | be[35];
		uint32_t ty = (uint32_t)be[36] << 24 | be[37] << 16 | be[38] << 8 | be[39];
		uint32_t ch = (uint32_t)be[40] << 24 | be[41] << 16 | be[42] << 8 | be[43];
		uint32_t is = (uint32_t)be[24] << 24 | be[25] << 16 | be[26] << 8 | be[27];
		uint32_t iu = (uint32_t)be[20] << 24 | be[21] << 16 | be[22] << 8 | be[23];
		v1len = 44 + tc * 5 + ty * 6 + ch + is + iu;
	}
	const unsigned char *h2 = be + v1len;
	uint32_t tc2 = (uint32_t)h2[32] << 24 | h2[33] << 16 | h2[34] << 8 | h2[35];
	size_t times = v1len + 44, idx = times + tc2 * 8, types = idx + tc2;
	memcpy(c, be, len);
	c[idx + 3] = 200;
	T_CHECK("type index out of range", refused(c, len));
	memcpy(c, be, len);
	memcpy(c + times + 8 * 5, c + times + 8 * 4, 8); /* two equal times */
	T_CHECK("times not ascending", refused(c, len));
	memcpy(c, be, len);
	c[types] = 0x7f; /* offset of type 0 about +596 hours */
	T_CHECK("offset beyond 26 h", refused(c, len));
	memcpy(c, be, len);
	c[types + 4] = 2;
	T_CHECK("isdst 2", refused(c, len));
	memcpy(c, be, len);
	c[v1len + 31] = 1; /* leapcnt 1 */
	T_CHECK("leap-second file refused", refused(c, len));
	memcpy(c, be, len);
	c[len - 2] = '!'; /* "...M10.5.0/!" */
	T_CHECK("bad footer refused", refused(c, len));
	memcpy(c, be, len);
	c[len - 1] = 'x';
	T_CHECK("unterminated footer refused", refused(c, len));
	T_CHECK("NULL buffer refused", refused(NULL, 0));
	/* v1 only: Berlin's 32-bit block with the version byte cleared; no footer, the last type stays. */
	memcpy(c, be, len);
	c[4] = 0;
	z = NULL;
	T_CHECK("v1 block parses", sched_zone_parse(c, v1len, &z, NULL, 0) == 0 && z != NULL);
	T_CHECK("v1 offsets", z && sched_zone_offset(z, utc_s(2027, 7, 1, 0, 0, 0)) == 7200 &&
	                              sched_zone_offset(z, utc_s(2027, 1, 1, 0, 0, 0)) == 3600);
	sched_zone_free(z);
	free(c);
	free(be);

	T_CHECK("name ../etc/passwd", name_refused("../etc/passwd"));
	T_CHECK("name /etc/passwd", name_refused("/etc/passwd"));
	T_CHECK("name empty", name_refused(""));
	T_CHECK("name NULL", name_refused(NULL));
	T_CHECK("name Europe/../Berlin", name_refused("Europe/../Berlin"));
	T_CHECK("name Europe/./Berlin", name_refused("Europe/./Berlin"));
	T_CHECK("name Europe//Berlin", name_refused("Europe//Berlin"));
	T_CHECK("name trailing slash", name_refused("Europe/"));
	T_CHECK("name with space", name_refused("Europe/Ber lin"));
	char longname[SCHED_ZONE_NAME_MAX + 2];
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	T_CHECK("name 65 chars", name_refused(longname));
	longname[SCHED_ZONE_NAME_MAX] = '\0';
	T_CHECK("name 64 chars valid but missing", name_refused(longname));
	T_CHECK("name No/Such_Zone", name_refused("No/Such_Zone"));
	T_CHECK("a directory is not a zone", name_refused("Europe"));
	setenv("TZDIR", ZONEINFO "Europe", 1);
	z = load("Berlin");
	T_CHECK("TZDIR honoured", z && sched_zone_offset(z, utc_s(2027, 7, 1, 0, 0, 0)) == 7200);
	sched_zone_free(z);
	unsetenv("TZDIR");
	z = load("Etc/GMT-14");
	T_CHECK("Etc/GMT-14 is +14", z && sched_zone_offset(z, 0) == 50400);
	sched_zone_free(z);
}

/* ---- brute force: the DST rules of sched_tz.h, one UTC minute at a time ---- */

static int
wall_matches(const struct sched_spec *s, int64_t wall_s)
{
	int64_t days = wall_s / 86400, mod = wall_s % 86400, y;
	unsigned m, d;
	sched_civil_from_days(days, &y, &m, &d);
	int dow = (int)((days % 7 + 11) % 7);
	int dom_ok = (s->dom >> d) & 1, dow_ok = (s->dow >> dow) & 1;
	int day_ok = (s->dom_star || s->dow_star) ? dom_ok && dow_ok : dom_ok || dow_ok;
	return day_ok && ((s->month >> m) & 1) && ((s->hour >> (mod / 3600)) & 1) &&
	       ((s->minute >> (mod / 60 % 60)) & 1);
}

/* Modern offsets are whole minutes, so walls of whole UTC minutes are whole wall minutes. -1: none in 3 days. */
static int64_t
brute_next(const struct sched_spec *s, const struct sched_zone *z, int64_t after_ms)
{
	int every_hour = (s->hour & 0xffffff) == 0xffffff;
	int64_t first = after_ms / 60000 + 1, hw = INT64_MIN, prev = 0;
	for (int64_t u = first - 1440; u < first + 3 * 1440; u++) {
		int64_t wall = u * 60 + sched_zone_offset(z, u * 60);
		int fire = wall_matches(s, wall) && (every_hour || wall >= hw);
		if (u > first - 1440)
			for (int64_t x = prev + 60; !fire && x < wall; x += 60) /* wall minutes skipped by a gap */
				fire = wall_matches(s, x) && (every_hour || x >= hw);
		if (fire && u >= first)
			return u * 60000;
		if (wall + 60 > hw)
			hw = wall + 60;
		prev = wall;
	}
	return -1;
}

/* Around each offset change of 2026-2028 (and Apia's 2011), from 3 h before to 3 h after, every 7 minutes. */
static void
test_brute(void)
{
	static const char *const specs[] = {"30 2 * * *",  "0 * * * *",    "*/15 * * * *",   "0 9 * * 1-5",
	                                    "45 1 * * *",  "*/10 2 * * *", "0,30 0-3 * * *", "0 0 * * *",
	                                    "59 23 * * *", "5 1-3 * * 0"};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		struct sched_zone *z = load(zones[i]);
		if (z == NULL)
			continue;
		int n = 0, bad = 0;
		int64_t lo = strcmp(zones[i], "Pacific/Apia") == 0 ? utc_s(2011, 12, 20, 0, 0, 0)
		                                                   : utc_s(2026, 1, 1, 0, 0, 0);
		int64_t hi = lo + 3 * 366 * 86400LL;
		for (int64_t t = lo; t < hi; t += 3600) {
			if (sched_zone_offset(z, t) == sched_zone_offset(z, t + 3600))
				continue;
			int64_t lo_t = t, hi_t = t + 3600; /* the exact step: offset(lo_t) != offset(hi_t) */
			while (hi_t - lo_t > 1) {
				int64_t mid = lo_t + (hi_t - lo_t) / 2;
				if (sched_zone_offset(z, mid) == sched_zone_offset(z, lo_t))
					lo_t = mid;
				else
					hi_t = mid;
			}
			int64_t at[3] = {hi_t * 1000 - 1, hi_t * 1000, hi_t * 1000 + 1};
			for (int64_t a = (t - 3 * 3600) * 1000, j = 0; a < (t + 4 * 3600) * 1000 || j < 3;
			     a = a < (t + 4 * 3600) * 1000 ? a + 7 * 60000 + 13000 : at[j++])
				for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
					struct sched_spec s;
					sched_parse(specs[k], strlen(specs[k]), &s, NULL, 0);
					int64_t want = brute_next(&s, z, a), got = sched_next_zone(&s, z, a);
					n++;
					if (want != -1 && got != want && bad++ < 5)
						printf("# %s %s after %lld: got %lld want %lld\n", zones[i], specs[k],
						       (long long)a, (long long)got, (long long)want);
				}
		}
		char name[160];
		snprintf(name, sizeof(name),
		         "%s: sched_next_zone matches the brute force (%d queries near transitions)", zones[i], n);
		T_CHECK(name,
		        bad == 0 && (n > 0 || strcmp(zones[i], "UTC") == 0 || strcmp(zones[i], "Asia/Kolkata") == 0 ||
		                     strcmp(zones[i], "America/Sao_Paulo") == 0));
		sched_zone_free(z);
	}
}

/* Efficiency: a spec that never fires walks 29 years of a DST zone without minute steps. */
static void
test_cost(void)
{
	struct sched_zone *be = load("Europe/Berlin");
	clock_t c0 = clock();
	int64_t r = 0;
	for (int i = 0; i < 20; i++)
		r |= next_in("0 0 30 2 *", be, UTC_MS(2026, 12, 3, 0, 0) + i);
	double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	printf("# 20 never-firing searches over 29 years: %.3f s CPU\n", secs);
	T_CHECK("never-firing spec gives -1", r == -1);
	struct sched_spec s;
	sched_parse("0 9 * * 1-5", 11, &s, NULL, 0);
	int64_t at = UTC_MS(2026, 12, 3, 0, 0), fires = 0, ordered = 1;
	c0 = clock();
	for (int i = 0; i < 10000 && at > 0; i++, fires++) { /* 10,000 consecutive fires: about 38 years */
		int64_t n = sched_next_zone(&s, be, at);
		ordered &= n > at;
		at = n;
	}
	secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	printf("# 10,000 consecutive weekday fires in Europe/Berlin: %.1f us each\n", secs * 1e6 / 10000);
	T_CHECK("10,000 consecutive fires, each after the last", fires == 10000 && at > 0 && ordered);
	sched_zone_free(be);
}

int
main(void)
{
	test_offsets();
	test_footers();
	test_next();
	test_refusals();
	test_brute();
	test_cost();
	T_DONE();
}

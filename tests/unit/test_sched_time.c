/* sched_time: cron / @macro / @every parsing and next fire time in UTC. Expected instants from date -u. */
#include "sched_time.h"
#include "t.h"

/* Unix ms of a UTC wall time. */
static int64_t
utc(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
	return ((sched_days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + s) * 1000;
}

static int64_t
next(const char *spec, int64_t after)
{
	struct sched_spec s;
	char err[128];
	if (sched_parse(spec, strlen(spec), &s, err, sizeof(err)) < 0)
		return -2;
	return sched_next_utc(&s, after);
}

static int
bad_len(const char *spec, size_t len)
{
	struct sched_spec s;
	char err[128] = "";
	return sched_parse(spec, len, &s, err, sizeof(err)) == -1 && err[0] != '\0';
}

static int
bad(const char *spec)
{
	struct sched_spec s;
	char err[128] = "";
	return sched_parse(spec, strlen(spec), &s, err, sizeof(err)) == -1 && err[0] != '\0';
}

int
main(void)
{
	int64_t t0 = utc(2026, 12, 3, 11, 41, 23); /* a Thursday */
	T_CHECK("civil epoch", sched_days_from_civil(1970, 1, 1) == 0);
	T_CHECK("civil 2026-12-03", utc(2026, 12, 3, 0, 0, 0) == 1796256000000LL);
	int64_t y;
	unsigned m, d;
	sched_civil_from_days(sched_days_from_civil(2000, 2, 29), &y, &m, &d);
	T_CHECK("civil roundtrip leap day", y == 2000 && m == 2 && d == 29);

	T_CHECK("every minute", next("* * * * *", t0) == utc(2026, 12, 3, 11, 42, 0));
	T_CHECK("strictly after an exact minute",
	        next("* * * * *", utc(2026, 12, 3, 11, 42, 0)) == utc(2026, 12, 3, 11, 43, 0));
	T_CHECK("*/15", next("*/15 * * * *", t0) == utc(2026, 12, 3, 11, 45, 0));
	T_CHECK("list and range", next("5,10-12 9-17 * * *", t0) == utc(2026, 12, 3, 12, 5, 0));
	T_CHECK("range with step", next("0 8-18/5 * * *", t0) == utc(2026, 12, 3, 13, 0, 0));
	T_CHECK("5/20 extension", next("5/20 * * * *", t0) == utc(2026, 12, 3, 11, 45, 0));
	T_CHECK("hour rolls to next day", next("30 3 * * *", t0) == utc(2026, 12, 4, 3, 30, 0));
	T_CHECK("@hourly", next("@hourly", t0) == utc(2026, 12, 3, 12, 0, 0));
	T_CHECK("@daily", next("@daily", t0) == utc(2026, 12, 4, 0, 0, 0));
	T_CHECK("@midnight", next("@midnight", t0) == utc(2026, 12, 4, 0, 0, 0));
	T_CHECK("@weekly is Sunday", next("@weekly", t0) == utc(2026, 12, 6, 0, 0, 0));
	T_CHECK("@monthly", next("@monthly", t0) == utc(2027, 1, 1, 0, 0, 0));
	T_CHECK("@yearly", next("@yearly", t0) == utc(2027, 1, 1, 0, 0, 0));
	T_CHECK("@annually", next("@annually", utc(2027, 1, 1, 0, 0, 0)) == utc(2028, 1, 1, 0, 0, 0));
	T_CHECK("month names", next("0 0 1 mar-may *", t0) == utc(2027, 3, 1, 0, 0, 0));
	T_CHECK("dow names", next("0 12 * * MON,fri", t0) == utc(2026, 12, 4, 12, 0, 0));
	T_CHECK("dow 7 is Sunday", next("0 0 * * 7", t0) == utc(2026, 12, 6, 0, 0, 0));
	T_CHECK("dow list of names", next("0 0 * * sun,sat", t0) == utc(2026, 12, 5, 0, 0, 0));
	T_CHECK("dow range of names", next("0 0 * * mon-wed", t0) == utc(2026, 12, 7, 0, 0, 0));
	T_CHECK("dow range 5-7 ends Sunday",
	        next("0 0 * * 6-7", utc(2026, 12, 5, 1, 0, 0)) == utc(2026, 12, 6, 0, 0, 0));
	/* Vixie OR rule: both restricted -> either matches. 13th of Dec 2026 is Sunday; next Friday is Dec 4. */
	T_CHECK("dom OR dow (dow first)", next("0 0 13 * 5", t0) == utc(2026, 12, 4, 0, 0, 0));
	T_CHECK("dom OR dow (dom first)", next("0 0 5 * 1", t0) == utc(2026, 12, 5, 0, 0, 0));
	/* A star on either side ANDs: Friday the 13th. */
	T_CHECK("dom AND dow when dom starts with *", next("0 0 */2 * 5", t0) == utc(2026, 12, 11, 0, 0, 0));
	T_CHECK("dom alone", next("0 0 13 * *", t0) == utc(2026, 12, 13, 0, 0, 0));
	T_CHECK("leap day 2028", next("0 0 29 2 *", t0) == utc(2028, 2, 29, 0, 0, 0));
	T_CHECK("leap day skips 2100", next("0 0 29 2 *", utc(2097, 1, 1, 0, 0, 0)) == utc(2104, 2, 29, 0, 0, 0));
	T_CHECK("leap day 2000 (div by 400)",
	        next("0 0 29 2 *", utc(1999, 6, 1, 0, 0, 0)) == utc(2000, 2, 29, 0, 0, 0));
	T_CHECK("Feb 30 never", next("0 0 30 2 *", t0) == -1);
	T_CHECK("Apr 31 never", next("0 0 31 4 *", t0) == -1);
	T_CHECK("31st skips short months", next("0 0 31 * *", utc(2027, 1, 31, 1, 0, 0)) == utc(2027, 3, 31, 0, 0, 0));
	T_CHECK("year rollover", next("59 23 31 12 *", t0) == utc(2026, 12, 31, 23, 59, 0));
	T_CHECK("before the epoch", next("0 0 * * *", -1) == 0);
	T_CHECK("tabs and extra spaces", next("  0\t0  * * *  ", t0) == utc(2026, 12, 4, 0, 0, 0));

	T_CHECK("@every 1s", next("@every 1s", t0 + 500) == t0 + 1000);
	T_CHECK("@every 30s anchored at epoch", next("@every 30s", t0) == utc(2026, 12, 3, 11, 41, 30));
	T_CHECK("@every 1h30m", next("@every 1h30m", t0) == utc(2026, 12, 3, 12, 0, 0));
	T_CHECK("@every strictly after", next("@every 5m", utc(2026, 12, 3, 11, 45, 0)) == utc(2026, 12, 3, 11, 50, 0));
	T_CHECK("@every 2d", next("@every 2d", 0) == 2 * 86400000LL);

	T_CHECK("empty", bad(""));
	T_CHECK("4 fields", bad("* * * *"));
	T_CHECK("6 fields", bad("* * * * * *"));
	T_CHECK("minute 60", bad("60 * * * *"));
	T_CHECK("hour 24", bad("0 24 * * *"));
	T_CHECK("dom 0", bad("0 0 0 * *"));
	T_CHECK("month 13", bad("0 0 1 13 *"));
	T_CHECK("dow 8", bad("0 0 * * 8"));
	T_CHECK("reversed range", bad("5-1 * * * *"));
	T_CHECK("reversed name range", bad("0 0 * * sat-sun"));
	T_CHECK("step 0", bad("*/0 * * * *"));
	T_CHECK("step missing", bad("*/ * * * *"));
	T_CHECK("trailing comma", bad("1, * * * *"));
	T_CHECK("bad name", bad("0 0 1 FOO *"));
	T_CHECK("name in minute", bad("MON * * * *"));
	T_CHECK("unknown macro", bad("@sometimes"));
	T_CHECK("@every 0s", bad("@every 0s"));
	T_CHECK("@every 500ms-ish", bad("@every 1"));
	T_CHECK("@every bad unit", bad("@every 3w"));
	T_CHECK("@every too long", bad("@every 367d"));
	T_CHECK("@every huge number", bad("@every 99999999999999999999s"));
	T_CHECK("NUL inside", bad_len("* * *\0* *", 9));
	int64_t j1 = sched_jitter_ms("nightly", t0, 30), j2 = sched_jitter_ms("nightly", t0, 30);
	T_CHECK("jitter deterministic and in range", j1 == j2 && j1 >= 0 && j1 < 30000);
	T_CHECK("jitter 0 is none", sched_jitter_ms("nightly", t0, 0) == 0);
	int differ = 0;
	for (int i = 1; i <= 10; i++)
		differ += sched_jitter_ms("nightly", t0 + i * 60000, 30) != j1;
	T_CHECK("jitter varies with the fire time", differ >= 8);
	T_CHECK("jitter varies with the name",
	        sched_jitter_ms("hourly", t0, 30) != j1 ||
	                sched_jitter_ms("hourly", t0 + 60000, 30) != sched_jitter_ms("nightly", t0 + 60000, 30));
	char longspec[SCHED_SPEC_MAX + 2];
	memset(longspec, '1', sizeof(longspec) - 1);
	longspec[sizeof(longspec) - 1] = '\0';
	T_CHECK("too long", bad(longspec));
	T_DONE();
}

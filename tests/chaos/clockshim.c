/* clockshim: an LD_PRELOAD library that shifts a process's wall clock while it runs, for the chaos checker
 * (tests/chaos/) and any test that needs a clock step.
 *
 *   HOPPER_CLOCK_FILE=/tmp/x/offset LD_PRELOAD=build/chaos/clockshim.so hopperd ...
 *
 * The file holds a decimal number of seconds (e.g. "3600" or "-7.5") padded to at least CLOCKSHIM_SIZE
 * bytes. The shim maps it once and looks at it on every call, so rewriting it in place (without truncating
 * it: tests/chaos/clock.py does this) steps the running process's clock at once. The offset is added to
 * CLOCK_REALTIME and CLOCK_REALTIME_COARSE (clock_gettime), gettimeofday() and time(); CLOCK_MONOTONIC and
 * every other clock are untouched (timeouts on the monotonic clock must not move). No file, an unset
 * variable or text that is not a number mean an offset of 0. */
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CLOCKSHIM_SIZE 64

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static const volatile char *shim_map; /* CLOCKSHIM_SIZE bytes of the offset file, or NULL */

/* The last text seen and its value, per thread: the text is parsed again only when it changed. */
static _Thread_local char last_text[CLOCKSHIM_SIZE + 1];
static _Thread_local double last_offset;

__attribute__((constructor)) static void
shim_init(void)
{
	real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	const char *path = getenv("HOPPER_CLOCK_FILE");
	if (path == NULL || *path == '\0')
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size >= CLOCKSHIM_SIZE) {
		void *m = mmap(NULL, CLOCKSHIM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED)
			shim_map = m;
	}
	close(fd);
}

static double
shim_offset(void)
{
	if (shim_map == NULL)
		return 0;
	char text[CLOCKSHIM_SIZE + 1];
	for (int i = 0; i < CLOCKSHIM_SIZE; i++)
		text[i] = shim_map[i];
	text[CLOCKSHIM_SIZE] = '\0';
	if (memcmp(text, last_text, sizeof text) != 0) {
		memcpy(last_text, text, sizeof text);
		char *end;
		double v = strtod(text, &end);
		last_offset = (end == text || !isfinite(v)) ? 0 : v;
	}
	return last_offset;
}

static void
shift(struct timespec *ts, double off)
{
	double whole = floor(off);
	long ns = ts->tv_nsec + (long)((off - whole) * 1e9);
	ts->tv_sec += (time_t)whole + ns / 1000000000L;
	ts->tv_nsec = ns % 1000000000L;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	if (real_clock_gettime == NULL)
		real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	int r = real_clock_gettime(id, ts);
	if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
		double off = shim_offset();
		if (off != 0)
			shift(ts, off);
	}
	return r;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	tv->tv_sec = ts.tv_sec; /* glibc declares tv nonnull */
	tv->tv_usec = ts.tv_nsec / 1000;
	if (tz != NULL)
		memset(tz, 0, 2 * sizeof(int));
	return 0;
}

time_t
time(time_t *out)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t)-1;
	if (out != NULL)
		*out = ts.tv_sec;
	return ts.tv_sec;
}

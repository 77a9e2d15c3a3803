#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set once by log_init before any other thread or callback exists; read-only afterwards. */
static struct {
	const char *progname;
	enum log_level threshold;
	int journal;
} log_conf = {"hopper", LOG_LVL_INFO, 0};

void
log_init(const char *progname, enum log_level threshold)
{
	log_conf.progname = progname;
	log_conf.threshold = threshold;
	log_conf.journal = !isatty(STDERR_FILENO);
}

int
log_level_parse(const char *name, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} levels[] = {
	        {"error", LOG_LVL_ERROR}, {"warn", LOG_LVL_WARN}, {"info", LOG_LVL_INFO}, {"debug", LOG_LVL_DEBUG}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(name, levels[i].name) == 0) {
			*out = levels[i].level;
			return 0;
		}
	}
	return -1;
}

static const char *
level_word(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERROR: return "error";
	case LOG_LVL_WARN: return "warn";
	case LOG_LVL_INFO: return "info";
	default: return "debug";
	}
}

__attribute__((format(printf, 2, 0))) static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_conf.journal)
		fprintf(stderr, "<%d>%s[%d]: %s\n", (int)level, log_conf.progname, (int)getpid(), line);
	else
		fprintf(stderr, "%s[%d] %s: %s\n", log_conf.progname, (int)getpid(), level_word(level), line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > log_conf.threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

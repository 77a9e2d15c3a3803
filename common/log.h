/*
 * log: levelled logging to stderr, journald-friendly.
 *
 * Each line starts with a syslog priority prefix ("<3>") when stderr is not a terminal, so journald files it
 * at the right level; on a terminal it is a readable level word instead. The only state is the threshold
 * and the program name, set once at start-up.
 */
#ifndef HOPPER_LOG_H
#define HOPPER_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(const char *progname, enum log_level threshold);
/* Parses "error", "warn", "info", "debug". Returns 0 and sets *out, or -1. */
int log_level_parse(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For start-up failures and broken invariants only: logs and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif

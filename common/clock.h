/* clock: wall-clock time as Unix seconds (the unit of every timestamp hopper writes). */
#ifndef HOPPER_CLOCK_H
#define HOPPER_CLOCK_H

double clock_now(void);
/* Milliseconds on the monotonic clock, for timeouts that must not jump with the wall clock. */
double clock_monotonic_ms(void);
/* Formats t as "1764000000.123" into buf (at least 32 bytes). Returns buf. */
char *clock_format(double t, char *buf, unsigned long size);

#endif

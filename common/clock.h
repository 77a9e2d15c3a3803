/*
 * clock: wall-clock time as Unix seconds (the unit of every timestamp hopper writes), and the monotonic clock
 * that every timeout, lease and interval is measured on, so that a step of the wall clock (NTP, an admin,
 * a VM resumed) neither fires them early nor holds them back.
 */
#ifndef HOPPER_CLOCK_H
#define HOPPER_CLOCK_H

double clock_now(void);
/* Seconds on CLOCK_MONOTONIC (an arbitrary origin; only differences mean anything). */
double clock_mono(void);
/* Milliseconds on the monotonic clock, for timeouts that must not jump with the wall clock. */
double clock_monotonic_ms(void);
/* Formats t as "1764000000.123" into buf (at least 32 bytes). Returns buf. */
char *clock_format(double t, char *buf, unsigned long size);

#endif

/*
 * t.h: the unit tests' tiny harness. Each check prints "ok - NAME" or "not ok - NAME: why" (TAP-like);
 * tests/run.sh counts those lines. A test binary exits 1 if any check failed.
 */
#ifndef HOPPER_T_H
#define HOPPER_T_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int t_failed;

#define T_CHECK(name, cond)                                                                                            \
	do {                                                                                                           \
		if (cond)                                                                                              \
			printf("ok - %s\n", (name));                                                                   \
		else {                                                                                                 \
			printf("not ok - %s: %s (%s:%d)\n", (name), #cond, __FILE__, __LINE__);                        \
			t_failed = 1;                                                                                  \
		}                                                                                                      \
	} while (0)

#define T_STREQ(name, a, b)     T_CHECK(name, (a) != NULL && (b) != NULL && strcmp((a), (b)) == 0)
#define T_NEAR(name, a, b, eps) T_CHECK(name, fabs((double)(a) - (double)(b)) <= (eps))
#define T_DONE()                return t_failed ? 1 : 0

#endif

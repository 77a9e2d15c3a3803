/*
 * libhopper_int.h: what libhopper's own files share and its users do not see (not HOPPER_API, so hidden in
 * the shared library).
 */
#ifndef LIBHOPPER_INT_H
#define LIBHOPPER_INT_H

#include "hopper.h"

/* Records a bad argument to a library call (nothing was sent): hopper_errmsg gives what. Returns
 * HOPPER_E_USAGE. */
int libhopper_usage(struct hopper *h, const char *what);

#endif

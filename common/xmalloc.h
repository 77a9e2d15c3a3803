/*
 * xmalloc: allocation for small, internal objects whose size hopper controls. Out of memory there is not
 * recoverable in any useful way, so these die loudly (tmux xmalloc.c). Sizes a client controls (messages,
 * results) are bounded by named limits before they reach these.
 */
#ifndef HOPPER_XMALLOC_H
#define HOPPER_XMALLOC_H

#include <stddef.h>

/* Each returns memory the caller frees with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
/* Copies exactly n bytes of s (which need not be NUL-terminated) and adds a NUL. Caller frees. */
char *xstrndup(const char *s, size_t n);
/* printf into a new string. Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

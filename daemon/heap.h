/*
 * heap: a binary min-heap of deadlines (beanstalkd heap.c). Each item remembers its own index through
 * the setpos callback, so removing or re-keying any item is O(log n). hopperd keeps one heap of job
 * deadlines (timeouts, kill grace) that drives a single ev_timer.
 */
#ifndef HOPPER_HEAP_H
#define HOPPER_HEAP_H

#include <stddef.h>

struct heap {
	void **items;
	size_t len, cap;
	double (*key)(const void *item);
	void (*setpos)(void *item, size_t pos);
};

#define HEAP_NOT_IN ((size_t)-1)

void heap_init(struct heap *h, double (*key)(const void *), void (*setpos)(void *, size_t));
/* Frees the array, not the items. */
void heap_free(struct heap *h);
void heap_insert(struct heap *h, void *item);
/* Removes the item at pos (its setpos index). */
void heap_remove(struct heap *h, size_t pos);
/* Restores order after the item at pos changed its key. */
void heap_update(struct heap *h, size_t pos);
/* The item with the smallest key, or NULL. */
void *heap_peek(const struct heap *h);

#endif

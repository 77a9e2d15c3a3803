#include "heap.h"

#include <stdlib.h>

#include "xmalloc.h"

void
heap_init(struct heap *h, double (*key)(const void *), void (*setpos)(void *, size_t))
{
	h->items = NULL;
	h->len = h->cap = 0;
	h->key = key;
	h->setpos = setpos;
}

void
heap_free(struct heap *h)
{
	free(h->items);
	h->items = NULL;
	h->len = h->cap = 0;
}

static void
place(struct heap *h, size_t pos, void *item)
{
	h->items[pos] = item;
	h->setpos(item, pos);
}

static void
sift_up(struct heap *h, size_t pos)
{
	void *item = h->items[pos];
	while (pos > 0) {
		size_t parent = (pos - 1) / 2;
		if (h->key(h->items[parent]) <= h->key(item))
			break;
		place(h, pos, h->items[parent]);
		pos = parent;
	}
	place(h, pos, item);
}

static void
sift_down(struct heap *h, size_t pos)
{
	void *item = h->items[pos];
	for (;;) {
		size_t child = 2 * pos + 1;
		if (child >= h->len)
			break;
		if (child + 1 < h->len && h->key(h->items[child + 1]) < h->key(h->items[child]))
			child++;
		if (h->key(item) <= h->key(h->items[child]))
			break;
		place(h, pos, h->items[child]);
		pos = child;
	}
	place(h, pos, item);
}

void
heap_insert(struct heap *h, void *item)
{
	if (h->len == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->items = xrealloc(h->items, h->cap * sizeof(*h->items));
	}
	h->items[h->len] = item;
	sift_up(h, h->len++);
}

void
heap_remove(struct heap *h, size_t pos)
{
	if (pos >= h->len)
		return;
	h->setpos(h->items[pos], HEAP_NOT_IN);
	h->len--;
	if (pos == h->len)
		return;
	place(h, pos, h->items[h->len]);
	heap_update(h, pos);
}

void
heap_update(struct heap *h, size_t pos)
{
	if (pos > 0 && h->key(h->items[pos]) < h->key(h->items[(pos - 1) / 2]))
		sift_up(h, pos);
	else
		sift_down(h, pos);
}

void *
heap_peek(const struct heap *h)
{
	return h->len ? h->items[0] : NULL;
}

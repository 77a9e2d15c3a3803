/* The deadline heap: order, removal from the middle, re-keying. */
#include <stdlib.h>

#include "heap.h"
#include "t.h"

struct item {
	double key;
	size_t pos;
};

static double
key(const void *p)
{
	return ((const struct item *)p)->key;
}

static void
setpos(void *p, size_t pos)
{
	((struct item *)p)->pos = pos;
}

int
main(void)
{
	struct heap h;
	heap_init(&h, key, setpos);
	struct item items[1000];
	srand(7);
	for (int i = 0; i < 1000; i++) {
		items[i].key = rand() % 10000;
		heap_insert(&h, &items[i]);
	}
	T_CHECK("positions tracked", h.items[items[500].pos] == &items[500]);
	heap_remove(&h, items[10].pos);
	heap_remove(&h, items[999].pos);
	T_CHECK("removed items are marked", items[10].pos == HEAP_NOT_IN && items[999].pos == HEAP_NOT_IN);
	items[20].key = -1;
	heap_update(&h, items[20].pos);
	T_CHECK("re-keyed item surfaces", heap_peek(&h) == &items[20]);
	double last = -1e9;
	int ordered = 1, count = 0;
	struct item *it;
	while ((it = heap_peek(&h)) != NULL) {
		if (it->key < last)
			ordered = 0;
		last = it->key;
		heap_remove(&h, 0);
		count++;
	}
	T_CHECK("pops in order", ordered);
	T_CHECK("count after two removals", count == 998);
	T_CHECK("empty heap peeks NULL", heap_peek(&h) == NULL);
	heap_free(&h);
	T_DONE();
}

/* libFuzzer harness for the frame decoder: any byte string must decode, ask for more, or fail cleanly. */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	for (;;) {
		struct frame f;
		size_t used = 0;
		const char *err = NULL;
		enum frame_status st = frame_decode(data + off, size - off, &f, &used, &err);
		if (st != FRAME_OK)
			break;
		if (used < FRAME_HEADER_LEN || used > size - off || f.len != used - FRAME_HEADER_LEN)
			__builtin_trap();
		volatile char sink = 0;
		for (size_t i = 0; i < f.len; i++)
			sink ^= f.payload[i];
		(void)sink;
		off += used;
	}
	return 0;
}

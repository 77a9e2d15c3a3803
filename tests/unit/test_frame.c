/* Frame codec: byte-string cases for the decoder, including every way a peer can send garbage. */
#include "frame.h"
#include "t.h"

static size_t
encode(unsigned char *buf, enum frame_type type, const char *payload, size_t len)
{
	frame_header(buf, type, len);
	memcpy(buf + FRAME_HEADER_LEN, payload, len);
	return FRAME_HEADER_LEN + len;
}

int
main(void)
{
	unsigned char buf[256];
	struct frame f;
	size_t used = 0;
	const char *err = NULL;

	size_t n = encode(buf, FRAME_RESULT, "{\"ok\":true}", 11);
	T_CHECK("whole frame decodes", frame_decode(buf, n, &f, &used, &err) == FRAME_OK);
	T_CHECK("type survives", f.type == FRAME_RESULT);
	T_CHECK("length survives", f.len == 11 && used == n);
	T_CHECK("payload points into the buffer", memcmp(f.payload, "{\"ok\":true}", 11) == 0);

	for (size_t cut = 0; cut < n; cut++)
		if (frame_decode(buf, cut, &f, &used, &err) != FRAME_NEED_MORE) {
			T_CHECK("every prefix needs more", 0);
			break;
		}
	T_CHECK("prefixes of a frame ask for more bytes", 1);

	size_t n2 = encode(buf + n, FRAME_LOG, "x", 1);
	T_CHECK("two frames back to back: first", frame_decode(buf, n + n2, &f, &used, &err) == FRAME_OK && used == n);
	T_CHECK("two frames back to back: second",
	        frame_decode(buf + used, n + n2 - used, &f, &used, &err) == FRAME_OK && f.type == FRAME_LOG &&
	                f.len == 1);

	n = encode(buf, FRAME_HELLO, "", 0);
	T_CHECK("empty payload is fine", frame_decode(buf, n, &f, &used, &err) == FRAME_OK && f.len == 0);

	buf[4] = 0;
	T_CHECK("type 0 is an error", frame_decode(buf, n, &f, &used, &err) == FRAME_ERROR);
	buf[4] = FRAME_TYPE_MAX + 1;
	T_CHECK("unknown type is an error", frame_decode(buf, n, &f, &used, &err) == FRAME_ERROR && err != NULL);

	unsigned char big[FRAME_HEADER_LEN] = {0x7f, 0xff, 0xff, 0xff, FRAME_RESULT};
	T_CHECK("oversized length is an error at once, before the payload arrives",
	        frame_decode(big, sizeof(big), &f, &used, &err) == FRAME_ERROR);
	unsigned char hdr[FRAME_HEADER_LEN];
	T_CHECK("encoder refuses oversized payloads", frame_header(hdr, FRAME_RESULT, FRAME_MAX_PAYLOAD + 1) < 0);
	T_CHECK("encoder accepts the maximum", frame_header(hdr, FRAME_RESULT, FRAME_MAX_PAYLOAD) == 0);
	T_CHECK("maximum decodes as need-more, not error",
	        frame_decode(hdr, sizeof(hdr), &f, &used, &err) == FRAME_NEED_MORE);
	T_STREQ("type names", frame_type_name(FRAME_PROGRESS), "progress");
	T_DONE();
}

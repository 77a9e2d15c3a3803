#include "frame.h"

enum frame_status
frame_decode(const unsigned char *buf, size_t len, struct frame *out, size_t *consumed, const char **errstr)
{
	if (len < FRAME_HEADER_LEN)
		return FRAME_NEED_MORE;
	uint32_t plen = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) | ((uint32_t)buf[2] << 8) | buf[3];
	unsigned type = buf[4];
	if (type == 0 || type > FRAME_TYPE_MAX) {
		*errstr = "unknown frame type";
		return FRAME_ERROR;
	}
	if (plen > FRAME_MAX_PAYLOAD) {
		*errstr = "frame longer than the limit";
		return FRAME_ERROR;
	}
	if (len - FRAME_HEADER_LEN < plen)
		return FRAME_NEED_MORE;
	out->type = (enum frame_type)type;
	out->payload = (const char *)buf + FRAME_HEADER_LEN;
	out->len = plen;
	*consumed = FRAME_HEADER_LEN + (size_t)plen;
	return FRAME_OK;
}

int
frame_header(unsigned char hdr[FRAME_HEADER_LEN], enum frame_type type, size_t len)
{
	if (len > FRAME_MAX_PAYLOAD)
		return -1;
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	hdr[4] = (unsigned char)type;
	return 0;
}

const char *
frame_type_name(enum frame_type type)
{
	static const char *const names[] = {"?",      "hello", "job",   "progress", "log",
	                                    "result", "step",  "reply", "enqueue",  "query"};
	return (type >= 1 && type <= FRAME_TYPE_MAX) ? names[type] : "?";
}

/* text: pure helpers of hopperctl over strings and times (number parsing, UTF-8 repair, base64, durations). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hopperctl.h"
#include "jsonx.h"
#include "xmalloc.h"

int
text_double(const char *s, double min, double max, double *out)
{
	char *end = NULL;
	errno = 0;
	double d = strtod(s, &end);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < min || d > max)
		return -1;
	*out = d;
	return 0;
}

int
text_int(const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* Length of the valid UTF-8 sequence at p (at most left bytes), or 0 when it is not one. Follows RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF, which is exactly what jansson accepts. */
static size_t
utf8_seq(const unsigned char *p, size_t left)
{
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80)
		return 1;
	else if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		lo = p[0] == 0xe0 ? 0xa0 : 0x80;
		hi = p[0] == 0xed ? 0x9f : 0xbf;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		lo = p[0] == 0xf0 ? 0x90 : 0x80;
		hi = p[0] == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Redis values are bytes; JSON strings must be UTF-8. Values hopper wrote are UTF-8 already, so the copy below
 * only runs for bytes someone else put there. */
json_t *
text_json_string(const char *buf, size_t len)
{
	json_t *s = json_stringn(buf, len);
	if (s != NULL)
		return s;
	char *fixed = xmalloc(len * 3 + 1); /* each bad byte becomes the 3-byte U+FFFD */
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq((const unsigned char *)buf + i, len - i);
		if (n == 0) {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, buf + i, n);
			o += n;
			i += n;
		}
	}
	s = json_stringn(fixed, o);
	free(fixed);
	return s != NULL ? s : json_string("");
}

char *
text_json_dump(const json_t *v)
{
	/* 16 significant digits print 1764000000.123 as itself; jansson's default 17 would print
	 * 1764000000.1229999. */
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(16));
	return s != NULL ? s : jsonx_dump(v);
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
text_b64_decode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	while (inlen > 0 && in[inlen - 1] == '=')
		inlen--;
	if (inlen % 4 == 1)
		return -1;
	char *buf = xmalloc(inlen / 4 * 3 + 3);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < inlen; i++) {
		int v = b64_value((unsigned char)in[i]);
		if (v < 0) {
			free(buf);
			return -1;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

char *
text_local_time(double t, char *buf, size_t size)
{
	time_t secs = (time_t)t;
	struct tm tm;
	if (localtime_r(&secs, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%.3f", t);
	return buf;
}

char *
text_duration(double s, char *buf, size_t size)
{
	if (s < 0)
		s = 0;
	long long whole = (long long)s;
	if (s < 10)
		snprintf(buf, size, "%.1fs", s);
	else if (whole < 60)
		snprintf(buf, size, "%llds", whole);
	else if (whole < 3600)
		snprintf(buf, size, "%lldm %llds", whole / 60, whole % 60);
	else if (whole < 86400)
		snprintf(buf, size, "%lldh %lldm", whole / 3600, whole % 3600 / 60);
	else
		snprintf(buf, size, "%lldd %lldh", whole / 86400, whole % 86400 / 3600);
	return buf;
}

void
text_put_safe(FILE *f, const char *s, int width)
{
	int n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++)
		fputc((*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : *p, f);
	for (; n < width; n++)
		fputc(' ', f);
}

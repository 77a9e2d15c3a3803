/*
 * libFuzzer harness for the webhook signature checks (common/webhook_sig.c): the input is a style byte, a
 * header line and a body. Any header is accepted or refused with a reason, never read past its end; and the
 * signature this module computes for the body always verifies (GitHub and Stripe styles), while a flipped
 * body byte never does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *style = (data[0] & 1) ? "stripe" : "github";
	const uint8_t *nl = memchr(data + 1, '\n', size - 1);
	size_t hlen = nl != NULL ? (size_t)(nl - data - 1) : size - 1;
	char *hdr = malloc(hlen + 1);
	memcpy(hdr, data + 1, hlen);
	hdr[hlen] = '\0';
	const uint8_t *body = nl != NULL ? nl + 1 : data + size;
	size_t blen = (size_t)(data + size - body);
	char err[256] = "";
	int r = webhook_sig_verify(style, "fuzz-secret", body, blen, hdr, 1700000000, 300, err, sizeof(err));
	if (r != 0 && err[0] == '\0')
		__builtin_trap();
	char hex[65], good[128];
	if (data[0] & 1) {
		webhook_sig_hex("fuzz-secret", "1700000000.", body, blen, hex);
		snprintf(good, sizeof(good), "t=1700000000,v1=%s", hex);
	} else {
		webhook_sig_hex("fuzz-secret", NULL, body, blen, hex);
		snprintf(good, sizeof(good), "sha256=%s", hex);
	}
	if (webhook_sig_verify(style, "fuzz-secret", body, blen, good, 1700000000, 300, err, sizeof(err)) != 0)
		__builtin_trap();
	if (blen > 0) {
		uint8_t *flipped = malloc(blen);
		memcpy(flipped, body, blen);
		flipped[0] ^= 1;
		if (webhook_sig_verify(style, "fuzz-secret", flipped, blen, good, 1700000000, 300, err, sizeof(err)) ==
		    0)
			__builtin_trap();
		free(flipped);
	}
	size_t dlen;
	unsigned char *dec = webhook_sig_b64decode(hdr, &dlen);
	free(dec);
	free(hdr);
	return 0;
}

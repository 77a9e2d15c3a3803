/* webhook_sig: see webhook_sig.h. */
#include "webhook_sig.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
webhook_sig_hex(const char *secret, const char *prefix, const unsigned char *body, size_t len, char out[65])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	if (prefix != NULL)
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, strlen(prefix));
	crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
	sodium_memzero(&st, sizeof(st));
}

/* 1 if hex (64 hex digits, either case) is the HMAC's hex: compared as bytes in constant time. */
static int
hex_matches(const char *want_hex, const char *hex, size_t n)
{
	unsigned char a[crypto_auth_hmacsha256_BYTES], b[crypto_auth_hmacsha256_BYTES];
	size_t alen = 0, blen = 0;
	if (n != 64 || sodium_hex2bin(a, sizeof(a), want_hex, 64, NULL, &alen, NULL) != 0 ||
	    sodium_hex2bin(b, sizeof(b), hex, n, NULL, &blen, NULL) != 0 || alen != sizeof(a) || blen != sizeof(b))
		return 0;
	return sodium_memcmp(a, b, sizeof(a)) == 0;
}

static int
verify_github(const char *secret, const unsigned char *body, size_t len, const char *h, char *err, size_t errlen)
{
	if (strncmp(h, "sha256=", 7) != 0) {
		snprintf(err, errlen, "X-Hub-Signature-256 must be sha256=HEX");
		return -1;
	}
	char want[65];
	webhook_sig_hex(secret, NULL, body, len, want);
	if (!hex_matches(want, h + 7, strlen(h + 7))) {
		snprintf(err, errlen, "X-Hub-Signature-256 does not match the body");
		return -1;
	}
	return 0;
}

static int
verify_stripe(const char *secret, const unsigned char *body, size_t len, const char *h, double now, int tol, char *err,
              size_t errlen)
{
	long long t = -1;
	int matched = 0, any = 0;
	char want[65] = "";
	/* First the timestamp (it is part of what is signed), then every v1 signature. */
	for (const char *p = h; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n > 2 && strncmp(p, "t=", 2) == 0)
			t = strtoll(p + 2, NULL, 10);
		p += n + (end != NULL);
	}
	if (t <= 0) {
		snprintf(err, errlen, "Stripe-Signature has no t=TIMESTAMP");
		return -1;
	}
	if (fabs(now - (double)t) > tol) {
		snprintf(err, errlen, "Stripe-Signature timestamp is outside the %d s tolerance (a replay?)", tol);
		return -1;
	}
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%lld.", t);
	webhook_sig_hex(secret, prefix, body, len, want);
	for (const char *p = h; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n > 3 && strncmp(p, "v1=", 3) == 0) {
			any = 1;
			matched |= hex_matches(want, p + 3, n - 3);
		}
		p += n + (end != NULL);
	}
	if (!matched) {
		snprintf(err, errlen,
		         any ? "no v1 signature of Stripe-Signature matches the body"
		             : "Stripe-Signature has no v1= signature");
		return -1;
	}
	return 0;
}

int
webhook_sig_verify(const char *style, const char *secret, const unsigned char *body, size_t len, const char *header,
                   double now, int tolerance_s, char *err, size_t errlen)
{
	if (style == NULL || strcmp(style, "none") == 0)
		return 0;
	if (secret == NULL) {
		snprintf(err, errlen, "the webhook has no secret");
		return -1;
	}
	if (header == NULL) {
		snprintf(err, errlen, "the request carries no %s signature header",
		         strcmp(style, "github") == 0 ? "X-Hub-Signature-256" : "Stripe-Signature");
		return -1;
	}
	if (strcmp(style, "github") == 0)
		return verify_github(secret, body, len, header, err, errlen);
	if (strcmp(style, "stripe") == 0)
		return verify_stripe(secret, body, len, header, now, tolerance_s, err, errlen);
	snprintf(err, errlen, "unknown signature style %s", style);
	return -1;
}

unsigned char *
webhook_sig_b64decode(const char *in, size_t *len)
{
	size_t n = strlen(in);
	unsigned char *out = xmalloc(n / 4 * 3 + 3);
	if (sodium_base642bin(out, n / 4 * 3 + 3, in, n, NULL, len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

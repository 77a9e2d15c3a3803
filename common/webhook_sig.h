/*
 * webhook_sig: signature checks of webhook bodies, HMAC-SHA256 with a shared secret (libsodium's
 * crypto_auth_hmacsha256), in the two common styles:
 *   github: X-Hub-Signature-256: sha256=HEX(HMAC(secret, body))
 *   stripe: Stripe-Signature: t=UNIX,v1=HEX(HMAC(secret, "UNIX." || body))[,v1=...]; t within a tolerance
 *           of now (the replay window).
 * Pure functions over buffers: no I/O, comparisons in constant time. Used by the daemon's webhook.trigger.
 */
#ifndef HOPPER_WEBHOOK_SIG_H
#define HOPPER_WEBHOOK_SIG_H

#include <stddef.h>

/* Stripe's default tolerance: a signed request older (or newer) than this is a replay. */
#define WEBHOOK_SIG_TOLERANCE_S 300

/*
 * Verifies header (the style's header value; NULL if the request had none) for body under secret. style is
 * "github" or "stripe" ("none" always passes). now is Unix time. Returns 0, or -1 with the reason in err.
 */
int webhook_sig_verify(const char *style, const char *secret, const unsigned char *body, size_t len, const char *header,
                       double now, int tolerance_s, char *err, size_t errlen);
/* HEX(HMAC-SHA256(secret, prefix || body)) into out (65 bytes). For tests and clients that sign. */
void webhook_sig_hex(const char *secret, const char *prefix, const unsigned char *body, size_t len, char out[65]);
/* Decodes standard base64 (with padding) into a new buffer (caller frees); NULL if it is not base64. */
unsigned char *webhook_sig_b64decode(const char *in, size_t *len);

#endif

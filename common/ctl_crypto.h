/*
 * ctl_crypto: the control protocol's cryptography, the one place outside the daemon's auth module that
 * includes sodium.h. Owns: the token format (hop_<id>_<secret>) and its hash, base64url, the TCP
 * handshake's key derivation (crypto_kx on ephemeral keys, then the token hash mixed in as a pre-shared
 * key over the transcript) and seal/open of encrypted frames (XChaCha20-Poly1305 with per-direction
 * counters). Pure functions over buffers given keys; randomness comes from libsodium. See
 * schema/control-protocol.md, "TCP: handshake and encrypted frames".
 */
#ifndef HOPPER_CTL_CRYPTO_H
#define HOPPER_CTL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CTL_TOKEN_PREFIX         "hop_"
#define CTL_TOKEN_ID_LEN         12 /* hex chars: 48 random bits, public, a lookup key */
#define CTL_TOKEN_SECRET_BYTES   32 /* 256 random bits: no password hash needed */
#define CTL_TOKEN_SECRET_B64_LEN 43 /* base64url of 32 bytes, no padding */
#define CTL_TOKEN_LEN            (4 + CTL_TOKEN_ID_LEN + 1 + CTL_TOKEN_SECRET_B64_LEN) /* 60 */
#define CTL_HASH_BYTES           32
#define CTL_KEY_BYTES            32
#define CTL_PK_B64_LEN           43
#define CTL_SEAL_OVERHEAD        16 /* the Poly1305 tag */

/* Calls sodium_init. Returns 0 or -1. Call once before anything else here. */
int ctl_crypto_init(void);
void ctl_random(void *buf, size_t len);

/* base64url without padding (RFC 4648 section 5). encode: returns chars written (out gets a NUL) or -1 if
 * outlen is too small. decode: returns 0 only when s decodes to exactly outlen bytes. */
int ctl_b64_encode(const unsigned char *bin, size_t n, char *out, size_t outlen);
int ctl_b64_decode(const char *s, size_t slen, unsigned char *out, size_t outlen);

/* A new token: token gets "hop_<id>_<secret>", id its 12 hex chars, hash H(secret). */
void ctl_token_generate(char token[CTL_TOKEN_LEN + 1], char id[CTL_TOKEN_ID_LEN + 1],
                        unsigned char hash[CTL_HASH_BYTES]);
/* Splits a token. Returns 0 (id and secret filled) or -1 when it is not of the form. */
int ctl_token_parse(const char *token, size_t len, char id[CTL_TOKEN_ID_LEN + 1],
                    unsigned char secret[CTL_TOKEN_SECRET_BYTES]);
/* hash = BLAKE2b-256(secret), keyed with a fixed label (domain separation). */
void ctl_token_hash(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char hash[CTL_HASH_BYTES]);
/* Constant-time equality of two hashes: 1 equal, 0 not. */
int ctl_hash_equal(const unsigned char a[CTL_HASH_BYTES], const unsigned char b[CTL_HASH_BYTES]);
/* Zeroes memory the compiler may not optimise away. */
void ctl_wipe(void *p, size_t len);

/* An ephemeral X25519 key pair (crypto_kx). */
struct ctl_keypair {
	unsigned char pk[32];
	unsigned char sk[32];
};
void ctl_keypair_new(struct ctl_keypair *kp);

/*
 * th = BLAKE2b-256("hopper-ctl-v1 transcript" || u32be(clen) || chello || u32be(slen) || shello): the two
 * hello payloads exactly as sent on the wire.
 */
void ctl_transcript_hash(const unsigned char *chello, size_t clen, const unsigned char *shello, size_t slen,
                         unsigned char th[32]);

/* One side of an encrypted connection. */
struct ctl_session {
	unsigned char tx[CTL_KEY_BYTES], rx[CTL_KEY_BYTES];
	uint64_t tx_n, rx_n; /* next nonce counter in each direction */
	int broken;          /* an open failed: the connection must close */
};

/*
 * Session keys. The client calls ctl_session_client with its key pair and the server's public key, the
 * server ctl_session_server with its pair and the client's. psk is the token hash H(secret) (the server
 * uses a random one for an unknown token id). Returns 0, or -1 if the peer's key is unusable (a low-order
 * point). Per direction: k = BLAKE2b-256(key = psk, "hopper-ctl-v1 c2s|s2c" || kx_key || th).
 */
int ctl_session_client(struct ctl_session *s, const struct ctl_keypair *mine, const unsigned char server_pk[32],
                       const unsigned char psk[CTL_HASH_BYTES], const unsigned char th[32]);
int ctl_session_server(struct ctl_session *s, const struct ctl_keypair *mine, const unsigned char client_pk[32],
                       const unsigned char psk[CTL_HASH_BYTES], const unsigned char th[32]);
void ctl_session_wipe(struct ctl_session *s);

/*
 * Seals plain into one whole frame in out (which has room for 4 + plen + CTL_SEAL_OVERHEAD bytes): the
 * 4-byte big-endian length of the ciphertext, then the ciphertext; the length header is the associated
 * data. Returns the frame's size, or 0 if plen is 0 or too long for a u32 or the counter is exhausted.
 */
size_t ctl_seal(struct ctl_session *s, const unsigned char *plain, size_t plen, unsigned char *out);
/*
 * Opens one frame's payload c (clen bytes, the part after the length header) into out (room for
 * clen - CTL_SEAL_OVERHEAD bytes). Returns 0 and sets *plen, or -1 (forged, replayed, reordered, dropped
 * frame, or wrong keys): then s->broken is set and every later open fails too.
 */
int ctl_open(struct ctl_session *s, const unsigned char *c, size_t clen, unsigned char *out, size_t *plen);

#endif

/*
 * ctl_crypto: the control protocol's cryptography, the one place outside the daemon's auth module that
 * includes sodium.h. Owns: the token format (hop_<id>_<secret>), its verifier (and the hash of protocol 1),
 * base64url, the TCP handshake (Noise_XK_25519_ChaChaPoly_SHA256 between the daemon's static key and the
 * token's key) and seal/open of encrypted frames (Noise transport messages: ChaCha20-Poly1305 with
 * per-direction counters). Pure functions over buffers given keys; randomness comes from libsodium. See
 * schema/control-protocol.md, "TCP: the Noise handshake and encrypted frames".
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
/* decode of any length up to outcap bytes: returns the length, or -1 (not base64url, or too long). */
long ctl_b64_decode_var(const char *s, size_t slen, unsigned char *out, size_t outcap);

/* A new token: token gets "hop_<id>_<secret>", id its 12 hex chars, verifier its verifier (below). */
void ctl_token_generate(char token[CTL_TOKEN_LEN + 1], char id[CTL_TOKEN_ID_LEN + 1],
                        unsigned char verifier[CTL_HASH_BYTES]);
/* Splits a token. Returns 0 (id and secret filled) or -1 when it is not of the form. */
int ctl_token_parse(const char *token, size_t len, char id[CTL_TOKEN_ID_LEN + 1],
                    unsigned char secret[CTL_TOKEN_SECRET_BYTES]);
/* hash = BLAKE2b-256(secret), keyed with a fixed label (domain separation): what protocol 1 stored. Kept to
 * recognise tokens created before protocol 2 (see ctl_auth.c, token_check). */
void ctl_token_hash(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char hash[CTL_HASH_BYTES]);
/* Constant-time equality of two hashes: 1 equal, 0 not. */
int ctl_hash_equal(const unsigned char a[CTL_HASH_BYTES], const unsigned char b[CTL_HASH_BYTES]);
/* Zeroes memory the compiler may not optimise away. */
void ctl_wipe(void *p, size_t len);

/* An X25519 key pair. */
struct ctl_keypair {
	unsigned char pk[32];
	unsigned char sk[32];
};
/* A fresh random pair. */
void ctl_keypair_new(struct ctl_keypair *kp);
/* The pair of a given private key (pk = X25519(sk, 9)). Returns 0, or -1 if the key is unusable. */
int ctl_keypair_from_sk(struct ctl_keypair *kp, const unsigned char sk[32]);

/*
 * The token's client static key (protocol 2): sk = HMAC-SHA256(key = "hopper-ctl-v2 client key", secret),
 * pk = X25519(sk, 9). pk is the token's verifier, the only value the daemon stores: it checks a proof of
 * knowledge of sk (the Noise handshake's "se") and cannot itself be used to log in.
 */
void ctl_token_keypair(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], struct ctl_keypair *kp);
void ctl_token_verifier(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char verifier[CTL_HASH_BYTES]);

/* One side of an encrypted connection: a Noise CipherState per direction. */
struct ctl_session {
	unsigned char tx[CTL_KEY_BYTES], rx[CTL_KEY_BYTES];
	uint64_t tx_n, rx_n; /* next nonce counter in each direction */
	int broken;          /* an open failed: the connection must close */
};

/*
 * The TCP handshake: Noise_XK_25519_ChaChaPoly_SHA256 (noiseprotocol.org, revision 34), the daemon the
 * responder with a static key the client pinned, the client the initiator with its token key:
 *     <- s
 *     ...
 *     -> e, es          message 1 (48 bytes + payload)
 *     <- e, ee          message 2 (48 bytes + payload)
 *     -> s, se          message 3 (64 bytes + payload)
 * Checked against cacophony's test vectors (tests/unit/test_ctl_crypto.c).
 */
#define CTL_NOISE_NAME     "Noise_XK_25519_ChaChaPoly_SHA256"
#define CTL_NOISE_PROLOGUE "hopper-ctl 2"
#define CTL_NOISE_MSG_MAX  65535 /* the Noise message limit */
/* Bytes a handshake message adds to its payload: message 1 and 2 an ephemeral key and a tag, message 3 the
 * encrypted static key (key + tag) and a tag. */
#define CTL_NOISE_OVERHEAD(i) ((i) == 2 ? 32 + 16 + 16 : 32 + 16)

struct ctl_noise {
	unsigned char ck[32], h[32], k[32];
	uint64_t n;
	int has_k;
	int initiator;
	int msg;     /* messages done: 0..3 */
	int fixed_e; /* tests: the ephemeral was set, do not generate one */
	struct ctl_keypair s, e;
	unsigned char rs[32], re[32];
};

/*
 * Starts a handshake. The initiator gives its static pair and the responder's pinned public key rs; the
 * responder gives its static pair and rs NULL (it learns the initiator's from message 3).
 */
void ctl_noise_init(struct ctl_noise *hs, int initiator, const unsigned char *prologue, size_t plen,
                    const struct ctl_keypair *s, const unsigned char rs[32]);
/* Tests (known-answer vectors): the next "e" token uses this pair instead of a random one. */
void ctl_noise_set_ephemeral(struct ctl_noise *hs, const struct ctl_keypair *e);
/*
 * Writes the next handshake message, payload included, into out (room for plen + CTL_NOISE_OVERHEAD(msg)).
 * Returns its length, or 0 when it is not this side's turn, a key is unusable or the message would pass
 * CTL_NOISE_MSG_MAX.
 */
size_t ctl_noise_write(struct ctl_noise *hs, const unsigned char *payload, size_t plen, unsigned char *out);
/* Reads the next handshake message into its payload (out: room for mlen bytes). Returns 0 and *plen, or -1
 * (altered, not from the pinned key, not this side's turn, too short): the handshake is then unusable. */
int ctl_noise_read(struct ctl_noise *hs, const unsigned char *msg, size_t mlen, unsigned char *out, size_t *plen);
/* After message 3: the transport keys (the initiator sends with the first). Wipes the handshake. */
void ctl_noise_split(struct ctl_noise *hs, struct ctl_session *s);
/* The remote static key (the responder: the initiator's, after message 3). */
const unsigned char *ctl_noise_remote_static(const struct ctl_noise *hs);
void ctl_noise_wipe(struct ctl_noise *hs);

void ctl_session_wipe(struct ctl_session *s);

/*
 * Seals plain into one whole frame in out (which has room for 4 + plen + CTL_SEAL_OVERHEAD bytes): the
 * 4-byte big-endian length of the ciphertext, then the ciphertext (a Noise transport message: empty
 * associated data, nonce 0^32 || u64le(counter)). Returns the frame's size, or 0 if plen is 0 or too long for a u32 or
 * the counter is exhausted.
 */
size_t ctl_seal(struct ctl_session *s, const unsigned char *plain, size_t plen, unsigned char *out);
/*
 * Opens one frame's payload c (clen bytes, the part after the length header) into out (room for
 * clen - CTL_SEAL_OVERHEAD bytes). Returns 0 and sets *plen, or -1 (forged, replayed, reordered, dropped
 * frame, or wrong keys): then s->broken is set and every later open fails too.
 */
int ctl_open(struct ctl_session *s, const unsigned char *c, size_t clen, unsigned char *out, size_t *plen);

#endif

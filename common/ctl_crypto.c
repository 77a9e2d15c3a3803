#include "ctl_crypto.h"

#include <sodium.h>
#include <string.h>

/* Fixed keys for domain separation: a token hash can never be confused with any other BLAKE2b output. */
static const char token_label[] = "hopper-ctl-v1 token";
static const char client_key_label[] = "hopper-ctl-v2 client key";

int
ctl_crypto_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void
ctl_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

void
ctl_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

int
ctl_b64_encode(const unsigned char *bin, size_t n, char *out, size_t outlen)
{
	const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	if (outlen < sodium_base64_ENCODED_LEN(n, v))
		return -1;
	sodium_bin2base64(out, outlen, bin, n, v);
	return (int)strlen(out);
}

int
ctl_b64_decode(const char *s, size_t slen, unsigned char *out, size_t outlen)
{
	size_t got = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, outlen, s, slen, NULL, &got, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	return (got == outlen && end == s + slen) ? 0 : -1;
}

long
ctl_b64_decode_var(const char *s, size_t slen, unsigned char *out, size_t outcap)
{
	size_t got = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, outcap, s, slen, NULL, &got, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	return end == s + slen ? (long)got : -1;
}

void
ctl_token_hash(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char hash[CTL_HASH_BYTES])
{
	/* A 256-bit random secret cannot be guessed, so a fast hash suffices (no Argon2: see the protocol doc). */
	crypto_generichash(hash, CTL_HASH_BYTES, secret, CTL_TOKEN_SECRET_BYTES, (const unsigned char *)token_label,
	                   sizeof(token_label) - 1);
}

void
ctl_token_generate(char token[CTL_TOKEN_LEN + 1], char id[CTL_TOKEN_ID_LEN + 1], unsigned char verifier[CTL_HASH_BYTES])
{
	unsigned char idb[CTL_TOKEN_ID_LEN / 2], secret[CTL_TOKEN_SECRET_BYTES];
	char b64[CTL_TOKEN_SECRET_B64_LEN + 1];
	randombytes_buf(idb, sizeof(idb));
	randombytes_buf(secret, sizeof(secret));
	sodium_bin2hex(id, CTL_TOKEN_ID_LEN + 1, idb, sizeof(idb));
	ctl_b64_encode(secret, sizeof(secret), b64, sizeof(b64));
	memcpy(token, CTL_TOKEN_PREFIX, 4);
	memcpy(token + 4, id, CTL_TOKEN_ID_LEN);
	token[4 + CTL_TOKEN_ID_LEN] = '_';
	memcpy(token + 5 + CTL_TOKEN_ID_LEN, b64, CTL_TOKEN_SECRET_B64_LEN + 1);
	ctl_token_verifier(secret, verifier);
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(b64, sizeof(b64));
}

int
ctl_token_parse(const char *token, size_t len, char id[CTL_TOKEN_ID_LEN + 1],
                unsigned char secret[CTL_TOKEN_SECRET_BYTES])
{
	if (len != CTL_TOKEN_LEN || memcmp(token, CTL_TOKEN_PREFIX, 4) != 0 || token[4 + CTL_TOKEN_ID_LEN] != '_')
		return -1;
	for (size_t i = 0; i < CTL_TOKEN_ID_LEN; i++) {
		char c = token[4 + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
	}
	if (ctl_b64_decode(token + 5 + CTL_TOKEN_ID_LEN, CTL_TOKEN_SECRET_B64_LEN, secret, CTL_TOKEN_SECRET_BYTES) != 0)
		return -1;
	memcpy(id, token + 4, CTL_TOKEN_ID_LEN);
	id[CTL_TOKEN_ID_LEN] = '\0';
	return 0;
}

int
ctl_hash_equal(const unsigned char a[CTL_HASH_BYTES], const unsigned char b[CTL_HASH_BYTES])
{
	return sodium_memcmp(a, b, CTL_HASH_BYTES) == 0;
}

/* --- keys --- */

void
ctl_keypair_new(struct ctl_keypair *kp)
{
	do
		randombytes_buf(kp->sk, sizeof(kp->sk));
	while (ctl_keypair_from_sk(kp, kp->sk) != 0);
}

int
ctl_keypair_from_sk(struct ctl_keypair *kp, const unsigned char sk[32])
{
	if (kp->sk != sk)
		memcpy(kp->sk, sk, 32);
	return crypto_scalarmult_base(kp->pk, kp->sk) == 0 ? 0 : -1;
}

void
ctl_token_keypair(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], struct ctl_keypair *kp)
{
	crypto_auth_hmacsha256_state st;
	unsigned char sk[32];
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)client_key_label, sizeof(client_key_label) - 1);
	crypto_auth_hmacsha256_update(&st, secret, CTL_TOKEN_SECRET_BYTES);
	crypto_auth_hmacsha256_final(&st, sk);
	/* X25519 clamps the scalar, so no HMAC output is unusable: the base point's multiple is never 0. */
	ctl_keypair_from_sk(kp, sk);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(&st, sizeof(st));
}

void
ctl_token_verifier(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char verifier[CTL_HASH_BYTES])
{
	struct ctl_keypair kp;
	ctl_token_keypair(secret, &kp);
	memcpy(verifier, kp.pk, CTL_HASH_BYTES);
	sodium_memzero(&kp, sizeof(kp));
}

/* --- Noise: the symmetric state (spec section 5.2) with SHA-256 --- */

static void
put_u32(unsigned char b[4], size_t n)
{
	b[0] = (unsigned char)(n >> 24);
	b[1] = (unsigned char)(n >> 16);
	b[2] = (unsigned char)(n >> 8);
	b[3] = (unsigned char)n;
}

static void
hmac(unsigned char out[32], const unsigned char key[32], const unsigned char *a, size_t alen, const unsigned char *b,
     size_t blen)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st, a, alen);
	if (blen > 0)
		crypto_auth_hmacsha256_update(&st, b, blen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(ck, ikm) with two outputs (spec section 4.3). */
static void
hkdf2(const unsigned char ck[32], const unsigned char *ikm, size_t ilen, unsigned char o1[32], unsigned char o2[32])
{
	unsigned char temp[32], one = 1, two = 2;
	hmac(temp, ck, ikm, ilen, NULL, 0);
	hmac(o1, temp, &one, 1, NULL, 0);
	hmac(o2, temp, o1, 32, &two, 1);
	sodium_memzero(temp, sizeof(temp));
}

static void
mix_hash(struct ctl_noise *hs, const unsigned char *data, size_t len)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, hs->h, 32);
	crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, hs->h);
}

static void
mix_key(struct ctl_noise *hs, const unsigned char ikm[32])
{
	unsigned char ck[32];
	hkdf2(hs->ck, ikm, 32, ck, hs->k);
	memcpy(hs->ck, ck, 32);
	sodium_memzero(ck, sizeof(ck));
	hs->has_k = 1;
	hs->n = 0;
}

/* The ChaChaPoly nonce: 32 zero bits, then the counter little-endian (spec section 12.3). */
static void
nonce_of(uint64_t n, unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES])
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (unsigned char)(n >> (8 * i));
}

/* EncryptAndHash: out gets plen (+ 16 once a key is set) bytes. Returns their count. */
static size_t
encrypt_and_hash(struct ctl_noise *hs, const unsigned char *plain, size_t plen, unsigned char *out)
{
	unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
	unsigned long long clen = plen;
	if (!hs->has_k)
		memmove(out, plain, plen);
	else {
		nonce_of(hs->n++, nonce);
		crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, plain, plen, hs->h, 32, NULL, nonce, hs->k);
	}
	mix_hash(hs, out, (size_t)clen);
	return (size_t)clen;
}

/* DecryptAndHash. Returns 0 with *plen, or -1. */
static int
decrypt_and_hash(struct ctl_noise *hs, const unsigned char *c, size_t clen, unsigned char *out, size_t *plen)
{
	unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES], h[32];
	unsigned long long mlen = clen;
	memcpy(h, hs->h, 32);
	mix_hash(hs, c, clen); /* the hash covers the ciphertext: take it before out may overwrite c */
	if (!hs->has_k) {
		memmove(out, c, clen);
		*plen = clen;
		return 0;
	}
	nonce_of(hs->n++, nonce);
	if (clen < 16 || crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, h, 32, nonce, hs->k) != 0)
		return -1;
	*plen = (size_t)mlen;
	return 0;
}

/* --- Noise: the XK handshake (spec sections 5.3 and 7.5) --- */

enum noise_token { TOK_END, TOK_E, TOK_S, TOK_EE, TOK_ES, TOK_SE };

/* The pattern's three messages, in order; even ones are the initiator's. */
static const enum noise_token xk_pattern[3][3] = {
        {TOK_E, TOK_ES, TOK_END},
        {TOK_E, TOK_EE, TOK_END},
        {TOK_S, TOK_SE, TOK_END},
};

void
ctl_noise_init(struct ctl_noise *hs, int initiator, const unsigned char *prologue, size_t plen,
               const struct ctl_keypair *s, const unsigned char rs[32])
{
	memset(hs, 0, sizeof(*hs));
	_Static_assert(sizeof(CTL_NOISE_NAME) - 1 == 32, "the protocol name is HASHLEN bytes: h is the name itself");
	memcpy(hs->h, CTL_NOISE_NAME, 32);
	memcpy(hs->ck, hs->h, 32);
	hs->initiator = initiator;
	hs->s = *s;
	mix_hash(hs, prologue, plen);
	/* The pre-message "<- s": both sides hash the responder's static key. */
	if (initiator)
		memcpy(hs->rs, rs, 32);
	mix_hash(hs, initiator ? hs->rs : hs->s.pk, 32);
}

void
ctl_noise_set_ephemeral(struct ctl_noise *hs, const struct ctl_keypair *e)
{
	hs->e = *e;
	hs->fixed_e = 1;
}

/* The DH of a token; which keys depends on the side (es: the initiator's e with the responder's s). */
static int
dh_token(struct ctl_noise *hs, enum noise_token t)
{
	unsigned char out[32];
	const unsigned char *sk, *pk;
	int i = hs->initiator;
	switch (t) {
	case TOK_EE: sk = hs->e.sk, pk = hs->re; break;
	case TOK_ES: sk = i ? hs->e.sk : hs->s.sk, pk = i ? hs->rs : hs->re; break;
	case TOK_SE: sk = i ? hs->s.sk : hs->e.sk, pk = i ? hs->re : hs->rs; break;
	default: return -1;
	}
	/* crypto_scalarmult refuses a low-order point (an all-zero result): a key no honest peer sends. */
	if (crypto_scalarmult(out, sk, pk) != 0)
		return -1;
	mix_key(hs, out);
	sodium_memzero(out, sizeof(out));
	return 0;
}

static int
my_turn(const struct ctl_noise *hs)
{
	return hs->msg < 3 && (hs->msg % 2 == 0) == (hs->initiator != 0);
}

size_t
ctl_noise_write(struct ctl_noise *hs, const unsigned char *payload, size_t plen, unsigned char *out)
{
	size_t off = 0;
	if (!my_turn(hs) || plen + CTL_NOISE_OVERHEAD(hs->msg) > CTL_NOISE_MSG_MAX)
		return 0;
	for (const enum noise_token *t = xk_pattern[hs->msg]; *t != TOK_END; t++) {
		if (*t == TOK_E) {
			if (!hs->fixed_e)
				ctl_keypair_new(&hs->e);
			memcpy(out + off, hs->e.pk, 32);
			mix_hash(hs, hs->e.pk, 32);
			off += 32;
		} else if (*t == TOK_S)
			off += encrypt_and_hash(hs, hs->s.pk, 32, out + off);
		else if (dh_token(hs, *t) != 0)
			return 0;
	}
	off += encrypt_and_hash(hs, payload, plen, out + off);
	hs->msg++;
	hs->fixed_e = 0;
	return off;
}

int
ctl_noise_read(struct ctl_noise *hs, const unsigned char *msg, size_t mlen, unsigned char *out, size_t *plen)
{
	size_t off = 0, n = 0;
	if (my_turn(hs) || hs->msg >= 3 || mlen < CTL_NOISE_OVERHEAD(hs->msg) || mlen > CTL_NOISE_MSG_MAX)
		goto bad;
	for (const enum noise_token *t = xk_pattern[hs->msg]; *t != TOK_END; t++) {
		if (*t == TOK_E) {
			memcpy(hs->re, msg + off, 32);
			mix_hash(hs, hs->re, 32);
			off += 32;
		} else if (*t == TOK_S) {
			unsigned char rs[32];
			if (decrypt_and_hash(hs, msg + off, 48, rs, &n) != 0 || n != 32)
				goto bad;
			memcpy(hs->rs, rs, 32);
			off += 48;
		} else if (dh_token(hs, *t) != 0)
			goto bad;
	}
	if (decrypt_and_hash(hs, msg + off, mlen - off, out, plen) != 0)
		goto bad;
	hs->msg++;
	return 0;
bad:
	hs->msg = 4; /* unusable: neither side's turn any more */
	return -1;
}

void
ctl_noise_split(struct ctl_noise *hs, struct ctl_session *s)
{
	unsigned char k1[32], k2[32];
	hkdf2(hs->ck, NULL, 0, k1, k2);
	memset(s, 0, sizeof(*s));
	memcpy(s->tx, hs->initiator ? k1 : k2, 32);
	memcpy(s->rx, hs->initiator ? k2 : k1, 32);
	s->broken = hs->msg != 3;
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	ctl_noise_wipe(hs);
}

const unsigned char *
ctl_noise_remote_static(const struct ctl_noise *hs)
{
	return hs->rs;
}

void
ctl_noise_wipe(struct ctl_noise *hs)
{
	unsigned char rs[32];
	memcpy(rs, hs->rs, 32);
	sodium_memzero(hs, sizeof(*hs));
	memcpy(hs->rs, rs, 32); /* public: kept for the caller's check */
	hs->msg = 4;
}

/* --- transport --- */

void
ctl_session_wipe(struct ctl_session *s)
{
	sodium_memzero(s, sizeof(*s));
	s->broken = 1;
}

size_t
ctl_seal(struct ctl_session *s, const unsigned char *plain, size_t plen, unsigned char *out)
{
	unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
	unsigned long long clen = 0;
	/* Nonce 2^64-1 is reserved by Noise (rekey); the connection ends long before. */
	if (s->broken || plen == 0 || plen > UINT32_MAX - CTL_SEAL_OVERHEAD || s->tx_n >= UINT64_MAX - 1)
		return 0;
	put_u32(out, plen + CTL_SEAL_OVERHEAD);
	nonce_of(s->tx_n, nonce);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + 4, &clen, plain, plen, NULL, 0, NULL, nonce, s->tx);
	s->tx_n++;
	return 4 + (size_t)clen;
}

int
ctl_open(struct ctl_session *s, const unsigned char *c, size_t clen, unsigned char *out, size_t *plen)
{
	unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
	unsigned long long mlen = 0;
	if (s->broken || clen <= CTL_SEAL_OVERHEAD || clen > UINT32_MAX || s->rx_n >= UINT64_MAX - 1) {
		s->broken = 1;
		return -1;
	}
	nonce_of(s->rx_n, nonce);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, NULL, 0, nonce, s->rx) != 0) {
		s->broken = 1;
		return -1;
	}
	s->rx_n++;
	*plen = (size_t)mlen;
	return 0;
}

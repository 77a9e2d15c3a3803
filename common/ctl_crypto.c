#include "ctl_crypto.h"

#include <sodium.h>
#include <string.h>

/* Fixed keys for domain separation: a token hash can never be confused with any other BLAKE2b output. */
static const char token_label[] = "hopper-ctl-v1 token";
static const char transcript_label[] = "hopper-ctl-v1 transcript";
static const char c2s_label[] = "hopper-ctl-v1 c2s";
static const char s2c_label[] = "hopper-ctl-v1 s2c";

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

void
ctl_token_hash(const unsigned char secret[CTL_TOKEN_SECRET_BYTES], unsigned char hash[CTL_HASH_BYTES])
{
	/* A 256-bit random secret cannot be guessed, so a fast hash suffices (no Argon2: see the protocol doc). */
	crypto_generichash(hash, CTL_HASH_BYTES, secret, CTL_TOKEN_SECRET_BYTES, (const unsigned char *)token_label,
	                   sizeof(token_label) - 1);
}

void
ctl_token_generate(char token[CTL_TOKEN_LEN + 1], char id[CTL_TOKEN_ID_LEN + 1], unsigned char hash[CTL_HASH_BYTES])
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
	ctl_token_hash(secret, hash);
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

void
ctl_keypair_new(struct ctl_keypair *kp)
{
	crypto_kx_keypair(kp->pk, kp->sk);
}

static void
put_u32(unsigned char b[4], size_t n)
{
	b[0] = (unsigned char)(n >> 24);
	b[1] = (unsigned char)(n >> 16);
	b[2] = (unsigned char)(n >> 8);
	b[3] = (unsigned char)n;
}

void
ctl_transcript_hash(const unsigned char *chello, size_t clen, const unsigned char *shello, size_t slen,
                    unsigned char th[32])
{
	crypto_generichash_state st;
	unsigned char n[4];
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const unsigned char *)transcript_label, sizeof(transcript_label) - 1);
	put_u32(n, clen);
	crypto_generichash_update(&st, n, 4);
	crypto_generichash_update(&st, chello, clen);
	put_u32(n, slen);
	crypto_generichash_update(&st, n, 4);
	crypto_generichash_update(&st, shello, slen);
	crypto_generichash_final(&st, th, 32);
}

/* k = BLAKE2b-256(key = psk, label || kx || th). */
static void
mix(unsigned char out[CTL_KEY_BYTES], const char *label, const unsigned char kx[32], const unsigned char psk[32],
    const unsigned char th[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, psk, CTL_HASH_BYTES, CTL_KEY_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)label, strlen(label));
	crypto_generichash_update(&st, kx, 32);
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, out, CTL_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
}

static void
session_finish(struct ctl_session *s, const unsigned char c2s[32], const unsigned char s2c[32], int is_client,
               const unsigned char psk[32], const unsigned char th[32])
{
	mix(is_client ? s->tx : s->rx, c2s_label, c2s, psk, th);
	mix(is_client ? s->rx : s->tx, s2c_label, s2c, psk, th);
	s->tx_n = s->rx_n = 0;
	s->broken = 0;
}

int
ctl_session_client(struct ctl_session *s, const struct ctl_keypair *mine, const unsigned char server_pk[32],
                   const unsigned char psk[CTL_HASH_BYTES], const unsigned char th[32])
{
	unsigned char rx[32], tx[32];
	memset(s, 0, sizeof(*s));
	s->broken = 1;
	if (crypto_kx_client_session_keys(rx, tx, mine->pk, mine->sk, server_pk) != 0)
		return -1;
	session_finish(s, tx, rx, 1, psk, th);
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	return 0;
}

int
ctl_session_server(struct ctl_session *s, const struct ctl_keypair *mine, const unsigned char client_pk[32],
                   const unsigned char psk[CTL_HASH_BYTES], const unsigned char th[32])
{
	unsigned char rx[32], tx[32];
	memset(s, 0, sizeof(*s));
	s->broken = 1;
	if (crypto_kx_server_session_keys(rx, tx, mine->pk, mine->sk, client_pk) != 0)
		return -1;
	session_finish(s, rx, tx, 0, psk, th);
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	return 0;
}

void
ctl_session_wipe(struct ctl_session *s)
{
	sodium_memzero(s, sizeof(*s));
	s->broken = 1;
}

static void
nonce_of(uint64_t n, unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	for (int i = 0; i < 8; i++)
		nonce[i] = (unsigned char)(n >> (8 * i));
}

size_t
ctl_seal(struct ctl_session *s, const unsigned char *plain, size_t plen, unsigned char *out)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen = 0;
	if (s->broken || plen == 0 || plen > UINT32_MAX - CTL_SEAL_OVERHEAD || s->tx_n == UINT64_MAX)
		return 0;
	put_u32(out, plen + CTL_SEAL_OVERHEAD);
	nonce_of(s->tx_n, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 4, &clen, plain, plen, out, 4, NULL, nonce, s->tx);
	s->tx_n++;
	return 4 + (size_t)clen;
}

int
ctl_open(struct ctl_session *s, const unsigned char *c, size_t clen, unsigned char *out, size_t *plen)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], hdr[4];
	unsigned long long mlen = 0;
	if (s->broken || clen <= CTL_SEAL_OVERHEAD || clen > UINT32_MAX || s->rx_n == UINT64_MAX) {
		s->broken = 1;
		return -1;
	}
	put_u32(hdr, clen);
	nonce_of(s->rx_n, nonce);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, hdr, 4, nonce, s->rx) != 0) {
		s->broken = 1;
		return -1;
	}
	s->rx_n++;
	*plen = (size_t)mlen;
	return 0;
}

/* Control protocol crypto: tokens and verifiers, the Noise XK handshake (against published vectors), sealed
 * frames and every way they fail. */
#include <stdlib.h>

#include "ctl_crypto.h"
#include "t.h"

/* The verifier of the secret 0x00 0x01 .. 0x1f, computed independently in Python (hmac, hashlib and
 * libsodium's crypto_scalarmult_base): the C and Python clients derive the same key. */
#define VERIFIER_00_1F "605f19acd36a10aa3fac9e2c5dc72f489ed2c2eb5f2551fdb733f4b749a5c74b"

struct pair {
	struct ctl_session c, s;
	unsigned char client_static[32]; /* what the server learnt from message 3 */
};

/*
 * A full XK handshake between two in-memory sides: the client with the token secret csecret and the
 * server key it pinned (pinned), the server with its key pair. Returns 0 when every message opened, else
 * -N for the message N that did not.
 */
static int
handshake_pinned(struct pair *p, const unsigned char csecret[32], const struct ctl_keypair *server,
                 const unsigned char pinned[32])
{
	struct ctl_noise i, r;
	struct ctl_keypair ck;
	unsigned char m[256], pl[256];
	size_t n, plen;
	const unsigned char *pro = (const unsigned char *)CTL_NOISE_PROLOGUE;
	ctl_token_keypair(csecret, &ck);
	ctl_noise_init(&i, 1, pro, strlen(CTL_NOISE_PROLOGUE), &ck, pinned);
	ctl_noise_init(&r, 0, pro, strlen(CTL_NOISE_PROLOGUE), server, NULL);
	n = ctl_noise_write(&i, NULL, 0, m);
	if (n != 48 || ctl_noise_read(&r, m, n, pl, &plen) != 0)
		return -1;
	n = ctl_noise_write(&r, (const unsigned char *)"hello", 5, m);
	if (n != 53 || ctl_noise_read(&i, m, n, pl, &plen) != 0 || plen != 5)
		return -2;
	n = ctl_noise_write(&i, (const unsigned char *)"auth", 4, m);
	if (n != 68 || ctl_noise_read(&r, m, n, pl, &plen) != 0 || plen != 4)
		return -3;
	memcpy(p->client_static, ctl_noise_remote_static(&r), 32);
	ctl_noise_split(&i, &p->c);
	ctl_noise_split(&r, &p->s);
	return 0;
}

static int
handshake(struct pair *p, const unsigned char csecret[32])
{
	struct ctl_keypair server;
	ctl_keypair_new(&server);
	return handshake_pinned(p, csecret, &server, server.pk);
}

static int
roundtrip(struct ctl_session *from, struct ctl_session *to, const char *msg)
{
	unsigned char frame[256], plain[256];
	size_t plen = 0, n = ctl_seal(from, (const unsigned char *)msg, strlen(msg), frame);
	if (n != 4 + strlen(msg) + CTL_SEAL_OVERHEAD)
		return 0;
	if (ctl_open(to, frame + 4, n - 4, plain, &plen) < 0)
		return 0;
	return plen == strlen(msg) && memcmp(plain, msg, plen) == 0;
}

static size_t
unhex(const char *s, unsigned char *out)
{
	size_t n = strlen(s) / 2;
	for (size_t k = 0; k < n; k++) {
		unsigned v;
		if (sscanf(s + 2 * k, "%2x", &v) != 1)
			return 0;
		out[k] = (unsigned char)v;
	}
	return n;
}

/*
 * Noise_XK_25519_ChaChaPoly_SHA256 from cacophony's test vectors (github.com/haskell-cryptography/cacophony,
 * vectors/cacophony.txt): three handshake messages, then transport messages alternating from the initiator.
 */
static const char *const kv_init_prologue = "4a6f686e2047616c74";
static const char *const kv_init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
static const char *const kv_init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
static const char *const kv_resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
static const char *const kv_resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
static const char *const kv_init_remote_static = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
static const char *const kv_handshake_hash = "cefffc5d1074126cc980ebfe902587ff36ba61dc77d4447ebe0f96dc22ae59d7";
static const struct {
	const char *payload, *ciphertext;
} kv_messages[] = {
        {"4c756477696720766f6e204d69736573", "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944a3785af28"
                                             "3c991bab613473804356ef6931f83acf64f99c274b93570857cfc5e"},
        {"4d757272617920526f746862617264", "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088433a4534805fa"
                                           "9fe4eb8343ace6609160c767ad9b832e8eea1d9b7a2111818dd"},
        {"462e20412e20486179656b", "5d8e67b9c1b8e36f5dc674bc5cd2ce243fb5d1710fa57de0370da7cc979015398eaad94603b05498ba9"
                                   "a613d2fd923dcaa6fd4288dfd8d70f419bf737efb4cd37f5da37ebb728849318c82"},
        {"4361726c204d656e676572", "3205e1265f809505e6edc092839d3156745d2abafbfd946b261e41"},
        {"4a65616e2d426170746973746520536179", "470bcb1ae099555ff0d729500df550418d6ee5149d9e40bd2f4c6b3d263cc818d5"},
        {"457567656e2042f6686d20766f6e2042617765726b",
         "d7187ed9d217ba6e91cf596e4871012ccedf7b5bed0d4cb8f7affb020fa17a95a23371e0f6"},
};

static void
test_vectors(void)
{
	unsigned char pro[64], b[32], buf[256], want[256], pl[256];
	struct ctl_keypair is, ie, rs, re;
	struct ctl_noise i, r;
	size_t prolen = unhex(kv_init_prologue, pro), plen;
	unhex(kv_init_static, b);
	ctl_keypair_from_sk(&is, b);
	unhex(kv_init_ephemeral, b);
	ctl_keypair_from_sk(&ie, b);
	unhex(kv_resp_static, b);
	ctl_keypair_from_sk(&rs, b);
	unhex(kv_resp_ephemeral, b);
	ctl_keypair_from_sk(&re, b);
	unhex(kv_init_remote_static, b);
	T_CHECK("vector: the responder's public key", memcmp(b, rs.pk, 32) == 0);
	ctl_noise_init(&i, 1, pro, prolen, &is, rs.pk);
	ctl_noise_init(&r, 0, pro, prolen, &rs, NULL);
	ctl_noise_set_ephemeral(&i, &ie);
	ctl_noise_set_ephemeral(&r, &re);
	int all = 1;
	for (int m = 0; m < 3; m++) {
		struct ctl_noise *w = m % 2 == 0 ? &i : &r, *rd = m % 2 == 0 ? &r : &i;
		size_t pn = unhex(kv_messages[m].payload, pl), wn = unhex(kv_messages[m].ciphertext, want);
		size_t n = ctl_noise_write(w, pl, pn, buf);
		all &= n == wn && memcmp(buf, want, n) == 0;
		all &= ctl_noise_read(rd, buf, n, pl, &plen) == 0 && plen == pn;
	}
	T_CHECK("vector: the three handshake messages byte for byte", all);
	unhex(kv_handshake_hash, b);
	T_CHECK("vector: the handshake hash", memcmp(i.h, b, 32) == 0 && memcmp(r.h, b, 32) == 0);
	T_CHECK("vector: the responder learnt the initiator's static key",
	        memcmp(ctl_noise_remote_static(&r), is.pk, 32) == 0);
	struct ctl_session ci, cr;
	ctl_noise_split(&i, &ci);
	ctl_noise_split(&r, &cr);
	all = 1;
	for (size_t m = 3; m < sizeof(kv_messages) / sizeof(kv_messages[0]); m++) {
		struct ctl_session *w = m % 2 == 0 ? &ci : &cr, *rd = m % 2 == 0 ? &cr : &ci;
		size_t pn = unhex(kv_messages[m].payload, pl), wn = unhex(kv_messages[m].ciphertext, want);
		size_t n = ctl_seal(w, pl, pn, buf);
		all &= n == 4 + wn && memcmp(buf + 4, want, wn) == 0;
		all &= ctl_open(rd, buf + 4, n - 4, pl, &plen) == 0 && plen == pn;
	}
	T_CHECK("vector: transport messages both ways byte for byte", all);
}
static void
test_tokens(void)
{
	char tok[CTL_TOKEN_LEN + 1], id[CTL_TOKEN_ID_LEN + 1], id2[CTL_TOKEN_ID_LEN + 1];
	unsigned char hash[32], hash2[32], secret[32];
	ctl_token_generate(tok, id, hash);
	T_CHECK("token length", strlen(tok) == CTL_TOKEN_LEN && strncmp(tok, "hop_", 4) == 0);
	T_CHECK("token parses", ctl_token_parse(tok, strlen(tok), id2, secret) == 0 && strcmp(id, id2) == 0);
	ctl_token_verifier(secret, hash2);
	T_CHECK("verifier of the parsed secret matches", ctl_hash_equal(hash, hash2));
	hash2[31] ^= 1;
	T_CHECK("one bit off does not match", !ctl_hash_equal(hash, hash2));
	char other[CTL_TOKEN_LEN + 1], oid[CTL_TOKEN_ID_LEN + 1];
	unsigned char ohash[32];
	ctl_token_generate(other, oid, ohash);
	T_CHECK("two tokens differ", strcmp(tok, other) != 0 && !ctl_hash_equal(hash, ohash));

	char bad[CTL_TOKEN_LEN + 2];
	memcpy(bad, tok, sizeof(tok));
	bad[0] = 'H';
	T_CHECK("wrong prefix", ctl_token_parse(bad, strlen(bad), id2, secret) < 0);
	memcpy(bad, tok, sizeof(tok));
	bad[5] = 'G';
	T_CHECK("id not hex", ctl_token_parse(bad, strlen(bad), id2, secret) < 0);
	memcpy(bad, tok, sizeof(tok));
	bad[CTL_TOKEN_LEN - 1] = '+';
	T_CHECK("secret not base64url", ctl_token_parse(bad, strlen(bad), id2, secret) < 0);
	T_CHECK("truncated", ctl_token_parse(tok, CTL_TOKEN_LEN - 1, id2, secret) < 0);
	memcpy(bad, tok, sizeof(tok));
	bad[CTL_TOKEN_LEN] = 'A';
	bad[CTL_TOKEN_LEN + 1] = '\0';
	T_CHECK("too long", ctl_token_parse(bad, strlen(bad), id2, secret) < 0);

	unsigned char bin[5] = {0xfb, 0xff, 0x00, 0x01, 0x02}, back[5];
	char b64[16];
	T_CHECK("b64 encode", ctl_b64_encode(bin, 5, b64, sizeof(b64)) == 7 && strchr(b64, '=') == NULL);
	T_CHECK("b64 decode", ctl_b64_decode(b64, strlen(b64), back, 5) == 0 && memcmp(bin, back, 5) == 0);
	T_CHECK("b64 decode wants the exact size", ctl_b64_decode(b64, strlen(b64), back, 4) < 0);
	T_CHECK("b64 encode refuses a small buffer", ctl_b64_encode(bin, 5, b64, 5) < 0);
}

static void
test_sessions(void)
{
	unsigned char secret[32], wrong[32];
	struct pair p;
	ctl_random(secret, sizeof(secret));
	memcpy(wrong, secret, 32);
	wrong[0] ^= 0x80;

	T_CHECK("handshake", handshake(&p, secret) == 0);
	unsigned char v[32];
	ctl_token_verifier(secret, v);
	T_CHECK("the server learns the token's verifier", memcmp(p.client_static, v, 32) == 0);
	T_CHECK("client to server", roundtrip(&p.c, &p.s, "{\"op\":\"ping\"}"));
	T_CHECK("server to client", roundtrip(&p.s, &p.c, "{\"ok\":true}"));
	T_CHECK("many in a row",
	        roundtrip(&p.c, &p.s, "a") && roundtrip(&p.c, &p.s, "b") && roundtrip(&p.s, &p.c, "c"));

	/* Replay: the same frame opened twice fails the second time (the counter moved). */
	unsigned char f1[64], f2[64], out[64];
	size_t plen, n1 = ctl_seal(&p.c, (const unsigned char *)"one", 3, f1);
	size_t n2 = ctl_seal(&p.c, (const unsigned char *)"two", 3, f2);
	T_CHECK("reordered frame refused", ctl_open(&p.s, f2 + 4, n2 - 4, out, &plen) < 0 && p.s.broken);
	T_CHECK("session stays broken", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, secret) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"one", 3, f1);
	T_CHECK("first opens", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) == 0);
	T_CHECK("replayed frame refused", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, secret) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	f1[10] ^= 1;
	T_CHECK("flipped ciphertext bit refused", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, secret) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	T_CHECK("truncated frame refused", ctl_open(&p.s, f1 + 4, n1 - 5, out, &plen) < 0);
	T_CHECK("tag-only frame refused", ctl_open(&p.s, f1 + 4, CTL_SEAL_OVERHEAD, out, &plen) < 0);

	/* A wrong secret still completes the handshake (the client holds the key it sends) but proves another
	 * key: the daemon compares it with the stored verifier. */
	T_CHECK("handshake with another token's key completes", handshake(&p, wrong) == 0);
	T_CHECK("... and shows a key that is not the verifier", memcmp(p.client_static, v, 32) != 0);

	/* A daemon whose key is not the pinned one (a man in the middle, a copied database on another daemon):
	 * it cannot read message 1, and a message 2 it writes does not open at the client. */
	struct ctl_keypair real, fake;
	ctl_keypair_new(&real);
	ctl_keypair_new(&fake);
	T_CHECK("a daemon with another key cannot read message 1", handshake_pinned(&p, secret, &fake, real.pk) == -1);
	const unsigned char *pro = (const unsigned char *)CTL_NOISE_PROLOGUE;
	size_t prolen = strlen(CTL_NOISE_PROLOGUE);
	struct ctl_noise i, r, r2;
	struct ctl_keypair ck;
	unsigned char m[128], pl[128];
	size_t n;
	ctl_token_keypair(secret, &ck);
	ctl_noise_init(&i, 1, pro, prolen, &ck, real.pk);
	ctl_noise_init(&r, 0, pro, prolen, &fake, NULL);
	ctl_noise_init(&r2, 0, pro, prolen, &real, NULL);
	n = ctl_noise_write(&i, NULL, 0, m);
	T_CHECK("the real daemon reads message 1", ctl_noise_read(&r2, m, n, pl, &plen) == 0);
	/* the impostor takes message 1's ephemeral key without checking it and answers with its message 2 */
	r.msg = 1;
	memcpy(r.re, m, 32);
	n = ctl_noise_write(&r, NULL, 0, m);
	T_CHECK("message 2 of an impostor does not open at the client",
	        n > 0 && ctl_noise_read(&i, m, n, pl, &plen) < 0);
	T_CHECK("... and the handshake is dead after it", ctl_noise_write(&i, NULL, 0, m) == 0);
	n = ctl_noise_write(&r2, NULL, 0, m);
	T_CHECK("a message written out of turn is refused", n > 0 && ctl_noise_write(&r2, NULL, 0, m) == 0);

	/* Tampering with any handshake message is seen. */
	int seen = 1;
	for (int msgi = 0; msgi < 3; msgi++) {
		ctl_noise_init(&i, 1, pro, prolen, &ck, real.pk);
		ctl_noise_init(&r, 0, pro, prolen, &real, NULL);
		for (int k = 0; k <= msgi; k++) {
			struct ctl_noise *w = k % 2 == 0 ? &i : &r, *rd = k % 2 == 0 ? &r : &i;
			n = ctl_noise_write(w, (const unsigned char *)"x", 1, m);
			if (k == msgi)
				m[n / 2] ^= 4;
			if (ctl_noise_read(rd, m, n, pl, &plen) == 0 && k == msgi)
				seen = 0;
		}
	}
	T_CHECK("a flipped bit in any handshake message is refused", seen);
	unsigned char zero[32] = {0};
	ctl_noise_init(&i, 1, pro, prolen, &ck, zero);
	T_CHECK("a low-order pinned key is refused", ctl_noise_write(&i, NULL, 0, m) == 0);
	ctl_noise_init(&r, 0, pro, prolen, &real, NULL);
	memset(m, 0, 48);
	T_CHECK("a low-order ephemeral key is refused", ctl_noise_read(&r, m, 48, pl, &plen) < 0);
	T_CHECK("a short message 1 is refused", ctl_noise_read(&r2, m, 47, pl, &plen) < 0);

	/* A session recorded from one connection says nothing on another: keys differ per ephemeral pair. */
	struct pair a, b;
	handshake(&a, secret);
	handshake(&b, secret);
	n1 = ctl_seal(&a.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	T_CHECK("frame of session A refused by session B", ctl_open(&b.s, f1 + 4, n1 - 4, out, &plen) < 0);

	/* The directions use different keys: a client frame reflected back to the client does not open. */
	handshake(&a, secret);
	n1 = ctl_seal(&a.c, (const unsigned char *)"reflect", 7, f1);
	T_CHECK("reflected frame refused", ctl_open(&a.c, f1 + 4, n1 - 4, out, &plen) < 0);

	ctl_session_wipe(&a.s);
	T_CHECK("wiped session refuses", ctl_seal(&a.s, (const unsigned char *)"x", 1, f1) == 0);
}

static void
test_verifier(void)
{
	unsigned char secret[32], v1[32], v2[32], h[32];
	ctl_random(secret, sizeof(secret));
	ctl_token_verifier(secret, v1);
	ctl_token_verifier(secret, v2);
	ctl_token_hash(secret, h);
	T_CHECK("the verifier is a function of the secret", memcmp(v1, v2, 32) == 0);
	T_CHECK("the verifier is not protocol 1's hash", memcmp(v1, h, 32) != 0);
	secret[31] ^= 1;
	ctl_token_verifier(secret, v2);
	T_CHECK("another secret, another verifier", memcmp(v1, v2, 32) != 0);
	for (int k = 0; k < 32; k++)
		secret[k] = (unsigned char)k;
	ctl_token_verifier(secret, v1);
	char hex[65];
	for (int k = 0; k < 32; k++)
		snprintf(hex + 2 * k, 3, "%02x", v1[k]);
	T_CHECK("the verifier of a known secret (as Python derives it)", strcmp(hex, VERIFIER_00_1F) == 0);
}

int
main(void)
{
	if (ctl_crypto_init() < 0) {
		printf("not ok - sodium_init\n");
		return 1;
	}
	test_tokens();
	test_vectors();
	test_sessions();
	test_verifier();
	T_DONE();
}

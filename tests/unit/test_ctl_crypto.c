/* Control protocol crypto: tokens, the handshake's key agreement, sealed frames and every way they fail. */
#include <stdlib.h>

#include "ctl_crypto.h"
#include "t.h"

struct pair {
	struct ctl_session c, s;
};

/* A full handshake between two in-memory sides; cpsk/spsk are the token hashes each side uses. */
static int
handshake(struct pair *p, const unsigned char cpsk[32], const unsigned char spsk[32])
{
	struct ctl_keypair ck, sk;
	unsigned char th[32];
	ctl_keypair_new(&ck);
	ctl_keypair_new(&sk);
	ctl_transcript_hash((const unsigned char *)"hello-c", 7, (const unsigned char *)"hello-s", 7, th);
	if (ctl_session_client(&p->c, &ck, sk.pk, cpsk, th) < 0)
		return -1;
	return ctl_session_server(&p->s, &sk, ck.pk, spsk, th);
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

static void
test_tokens(void)
{
	char tok[CTL_TOKEN_LEN + 1], id[CTL_TOKEN_ID_LEN + 1], id2[CTL_TOKEN_ID_LEN + 1];
	unsigned char hash[32], hash2[32], secret[32];
	ctl_token_generate(tok, id, hash);
	T_CHECK("token length", strlen(tok) == CTL_TOKEN_LEN && strncmp(tok, "hop_", 4) == 0);
	T_CHECK("token parses", ctl_token_parse(tok, strlen(tok), id2, secret) == 0 && strcmp(id, id2) == 0);
	ctl_token_hash(secret, hash2);
	T_CHECK("hash of the parsed secret matches", ctl_hash_equal(hash, hash2));
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
	unsigned char psk[32], wrong[32];
	struct pair p;
	ctl_random(psk, sizeof(psk));
	memcpy(wrong, psk, 32);
	wrong[0] ^= 0x80;

	T_CHECK("handshake", handshake(&p, psk, psk) == 0);
	T_CHECK("client to server", roundtrip(&p.c, &p.s, "{\"op\":\"auth\"}"));
	T_CHECK("server to client", roundtrip(&p.s, &p.c, "{\"ok\":true}"));
	T_CHECK("many in a row",
	        roundtrip(&p.c, &p.s, "a") && roundtrip(&p.c, &p.s, "b") && roundtrip(&p.s, &p.c, "c"));

	/* Replay: the same frame opened twice fails the second time (the counter moved). */
	unsigned char f1[64], f2[64], out[64];
	size_t plen, n1 = ctl_seal(&p.c, (const unsigned char *)"one", 3, f1);
	size_t n2 = ctl_seal(&p.c, (const unsigned char *)"two", 3, f2);
	T_CHECK("reordered frame refused", ctl_open(&p.s, f2 + 4, n2 - 4, out, &plen) < 0 && p.s.broken);
	T_CHECK("session stays broken", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, psk, psk) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"one", 3, f1);
	T_CHECK("first opens", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) == 0);
	struct ctl_session copy = p.s;
	copy.broken = 0;
	T_CHECK("replayed frame refused", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, psk, psk) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	f1[10] ^= 1;
	T_CHECK("flipped ciphertext bit refused", ctl_open(&p.s, f1 + 4, n1 - 4, out, &plen) < 0);

	T_CHECK("fresh handshake", handshake(&p, psk, psk) == 0);
	n1 = ctl_seal(&p.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	T_CHECK("truncated frame refused", ctl_open(&p.s, f1 + 4, n1 - 5, out, &plen) < 0);
	T_CHECK("tag-only frame refused", ctl_open(&p.s, f1 + 4, CTL_SEAL_OVERHEAD, out, &plen) < 0);

	T_CHECK("handshake with different token hashes completes", handshake(&p, psk, wrong) == 0);
	T_CHECK("but nothing opens", !roundtrip(&p.c, &p.s, "{\"op\":\"auth\"}"));

	/* A session recorded from one connection says nothing on another: keys differ per ephemeral pair. */
	struct pair a, b;
	handshake(&a, psk, psk);
	handshake(&b, psk, psk);
	n1 = ctl_seal(&a.c, (const unsigned char *)"{\"op\":\"ping\"}", 13, f1);
	T_CHECK("frame of session A refused by session B", ctl_open(&b.s, f1 + 4, n1 - 4, out, &plen) < 0);

	/* The directions use different keys: a client frame reflected back to the client does not open. */
	handshake(&a, psk, psk);
	n1 = ctl_seal(&a.c, (const unsigned char *)"reflect", 7, f1);
	T_CHECK("reflected frame refused", ctl_open(&a.c, f1 + 4, n1 - 4, out, &plen) < 0);

	/* Transcript binding: a different server hello gives different keys. */
	struct ctl_keypair ck, sk;
	unsigned char th1[32], th2[32];
	struct ctl_session cs, ss;
	ctl_keypair_new(&ck);
	ctl_keypair_new(&sk);
	ctl_transcript_hash((const unsigned char *)"c", 1, (const unsigned char *)"s1", 2, th1);
	ctl_transcript_hash((const unsigned char *)"c", 1, (const unsigned char *)"s2", 2, th2);
	ctl_session_client(&cs, &ck, sk.pk, psk, th1);
	ctl_session_server(&ss, &sk, ck.pk, psk, th2);
	T_CHECK("tampered transcript: nothing opens", !roundtrip(&cs, &ss, "x"));
	unsigned char tha[32], thb[32];
	ctl_transcript_hash((const unsigned char *)"ab", 2, (const unsigned char *)"c", 1, tha);
	ctl_transcript_hash((const unsigned char *)"a", 1, (const unsigned char *)"bc", 2, thb);
	T_CHECK("transcript hash is not ambiguous about the split", memcmp(tha, thb, 32) != 0);

	unsigned char zero_pk[32] = {0};
	T_CHECK("low-order peer key refused", ctl_session_server(&ss, &sk, zero_pk, psk, th1) < 0);
	T_CHECK("sealing on a failed session refused", ctl_seal(&ss, (const unsigned char *)"x", 1, f1) == 0);
	ctl_session_wipe(&cs);
	T_CHECK("wiped session refuses", ctl_seal(&cs, (const unsigned char *)"x", 1, f1) == 0);
	(void)copy;
}

int
main(void)
{
	if (ctl_crypto_init() < 0) {
		printf("not ok - sodium_init\n");
		return 1;
	}
	test_tokens();
	test_sessions();
	T_DONE();
}

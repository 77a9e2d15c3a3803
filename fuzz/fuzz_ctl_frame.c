/*
 * libFuzzer harness for the control protocol's transport: the frame decoder over any byte string (every
 * frame it returns lies inside the input, a too-large length is refused from the header), then each frame's
 * payload fed to ctl_open on a fixed session (forged ciphertext must fail cleanly and break the session, never
 * read or write out of bounds), and a sealed copy opened by the peer session (round trip).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_crypto.h"
#include "ctl_proto.h"

#define FUZZ_MAX_FRAME 4096

static struct ctl_session client, server;

static void
keys_once(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	if (ctl_crypto_init() != 0)
		abort();
	/* A real XK handshake in memory gives the two sessions. */
	struct ctl_keypair ck, sk;
	struct ctl_noise i, r;
	unsigned char secret[32] = {1}, m[128], pl[128];
	size_t n, plen;
	ctl_token_keypair(secret, &ck);
	ctl_keypair_new(&sk);
	ctl_noise_init(&i, 1, (const unsigned char *)"fuzz", 4, &ck, sk.pk);
	ctl_noise_init(&r, 0, (const unsigned char *)"fuzz", 4, &sk, NULL);
	for (int k = 0; k < 3; k++) {
		n = ctl_noise_write(k % 2 == 0 ? &i : &r, NULL, 0, m);
		if (n == 0 || ctl_noise_read(k % 2 == 0 ? &r : &i, m, n, pl, &plen) != 0)
			abort();
	}
	ctl_noise_split(&i, &client);
	ctl_noise_split(&r, &server);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	keys_once();
	struct ctl_session c = client, s = server;
	size_t off = 0;
	for (;;) {
		const unsigned char *p = NULL;
		size_t plen = 0, used = 0;
		enum ctl_frame_status st = ctl_frame_decode(data + off, size - off, FUZZ_MAX_FRAME, &p, &plen, &used);
		if (st != CTL_FRAME_OK)
			break;
		if (p != data + off + CTL_FRAME_HEADER_LEN || plen == 0 || plen > FUZZ_MAX_FRAME ||
		    used != plen + CTL_FRAME_HEADER_LEN || used > size - off)
			__builtin_trap();
		unsigned char *out = malloc(plen);
		size_t olen = 0;
		struct ctl_session probe = s;
		if (ctl_open(&probe, p, plen, out, &olen) == 0)
			__builtin_trap(); /* a forgery that opens: impossible without the key */
		if (!probe.broken || ctl_open(&probe, p, plen, out, &olen) == 0)
			__builtin_trap(); /* a failed open must break the session for good */
		unsigned char *sealed = malloc(CTL_FRAME_HEADER_LEN + plen + CTL_SEAL_OVERHEAD);
		size_t n = ctl_seal(&c, p, plen, sealed);
		unsigned char *back = malloc(plen + CTL_SEAL_OVERHEAD);
		if (n != CTL_FRAME_HEADER_LEN + plen + CTL_SEAL_OVERHEAD ||
		    ctl_open(&s, sealed + CTL_FRAME_HEADER_LEN, n - CTL_FRAME_HEADER_LEN, back, &olen) != 0 ||
		    olen != plen || memcmp(back, p, plen) != 0)
			__builtin_trap();
		free(out);
		free(sealed);
		free(back);
		off += used;
	}
	return 0;
}

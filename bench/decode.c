/*
 * decode FILE: libsndfile's bare decode of FILE in 4096-frame float blocks, the floor for bench/audio.sh.
 * Prints the frame count and a checksum so the work cannot be optimised away.
 */
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
	SF_INFO info = {0};
	SNDFILE *sf = argc > 1 ? sf_open(argv[1], SFM_READ, &info) : NULL;
	if (sf == NULL) {
		fprintf(stderr, "decode: %s\n", sf_strerror(NULL));
		return 1;
	}
	float *buf = malloc(sizeof(float) * 4096 * (size_t)info.channels);
	sf_count_t n, total = 0;
	double sum = 0;
	while ((n = sf_readf_float(sf, buf, 4096)) > 0) {
		total += n;
		sum += buf[0];
	}
	printf("%lld %g\n", (long long)total, sum);
	free(buf);
	sf_close(sf);
	return 0;
}

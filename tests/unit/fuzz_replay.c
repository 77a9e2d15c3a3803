/*
 * fuzz_replay: runs a libFuzzer harness over every file of its seed directory (fuzz/seeds/NAME, compiled
 * in as SEEDS_DIR), so the seeds - and every crash input kept there - are regression tests in make check,
 * under the sanitizers of the build. A harness signals a bug by crashing (__builtin_trap or ASan).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SEEDS_DIR
#error SEEDS_DIR must name the seed directory
#endif

int
main(void)
{
	DIR *d = opendir(SEEDS_DIR);
	if (d == NULL) {
		printf("not ok - seeds: cannot open %s\n", SEEDS_DIR);
		return 1;
	}
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", SEEDS_DIR, e->d_name);
		FILE *f = fopen(path, "rb");
		if (f == NULL)
			continue;
		unsigned char *buf = malloc(1 << 20);
		size_t len = fread(buf, 1, 1 << 20, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		printf("ok - %s: seed %s\n", strrchr(SEEDS_DIR, '/') + 1, e->d_name);
		n++;
	}
	closedir(d);
	if (n == 0)
		printf("not ok - seeds: none in %s\n", SEEDS_DIR);
	return n == 0;
}

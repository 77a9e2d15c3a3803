/*
 * ctl_load: the direct control-socket side of bench/web.sh. THREADS connections (one libhopper handle each)
 * submit one job at a time for SECONDS; prints requests/s and the p50/p99 latency of a submit, to compare
 * with the same submits over HTTP (POST /v1/jobs) at the same concurrency.
 * Usage: ctl_load SOCKET TOKEN THREADS SECONDS QUEUE
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hopper.h"

static const char *sock, *token, *queue;
static double seconds;

struct res {
	double *lat;
	size_t n, cap;
	int errors;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
	struct res *r = arg;
	struct hopper_opts o = {.socket = sock, .token = token, .timeout_ms = 30000, .client = "ctl_load"};
	char err[256];
	int code;
	struct hopper *h = hopper_connect(&o, &code, err, sizeof(err));
	if (h == NULL) {
		fprintf(stderr, "ctl_load: %s\n", err);
		r->errors++;
		return NULL;
	}
	json_t *job = json_pack("{s:s, s:s}", "type", "noop", "queue", queue);
	double end = now() + seconds;
	while (now() < end) {
		double t0 = now();
		json_t *res = NULL;
		if (hopper_submit(h, job, &res) != HOPPER_OK)
			r->errors++;
		json_decref(res);
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 4096;
			r->lat = realloc(r->lat, r->cap * sizeof(*r->lat));
		}
		r->lat[r->n++] = now() - t0;
	}
	json_decref(job);
	hopper_close(h);
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: ctl_load SOCKET TOKEN THREADS SECONDS QUEUE\n");
		return 2;
	}
	sock = argv[1];
	token = argv[2];
	int nt = atoi(argv[3]);
	seconds = atof(argv[4]);
	queue = argv[5];
	pthread_t *t = calloc((size_t)nt, sizeof(*t));
	struct res *r = calloc((size_t)nt, sizeof(*r));
	double t0 = now();
	for (int i = 0; i < nt; i++)
		pthread_create(&t[i], NULL, run, &r[i]);
	size_t total = 0;
	int errors = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		total += r[i].n;
		errors += r[i].errors;
	}
	double took = now() - t0;
	double *all = malloc((total ? total : 1) * sizeof(*all));
	size_t k = 0;
	for (int i = 0; i < nt; i++) {
		memcpy(all + k, r[i].lat, r[i].n * sizeof(*all));
		k += r[i].n;
		free(r[i].lat);
	}
	qsort(all, total, sizeof(*all), cmp);
	printf("%.0f req/s p50 %.3f ms p99 %.3f ms (%zu requests, %d errors)\n", total / took,
	       total ? all[total / 2] * 1e3 : 0, total ? all[total * 99 / 100] * 1e3 : 0, total, errors);
	free(all);
	free(t);
	free(r);
	return errors ? 1 : 0;
}

/* Helpers of the unit tests of the job parser (test_job, test_job_flow, test_job_limits): one set of
 * defaults, a parse of a message into the default queue, and "refused, for this reason". */
#ifndef HOPPER_T_JOB_H
#define HOPPER_T_JOB_H

#include <stdio.h>
#include <string.h>

#include "job.h"

static const struct job_defaults defs = {
        .max_bytes = 4096, .max_attempts = 3, .timeout_s = 300, .backoff_base_s = 1, .backoff_max_s = 60};

/* job_parse of msg (a C string) with defs; err holds 256 bytes. */
static inline int
parse(const char *msg, struct job_spec *spec, char *err)
{
	return job_parse(msg, strlen(msg), "default", &defs, spec, err, 256);
}

/* 1 if msg is refused and the reason contains want (another reason is printed as a comment). */
static inline int
refused(const char *msg, const char *want)
{
	struct job_spec spec;
	char err[256] = "";
	if (parse(msg, &spec, err) == 0) {
		job_spec_free(&spec);
		return 0;
	}
	if (strstr(err, want) == NULL)
		printf("# refused for another reason: %s\n", err);
	return strstr(err, want) != NULL;
}

#endif

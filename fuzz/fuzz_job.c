/* libFuzzer harness for job validation: any message is either a valid job or refused with a reason. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "job.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct job_defaults defs = {
	        .max_bytes = 65536, .max_attempts = 3, .timeout_s = 300, .backoff_base_s = 1, .backoff_max_s = 300};
	struct job_spec spec;
	char err[512];
	err[0] = '\0';
	if (job_parse((const char *)data, size, "default", &defs, &spec, err, sizeof(err)) == 0) {
		if (!job_type_known(spec.type) || spec.max_attempts < 1 || spec.timeout_s <= 0 || spec.args == NULL ||
		    strcmp(spec.queue, "default") != 0)
			__builtin_trap();
		job_spec_free(&spec);
	} else if (err[0] == '\0')
		__builtin_trap(); /* a refusal must say why */
	return 0;
}

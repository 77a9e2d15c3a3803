/* job_limits: the "rate_limit" field of a job message (see job_limits.h). */
#include "job_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "jsonx.h"

static const struct {
	char unit;
	double seconds;
} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}};

/* "N/s", "N/m" or "N/h" (N a positive decimal) as jobs per second; -1 if malformed or out of bounds. */
static double
rate_parse(const char *s)
{
	char *end = NULL;
	double n = strtod(s, &end);
	if (end == s || n <= 0 || end[0] != '/' || end[1] == '\0' || end[2] != '\0')
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (units[i].unit == end[1]) {
			double r = n / units[i].seconds;
			return (r >= JOB_RL_RATE_MIN && r <= JOB_RL_RATE_MAX) ? r : -1;
		}
	return -1;
}

static int
fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "field 'rate_limit': %s", what);
	return -1;
}

int
job_limits_parse(json_t *root, struct job_limits *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	json_t *r = json_object_get(root, "rate_limit");
	if (r == NULL || json_is_null(r))
		return 0;
	if (json_is_string(r))
		return fail(err, errlen, "named limits are not supported yet: give {\"key\", \"rate\", \"burst\"}");
	if (!json_is_object(r))
		return fail(err, errlen, "must be an object {\"key\", \"rate\", \"burst\"}");
	const char *name;
	json_t *v;
	json_object_foreach(r, name, v)
	{
		if (strcmp(name, "key") != 0 && strcmp(name, "rate") != 0 && strcmp(name, "burst") != 0) {
			snprintf(err, errlen, "field 'rate_limit' has an unknown member '%s'", name);
			return -1;
		}
	}
	json_t *key = json_object_get(r, "key"), *rate = json_object_get(r, "rate");
	if (!json_is_string(key) || !job_name_valid(json_string_value(key), JOB_RL_KEY_MAX))
		return fail(err, errlen, "'key' must be a name of letters, digits and . _ : - (at most 200)");
	double rps = json_is_string(rate) ? rate_parse(json_string_value(rate)) : -1;
	if (rps < 0)
		return fail(err, errlen, "'rate' must be N/s, N/m or N/h (N > 0; at most 1000000/s, at least 1/day)");
	long long burst = 1;
	if (jsonx_int(r, "burst", 1, JOB_RL_BURST_MAX, &burst, err, errlen) < 0) {
		char inner[256];
		snprintf(inner, sizeof(inner), "%s", err);
		memset(out, 0, sizeof(*out));
		return fail(err, errlen, inner);
	}
	snprintf(out->rl_key, sizeof(out->rl_key), "%s", json_string_value(key));
	out->rate_per_s = rps;
	out->burst = (int)burst;
	return 0;
}

void
job_limits_arg(const struct job_limits *l, char *buf, size_t len)
{
	if (l->rl_key[0] == '\0')
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%.3f\t%d", 1000.0 / l->rate_per_s, l->burst);
}

/* job_limits: the "rate_limit" and "concurrency" fields of a job message (see job_limits.h). */
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

_Static_assert(JOB_RL_QUEUE_MAX == QUEUE_NAME_MAX, "job_rl_config holds queue names");

static int
fail(char *err, size_t errlen, const char *field, const char *what)
{
	snprintf(err, errlen, "field '%s': %s", field, what);
	return -1;
}

/* The object r of field: only the members named in allowed (NULL-terminated), and its "key", copied to key.
 * Returns 0 or -1 with the reason in err. */
static int
limit_object(json_t *r, const char *field, const char *const *allowed, char *key, char *err, size_t errlen)
{
	if (!json_is_object(r))
		return fail(err, errlen, field, "must be an object, or the name of a configured limit");
	const char *name;
	json_t *v;
	json_object_foreach(r, name, v)
	{
		int ok = 0;
		for (const char *const *a = allowed; *a != NULL; a++)
			ok |= strcmp(name, *a) == 0;
		if (!ok) {
			snprintf(err, errlen, "field '%s' has an unknown member '%s'", field, name);
			return -1;
		}
	}
	json_t *k = json_object_get(r, "key");
	if (!json_is_string(k) || !job_name_valid(json_string_value(k), JOB_RL_KEY_MAX))
		return fail(err, errlen, field, "'key' must be a name of letters, digits and . _ : - (at most 200)");
	snprintf(key, JOB_RL_KEY_MAX + 1, "%s", json_string_value(k));
	return 0;
}

/* jsonx_int of r's member, its error prefixed with the field. */
static int
limit_int(json_t *r, const char *field, const char *member, long long min, long long max, long long *out, char *err,
          size_t errlen)
{
	if (jsonx_int(r, member, min, max, out, err, errlen) >= 0)
		return 0;
	char inner[256];
	snprintf(inner, sizeof(inner), "%s", err);
	return fail(err, errlen, field, inner);
}

static int
rate_limit_parse(json_t *r, struct job_limits *out, char *err, size_t errlen)
{
	static const char *const allowed[] = {"key", "rate", "burst", NULL};
	if (limit_object(r, "rate_limit", allowed, out->rl_key, err, errlen) < 0)
		return -1;
	json_t *rate = json_object_get(r, "rate");
	double rps = json_is_string(rate) ? rate_parse(json_string_value(rate)) : -1;
	if (rps < 0)
		return fail(err, errlen, "rate_limit",
		            "'rate' must be N/s, N/m or N/h (N > 0; at most 1000000/s, at least 1/day)");
	long long burst = 1;
	if (limit_int(r, "rate_limit", "burst", 1, JOB_RL_BURST_MAX, &burst, err, errlen) < 0)
		return -1;
	out->rate_per_s = rps;
	out->burst = (int)burst;
	return 0;
}

static int
concurrency_parse(json_t *r, struct job_limits *out, char *err, size_t errlen)
{
	static const char *const allowed[] = {"key", "limit", NULL};
	if (limit_object(r, "concurrency", allowed, out->cc_key, err, errlen) < 0)
		return -1;
	if (json_object_get(r, "limit") == NULL)
		return fail(err, errlen, "concurrency", "'limit' is required (running jobs per key, at least 1)");
	long long n = 0;
	if (limit_int(r, "concurrency", "limit", 1, JOB_CC_LIMIT_MAX, &n, err, errlen) < 0)
		return -1;
	out->cc_limit = (int)n;
	return 0;
}

static const struct job_rl_named *
named_find(const struct job_rl_config *cfg, const char *name)
{
	for (int i = 0; cfg != NULL && i < cfg->nnamed; i++)
		if (strcmp(cfg->named[i].name, name) == 0)
			return &cfg->named[i];
	return NULL;
}

/* A configured limit as the job's: key "=NAME" (deployment-wide, see job_limits.h). */
static void
use_named(const struct job_rl_named *n, struct job_limits *out)
{
	snprintf(out->rl_key, sizeof(out->rl_key), "=%.*s", JOB_RL_KEY_MAX - 1, n->name);
	out->rate_per_s = n->rate_per_s;
	out->burst = n->burst;
}

static const struct job_rl_named *
queue_default(const struct job_rl_config *cfg, const char *queue)
{
	for (int i = 0; cfg != NULL && queue != NULL && i < cfg->nqueue; i++)
		if (strcmp(cfg->queue_default[i].queue, queue) == 0)
			return &cfg->named[cfg->queue_default[i].named];
	return NULL;
}

int
job_limits_parse(json_t *root, const char *queue, const struct job_rl_config *cfg, struct job_limits *out, char *err,
                 size_t errlen)
{
	memset(out, 0, sizeof(*out));
	json_t *r = json_object_get(root, "rate_limit"), *c = json_object_get(root, "concurrency");
	const struct job_rl_named *n = NULL;
	int rc = 0;
	if (json_is_string(r)) {
		if ((n = named_find(cfg, json_string_value(r))) == NULL) {
			snprintf(err, errlen,
			         "field 'rate_limit': no configured limit '%.64s' (rate_limits in hopperd.conf)",
			         json_string_value(r));
			return -1;
		}
		use_named(n, out);
	} else if (r != NULL && !json_is_null(r))
		rc = rate_limit_parse(r, out, err, errlen);
	else if ((n = queue_default(cfg, queue)) != NULL)
		use_named(n, out);
	if (rc == 0 && c != NULL && !json_is_null(c))
		rc = concurrency_parse(c, out, err, errlen);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

void
job_limits_arg(const struct job_limits *l, char *buf, size_t len)
{
	if (l->rl_key[0] == '\0')
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%.3f\t%d", 1000.0 / l->rate_per_s, l->burst);
}

void
job_limits_cc_arg(const struct job_limits *l, char *buf, size_t len)
{
	if (l->cc_key[0] == '\0')
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%d", l->cc_limit);
}

/* One "NAME:RATE[:BURST]" entry (tok is modified). */
static int
named_entry(char *tok, struct job_rl_config *out, char *err, size_t errlen)
{
	char whole[JOB_RL_KEY_MAX + 64];
	snprintf(whole, sizeof(whole), "%s", tok);
	char *rate = strchr(tok, ':');
	char *burst = rate != NULL ? strchr(rate + 1, ':') : NULL;
	if (rate != NULL)
		*rate++ = '\0';
	if (burst != NULL)
		*burst++ = '\0';
	double rps = rate != NULL ? rate_parse(rate) : -1;
	char *end = NULL;
	long b = burst != NULL ? strtol(burst, &end, 10) : 1;
	if (!job_name_valid(tok, JOB_RL_KEY_MAX) || rps < 0 || (burst != NULL && (*end != '\0' || b < 1)) ||
	    b > JOB_RL_BURST_MAX) {
		snprintf(err, errlen, "rate_limits: '%s' is not NAME:RATE[:BURST] (rate N/s, N/m or N/h)", whole);
		return -1;
	}
	if (named_find(out, tok) != NULL || out->nnamed == JOB_RL_NAMED_MAX) {
		snprintf(err, errlen, "rate_limits: '%s' is named twice, or more than %d limits", tok,
		         JOB_RL_NAMED_MAX);
		return -1;
	}
	struct job_rl_named *n = &out->named[out->nnamed++];
	snprintf(n->name, sizeof(n->name), "%s", tok);
	n->rate_per_s = rps;
	n->burst = (int)b;
	return 0;
}

/* One "QUEUE:NAME" entry (tok is modified). */
static int
queue_entry(char *tok, struct job_rl_config *out, char *err, size_t errlen)
{
	char *name = strchr(tok, ':');
	if (name != NULL)
		*name++ = '\0';
	const struct job_rl_named *n = name != NULL ? named_find(out, name) : NULL;
	if (!job_name_valid(tok, QUEUE_NAME_MAX) || n == NULL || queue_default(out, tok) != NULL ||
	    out->nqueue == JOB_RL_NAMED_MAX) {
		snprintf(err, errlen,
		         "queue_rate_limits: '%s%s%s' is not QUEUE:NAME of a limit in rate_limits (once per queue)",
		         tok, name ? ":" : "", name ? name : "");
		return -1;
	}
	snprintf(out->queue_default[out->nqueue].queue, sizeof(out->queue_default[0].queue), "%s", tok);
	out->queue_default[out->nqueue++].named = (int)(n - out->named);
	return 0;
}

static int
each_entry(const char *spec, int (*fn)(char *, struct job_rl_config *, char *, size_t), struct job_rl_config *out,
           char *err, size_t errlen)
{
	char *copy = strdup(spec != NULL ? spec : "");
	int rc = copy != NULL ? 0 : -1;
	char *save = NULL;
	for (char *tok = copy != NULL ? strtok_r(copy, " ,\t", &save) : NULL; tok != NULL && rc == 0;
	     tok = strtok_r(NULL, " ,\t", &save))
		rc = fn(tok, out, err, errlen);
	free(copy);
	return rc;
}

int
job_rl_config_parse(const char *named, const char *queues, struct job_rl_config *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (each_entry(named, named_entry, out, err, errlen) < 0 ||
	    each_entry(queues, queue_entry, out, err, errlen) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return 0;
}

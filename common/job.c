#include "job.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "jsonx.h"
#include "xmalloc.h"

const char *const job_type_names[] = {"noop", "sleep", "fail", "crash", "workflow.run", "audio.analyze", NULL};

static const char *const state_names[JOB_STATE_COUNT] = {
        [JOB_QUEUED] = "queued",       [JOB_RUNNING] = "running",    [JOB_SUCCEEDED] = "succeeded",
        [JOB_FAILED] = "failed",       [JOB_RETRYING] = "retrying",  [JOB_DEAD] = "dead",
        [JOB_CANCELLED] = "cancelled", [JOB_SCHEDULED] = "scheduled"};

int
job_name_valid(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == ':' || c == '-'))
			return 0;
	}
	return n >= 1 && n <= max;
}

int
job_type_known(const char *type)
{
	for (size_t i = 0; job_type_names[i] != NULL; i++)
		if (strcmp(job_type_names[i], type) == 0)
			return 1;
	return 0;
}

/* Copies a validated name field into dst; returns -1 with err set when it is missing or invalid. */
static int
copy_name(json_t *root, const char *key, int required, char *dst, size_t max, char *err, size_t errlen)
{
	const char *s = NULL;
	int r = jsonx_string(root, key, max, &s, err, errlen);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (required) {
			snprintf(err, errlen, "field '%s' is required", key);
			return -1;
		}
		dst[0] = '\0';
		return 0;
	}
	if (!job_name_valid(s, max)) {
		snprintf(err, errlen, "field '%s' may hold only letters, digits and . _ : - (at most %zu)", key, max);
		return -1;
	}
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int
copy_optional_string(json_t *root, const char *key, size_t max, char **dst, char *err, size_t errlen)
{
	const char *s = NULL;
	int r = jsonx_string(root, key, max, &s, err, errlen);
	if (r < 0)
		return -1;
	*dst = r ? xstrdup(s) : NULL;
	return 0;
}

/* "parent": {"id", "queue"} (optional): both names, or the field is refused. */
static int
parse_parent(json_t *root, struct job_spec *out, char *err, size_t errlen)
{
	json_t *p = json_object_get(root, "parent");
	if (p == NULL || json_is_null(p))
		return 0;
	if (!json_is_object(p) || copy_name(p, "id", 1, out->parent_id, JOB_ID_MAX, err, errlen) < 0 ||
	    copy_name(p, "queue", 1, out->parent_queue, QUEUE_NAME_MAX, err, errlen) < 0) {
		snprintf(err, errlen, "field 'parent' must be {\"id\", \"queue\"} of valid names");
		out->parent_id[0] = out->parent_queue[0] = '\0';
		return -1;
	}
	return 0;
}

static int
parse_fields(json_t *root, const char *queue, const struct job_defaults *d, struct job_spec *out, char *err,
             size_t errlen)
{
	if (copy_name(root, "id", 0, out->id, JOB_ID_MAX, err, errlen) < 0 ||
	    copy_name(root, "type", 1, out->type, JOB_TYPE_MAX, err, errlen) < 0 ||
	    copy_name(root, "queue", 0, out->queue, QUEUE_NAME_MAX, err, errlen) < 0)
		return -1;
	if (out->queue[0] != '\0' && strcmp(out->queue, queue) != 0) {
		snprintf(err, errlen, "field 'queue' is '%s' but the job was pushed onto queue '%s'", out->queue,
		         queue);
		return -1;
	}
	snprintf(out->queue, sizeof(out->queue), "%s", queue);
	if (!job_type_known(out->type)) {
		snprintf(err, errlen, "unknown job type '%s'", out->type);
		return -1;
	}
	json_t *args = json_object_get(root, "args");
	if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
		snprintf(err, errlen, "field 'args' must be an object");
		return -1;
	}
	out->args = (args != NULL && json_is_object(args)) ? json_incref(args) : json_object();

	long long attempts = d->max_attempts;
	double backoff_base = d->backoff_base_s, backoff_max = d->backoff_max_s;
	out->timeout_s = d->timeout_s;
	if (jsonx_int(root, "max_attempts", 1, JOB_MAX_ATTEMPTS_LIMIT, &attempts, err, errlen) < 0 ||
	    jsonx_number(root, "timeout_s", 0.001, JOB_TIMEOUT_LIMIT_S, &out->timeout_s, err, errlen) < 0 ||
	    jsonx_number(root, "created_at", 0, 1e11, &out->created_at, err, errlen) < 0 ||
	    jsonx_number(root, "run_at", 0, 1e11, &out->run_at, err, errlen) < 0 ||
	    jsonx_number(root, "backoff_s", 0, 86400, &backoff_base, err, errlen) < 0 ||
	    jsonx_number(root, "backoff_max_s", 0, 7 * 86400, &backoff_max, err, errlen) < 0)
		return -1;
	out->max_attempts = (int)attempts;
	out->backoff_base_s = backoff_base;
	out->backoff_max_s = backoff_max;
	if (copy_optional_string(root, "owner", JOB_OWNER_MAX, &out->owner, err, errlen) < 0 ||
	    copy_optional_string(root, "idempotency_key", JOB_IDEM_KEY_MAX, &out->idempotency_key, err, errlen) < 0)
		return -1;
	json_t *run_at = json_object_get(root, "run_at");
	if (job_flow_parse(root, run_at != NULL && !json_is_null(run_at), &out->flow, err, errlen) < 0)
		return -1;
	if (job_limits_parse(root, out->queue, d->rl, &out->limits, err, errlen) < 0)
		return -1;
	return parse_parent(root, out, err, errlen);
}

int
job_parse(const char *buf, size_t len, const char *queue, const struct job_defaults *defaults, struct job_spec *out,
          char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len > defaults->max_bytes) {
		snprintf(err, errlen, "message of %zu bytes is over the %zu-byte limit", len, defaults->max_bytes);
		return -1;
	}
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "a job must be a JSON object");
		json_decref(root);
		return -1;
	}
	int r = parse_fields(root, queue, defaults, out, err, errlen);
	json_decref(root);
	if (r < 0) {
		job_spec_free(out);
		return -1;
	}
	return 0;
}

void
job_spec_free(struct job_spec *spec)
{
	json_decref(spec->args);
	free(spec->owner);
	free(spec->idempotency_key);
	spec->args = NULL;
	spec->owner = spec->idempotency_key = NULL;
}

int
job_new_id(char out[37])
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
	         b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

const char *
job_state_name(enum job_state state)
{
	return (state >= 0 && state < JOB_STATE_COUNT) ? state_names[state] : "unknown";
}

int
job_state_parse(const char *s)
{
	for (int i = 0; i < JOB_STATE_COUNT; i++)
		if (strcmp(state_names[i], s) == 0)
			return i;
	return -1;
}

int
job_state_terminal(enum job_state state)
{
	return state == JOB_SUCCEEDED || state == JOB_FAILED || state == JOB_DEAD || state == JOB_CANCELLED;
}

int
job_transition_allowed(enum job_state from, enum job_state to)
{
	if (job_state_terminal(from))
		return 0;
	switch (to) {
	case JOB_QUEUED: return from == JOB_QUEUED || from == JOB_RETRYING || from == JOB_RUNNING;
	case JOB_RUNNING: return from == JOB_QUEUED || from == JOB_RETRYING || from == JOB_RUNNING;
	case JOB_RETRYING: return from == JOB_RUNNING;
	case JOB_SUCCEEDED:
	case JOB_FAILED: return from == JOB_RUNNING;
	case JOB_DEAD:
	case JOB_CANCELLED: return 1;
	default: return 0;
	}
}

enum job_state
job_outcome(int ok, int retryable, int attempt, int max_attempts)
{
	if (ok)
		return JOB_SUCCEEDED;
	if (!retryable)
		return JOB_FAILED;
	return attempt < max_attempts ? JOB_RETRYING : JOB_DEAD;
}

double
job_backoff_s(int attempt, double base_s, double max_s, double unit_random)
{
	if (attempt < 1)
		attempt = 1;
	double d = base_s * ldexp(1.0, attempt > 60 ? 60 : attempt - 1);
	if (d > max_s)
		d = max_s;
	return d / 2 + d / 2 * unit_random;
}

#include "celery_msg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "xmalloc.h"

const int celery_buckets[CELERY_NBUCKETS] = {0, 3, 6, 9};

/* --- base64 --- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
celery_b64_encode(const unsigned char *in, size_t len)
{
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < len; i += 3) {
		unsigned n = (unsigned)in[i] << 16;
		if (i + 1 < len)
			n |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			n |= in[i + 2];
		*o++ = b64chars[(n >> 18) & 63];
		*o++ = b64chars[(n >> 12) & 63];
		*o++ = i + 1 < len ? b64chars[(n >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64chars[n & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int
b64val(unsigned char c)
{
	const char *p = c != '\0' ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

unsigned char *
celery_b64_decode(const char *in, size_t len, size_t *outlen)
{
	if (len % 4 != 0)
		return NULL;
	unsigned char *out = xmalloc(len / 4 * 3 + 1), *o = out;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 || (v[k] = b64val(c)) < 0) {
				free(out);
				return NULL;
			}
		}
		unsigned n = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		*o++ = (unsigned char)(n >> 16);
		if (pad < 2)
			*o++ = (unsigned char)(n >> 8);
		if (pad < 1)
			*o++ = (unsigned char)n;
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

/* --- time --- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

int
celery_iso_parse(const char *s, double *out)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970 || y > 9999)
		return -1;
	const char *p = s + n;
	double frac = 0, scale = 0.1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
		if (scale == 0.1)
			return -1;
	}
	int offset = 0;
	if (*p == 'Z')
		p++;
	else if (*p == '+' || *p == '-') {
		int oh, om, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
			return -1;
		offset = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
		p += 6;
	}
	if (*p != '\0')
		return -1;
	*out = (double)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset) +
	       frac;
	return 0;
}

void
celery_iso_format(double t, int utc_suffix, char *out, size_t outlen)
{
	long long secs = (long long)floor(t);
	long usec = (long)((t - (double)secs) * 1e6);
	if (usec > 999999)
		usec = 999999;
	long long z = secs / 86400 + 719468, rem = secs % 86400;
	/* civil_from_days */
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long y = (long long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(out, outlen, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06ld%s", y, m, d, rem / 3600, rem / 60 % 60,
	         rem % 60, usec, utc_suffix ? "+00:00" : "");
}

/* --- parsing --- */

/* Copies an optional id-like header (null or absent: empty); an unusable value is ignored. */
static void
copy_id(json_t *headers, const char *key, char *dst, size_t max)
{
	json_t *v = json_object_get(headers, key);
	dst[0] = '\0';
	if (json_is_string(v) && job_name_valid(json_string_value(v), max))
		snprintf(dst, max + 1, "%s", json_string_value(v));
}

/* An optional ISO-8601 header into *out (0 when absent or null). */
static int
header_time(json_t *headers, const char *key, double *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(headers, key);
	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || celery_iso_parse(json_string_value(v), out) < 0) {
		snprintf(err, errlen, "header '%s' is not an ISO-8601 time", key);
		return -1;
	}
	return 0;
}

/* headers.timelimit = [hard, soft], each a number or null. */
static int
header_timelimit(json_t *headers, struct celery_task *t, char *err, size_t errlen)
{
	json_t *v = json_object_get(headers, "timelimit");
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) != 2)
		goto bad;
	double *dst[2] = {&t->time_limit, &t->soft_time_limit};
	for (size_t i = 0; i < 2; i++) {
		json_t *e = json_array_get(v, i);
		if (json_is_null(e))
			continue;
		if (!json_is_number(e) || json_number_value(e) < 0 || json_number_value(e) > JOB_TIMEOUT_LIMIT_S)
			goto bad;
		*dst[i] = json_number_value(e);
	}
	return 0;
bad:
	snprintf(err, errlen, "header 'timelimit' must be [hard, soft] seconds or nulls");
	return -1;
}

static int
parse_headers(json_t *headers, struct celery_task *t, char *err, size_t errlen)
{
	long long retries = 0;
	if (header_time(headers, "eta", &t->eta, err, errlen) < 0 ||
	    header_time(headers, "expires", &t->expires, err, errlen) < 0 ||
	    header_timelimit(headers, t, err, errlen) < 0 ||
	    jsonx_int(headers, "retries", 0, 1000000, &retries, err, errlen) < 0)
		return -1;
	t->retries = (int)retries;
	copy_id(headers, "root_id", t->root_id, JOB_ID_MAX);
	copy_id(headers, "parent_id", t->parent_id, JOB_ID_MAX);
	copy_id(headers, "group", t->group, JOB_ID_MAX);
	json_t *gi = json_object_get(headers, "group_index");
	t->group_index = json_is_integer(gi) && json_integer_value(gi) >= 0 ? json_integer_value(gi) : -1;
	if (json_object_get(headers, "compression") != NULL && !json_is_null(json_object_get(headers, "compression"))) {
		snprintf(err, errlen, "compressed bodies are not supported");
		return -1;
	}
	return 0;
}

/* The body [args, kwargs, embed] from the envelope's body string (base64 when the properties say so). */
static int
parse_body(json_t *root, json_t *props, struct celery_task *t, char *err, size_t errlen)
{
	json_t *body = json_object_get(root, "body");
	if (!json_is_string(body)) {
		snprintf(err, errlen, "field 'body' must be a string");
		return -1;
	}
	const char *enc = NULL;
	if (json_is_object(props) && jsonx_string(props, "body_encoding", 32, &enc, err, errlen) < 0)
		return -1;
	const char *text = json_string_value(body);
	size_t len = json_string_length(body);
	unsigned char *decoded = NULL;
	if (enc != NULL && strcmp(enc, "base64") == 0) {
		if ((decoded = celery_b64_decode(text, len, &len)) == NULL) {
			snprintf(err, errlen, "body is not valid base64");
			return -1;
		}
		text = (const char *)decoded;
	} else if (enc != NULL) {
		snprintf(err, errlen, "body encoding '%s' is not supported", enc);
		return -1;
	}
	json_error_t jerr;
	json_t *b = json_loadb(text, len, 0, &jerr);
	free(decoded);
	if (b == NULL || !json_is_array(b) || json_array_size(b) < 2 || json_array_size(b) > 3 ||
	    !json_is_array(json_array_get(b, 0)) || !json_is_object(json_array_get(b, 1))) {
		snprintf(err, errlen, "body must be the JSON array [args, kwargs, embed] of task protocol 2");
		json_decref(b);
		return -1;
	}
	json_t *embed = json_array_get(b, 2);
	if (embed != NULL && !json_is_null(embed) && !json_is_object(embed)) {
		snprintf(err, errlen, "body's embed must be an object");
		json_decref(b);
		return -1;
	}
	t->args = json_incref(json_array_get(b, 0));
	t->kwargs = json_incref(json_array_get(b, 1));
	t->embed = json_is_object(embed) ? json_incref(embed) : json_object();
	json_decref(b);
	return 0;
}

static int
parse_envelope(json_t *root, struct celery_task *t, char *err, size_t errlen)
{
	json_t *headers = json_object_get(root, "headers"), *props = json_object_get(root, "properties");
	const char *task = NULL, *ctype = NULL, *cenc = NULL;
	if (!json_is_object(headers)) {
		snprintf(err, errlen, "no headers: not a task protocol 2 message");
		return CELERY_MALFORMED;
	}
	copy_id(headers, "id", t->id, JOB_ID_MAX);
	if (t->id[0] == '\0') {
		snprintf(err, errlen, "header 'id' must be a task id (letters, digits and . _ : -)");
		return CELERY_MALFORMED;
	}
	if (jsonx_string(headers, "task", CELERY_TASK_NAME_MAX, &task, err, errlen) <= 0) {
		if (task == NULL)
			snprintf(err, errlen, "header 'task' is required");
		return CELERY_MALFORMED;
	}
	snprintf(t->task, sizeof(t->task), "%s", task);
	if (jsonx_string(root, "content-type", sizeof(t->content_type) - 1, &ctype, err, errlen) <= 0) {
		snprintf(err, errlen, "field 'content-type' is required");
		return CELERY_MALFORMED;
	}
	snprintf(t->content_type, sizeof(t->content_type), "%s", ctype);
	if (strcmp(ctype, "application/json") != 0) {
		snprintf(err, errlen, "content type '%s' refused: only application/json is accepted", ctype);
		return CELERY_REFUSED;
	}
	if (jsonx_string(root, "content-encoding", 32, &cenc, err, errlen) < 0)
		return CELERY_MALFORMED;
	if (cenc != NULL && strcmp(cenc, "utf-8") != 0) {
		snprintf(err, errlen, "content encoding '%s' is not supported", cenc);
		return CELERY_REFUSED;
	}
	long long prio = 0;
	if (json_is_object(props) && jsonx_int(props, "priority", 0, 255, &prio, err, errlen) < 0)
		return CELERY_MALFORMED;
	t->priority = (int)prio;
	if (parse_headers(headers, t, err, errlen) < 0 || parse_body(root, props, t, err, errlen) < 0)
		return CELERY_MALFORMED;
	return CELERY_OK;
}

/* --- the bounded scan of a message that will not be parsed whole --- */

/* Index just past the JSON string starting at b[i] == '"' (len when unterminated). */
static size_t
skip_string(const char *b, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (b[i] == '\\')
			i++;
		else if (b[i] == '"')
			return i + 1;
	}
	return len;
}

/* Index just past the JSON value starting at b[i] (structure only: strings and nesting are followed). */
static size_t
skip_value(const char *b, size_t len, size_t i)
{
	if (i < len && b[i] == '"')
		return skip_string(b, len, i);
	int depth = 0;
	while (i < len) {
		char c = b[i];
		if (c == '"') {
			i = skip_string(b, len, i);
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (depth == 0)
				return i; /* the end of the enclosing object: a scalar ended here */
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r'))
			return i;
		i++;
	}
	return len;
}

static size_t
skip_ws(const char *b, size_t len, size_t i)
{
	while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r'))
		i++;
	return i;
}

/*
 * A message too large (or too broken) to parse whole may still name its task: the top-level "headers"
 * object is found by one pass over the envelope's structure (the body string is skipped, not decoded) and
 * only that object, at most CELERY_HEADERS_MAX bytes, is parsed, for the id and the task name.
 */
static void
scan_ids(const char *b, size_t len, struct celery_task *t)
{
	size_t i = skip_ws(b, len, 0);
	if (i >= len || b[i] != '{')
		return;
	for (i = skip_ws(b, len, i + 1); i < len && b[i] == '"';) {
		size_t kend = skip_string(b, len, i);
		int is_headers = kend - i == 9 && memcmp(b + i, "\"headers\"", 9) == 0;
		i = skip_ws(b, len, kend);
		if (i >= len || b[i] != ':')
			return;
		size_t v = skip_ws(b, len, i + 1), vend = skip_value(b, len, v);
		if (is_headers) {
			json_t *h = vend - v <= CELERY_HEADERS_MAX ? json_loadb(b + v, vend - v, 0, NULL) : NULL;
			const char *task = json_string_value(json_object_get(h, "task"));
			copy_id(h, "id", t->id, JOB_ID_MAX);
			if (task != NULL && strlen(task) <= CELERY_TASK_NAME_MAX)
				snprintf(t->task, sizeof(t->task), "%s", task);
			json_decref(h);
			return;
		}
		i = skip_ws(b, len, vend);
		if (i >= len || b[i] != ',')
			return;
		i = skip_ws(b, len, i + 1);
	}
}

int
celery_parse(const char *buf, size_t len, size_t max_bytes, struct celery_task *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len > max_bytes) {
		scan_ids(buf, len, out);
		snprintf(err, errlen, "message of %zu bytes is over hopperd's %zu-byte limit (max_message_bytes)", len,
		         max_bytes);
		return CELERY_MALFORMED;
	}
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "not a kombu message (a JSON object): %s", root ? "not an object" : jerr.text);
		json_decref(root);
		scan_ids(buf, len, out);
		return CELERY_MALFORMED;
	}
	int r = parse_envelope(root, out, err, errlen);
	json_decref(root);
	if (r != CELERY_OK) {
		char id[sizeof(out->id)], task[sizeof(out->task)];
		memcpy(id, out->id, sizeof(id));
		memcpy(task, out->task, sizeof(task));
		celery_task_free(out);
		memcpy(out->id, id, sizeof(id));
		memcpy(out->task, task, sizeof(task));
	}
	return r;
}

void
celery_task_free(struct celery_task *t)
{
	json_decref(t->args);
	json_decref(t->kwargs);
	json_decref(t->embed);
	memset(t, 0, sizeof(*t));
}

/* --- the task map --- */

static int
route_parse(char *entry, struct celery_route *r, char **cause)
{
	char *eq = strchr(entry, '='), *colon;
	if (eq == NULL || eq == entry) {
		*cause = xasprintf("celery_tasks: '%s' is not TASK=TYPE[:ARG,...]", entry);
		return -1;
	}
	*eq = '\0';
	if ((colon = strchr(eq + 1, ':')) != NULL)
		*colon = '\0';
	if (strlen(entry) > CELERY_TASK_NAME_MAX || !job_name_valid(eq + 1, JOB_TYPE_MAX)) {
		*cause = xasprintf("celery_tasks: bad task name or job type in '%s=%s'", entry, eq + 1);
		return -1;
	}
	snprintf(r->task, sizeof(r->task), "%s", entry);
	snprintf(r->type, sizeof(r->type), "%s", eq + 1);
	char *save = NULL;
	for (char *a = colon ? strtok_r(colon + 1, ",", &save) : NULL; a != NULL; a = strtok_r(NULL, ",", &save)) {
		if (r->nargnames == CELERY_ARGNAMES_MAX || strlen(a) >= sizeof(r->argnames[0])) {
			*cause = xasprintf("celery_tasks: too many or too long argument names for %s", r->task);
			return -1;
		}
		snprintf(r->argnames[r->nargnames++], sizeof(r->argnames[0]), "%s", a);
	}
	return 0;
}

int
celery_map_parse(const char *spec, struct celery_map *map, char **cause)
{
	map->routes = NULL;
	map->n = 0;
	char *copy = xstrdup(spec), *save = NULL;
	int rc = 0;
	for (char *e = strtok_r(copy, " \t", &save); e != NULL; e = strtok_r(NULL, " \t", &save)) {
		map->routes = xrealloc(map->routes, (map->n + 1) * sizeof(*map->routes));
		memset(&map->routes[map->n], 0, sizeof(map->routes[0]));
		if ((rc = route_parse(e, &map->routes[map->n], cause)) < 0)
			break;
		map->n++;
	}
	free(copy);
	if (rc < 0)
		celery_map_free(map);
	return rc;
}

const struct celery_route *
celery_map_find(const struct celery_map *map, const char *task)
{
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->routes[i].task, task) == 0)
			return &map->routes[i];
	return NULL;
}

void
celery_map_free(struct celery_map *map)
{
	free(map->routes);
	map->routes = NULL;
	map->n = 0;
}

json_t *
celery_job_args(const struct celery_task *t, const struct celery_route *route, char *err, size_t errlen)
{
	json_t *args = json_copy(t->kwargs), *rest = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(t->args, i, v)
	{
		const char *name = i < (size_t)route->nargnames ? route->argnames[i] : NULL;
		if (name == NULL) {
			json_array_append(rest, v);
			continue;
		}
		if (json_object_get(args, name) != NULL) {
			snprintf(err, errlen, "argument '%s' given both by position and by keyword", name);
			goto fail;
		}
		json_object_set(args, name, v);
	}
	if (json_array_size(rest) > 0) {
		if (json_object_get(args, "args") != NULL) {
			snprintf(err, errlen, "unnamed positional arguments and a keyword argument 'args' collide");
			goto fail;
		}
		json_object_set(args, "args", rest);
	}
	json_decref(rest);
	return args;
fail:
	json_decref(rest);
	json_decref(args);
	return NULL;
}

char *
celery_job_json(const struct celery_task *t, const struct celery_route *route, const char *queue, int max_attempts,
                double now, char *err, size_t errlen)
{
	json_t *args = celery_job_args(t, route, err, errlen);
	if (args == NULL)
		return NULL;
	int attempts = max_attempts - t->retries;
	json_t *job = json_pack("{s:s, s:s, s:s, s:o, s:i, s:f}", "id", t->id, "type", route->type, "queue", queue,
	                        "args", args, "max_attempts", attempts < 1 ? 1 : attempts, "created_at", now);
	double limit = t->soft_time_limit > 0 ? t->soft_time_limit : t->time_limit;
	if (limit > 0)
		json_object_set_new(job, "timeout_s", json_real(limit < 0.001 ? 0.001 : limit));
	if (t->eta > now)
		json_object_set_new(job, "run_at", json_real(t->eta));
	char *text = jsonx_dump(job);
	json_decref(job);
	return text;
}

/* --- encoding --- */

int
celery_bucket(int priority)
{
	int b = 0;
	for (int i = 0; i < CELERY_NBUCKETS; i++)
		if (priority >= celery_buckets[i])
			b = celery_buckets[i];
	return b;
}

int
celery_queue_key(const char *prefix, const char *queue, int bucket, char *out, size_t outlen)
{
	int n = bucket > 0 ? snprintf(out, outlen, "%s%s" CELERY_SEP "%d", prefix, queue, bucket)
	                   : snprintf(out, outlen, "%s%s", prefix, queue);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static json_t *
time_or_null(double t)
{
	char buf[64];
	if (t <= 0)
		return json_null();
	celery_iso_format(t, 1, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *
list_or_null(const json_t *v)
{
	return v != NULL && json_is_array(v) && json_array_size(v) > 0 ? json_deep_copy(v) : json_null();
}

static json_t *
message_headers(const struct celery_send *m, const char *id, const char *argsrepr, const char *kwargsrepr)
{
	return json_pack("{s:s, s:s, s:s, s:n, s:o, s:o, s:n, s:n, s:i, s:[nn], s:s, s:o, s:s, s:s, s:s, s:b}", "lang",
	                 "py", "task", m->task, "id", id, "shadow", "eta", time_or_null(m->eta), "expires",
	                 time_or_null(m->expires), "group", "group_index", "retries", 0, "timelimit", "root_id",
	                 m->root_id ? m->root_id : id, "parent_id", str_or_null(m->parent_id), "argsrepr", argsrepr,
	                 "kwargsrepr", kwargsrepr, "origin", m->origin ? m->origin : "hopper", "ignore_result", 0);
}

/* The body's pieces: [args, kwargs, embed] with an optional hole before args[0]. */
static void
encode_body(const struct celery_send *m, const json_t *args, const json_t *kwargs, struct celery_encoded *out)
{
	json_t *embed = json_pack("{s:o, s:o, s:o, s:n}", "callbacks", list_or_null(m->callbacks), "errbacks",
	                          list_or_null(m->errbacks), "chain", list_or_null(m->chain), "chord");
	char *a = jsonx_dump(args), *k = jsonx_dump(kwargs), *e = jsonx_dump(embed);
	if (m->insert_result) {
		out->body_pre = xstrdup("[[");
		out->comma = json_array_size(args) > 0;
		out->body_post = xasprintf("%s,%s,%s]", a + 1, k, e);
	} else {
		out->body_pre = xasprintf("[%s,%s,%s]", a, k, e);
		out->body_post = xstrdup("");
	}
	free(a);
	free(k);
	free(e);
	json_decref(embed);
}

int
celery_encode_task(const struct celery_send *m, struct celery_encoded *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	char id[37], tag[37], key[512];
	if (m->task == NULL || m->task[0] == '\0' || strlen(m->task) > CELERY_TASK_NAME_MAX || m->queue == NULL ||
	    m->queue[0] == '\0' || m->priority < 0 || m->priority > 9) {
		snprintf(err, errlen, "a task needs a name, a queue and a priority 0-9");
		return -1;
	}
	if ((m->args != NULL && !json_is_array(m->args)) || (m->kwargs != NULL && !json_is_object(m->kwargs))) {
		snprintf(err, errlen, "args must be a JSON array and kwargs a JSON object");
		return -1;
	}
	if ((m->id == NULL && job_new_id(id) < 0) || job_new_id(tag) < 0) {
		snprintf(err, errlen, "no randomness for a task id");
		return -1;
	}
	const char *tid = m->id ? m->id : id;
	if (strlen(tid) > JOB_ID_MAX ||
	    celery_queue_key("", m->queue, celery_bucket(m->priority), key, sizeof(key)) < 0) {
		snprintf(err, errlen, "task id or queue name too long");
		return -1;
	}
	json_t *args = m->args ? json_incref((json_t *)m->args) : json_array();
	json_t *kwargs = m->kwargs ? json_incref((json_t *)m->kwargs) : json_object();
	char *ar = jsonx_dump(args), *kr = jsonx_dump(kwargs);
	json_t *env = json_pack("{s:s, s:s, s:o, s:{s:s, s:s, s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "content-encoding",
	                        "utf-8", "content-type", "application/json", "headers", message_headers(m, tid, ar, kr),
	                        "properties", "correlation_id", tid, "reply_to", m->reply_to ? m->reply_to : "",
	                        "delivery_mode", 2, "delivery_info", "exchange", "", "routing_key", m->queue,
	                        "priority", m->priority, "body_encoding", "base64", "delivery_tag", tag);
	char *rest = jsonx_dump(env);
	out->key = xstrdup(key);
	out->env_pre = xstrdup("{\"body\":\"");
	out->env_post = xasprintf("\",%s", rest + 1);
	snprintf(out->id, sizeof(out->id), "%s", tid);
	encode_body(m, args, kwargs, out);
	free(rest);
	free(ar);
	free(kr);
	json_decref(env);
	json_decref(args);
	json_decref(kwargs);
	return 0;
}

void
celery_encoded_free(struct celery_encoded *e)
{
	free(e->key);
	free(e->env_pre);
	free(e->env_post);
	free(e->body_pre);
	free(e->body_post);
	memset(e, 0, sizeof(*e));
}

char *
celery_encoded_join(const struct celery_encoded *e, const char *result)
{
	char *body = result ? xasprintf("%s%s%s%s", e->body_pre, result, e->comma ? "," : "", e->body_post)
	                    : xasprintf("%s%s", e->body_pre, e->body_post);
	char *b64 = celery_b64_encode((const unsigned char *)body, strlen(body));
	char *env = xasprintf("%s%s%s", e->env_pre, b64, e->env_post);
	free(body);
	free(b64);
	return env;
}

char *
celery_exc_encode(const char *type, const char *module, const char *message)
{
	json_t *v = json_pack("{s:s, s:[s], s:s}", "exc_type", type, "exc_message", message, "exc_module", module);
	char *text = jsonx_dump(v);
	json_decref(v);
	return text;
}

char *
celery_meta_encode(const char *status, const char *result, const char *traceback, const char *task_id, double date_done)
{
	json_t *r = result ? json_loads(result, JSON_DECODE_ANY, NULL) : NULL;
	char when[64];
	if (date_done > 0)
		celery_iso_format(date_done, 0, when, sizeof(when));
	json_t *v =
	        json_pack("{s:s, s:o, s:o, s:[], s:o, s:s}", "status", status, "result",
	                  r ? r : (result ? json_string(result) : json_null()), "traceback", str_or_null(traceback),
	                  "children", "date_done", date_done > 0 ? json_string(when) : json_null(), "task_id", task_id);
	char *text = jsonx_dump(v);
	json_decref(v);
	return text;
}

/* --- broadcast messages: remote control and events --- */

static void
copy_str(json_t *obj, const char *key, char *dst, size_t size)
{
	const char *v = json_string_value(json_object_get(obj, key));
	dst[0] = '\0';
	if (v != NULL && strlen(v) < size)
		snprintf(dst, size, "%s", v);
}

/* destination: null or [] = every worker; otherwise a list of names. */
static int
names_us(json_t *dest, const char *hostname)
{
	size_t i;
	json_t *v;
	if (dest == NULL || json_is_null(dest) || (json_is_array(dest) && json_array_size(dest) == 0))
		return 1;
	if (json_is_string(dest))
		return strcmp(json_string_value(dest), hostname) == 0;
	json_array_foreach(dest, i, v) if (json_is_string(v) && strcmp(json_string_value(v), hostname) == 0) return 1;
	return 0;
}

int
celery_control_parse(const char *buf, size_t len, const char *hostname, double now, struct celery_control *out,
                     char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	json_t *root = json_loadb(buf, len, 0, NULL), *m = NULL;
	json_t *body = json_object_get(root, "body"), *props = json_object_get(root, "properties");
	const char *enc = json_string_value(json_object_get(props, "body_encoding"));
	const char *ctype = json_string_value(json_object_get(root, "content-type"));
	if (!json_is_string(body) || ctype == NULL || strcmp(ctype, "application/json") != 0) {
		snprintf(err, errlen, "not a JSON kombu message");
		goto fail;
	}
	if (enc != NULL && strcmp(enc, "base64") == 0) {
		size_t n;
		unsigned char *d = celery_b64_decode(json_string_value(body), json_string_length(body), &n);
		m = d ? json_loadb((const char *)d, n, 0, NULL) : NULL;
		free(d);
	} else
		m = json_loadb(json_string_value(body), json_string_length(body), 0, NULL);
	const char *method = json_string_value(json_object_get(m, "method"));
	if (method == NULL || strlen(method) > CELERY_METHOD_MAX) {
		snprintf(err, errlen, "control message without a method");
		goto fail;
	}
	snprintf(out->method, sizeof(out->method), "%s", method);
	json_t *args = json_object_get(m, "arguments");
	out->arguments = json_is_object(args) ? json_incref(args) : json_object();
	copy_str(m, "ticket", out->ticket, sizeof(out->ticket));
	copy_str(json_object_get(m, "reply_to"), "routing_key", out->reply_rk, sizeof(out->reply_rk));
	json_t *exp = json_object_get(json_object_get(root, "headers"), "expires");
	out->for_us = names_us(json_object_get(m, "destination"), hostname) &&
	              !(json_is_number(exp) && json_number_value(exp) < now);
	json_decref(m);
	json_decref(root);
	return 0;
fail:
	json_decref(m);
	json_decref(root);
	return -1;
}

void
celery_control_free(struct celery_control *c)
{
	json_decref(c->arguments);
	c->arguments = NULL;
}

char *
celery_envelope_encode(const char *body, const json_t *headers, const char *exchange, const char *routing_key,
                       int delivery_mode)
{
	char tag[37];
	if (job_new_id(tag) < 0)
		snprintf(tag, sizeof(tag), "hopperd");
	char *b64 = celery_b64_encode((const unsigned char *)body, strlen(body));
	json_t *h = headers ? json_incref((json_t *)headers) : json_object();
	json_t *env =
	        json_pack("{s:s, s:s, s:s, s:o, s:{s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "body", b64, "content-encoding",
	                  "utf-8", "content-type", "application/json", "headers", h, "properties", "delivery_mode",
	                  delivery_mode, "delivery_info", "exchange", exchange, "routing_key", routing_key, "priority",
	                  0, "body_encoding", "base64", "delivery_tag", tag);
	char *text = jsonx_dump(env);
	json_decref(env);
	free(b64);
	return text;
}

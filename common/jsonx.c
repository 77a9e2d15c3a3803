#include "jsonx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int
jsonx_string(json_t *obj, const char *key, size_t maxlen, const char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "field '%s' must be a string", key);
		return -1;
	}
	size_t len = json_string_length(v);
	if (len == 0 || len > maxlen) {
		snprintf(err, errlen, "field '%s' must be 1 to %zu bytes long", key, maxlen);
		return -1;
	}
	if (strlen(json_string_value(v)) != len) {
		snprintf(err, errlen, "field '%s' contains a NUL byte", key);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}

int
jsonx_int(json_t *obj, const char *key, long long min, long long max, long long *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return 0;
	long long n;
	if (json_is_integer(v))
		n = json_integer_value(v);
	else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15)
		n = (long long)json_real_value(v);
	else {
		snprintf(err, errlen, "field '%s' must be an integer", key);
		return -1;
	}
	if (n < min || n > max) {
		snprintf(err, errlen, "field '%s' must be between %lld and %lld", key, min, max);
		return -1;
	}
	*out = n;
	return 1;
}

int
jsonx_number(json_t *obj, const char *key, double min, double max, double *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v)) {
		snprintf(err, errlen, "field '%s' must be a number", key);
		return -1;
	}
	double d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max) {
		snprintf(err, errlen, "field '%s' must be between %g and %g", key, min, max);
		return -1;
	}
	*out = d;
	return 1;
}

int
jsonx_bool(json_t *obj, const char *key, int *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "field '%s' must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 1;
}

/* Does every real in v survive printing with 15 significant digits? */
static int
reals_short(const json_t *v, int depth)
{
	if (json_is_real(v)) {
		char b[40];
		snprintf(b, sizeof(b), "%.15g", json_real_value(v));
		return strtod(b, NULL) == json_real_value(v);
	}
	if (depth > 64)
		return 0;
	const char *k;
	json_t *x;
	size_t i;
	if (json_is_object(v))
		json_object_foreach((json_t *)v, k, x) if (!reals_short(x, depth + 1)) return 0;
	if (json_is_array(v))
		json_array_foreach(v, i, x) if (!reals_short(x, depth + 1)) return 0;
	return 1;
}

char *
jsonx_dump(const json_t *v)
{
	/* A rounded figure (-23.679) prints as written rather than as its 17-digit binary neighbour
	 * (-23.678999999999998) when 15 digits lose nothing; otherwise every digit is kept. */
	size_t prec = reals_short(v, 0) ? 15 : 17;
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(prec));
	if (s == NULL)
		fatal("out of memory encoding JSON");
	return s;
}

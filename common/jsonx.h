/*
 * jsonx: strict getters over jansson.
 *
 * jansson's reference rule, stated once: a json_t returned by json_object_get() or json_array_get() is
 * borrowed (valid while its parent lives, never decref'd by the caller); anything returned by json_loads*,
 * json_object(), json_pack() and the like is a new reference the caller must json_decref(). The "_new"
 * setters (json_object_set_new) take ownership of the value passed in. Every function here follows it.
 */
#ifndef HOPPER_JSONX_H
#define HOPPER_JSONX_H

#include <jansson.h>
#include <stddef.h>

/*
 * Each getter: 1 when the key is present with the right type (value stored), 0 when absent (or null),
 * -1 when present with the wrong type or out of range (a message written to err).
 */
int jsonx_string(json_t *obj, const char *key, size_t maxlen, const char **out, char *err, size_t errlen);
int jsonx_int(json_t *obj, const char *key, long long min, long long max, long long *out, char *err, size_t errlen);
int jsonx_number(json_t *obj, const char *key, double min, double max, double *out, char *err, size_t errlen);
int jsonx_bool(json_t *obj, const char *key, int *out, char *err, size_t errlen);

/* Compact JSON text of v. Caller frees. Never NULL. */
char *jsonx_dump(const json_t *v);

#endif

/*
 * webhook: POST /webhook/TOKEN, AutomateOS's trigger. hopper-web parses the body (JSON, a form, or raw
 * bytes), masks secrets in the headers, applies the webhook's rate limit, and asks the daemon, over its own
 * connection, to run the workflow the token names (webhook.trigger): the daemon holds the webhooks (SQLite,
 * migration 006), checks the workflow is active and, when the webhook has a secret, verifies the signature
 * over the raw body it is sent (HMAC-SHA256, GitHub's X-Hub-Signature-256 or Stripe's Stripe-Signature), so
 * secrets never leave the daemon. The run's input is the trigger {method, headers, url, timestamp, payload}.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jsonx.h"
#include "web.h"
#include "xmalloc.h"

/* Webhooks whose rate is tracked at once; the least recently seen is forgotten first. */
#define RATE_SLOTS 1024
#define TOKEN_LEN  43

static struct {
	pthread_mutex_t mu;
	const struct web_config *cfg;
	struct bucket {
		char token[TOKEN_LEN + 1];
		double tokens, at;
	} b[RATE_SLOTS];
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
webhook_init(const struct web_config *cfg)
{
	W.cfg = cfg;
}

int
webhook_rate_take(const char *token, double now)
{
	double rate = W.cfg->webhook_rate / 60.0, burst = W.cfg->webhook_burst;
	pthread_mutex_lock(&W.mu);
	int slot = 0;
	for (int i = 0; i < RATE_SLOTS; i++) {
		if (strcmp(W.b[i].token, token) == 0) {
			slot = i;
			goto found;
		}
		if (W.b[i].at < W.b[slot].at)
			slot = i;
	}
	snprintf(W.b[slot].token, sizeof(W.b[slot].token), "%s", token);
	W.b[slot].tokens = burst;
	W.b[slot].at = now;
found:;
	struct bucket *b = &W.b[slot];
	b->tokens += (now - b->at) * rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at = now;
	int ok = b->tokens >= 1.0;
	if (ok)
		b->tokens -= 1.0;
	pthread_mutex_unlock(&W.mu);
	return ok;
}

/* Header names whose values are credentials; plus any name holding one of the words below. */
static const char *const secret_headers[] = {"authorization",    "proxy-authorization", "cookie",
                                             "set-cookie",       "x-api-key",           "api-key",
                                             "x-auth-token",     "x-hub-signature",     "x-hub-signature-256",
                                             "stripe-signature", "x-gitlab-token",      NULL};
static const char *const secret_words[] = {"secret", "token",   "signature", "password", "passwd",
                                           "apikey", "api-key", "auth",      NULL};

int
webhook_header_secret(const char *name)
{
	for (int i = 0; secret_headers[i] != NULL; i++)
		if (strcasecmp(name, secret_headers[i]) == 0)
			return 1;
	char low[128];
	size_t n = strlen(name) < sizeof(low) - 1 ? strlen(name) : sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	low[n] = '\0';
	for (int i = 0; secret_words[i] != NULL; i++)
		if (strstr(low, secret_words[i]) != NULL)
			return 1;
	return 0;
}

char *
webhook_mask(const char *value)
{
	size_t n = strlen(value);
	if (n < 8)
		return xstrdup("***");
	return xasprintf("%.3s***%s", value, value + n - 2);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* application/x-www-form-urlencoded decoding of s[0..n) into a new string. */
static char *
form_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			out[k++] = ' ';
		else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else
			out[k++] = s[i];
	}
	out[k] = '\0';
	return out;
}

static json_t *
form_payload(const unsigned char *body, size_t len)
{
	json_t *o = json_object();
	const char *p = (const char *)body, *end = p + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		char *k = form_decode(p, (size_t)((eq != NULL ? eq : stop) - p));
		char *v = eq != NULL ? form_decode(eq + 1, (size_t)(stop - eq - 1)) : xstrdup("");
		json_t *js = json_string(v);
		if (*k != '\0' && js != NULL)
			json_object_set_new(o, k, js);
		else
			json_decref(js);
		free(k);
		free(v);
		p = stop + 1;
	}
	return o;
}

static char *
b64(const unsigned char *in, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(n);
	sodium_bin2base64(out, n, in, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

json_t *
webhook_payload(const char *ctype, const unsigned char *body, size_t len)
{
	if (len == 0)
		return json_object();
	if (ctype != NULL && strncasecmp(ctype, "application/json", 16) == 0) {
		json_t *v = json_loadb((const char *)body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
		if (v != NULL)
			return v;
	}
	if (ctype != NULL && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
		return form_payload(body, len);
	json_t *text = json_stringn((const char *)body, len);
	if (text != NULL)
		return json_pack("{s:o}", "raw", text);
	char *enc = b64(body, len);
	json_t *o = json_pack("{s:s}", "raw_base64", enc);
	free(enc);
	return o;
}

static int
token_ok(const char *t)
{
	if (strlen(t) != TOKEN_LEN)
		return 0;
	for (const char *p = t; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return 0;
	return 1;
}

static json_t *
err_body(const char *code, const char *msg)
{
	return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

static const char *
hget(json_t *headers, const char *name)
{
	const char *k;
	json_t *v;
	json_object_foreach(headers, k, v) if (strcasecmp(k, name) == 0) return json_string_value(v);
	return NULL;
}

static json_t *
trigger_of(json_t *headers, const char *url, json_t *payload)
{
	json_t *masked = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(headers, k, v)
	{
		char low[128];
		snprintf(low, sizeof(low), "%s", k);
		for (char *c = low; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (webhook_header_secret(low)) {
			char *m = webhook_mask(json_string_value(v));
			json_object_set_new(masked, low, json_string(m));
			free(m);
		} else
			json_object_set(masked, low, v);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[64];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
	return json_pack("{s:s, s:o, s:s, s:s, s:o}", "method", "POST", "headers", masked, "url", url, "timestamp",
	                 when, "payload", payload);
}

static int
status_of(enum hopper_err code)
{
	if (code == HOPPER_E_FORBIDDEN)
		return 401; /* the signature did not verify */
	return routes_http_status(code);
}

int
webhook_handle(const struct web_config *cfg, const char *token, json_t *headers, const char *url,
               const unsigned char *body, size_t len, json_t **out, int *retry_after)
{
	*retry_after = 0;
	if (!token_ok(token)) {
		*out = err_body("not_found", "no such webhook");
		return 404;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!webhook_rate_take(token, ts.tv_sec + ts.tv_nsec / 1e9)) {
		*retry_after = cfg->webhook_rate > 0 ? 60 / cfg->webhook_rate + 1 : 60;
		*out = err_body("limit", "this webhook's rate limit was passed; slow down");
		return 429;
	}
	const char *ctype = hget(headers, "Content-Type");
	json_t *payload;
	if (ctype != NULL && strncasecmp(ctype, "application/json", 16) == 0 && len > 0) {
		payload = json_loadb((const char *)body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
		if (payload == NULL) {
			*out = err_body("bad_request", "the body says application/json but is not JSON");
			return 400;
		}
	} else
		payload = webhook_payload(ctype, body, len);
	json_t *f = json_pack("{s:s, s:o}", "token", token, "trigger", trigger_of(headers, url, payload));
	char *raw = b64(body, len);
	json_object_set_new(f, "body", json_string(raw));
	free(raw);
	const char *gh = hget(headers, "X-Hub-Signature-256"), *st = hget(headers, "Stripe-Signature");
	const char *idem = hget(headers, "Idempotency-Key");
	if (gh != NULL)
		json_object_set_new(f, "hub_signature_256", json_string(gh));
	if (st != NULL)
		json_object_set_new(f, "stripe_signature", json_string(st));
	if (idem != NULL && *idem != '\0')
		json_object_set_new(f, "idempotency_key", json_string(idem));
	json_t *res = NULL;
	enum hopper_err code;
	char msg[512];
	int r = pool_call(cfg->token, "webhook.trigger", f, &res, &code, msg, sizeof(msg), NULL);
	json_decref(f);
	if (r != HOPPER_OK) {
		*out = err_body(hopper_err_name(code), msg);
		return status_of(code);
	}
	*out = json_pack("{s:O, s:O, s:s}", "job_id", json_object_get(res, "id"), "workflow",
	                 json_object_get(res, "workflow"), "status", "accepted");
	if (json_is_true(json_object_get(res, "duplicate")))
		json_object_set_new(*out, "duplicate", json_true());
	json_decref(res);
	return 202;
}

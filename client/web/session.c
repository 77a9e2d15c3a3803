/*
 * session: dashboard logins. POST /login with a hopper token (checked by authenticating with the daemon)
 * makes a session: a random id sent as an HttpOnly, SameSite=Strict cookie, and a random CSRF token the page
 * sends back in X-CSRF-Token on every state change. The hopper token stays in hopper-web's memory (wiped
 * when the session ends), never in the browser after the login form. Bounded: SESSIONS_MAX at once, each
 * expiring session_ttl_s after its creation.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "web.h"

#define SESSIONS_MAX 1024
#define ID_BYTES     32

static struct {
	pthread_mutex_t mu;
	const struct web_config *cfg;
	struct session {
		char sid[64], csrf[64];
		char token[WEB_TOKEN_MAX + 1];
		double expires;
	} s[SESSIONS_MAX];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
session_init(const struct web_config *cfg)
{
	S.cfg = cfg;
}

static void
random_id(char out[64])
{
	unsigned char b[ID_BYTES];
	randombytes_buf(b, sizeof(b));
	sodium_bin2base64(out, 64, b, sizeof(b), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
session_create(const char *token, char sid[64], char csrf[64])
{
	double now = now_s();
	pthread_mutex_lock(&S.mu);
	for (int i = 0; i < SESSIONS_MAX; i++) {
		struct session *s = &S.s[i];
		if (s->expires > now)
			continue;
		random_id(s->sid);
		random_id(s->csrf);
		snprintf(s->token, sizeof(s->token), "%s", token);
		s->expires = now + S.cfg->session_ttl_s;
		memcpy(sid, s->sid, 64);
		memcpy(csrf, s->csrf, 64);
		pthread_mutex_unlock(&S.mu);
		return 0;
	}
	pthread_mutex_unlock(&S.mu);
	return -1;
}

int
session_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == strlen(b) && sodium_memcmp(a, b, n) == 0;
}

static struct session *
find(const char *sid, double now)
{
	if (strlen(sid) != 43)
		return NULL;
	for (int i = 0; i < SESSIONS_MAX; i++)
		if (S.s[i].expires > now && session_equal(S.s[i].sid, sid))
			return &S.s[i];
	return NULL;
}

int
session_lookup(const char *sid, char token[WEB_TOKEN_MAX + 1], char csrf[64])
{
	pthread_mutex_lock(&S.mu);
	struct session *s = find(sid, now_s());
	if (s != NULL) {
		memcpy(token, s->token, WEB_TOKEN_MAX + 1);
		memcpy(csrf, s->csrf, 64);
	}
	pthread_mutex_unlock(&S.mu);
	return s != NULL ? 0 : -1;
}

void
session_destroy(const char *sid)
{
	pthread_mutex_lock(&S.mu);
	struct session *s = find(sid, now_s());
	if (s != NULL)
		sodium_memzero(s, sizeof(*s));
	pthread_mutex_unlock(&S.mu);
}

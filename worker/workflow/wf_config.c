/*
 * wf_config: the workflow limits and allowlists a worker gets from hopperd. hopperd passes them as
 * environment variables when it starts a worker (daemon/pool.c), so a SIGHUP-reloaded value reaches the
 * workers started after the reload.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "workflow.h"

/* Defaults when a worker runs without hopperd's variables (tests of the pure part, a hand-started worker). */
#define WF_DEFAULT_MAX_RESPONSE (1024 * 1024)
#define WF_DEFAULT_MAX_OUTPUT   (256 * 1024)

static const char *
env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v != NULL ? v : def;
}

static size_t
env_size(const char *name, size_t def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long n = v ? strtoull(v, &end, 10) : 0;
	return v && *v && *end == '\0' && n > 0 ? (size_t)n : def;
}

void
wf_config_from_env(struct wf_config *c)
{
	c->exec_enabled = strcmp(env_or("HOPPER_WF_EXEC_ENABLED", "0"), "1") == 0;
	c->exec_programs = env_or("HOPPER_WF_EXEC_PROGRAMS", "");
	c->http_schemes = env_or("HOPPER_WF_HTTP_SCHEMES", "http,https");
	c->http_hosts = env_or("HOPPER_WF_HTTP_HOSTS", "");
	c->env_allow = env_or("HOPPER_WF_ENV_ALLOW", "");
	c->exec_env_allow = env_or("HOPPER_WF_EXEC_ENV_ALLOW", "");
	c->deny_addrs = env_or("HOPPER_WF_DENY_ADDRS", "");
	c->mask_names = env_or("HOPPER_WF_MASK_NAMES", "");
	c->max_response = env_size("HOPPER_WF_MAX_RESPONSE", WF_DEFAULT_MAX_RESPONSE);
	c->max_output = env_size("HOPPER_WF_MAX_OUTPUT", WF_DEFAULT_MAX_OUTPUT);
}

int
wf_list_has(const char *list, const char *name, int nocase)
{
	size_t n = strlen(name);
	if (list == NULL || n == 0)
		return 0;
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ')
			k++;
		if (k == n && (nocase ? strncasecmp(p, name, n) : strncmp(p, name, n)) == 0)
			return 1;
		p += k;
	}
	return 0;
}

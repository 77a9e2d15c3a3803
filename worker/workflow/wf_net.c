/*
 * wf_net: where an http step may connect - the workflow_http_hosts allowlist matched with ports, the
 * daemon's own addresses, resolution with the addresses kept for pinning. No libcurl here (wf_http.c
 * applies the result); the allowlist and address matching are pure and unit-tested.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "wf_net.h"
#include "workflow.h"
#include "xmalloc.h"

/*
 * Where a request may go (issue 11, item 5). workflow_http_hosts entries are "host" (the scheme's default
 * port: 80 for http, 443 for https), "host:port" or "host:*" ("[v6]:port" for an IPv6 literal); an empty
 * list allows any host. The name is resolved (wf_net_resolve), once per request, and curl is pinned to exactly those
 * addresses (CURLOPT_RESOLVE); the address it actually connects to is checked again in CURLOPT_OPENSOCKETFUNCTION
 * (no DNS rebinding between the check and the connect, no proxy from the environment). The daemon's own TCP
 * addresses (its Redis and control listener, HOPPER_WF_DENY_ADDRS) are refused whatever the name resolves to,
 * unless an entry names the URL's host with that exact port.
 */
/* "host", "host:port", "host:*", "[v6]", "[v6]:port" -> host (brackets dropped) and port (-1 none, 0 any). */
static int
split_hostport(const char *e, size_t n, char *host, size_t hn, long *port)
{
	const char *colon = NULL, *h = e, *he;
	if (n > 0 && e[0] == '[') {
		const char *close = memchr(e, ']', n);
		if (close == NULL)
			return -1;
		h = e + 1;
		he = close;
		colon = close + 1 < e + n && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(e, ':', n);
		if (colon != NULL && memchr(colon + 1, ':', (size_t)(e + n - colon - 1)) != NULL)
			colon = NULL; /* a bare IPv6 literal: no port */
		he = colon != NULL ? colon : e + n;
	}
	if ((size_t)(he - h) >= hn || he == h)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = -1;
	if (colon != NULL) {
		char pb[8];
		size_t pn = (size_t)(e + n - colon - 1);
		if (pn == 1 && colon[1] == '*')
			*port = 0;
		else {
			char *end;
			if (pn == 0 || pn >= sizeof(pb))
				return -1;
			memcpy(pb, colon + 1, pn);
			pb[pn] = '\0';
			*port = strtol(pb, &end, 10);
			if (*end != '\0' || *port < 1 || *port > 65535)
				return -1;
		}
	}
	return 0;
}

/* Drops the brackets of an IPv6 literal host. */
static void
bare_host(const char *host, char *out, size_t n)
{
	size_t k = strlen(host);
	if (k >= 2 && host[0] == '[' && host[k - 1] == ']')
		snprintf(out, n, "%.*s", (int)(k - 2), host + 1);
	else
		snprintf(out, n, "%s", host);
}

/* 1 if the allowlist admits host:port (default_port: the scheme's); *explicit when an entry named the port. */
int
wf_net_host_allowed(const char *list, const char *host, long port, long default_port, int *explicit_port)
{
	char want[256], h[256];
	bare_host(host, want, sizeof(want));
	*explicit_port = 0;
	if (list[0] == '\0')
		return 1;
	int ok = 0;
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ')
			k++;
		long ep;
		if (k > 0 && split_hostport(p, k, h, sizeof(h), &ep) == 0 && strcasecmp(h, want) == 0) {
			if (ep == port)
				*explicit_port = 1;
			if (ep == port || ep == 0 || (ep == -1 && port == default_port))
				ok = 1;
		}
		p += k;
	}
	return ok;
}

int
wf_net_same_endpoint(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

static long
endpoint_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return -1;
}

/* 1 if sa (address and port) is one of the daemon's own (deny: "host:port,..."), resolved now. */
int
wf_net_is_daemon_addr(const char *deny, const struct sockaddr *sa)
{
	int hit = 0;
	for (const char *p = deny; *p && !hit;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ')
			k++;
		char h[256], pb[24];
		long port;
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		if (k > 0 && split_hostport(p, k, h, sizeof(h), &port) == 0 && port > 0) {
			snprintf(pb, sizeof(pb), "%ld", port);
			if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0)
				hit = endpoint_port(sa) ==
				      port; /* listening on every address: any of them, that port */
			else if (getaddrinfo(h, pb, &hints, &res) == 0)
				for (struct addrinfo *a = res; a != NULL && !hit; a = a->ai_next)
					hit = wf_net_same_endpoint(a->ai_addr, sa);
			if (res != NULL)
				freeaddrinfo(res);
		}
		p += k;
	}
	return hit;
}

/*
 * Resolves t's host once: every address must pass the daemon-address check; t->addr gets them, and
 * *pin the CURLOPT_RESOLVE entry "host:port:addr,..." pinning curl to them (NULL for an IP literal).
 */
int
wf_net_resolve(const struct wf_config *cfg, struct wf_target *t, char **pin, char *err, size_t errlen)
{
	char h[256], pb[24], list[WF_NET_ADDRS_MAX * 48] = "";
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	bare_host(t->host, h, sizeof(h));
	snprintf(pb, sizeof(pb), "%ld", t->port);
	int gai = getaddrinfo(h, pb, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "http: cannot resolve %s: %s", t->host, gai_strerror(gai));
		return -1;
	}
	for (struct addrinfo *a = res; a != NULL && t->naddr < WF_NET_ADDRS_MAX; a = a->ai_next) {
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		if (!t->explicit_port && wf_net_is_daemon_addr(cfg->deny_addrs, a->ai_addr)) {
			snprintf(err, errlen,
			         "http: %s port %ld is hopperd's own Redis or control address: not allowed (name it "
			         "with its port in workflow_http_hosts to allow it)",
			         t->host, t->port);
			freeaddrinfo(res);
			return -1;
		}
		memcpy(&t->addr[t->naddr++], a->ai_addr, a->ai_addrlen);
		char ip[INET6_ADDRSTRLEN];
		const void *src = a->ai_family == AF_INET
		                          ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
		                          : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		inet_ntop(a->ai_family, src, ip, sizeof(ip));
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s%s%s", used ? "," : "",
		         a->ai_family == AF_INET6 ? "[" : "", ip, a->ai_family == AF_INET6 ? "]" : "");
	}
	freeaddrinfo(res);
	if (t->naddr == 0) {
		snprintf(err, errlen, "http: %s has no IPv4 or IPv6 address", t->host);
		return -1;
	}
	if (t->host[0] != '[' && strspn(t->host, "0123456789.") != strlen(t->host)) { /* a name: pin it */
		*pin = xasprintf("%s:%ld:%s", t->host, t->port, list);
	}
	return 0;
}

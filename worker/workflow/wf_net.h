/*
 * wf_net.h: where an http step may connect (worker/workflow/wf_net.c): the workflow_http_hosts allowlist
 * matched with ports, hopperd's own addresses, resolution kept for pinning. Used by wf_http.c; no libcurl.
 */
#ifndef HOPPER_WF_NET_H
#define HOPPER_WF_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include "workflow.h"

#define WF_NET_ADDRS_MAX 16
struct wf_target {
	char host[256]; /* as in the URL (brackets kept for an IPv6 literal) */
	long port;
	int explicit_port; /* an entry named this host with this port: the daemon-address check yields */
	struct sockaddr_storage addr[WF_NET_ADDRS_MAX]; /* filled by wf_net_resolve */
	size_t naddr;
};
/* 1 if list ("host", "host:port", "host:*", "[v6]:port", comma-separated; "" = any) admits host:port,
 * default_port being the scheme's; *explicit_port when an entry names that very port. */
int wf_net_host_allowed(const char *list, const char *host, long port, long default_port, int *explicit_port);
/* 1 if both are the same IPv4/IPv6 address and port. */
int wf_net_same_endpoint(const struct sockaddr *a, const struct sockaddr *b);
/* 1 if sa is one of deny's "host:port" entries (names resolved now). */
int wf_net_is_daemon_addr(const char *deny, const struct sockaddr *sa);
/* Resolves t (host, port, explicit_port set): refuses hopperd's own addresses unless explicit; t->addr gets
 * the addresses and *pin "host:port:addr,..." for CURLOPT_RESOLVE (NULL for an IP literal; caller frees).
 * 0, or -1 with err. */
int wf_net_resolve(const struct wf_config *cfg, struct wf_target *t, char **pin, char *err, size_t errlen);

#endif

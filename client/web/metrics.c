/*
 * metrics: GET /metrics in Prometheus's text exposition format (version 0.0.4), built from the daemon's
 * stats and queues replies (asked over hopper-web's own connection) and hopper-web's own figures. A pure
 * formatter: tests/unit/test_web.c feeds it JSON and checks the text with a strict parser, and the e2e test
 * runs promtool check metrics on a live scrape when Debian's prometheus package is installed.
 *
 * Names follow Prometheus's conventions: counters end in _total, times in _seconds; a family's HELP and
 * TYPE come once, before its samples. Per-daemon figures carry a node label: every live daemon's from its
 * heartbeat, and the pool, throughput and local counters of the daemon hopper-web is connected to.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"
#include "xmalloc.h"

struct out {
	char *buf;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
		o->buf = xrealloc(o->buf, o->cap);
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value escaped as the format wants (backslash, double quote, newline). */
static void
label(struct out *o, const char *v)
{
	for (const char *p = v != NULL ? v : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			put(o, "\\%c", *p);
		else if (*p == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *p);
	}
}

static double
num(const json_t *v)
{
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_string(v))
		return strtod(json_string_value(v), NULL);
	if (json_is_boolean(v))
		return json_is_true(v);
	return 0;
}

static void
value(struct out *o, double v)
{
	if (isfinite(v) && v == (double)(long long)v)
		put(o, " %lld\n", (long long)v);
	else
		put(o, " %.15g\n", isfinite(v) ? v : 0.0);
}

/* name{k="v"} value, one label. */
static void
sample1(struct out *o, const char *name, const char *k, const char *v, double x)
{
	put(o, "%s{%s=\"", name, k);
	label(o, v);
	put(o, "\"}");
	value(o, x);
}

static void
nodes(struct out *o, const json_t *stats, double now)
{
	const json_t *ns = json_object_get(stats, "nodes"), *n;
	size_t i;
	family(o, "hopper_node_up", "gauge", "1 for every daemon whose heartbeat is live");
	json_array_foreach(ns, i, n)
	        sample1(o, "hopper_node_up", "node", json_string_value(json_object_get(n, "node")), 1);
	family(o, "hopper_node_running_jobs", "gauge", "jobs running on the daemon's workers, from its heartbeat");
	json_array_foreach(ns, i, n)
	        sample1(o, "hopper_node_running_jobs", "node", json_string_value(json_object_get(n, "node")),
	                num(json_object_get(n, "running")));
	family(o, "hopper_node_heartbeat_age_seconds", "gauge", "seconds since the daemon's last heartbeat");
	json_array_foreach(ns, i, n)
	{
		double at = num(json_object_get(n, "updated_at"));
		sample1(o, "hopper_node_heartbeat_age_seconds", "node", json_string_value(json_object_get(n, "node")),
		        at > 0 && now > at ? now - at : 0);
	}
	family(o, "hopper_node_start_time_seconds", "gauge", "when the daemon started, Unix time");
	json_array_foreach(ns, i, n)
	        sample1(o, "hopper_node_start_time_seconds", "node", json_string_value(json_object_get(n, "node")),
	                num(json_object_get(n, "started_at")));
}

static void
queues(struct out *o, const json_t *q)
{
	static const struct {
		const char *field, *name, *help;
	} cols[] = {
	        {"length", "hopper_queue_depth", "jobs waiting in the queue"},
	        {"scheduled", "hopper_queue_scheduled", "delayed and retry-waiting jobs of the queue"},
	        {"inflight", "hopper_queue_inflight", "jobs of the queue held by daemons (in flight)"},
	        {"paused", "hopper_queue_paused", "1 when the queue is paused"},
	        {"oldest_age_s", "hopper_queue_oldest_age_seconds", "age of the oldest waiting job of the queue"},
	        {"dead", "hopper_dead_jobs", "entries in the queue's dead set now (its ZCARD)"},
	        {"concurrency_waiting", "hopper_queue_concurrency_waiting",
	         "jobs waiting for a concurrency key's slot"},
	        {"rate_limited", "hopper_queue_rate_limited", "jobs waiting for their rate limit's reserved token"},
	};
	const json_t *qs = json_object_get(q, "queues"), *e;
	size_t i;
	for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
		int any = 0;
		json_array_foreach(qs, i, e) any |= json_object_get(e, cols[c].field) != NULL;
		if (!any)
			continue;
		family(o, cols[c].name, "gauge", cols[c].help);
		json_array_foreach(qs, i, e) if (json_object_get(e, cols[c].field) != NULL)
		        sample1(o, cols[c].name, "queue", json_string_value(json_object_get(e, "name")),
		                num(json_object_get(e, cols[c].field)));
	}
}

/* The daemon's own figures (stats.local): counters by queue, type and state, the duration histogram, errors. */
static void
local(struct out *o, const json_t *stats)
{
	const json_t *l = json_object_get(stats, "local"), *e;
	const char *node = json_string_value(json_object_get(stats, "node"));
	if (!json_is_object(l))
		return;
	size_t i;
	family(o, "hopper_jobs_total", "counter", "attempts ended on this daemon, by queue, type and final state");
	json_array_foreach(json_object_get(l, "jobs"), i, e)
	{
		put(o, "hopper_jobs_total{node=\"");
		label(o, node);
		put(o, "\",queue=\"");
		label(o, json_string_value(json_object_get(e, "queue")));
		put(o, "\",type=\"");
		label(o, json_string_value(json_object_get(e, "type")));
		put(o, "\",state=\"");
		label(o, json_string_value(json_object_get(e, "state")));
		put(o, "\"}");
		value(o, num(json_object_get(e, "count")));
	}
	const json_t *h = json_object_get(l, "duration");
	if (json_is_object(h)) {
		family(o, "hopper_job_duration_seconds", "histogram", "attempt durations on this daemon");
		const json_t *le = json_object_get(h, "le"), *cnt = json_object_get(h, "counts");
		double cum = 0;
		for (i = 0; i < json_array_size(le) && i < json_array_size(cnt); i++) {
			cum += num(json_array_get(cnt, i));
			put(o, "hopper_job_duration_seconds_bucket{node=\"");
			label(o, node);
			put(o, "\",le=\"%g\"}", num(json_array_get(le, i)));
			value(o, cum);
		}
		put(o, "hopper_job_duration_seconds_bucket{node=\"");
		label(o, node);
		put(o, "\",le=\"+Inf\"}");
		value(o, num(json_object_get(h, "count")));
		sample1(o, "hopper_job_duration_seconds_sum", "node", node, num(json_object_get(h, "sum")));
		sample1(o, "hopper_job_duration_seconds_count", "node", node, num(json_object_get(h, "count")));
	}
	static const struct {
		const char *field, *name, *type, *help;
	} cols[] = {
	        {"worker_restarts", "hopper_worker_restarts_total", "counter", "workers that exited and were replaced"},
	        {"redis_errors", "hopper_redis_errors_total", "counter", "Redis calls that failed"},
	        {"store_errors", "hopper_store_errors_total", "counter", "SQLite writes that failed"},
	        {"redis_reconnects", "hopper_redis_reconnects_total", "counter", "reconnections to Redis"},
	        {"redis_wait_short", "hopper_redis_wait_short_total", "counter",
	         "batches whose WAIT got fewer replicas than redis_wait_replicas"},
	        {"ctl_conns", "hopper_control_connections", "gauge", "open control-socket connections"},
	};
	for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
		if (json_object_get(l, cols[c].field) == NULL)
			continue;
		family(o, cols[c].name, cols[c].type, cols[c].help);
		sample1(o, cols[c].name, "node", node, num(json_object_get(l, cols[c].field)));
	}
}

static void
daemon_stats(struct out *o, const json_t *stats)
{
	const char *node = json_string_value(json_object_get(stats, "node"));
	const json_t *c = json_object_get(stats, "counters"), *v;
	const char *k;
	family(o, "hopper_jobs_finished_total", "counter", "jobs that reached a final state, all daemons, by state");
	json_object_foreach((json_t *)c, k, v) sample1(o, "hopper_jobs_finished_total", "state", k, num(v));
	family(o, "hopper_jobs_running", "gauge", "jobs running on workers, all daemons");
	put(o, "hopper_jobs_running");
	value(o, num(json_object_get(stats, "running")));
	const json_t *pool = json_object_get(stats, "pool");
	family(o, "hopper_workers", "gauge", "the daemon's worker processes by state");
	put(o, "hopper_workers{node=\"");
	label(o, node);
	put(o, "\",state=\"busy\"}");
	value(o, num(json_object_get(pool, "busy")));
	put(o, "hopper_workers{node=\"");
	label(o, node);
	put(o, "\",state=\"idle\"}");
	value(o, num(json_object_get(pool, "idle")));
	family(o, "hopper_workers_configured", "gauge", "the daemon's workers setting");
	sample1(o, "hopper_workers_configured", "node", node, num(json_object_get(pool, "workers")));
	family(o, "hopper_throughput_jobs_per_second", "gauge", "jobs the daemon finished per second, last minute");
	sample1(o, "hopper_throughput_jobs_per_second", "node", node,
	        num(json_object_get(json_object_get(stats, "throughput"), "per_s_1m")));
}

char *
metrics_format(const json_t *stats, const json_t *q, double now, const json_t *web)
{
	struct out o = {xmalloc(4096), 0, 4096};
	o.buf[0] = '\0';
	family(&o, "hopper_up", "gauge", "1 when hopper-web could read the daemon's stats and queues");
	put(&o, "hopper_up");
	value(&o, stats != NULL && q != NULL);
	if (stats != NULL) {
		daemon_stats(&o, stats);
		local(&o, stats);
		nodes(&o, stats, now);
	}
	if (q != NULL)
		queues(&o, q);
	family(&o, "hopper_web_control_connections", "gauge", "hopper-web's control connections to the daemon");
	sample1(&o, "hopper_web_control_connections", "kind", "requests", num(json_object_get(web, "pool_open")));
	sample1(&o, "hopper_web_control_connections", "kind", "events", num(json_object_get(web, "sse_conns")));
	family(&o, "hopper_web_event_streams", "gauge", "open Server-Sent Event streams");
	put(&o, "hopper_web_event_streams");
	value(&o, num(json_object_get(web, "sse_streams")));
	family(&o, "hopper_web_auth_failures_total", "counter", "bearer tokens the daemon refused");
	put(&o, "hopper_web_auth_failures_total");
	value(&o, num(json_object_get(web, "auth_failures")));
	family(&o, "hopper_web_auth_refused_total", "counter",
	       "unknown tokens refused without asking the daemon (failed-auth budget spent)");
	put(&o, "hopper_web_auth_refused_total");
	value(&o, num(json_object_get(web, "auth_refused")));
	return o.buf;
}

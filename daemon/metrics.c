/*
 * metrics: this daemon's own counters for the stats op's "local" section (hopper-web turns them into
 * Prometheus metrics): attempts ended by queue, type and final state, a histogram of attempt durations,
 * worker (re)starts, Redis errors and reconnects. In memory only, since the daemon started: Prometheus
 * counters may reset (a restart shows as one). The jobs module reports each attempt's end here; nothing
 * else writes these figures.
 */
#include <stdio.h>
#include <string.h>

#include "hopperd.h"
#include "store.h"

/* Upper bounds of the duration buckets, seconds (Prometheus's defaults, stretched for long jobs). */
static const double bucket_le[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

void
metrics_attempt(struct server *s, const char *queue, const char *type, const char *state, double seconds)
{
	struct metrics *m = &s->metrics;
	int i;
	for (i = 0; i < m->nseries; i++)
		if (strcmp(m->series[i].queue, queue) == 0 && strcmp(m->series[i].type, type) == 0 &&
		    strcmp(m->series[i].state, state) == 0)
			break;
	if (i == m->nseries && m->nseries < METRICS_SERIES_MAX) {
		snprintf(m->series[i].queue, sizeof(m->series[i].queue), "%s", queue);
		snprintf(m->series[i].type, sizeof(m->series[i].type), "%s", type);
		snprintf(m->series[i].state, sizeof(m->series[i].state), "%s", state);
		m->nseries++;
	}
	if (i < m->nseries)
		m->series[i].count++;
	else
		m->overflow++; /* more combinations than the table holds: counted, not labelled */
	if (seconds < 0)
		seconds = 0;
	for (int b = 0; b < METRICS_BUCKETS; b++)
		if (seconds <= bucket_le[b]) {
			m->buckets[b]++;
			break;
		}
	m->duration_count++;
	m->duration_sum += seconds;
}

json_t *
metrics_json(const struct server *s, int ctl_conns)
{
	const struct metrics *m = &s->metrics;
	json_t *jobs = json_array(), *le = json_array(), *counts = json_array();
	for (int i = 0; i < m->nseries; i++)
		json_array_append_new(jobs, json_pack("{s:s, s:s, s:s, s:I}", "queue", m->series[i].queue, "type",
		                                      m->series[i].type, "state", m->series[i].state, "count",
		                                      (json_int_t)m->series[i].count));
	for (int b = 0; b < METRICS_BUCKETS; b++) {
		json_array_append_new(le, json_real(bucket_le[b]));
		json_array_append_new(counts, json_integer((json_int_t)m->buckets[b]));
	}
	long long restarts = (long long)m->worker_spawns - s->cfg.workers;
	/* Store errors are the store's own counters (store_log.c): batches it could not commit, by kind. */
	struct store_counters sc = {0};
	if (s->store != NULL)
		store_counters(s->store, &sc);
	uint64_t store_errors = sc.errors_busy + sc.errors_full + sc.errors_io + sc.errors_other;
	json_t *o = json_pack("{s:o, s:I, s:{s:o, s:o, s:I, s:f}, s:I, s:I, s:I, s:I, s:i}", "jobs", jobs,
	                      "jobs_unlabelled", (json_int_t)m->overflow, "duration", "le", le, "counts", counts,
	                      "count", (json_int_t)m->duration_count, "sum", m->duration_sum, "worker_restarts",
	                      (json_int_t)(restarts > 0 ? restarts : 0), "redis_errors", (json_int_t)m->redis_errors,
	                      "redis_reconnects", (json_int_t)m->redis_reconnects, "store_errors",
	                      (json_int_t)store_errors, "ctl_conns", ctl_conns);
	json_t *b = json_pack("{s:I, s:I, s:I, s:I, s:I}", "batches", (json_int_t)m->batches, "batch_max_bytes",
	                      (json_int_t)m->batch_max_bytes, "batch_max_ops", (json_int_t)m->batch_max_ops,
	                      "schedule_fires", (json_int_t)m->sched_fires, "schedule_claims_lost",
	                      (json_int_t)m->sched_stale);
	json_object_update(o, b);
	json_decref(b);
	json_object_set_new(o, "redis_master_changes", json_integer((json_int_t)m->redis_master_changes));
	json_object_set_new(o, "redis_wait_short", json_integer((json_int_t)m->redis_wait_short));
	return o;
}

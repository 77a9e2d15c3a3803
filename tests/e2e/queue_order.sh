#!/usr/bin/env bash
# queue_order: the queues line sets the order of work. Strict: with high and low both full, every high job
# starts before the low ones (bar the one or two a fetch may hold ahead of time). Weighted a:9,b:1: with
# both full, the first jobs started come mostly from a.
. "$(dirname "$0")/../lib.sh"

start_redis

# --- strict: high drains before low ---
# Pushed before the daemon starts, so both queues are full when it first fetches.
for i in $(seq 1 5); do
	push_job low "$(job_json "qo-low-$i" noop)"
done
for i in $(seq 1 5); do
	push_job high "$(job_json "qo-high-$i" noop)"
done
start_hopperd n1 --queues=high,low --workers=1 --prefetch=1 || exit 1

wait_for "5 high jobs succeeded" 30 all_in_state qo-high- 1 5 succeeded
wait_for "5 low jobs succeeded" 30 all_in_state qo-low- 1 5 succeeded
wait_for "10 finished attempts rows" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'qo-%' AND finished_at IS NOT NULL" 10
check_eq "strict: the high jobs succeeded" "$(job_states qo-high- 1 5)" "succeeded=5"
check_eq "strict: the low jobs succeeded" "$(job_states qo-low- 1 5)" "succeeded=5"
check_eq "strict: one attempt each, on the right queue" \
	"$(sql n1 "SELECT queue || ':' || count(*) || ':' || count(DISTINCT job_id) FROM attempts
		WHERE job_id LIKE 'qo-%' GROUP BY queue ORDER BY queue")" "high:5:5
low:5:5"
note "strict: start order: $(sql n1 "SELECT replace(job_id, 'qo-', '') FROM attempts WHERE job_id LIKE 'qo-%'
	ORDER BY started_at, id" | paste -sd' ' -)"
# With workers=1 and prefetch=1 the daemon holds at most two jobs it has not finished; even if a fetch took
# low jobs at the very start, no more than two low jobs can start before the last high one.
low_before=$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'qo-low-%'
	AND started_at < (SELECT max(started_at) FROM attempts WHERE job_id LIKE 'qo-high-%')")
check_le "strict: at most 2 low jobs start before the last high one" "$low_before" 2
check_eq "strict: the started_at times are all set" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'qo-%' AND started_at > 0")" 10
check_eq "strict: queues empty" "$(llen "$(qkey high queue)")/$(llen "$(qkey low queue)")" 0/0
finish_hopperd n1

# --- weighted: a:9, b:1 ---
: >"$T/a.jobs"
: >"$T/b.jobs"
for i in $(seq 1 60); do
	job_json "qw-a-$i" noop >>"$T/a.jobs"
	echo >>"$T/a.jobs"
	job_json "qw-b-$i" noop >>"$T/b.jobs"
	echo >>"$T/b.jobs"
done
check "weighted: 60 jobs pushed on a" push_many a "$T/a.jobs"
check "weighted: 60 jobs pushed on b" push_many b "$T/b.jobs"
check_eq "weighted: both queues full before the daemon starts" "$(llen "$(qkey a queue)")/$(llen "$(qkey b queue)")" 60/60
start_hopperd n2 --queues=a:9,b:1 --queue-mode=weighted --workers=1 --prefetch=1 || exit 1

wait_for "60 a jobs succeeded" 60 all_in_state qw-a- 1 60 succeeded
wait_for "60 b jobs succeeded" 60 all_in_state qw-b- 1 60 succeeded
wait_for "120 finished attempts rows" 15 \
	sql_is n2 "SELECT count(*) FROM attempts WHERE job_id LIKE 'qw-%' AND finished_at IS NOT NULL" 120
check_eq "weighted: the a jobs succeeded" "$(job_states qw-a- 1 60)" "succeeded=60"
check_eq "weighted: the b jobs succeeded" "$(job_states qw-b- 1 60)" "succeeded=60"
first30=$(sql n2 "SELECT queue FROM attempts WHERE job_id LIKE 'qw-%' ORDER BY started_at, id LIMIT 30")
na=$(printf '%s\n' "$first30" | grep -cx a)
nb=$(printf '%s\n' "$first30" | grep -cx b)
note "weighted: of the first 30 started, $na from a and $nb from b (expected about 27 and 3)"
check_eq "weighted: the first 30 started come from a or b" "$((na + nb))" 30
check "weighted: more of the first 30 from a than from b ($na vs $nb)" test "$na" -gt "$nb"
check_ge "weighted: at least 18 of the first 30 from a" "$na" 18
check_eq "weighted: queues empty" "$(llen "$(qkey a queue)")/$(llen "$(qkey b queue)")" 0/0
finish_hopperd n2
end_scenario

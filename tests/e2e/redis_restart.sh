#!/usr/bin/env bash
# redis_restart: Redis is killed in the middle of a run of 200 sleep jobs and comes back 2 s later with its
# data (append-only file, fsync always). The daemon keeps its running jobs, reconnects, writes their
# outcomes and resumes consuming: every job completes exactly once, and jobs pushed after the restart run too.
. "$(dirname "$0")/../lib.sh"

N=200
start_redis --appendonly yes --appendfsync always
start_hopperd n1 --workers=2 || exit 1
seq 1 "$N" | awk '{ printf "{\"id\":\"rr-%d\",\"type\":\"sleep\",\"args\":{\"ms\":50}}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"

mid_run() {
	[ "$(count_state rr- 1 "$N" succeeded)" -ge 30 ]
}
wait_for "30 jobs done" 60 mid_run
before=$(job_states rr- 1 "$N")
kill9_redis
note "redis killed at: $before"
check "the outage hit mid-run (jobs were left)" test "$(echo "$before" | grep -o "succeeded=[0-9]*")" != "succeeded=$N"
sleep 2 # the outage
check "hopperd survives the outage" hopperd_alive n1
restart_redis
note "redis restarted"
check_ge "the restarted Redis kept the data" "$(rcli DBSIZE)" 30

wait_for "all $N jobs succeeded" 180 all_in_state rr- 1 "$N" succeeded
check_eq "Redis: all $N hashes succeeded" "$(job_states rr- 1 "$N")" "succeeded=$N"
check_eq "Redis: every job started once" "$(job_hist attempt rr- 1 "$N")" "1=$N"
check "hopperd alive after the restart" hopperd_alive n1

# Keeps consuming: new jobs after the restart run too.
for i in $(seq 1 20); do
	push_job default "$(job_json "rr-after-$i" noop)"
done
wait_for "20 new jobs succeeded" 60 all_in_state rr-after- 1 20 succeeded
check_eq "Redis: 20 jobs pushed after the restart succeeded" "$(job_states rr-after- 1 20)" "succeeded=20"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "dead list empty" "$(dead_count)" 0
finish_hopperd n1

check_eq "SQLite: one succeeded row for each of the $N jobs" \
	"$(sql n1 "SELECT count(*) || '/' || count(DISTINCT job_id) FROM attempts WHERE job_id LIKE 'rr-%' AND job_id NOT LIKE 'rr-after-%' AND state='succeeded'")" "$N/$N"
check_eq "SQLite: one succeeded row for each job pushed after the restart" \
	"$(sql n1 "SELECT count(*) || '/' || count(DISTINCT job_id) FROM attempts WHERE job_id LIKE 'rr-after-%' AND state='succeeded'")" 20/20
check_eq "SQLite: no other rows" "$(sql n1 "SELECT count(*) FROM attempts WHERE state <> 'succeeded'")" 0
end_scenario

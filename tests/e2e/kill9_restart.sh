#!/usr/bin/env bash
# kill9_restart: kill -9 of hopperd while 100 sleep jobs run on 4 workers; a restart with the same node id
# takes its in-flight jobs back at once, and every job succeeds: none is lost, none succeeds twice.
. "$(dirname "$0")/../lib.sh"

N=100
start_redis
# 1000-1495 ms each.
seq 1 "$N" | awk '{ printf "{\"id\":\"kr-%d\",\"type\":\"sleep\",\"args\":{\"ms\":%d}}\n", $1, 1000 + ($1 * 37) % 500 }' \
	>"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"
start_hopperd n1 --workers=4 || exit 1

some_ran_some_running() {
	[ "$(count_state kr- 1 "$N" succeeded)" -ge 4 ] && [ "$(count_state kr- 1 "$N" running)" -ge 1 ]
}
wait_for "4 jobs done and more running" 60 some_ran_some_running
before=$(job_states kr- 1 "$N")
note "at the kill: $before"
kill9_hopperd n1
check "hopperd n1 is gone after kill -9" test -z "${HD_PID[n1]:-}"
left=$((N - $(count_state kr- 1 "$N" succeeded)))
check_ge "jobs were still unfinished when hopperd died" "$left" 1
check_ge "jobs were running when hopperd died" "$(count_state kr- 1 "$N" running)" 1
check_ge "the dead daemon's inflight list holds its jobs" "$(llen "$(qkey default inflight n1)")" 1

start_hopperd n1 --workers=4 || exit 1
wait_for "all $N jobs succeeded" 240 all_in_state kr- 1 "$N" succeeded
check_eq "Redis: all $N hashes succeeded" "$(job_states kr- 1 "$N")" "succeeded=$N"
check_ge "Redis: jobs running at the kill count a stall" \
	"$(job_hist stalls kr- 1 "$N" | tr ' ' '\n' | awk -F= '$1 != "missing" && $1 + 0 >= 1 { n += $2 } END { print n + 0 }')" 1
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "dead list empty" "$(dead_count)" 0
finish_hopperd n1

check_eq "SQLite: every job has exactly one succeeded attempts row" \
	"$(sql n1 "SELECT count(*) FROM (SELECT job_id FROM attempts WHERE state='succeeded' GROUP BY job_id HAVING count(*) = 1)")" "$N"
check_eq "SQLite: $N succeeded rows in all" "$(sql n1 "SELECT count(*) FROM attempts WHERE state='succeeded'")" "$N"
# Besides those, only the attempts the kill interrupted (at most one per worker) may have rows.
check_le "SQLite: at most 4 other rows (the interrupted attempts)" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE state <> 'succeeded'")" 4
end_scenario

#!/usr/bin/env bash
# worker_recycle: a worker is replaced after worker_max_jobs jobs; the jobs all run, each worker process
# runs at most that many.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 --worker-max-jobs=3 || exit 1
seq 1 10 | awk '{ printf "{\"id\":\"wr-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push 10 jobs" "redis-cli --pipe reported errors"
wait_for "10 jobs succeeded" 60 all_in_state wr- 1 10 succeeded
check_eq "all 10 succeeded" "$(job_states wr- 1 10)" "succeeded=10"
finish_hopperd n1
check_eq "SQLite: 10 succeeded rows" "$(sql n1 "SELECT count(*) FROM attempts WHERE state='succeeded'")" 10
check_eq "SQLite: no worker process ran more than 3 jobs" \
	"$(sql n1 "SELECT count(*) FROM (SELECT worker_pid FROM attempts GROUP BY worker_pid HAVING count(*) > 3)")" 0
check_ge "SQLite: at least 4 worker processes took turns" \
	"$(sql n1 "SELECT count(DISTINCT worker_pid) FROM attempts WHERE worker_pid > 0")" 4
end_scenario

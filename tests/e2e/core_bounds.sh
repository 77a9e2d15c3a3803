#!/usr/bin/env bash
# core_bounds (issue 10, "everything that grows has a bound"): the dead set keeps at most dead_max entries
# (the oldest go), one retry takes its job's entry out by id, and a job that dies again has one entry.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --dead-max=5 || exit 1
for i in $(seq 1 8); do push_job default "$(job_json bd-$i fail '{}' '"max_attempts":1')"; sleep 0.05; done
wait_for "all 8 dead" 30 all_in_state bd- 1 8 dead
check_eq "8 dead jobs, dead set capped at 5 entries" "$(dead_count)" 5
check_eq "the oldest entries went first" "$(dead_entries | py -c 'import json,sys; print(" ".join(sorted(json.loads(l)["id"] for l in sys.stdin)))')" \
	"bd-4 bd-5 bd-6 bd-7 bd-8"
check "queue paused (the retried job waits)" ctl pause default
check "retry of one dead job" ctl retry bd-8
check_eq "its entry left the dead set at once" "$(dead_entries_with '"bd-8"')" 0
check_eq "it waits queued" "$(jstate bd-8)" queued
check "queue resumed" ctl resume default
wait_for "bd-8 dead again" 20 state_is bd-8 dead
wait_for "bd-8 has its entry back" 10 test "$(dead_entries_with '"bd-8"')" = 1
check_eq "it died again: one entry" "$(dead_entries_with '"bd-8"')" 1
check_eq "still at most 5 entries" "$(dead_count)" 5
check_eq "stats counts the dead entries" "$(ctl stats --json | py -c 'import json,sys; print(json.load(sys.stdin)["dead_entries"])')" 5
finish_hopperd n1
end_scenario

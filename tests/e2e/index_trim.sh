#!/usr/bin/env bash
# index_trim: the queue's job index (P{Q}:jobs, the control op list) stays bounded by result_ttl_s. The trim
# runs with the first admission of each second (Redis's clock), not with every admission: members older
# than the TTL are gone once a job is admitted a second later, and a burst within one second keeps them all.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --result-ttl-s=1 || exit 1
idx() { rcli ZCARD "$(qkey default jobs)"; }

for i in 1 2 3 4 5; do push_job default "$(job_json old-$i noop)"; done
for i in 1 2 3 4 5; do wait_for "old-$i succeeded" 20 state_is "old-$i" succeeded; done
check_eq "the index holds the five jobs" "$(idx)" 5
sleep 2.2 # every member is now older than result_ttl_s (1 s), and a new second has begun
push_job default "$(job_json new-1 noop)"
wait_for "new-1 succeeded" 20 state_is new-1 succeeded
check_eq "an admission a second later trimmed the expired members: only new-1 is left" "$(idx)" 1
check_eq "... and it is new-1" "$(rcli ZRANGE "$(qkey default jobs)" 0 -1)" new-1
finish_hopperd n1
end_scenario

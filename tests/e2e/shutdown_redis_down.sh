#!/usr/bin/env bash
# shutdown_redis_down: SIGTERM arrives while Redis is down. hopperd cannot write anything back, so it stops
# its running jobs after the grace, waits a bounded time for Redis, and exits 0 leaving every job it held in
# its inflight list. When Redis and the daemon come back, the daemon returns those jobs to the queue and
# every job still succeeds.
. "$(dirname "$0")/../lib.sh"

N=6
start_redis --appendonly yes --appendfsync always
start_hopperd n1 --workers=2 --shutdown-grace-s=1 || exit 1
for i in $(seq 1 "$N"); do push_job default "$(job_json "sd-$i" sleep '{"ms":3000}')"; done
wait_for "two jobs running" 30 test "$(count_state sd- 1 "$N" running)" = 2
held=$(llen "$(qkey default inflight n1)")
kill9_redis
note "redis killed; n1 held $held jobs"
t0=$(date +%s)
st=0
stop_hopperd n1 TERM 60 || st=$?
check_eq "hopperd exits 0 on SIGTERM with Redis down" "$st" 0
check_le "it gave up on Redis within grace + a few seconds" "$(($(date +%s) - t0))" $((15 * TIME_SCALE))
check "it said what it left behind" grep -q "not written back (Redis unreachable)" "$T/n1.log"

restart_redis
check_eq "the held jobs are still in n1's inflight list" "$(llen "$(qkey default inflight n1)")" "$held"
start_hopperd n1 --workers=2 || exit 1
wait_for "all $N jobs succeeded" 90 all_in_state sd- 1 "$N" succeeded
check_eq "Redis: all $N succeeded" "$(job_states sd- 1 "$N")" "succeeded=$N"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

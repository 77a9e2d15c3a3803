#!/usr/bin/env bash
# connection_drops: Redis drops hopperd's connections again and again (CLIENT KILL) while 5,000 noop jobs
# run (1,000 under sanitizers). Replies lost with a connection must not strand jobs: a fetch whose reply
# never arrived leaves jobs in the inflight list, which hopperd returns to the queue after reconnecting.
# Every job still succeeds exactly once, nothing is left in flight, and the daemon keeps consuming.
. "$(dirname "$0")/../lib.sh"

N=${DROPS_N:-5000}
[ "$HOPPER_SAN" = 1 ] && N=${DROPS_N:-1000}

start_redis
seq 1 "$N" | awk '{ printf "{\"id\":\"cd-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"

start_hopperd n1 --workers=2 || exit 1
kills=0
for _ in $(seq 1 15); do
	sleep 0.05
	rcli CLIENT KILL TYPE normal >/dev/null 2>&1 && kills=$((kills + 1))
	[ "$(llen "$(qkey default queue)")" = 0 ] && break
done
note "dropped hopperd's connections $kills times"
wait_for "all $N jobs succeeded after the drops" 180 all_in_state cd- 1 "$N" succeeded
check_eq "Redis: $N hashes succeeded" "$(job_states cd- 1 "$N")" "succeeded=$N"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "dead list empty" "$(dead_count)" 0
check "the daemon logged its lost connections" grep -q "connection lost" "$T/n1.log"

# Still consuming after the storm.
for i in 1 2 3 4 5; do push_job default "{\"id\":\"cd-after-$i\",\"type\":\"noop\"}"; done
wait_for "jobs pushed after the drops succeed" 60 all_in_state cd-after- 1 5 succeeded

finish_hopperd n1
check_eq "SQLite: one succeeded row per job" \
	"$(sql n1 "SELECT count(DISTINCT job_id) FROM attempts WHERE state='succeeded' AND job_id LIKE 'cd-%'")" \
	"$((N + 5))"
check_eq "SQLite: no job succeeded twice" \
	"$(sql n1 "SELECT count(*) FROM (SELECT job_id FROM attempts WHERE state='succeeded' GROUP BY job_id HAVING count(*) > 1)")" 0
end_scenario

#!/usr/bin/env bash
# poison_pill: a job whose daemon dies (kill -9) every time it runs is not retried forever: once it has
# stalled max_stalls times it goes to dead with an error that says so.
. "$(dirname "$0")/../lib.sh"

MAX_STALLS=2
start_redis
flags=(--workers=1 "--max-stalls=$MAX_STALLS")
start_hopperd n1 "${flags[@]}" || exit 1
push_job default "$(job_json pp-1 sleep '{"ms":60000}' '"max_attempts":10')"

kills=0
last_attempt=0
running_again() { # the job runs a new attempt, or was buried
	local s a
	s=$(jstate pp-1)
	a=$(jfield pp-1 attempt)
	[ "$s" = dead ] || { [ "$s" = running ] && [ "${a:-0}" -gt "$last_attempt" ]; }
}
# Each round: wait for the job to run (or be dead), kill -9 the daemon under it, restart it.
for ((round = 1; round <= MAX_STALLS + 3; round++)); do
	wait_for "pp-1 running a new attempt or dead (round $round)" 30 running_again
	state=$(jstate pp-1)
	[ "$state" = running ] || break
	last_attempt=$(jfield pp-1 attempt)
	kill9_hopperd n1
	kills=$((kills + 1))
	start_hopperd n1 "${flags[@]}" || exit 1
done
note "kills: $kills, final state: $(jstate pp-1), stalls: $(jfield pp-1 stalls)"

wait_for "pp-1 dead" 30 state_is pp-1 dead
check_eq "the job ends dead" "$(jstate pp-1)" dead
check_match "its error mentions the stalls" "$(jfield pp-1 error)" 'stall'
check_ge "it was killed under at least max_stalls times" "$kills" "$MAX_STALLS"
check_le "it went dead after max_stalls stalls, not later" "$kills" "$MAX_STALLS"
check_eq "its stall counter" "$(jfield pp-1 stalls)" "$MAX_STALLS"
check_eq "one entry in the dead list" "$(dead_entries_with '"pp-1"')" 1
check_eq "not back on the queue" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "SQLite: one attempts row per run it got" \
	"$(sql n1 "SELECT count(DISTINCT attempt) FROM attempts WHERE job_id='pp-1' AND attempt > 0")" "$kills"
check "daemon alive" hopperd_alive n1
push_job default "$(job_json pp-after noop)"
wait_for "pp-after succeeded" 30 state_is pp-after succeeded
check_eq "the daemon keeps consuming" "$(jstate pp-after)" succeeded
finish_hopperd n1
end_scenario

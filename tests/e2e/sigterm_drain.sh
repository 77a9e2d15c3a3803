#!/usr/bin/env bash
# sigterm_drain: SIGTERM stops fetching, lets the running jobs finish within the shutdown grace, puts the
# fetched-but-unstarted ones back on their queue, writes everything and exits 0; a restarted daemon finishes
# the rest. With a short grace, running jobs are stopped and re-queued at the head of the queue instead.
. "$(dirname "$0")/../lib.sh"

start_redis

# --- case 1: running jobs finish, the rest go back ---
N=10
GRACE=10
start_hopperd n1 --workers=2 --prefetch=2 --shutdown-grace-s=$GRACE || exit 1
seq 1 "$N" | awk '{ printf "{\"id\":\"sd-%d\",\"type\":\"sleep\",\"args\":{\"ms\":1500}}\n", $1 }' >"$T/jobs1.jsonl"
push_many default "$T/jobs1.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"
two_running() {
	[ "$(count_state sd- 1 "$N" running)" -ge 2 ]
}
wait_for "2 jobs running" 30 two_running
running=$(ids_in_state sd- 1 "$N" running)
st=0
stop_hopperd n1 TERM $((GRACE + 10)) || st=$?
check_eq "drain: hopperd exits 0 within the shutdown grace" "$st" 0
succeeded=$(count_state sd- 1 "$N" succeeded)
note "running at SIGTERM: $(echo $running); succeeded after the drain: $succeeded"
for id in $running; do
	check_eq "drain: $id, running at SIGTERM, succeeded" "$(jstate "$id")" succeeded
done
check_ge "drain: at least the 2 running jobs succeeded" "$succeeded" 2
check_eq "drain: the rest are back on the queue" "$(llen "$(qkey default queue)")" "$((N - succeeded))"
# A job the daemon fetched reads queued again; one it never fetched has no hash yet (bare LPUSH).
check_eq "drain: the rest read queued or were never seen" \
	"$(($(count_state sd- 1 "$N" queued) + $(count_state sd- 1 "$N" missing)))" "$((N - succeeded))"
check_eq "drain: inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "drain: each queued job is on the queue once" \
	"$(rcli LRANGE "$(qkey default queue)" 0 -1 | grep -o '"sd-[0-9]*"' | sort | uniq -d | wc -l)" 0
check_eq "drain: SQLite has every succeeded attempt, none left running" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE state='succeeded'") $(sql n1 "SELECT count(*) FROM attempts WHERE finished_at IS NULL")" \
	"$succeeded 0"

start_hopperd n1 --workers=2 --prefetch=2 || exit 1
wait_for "all $N jobs succeeded" 60 all_in_state sd- 1 "$N" succeeded
check_eq "restart: all $N succeeded" "$(job_states sd- 1 "$N")" "succeeded=$N"
finish_hopperd n1
check_eq "restart: one succeeded row per job" \
	"$(sql n1 "SELECT count(*) || '/' || count(DISTINCT job_id) FROM attempts WHERE state='succeeded'")" "$N/$N"

# --- case 2: the grace runs out; running jobs are stopped and re-queued at the head ---
rcli FLUSHALL >/dev/null
M=4
start_hopperd n2 --workers=2 --prefetch=2 --shutdown-grace-s=1 --kill-grace-s=1 || exit 1
seq 1 "$M" | awk '{ printf "{\"id\":\"sg-%d\",\"type\":\"sleep\",\"args\":{\"ms\":10000}}\n", $1 }' >"$T/jobs2.jsonl"
push_many default "$T/jobs2.jsonl" || not_ok "push $M jobs" "redis-cli --pipe reported errors"
two_running2() {
	[ "$(count_state sg- 1 "$M" running)" = 2 ]
}
wait_for "2 long jobs running" 30 two_running2
running=$(ids_in_state sg- 1 "$M" running)
st=0
stop_hopperd n2 TERM 30 || st=$?
check_eq "grace out: hopperd exits 0" "$st" 0
check_eq "grace out: all $M jobs back on the queue" "$(llen "$(qkey default queue)")" "$M"
check_eq "grace out: all read queued" "$(job_states sg- 1 "$M")" "queued=$M"
check_eq "grace out: inflight list empty" "$(llen "$(qkey default inflight n2)")" 0
# The head of a queue is its right end (daemons take from the right).
head2=$(rcli LRANGE "$(qkey default queue)" -2 -1 | grep -o '"sg-[0-9]*"' | tr -d '"' | sort | paste -sd' ' -)
check_eq "grace out: the stopped jobs are at the head of the queue" "$head2" "$(echo $running | tr ' ' '\n' | sort | paste -sd' ' -)"
check_eq "grace out: SQLite has no attempt left running" \
	"$(sql n2 "SELECT count(*) FROM attempts WHERE finished_at IS NULL")" 0
check_eq "grace out: SQLite has the 2 stopped attempts" "$(sql n2 "SELECT count(*) FROM attempts")" 2
end_scenario

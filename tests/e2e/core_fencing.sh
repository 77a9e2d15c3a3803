#!/usr/bin/env bash
# core_fencing (issue 10, "fencing"): a daemon stopped (SIGSTOP) for longer than its lease while it runs a job
# is reaped by the other daemon, which runs the job again under a new fencing token. When the stopped daemon
# resumes, its heartbeat learns it was reaped: it stops its attempt, logs it superseded, and writes nothing
# of it to Redis. The job ends once, succeeded. Pushing the running job's message again (3 times) is
# acknowledged as a duplicate: the running attempt is untouched (it used to collect stalls and end dead).
. "$(dirname "$0")/../lib.sh"

start_redis
lease=(--lease-s=3 --heartbeat-s=1 --workers=1)
start_hopperd a "${lease[@]}" || exit 1
push_job default "$(job_json fz-1 sleep '{"ms":9000}')"
on_node() { [ "$(jstate "$1")" = running ] && [ "$(jfield "$1" node)" = "$2" ]; }
wait_for "fz-1 running on a" 20 on_node fz-1 a
check_eq "claim gave it fencing token 1" "$(jfield fz-1 fence)" 1
start_hopperd b "${lease[@]}" || exit 1
kill -STOP "${HD_PID[a]}"
wait_for "b reaped a and runs fz-1" 30 on_node fz-1 b
check_eq "b's claim gave it fencing token 2" "$(jfield fz-1 fence)" 2
check "a was reaped" node_gone a

# Second copies of the running job's message: acknowledged, the attempt untouched.
payload=$(jfield fz-1 payload)
for i in 1 2 3; do push_job default "$payload"; done
empty_queue() { [ "$(llen "$(qkey default queue)")" = 0 ]; }
wait_for "the copies were taken" 10 empty_queue
sleep 0.5
check_eq "after 3 copies: still running on b" "$(jstate fz-1)/$(jfield fz-1 node)" running/b
check_eq "after 3 copies: no stall counted for them" "$(jfield fz-1 stalls)" 1
check_eq "after 3 copies: fencing token unchanged" "$(jfield fz-1 fence)" 2

kill -CONT "${HD_PID[a]}"
superseded_row() { [ "$(sql a "SELECT state FROM attempts WHERE job_id = 'fz-1'")" = superseded ]; }
wait_for "a logged its attempt superseded" 20 superseded_row
check_eq "a's row for its attempt says superseded" "$(sql a "SELECT state FROM attempts WHERE job_id = 'fz-1'")" superseded
check "a's log says it was reaped while alive" grep -q 'was reaped while alive' "$T/a.log"
wait_for "fz-1 succeeded" 30 state_is fz-1 succeeded
check_eq "fz-1 succeeded on b" "$(jstate fz-1)/$(jfield fz-1 node)" succeeded/b
check_eq "b's row: succeeded with fencing token 2" \
	"$(sql b "SELECT state || ' ' || fence FROM attempts WHERE job_id = 'fz-1'")" "succeeded 2"
check_eq "a registered again as a new incarnation" "$(node_known a && echo yes)" yes
check_eq "a's inflight list empty" "$(llen "$(qkey default inflight a)")" 0
check_eq "b's inflight list empty" "$(llen "$(qkey default inflight b)")" 0
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "no dead entry" "$(dead_count)" 0
finish_hopperd a
finish_hopperd b
end_scenario

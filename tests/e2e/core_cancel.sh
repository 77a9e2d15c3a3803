#!/usr/bin/env bash
# core_cancel (issue 10, "cancel always arrives"): a cancel published while the running daemon's pub/sub link
# is down is not lost: after resubscribing the daemon re-reads its held jobs and stops the cancelled one.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 || exit 1
push_job default "$(job_json cc-1 sleep '{"ms":60000}')"
wait_for "cc-1 running" 20 state_is cc-1 running
# Drop the pub/sub link and cancel before it is back (the cancel's message reaches nobody).
rcli CLIENT KILL TYPE pubsub >/dev/null
ctl cancel cc-1 >/dev/null 2>&1
check_eq "Redis says cancelled at once" "$(jstate cc-1)" cancelled
row_cancelled() { [ "$(sql n1 "SELECT state FROM attempts WHERE job_id = 'cc-1'")" = cancelled ]; }
wait_for "the attempt was stopped" 20 row_cancelled
check_eq "the running attempt stopped, logged cancelled" "$(sql n1 "SELECT state FROM attempts WHERE job_id = 'cc-1'")" cancelled
wait_for "inflight list empty" 10 test "$(llen "$(qkey default inflight n1)")" = 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "still cancelled" "$(jstate cc-1)" cancelled
finish_hopperd n1
end_scenario

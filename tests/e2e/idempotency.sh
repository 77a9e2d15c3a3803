#!/usr/bin/env bash
# idempotency: of two jobs with different ids and the same idempotency_key, pushed with a plain LPUSH, the
# first runs and the second ends cancelled as its duplicate (also when both wait in the queue together);
# a job with another key is not affected.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1

# --- one after the other ---
push_job default "$(job_json id-first sleep '{"ms":200}' '"idempotency_key":"key-1"')"
wait_for "id-first succeeded" 30 state_is id-first succeeded
push_job default "$(job_json id-second noop '{}' '"idempotency_key":"key-1"')"
wait_for "id-second ended" 30 state_is id-second cancelled
push_job default "$(job_json id-other noop '{}' '"idempotency_key":"key-2"')"
wait_for "id-other succeeded" 30 state_is id-other succeeded

check_eq "first: succeeded" "$(jstate id-first)" succeeded
check_eq "second: cancelled" "$(jstate id-second)" cancelled
check_match "second: error names the first job" "$(jfield id-second error)" 'duplicate of job id-first\b'
check_eq "second: never ran (attempt counter)" "$(jfield id-second attempt)" 0
check_eq "other key: succeeded" "$(jstate id-other)" succeeded
check_eq "the idempotency key key-1 names the first job" "$(rcli GET "$(qkey default idem key-1)")" id-first
check_eq "the idempotency key key-2 names the other job" "$(rcli GET "$(qkey default idem key-2)")" id-other
check_match "the cancelled state is in the second job's events" \
	"$(rcli LRANGE "$(qkey default events id-second)" 0 -1 | tail -n 1)" '"state" *: *"cancelled"'

# --- both in the queue at once: the one pushed first (and so taken first) wins ---
rcli LPUSH "$(qkey default queue)" "$(job_json id-pair-a sleep '{"ms":200}' '"idempotency_key":"key-3"')" \
	"$(job_json id-pair-b sleep '{"ms":200}' '"idempotency_key":"key-3"')" >/dev/null
wait_for "id-pair-a succeeded" 30 state_is id-pair-a succeeded
wait_for "id-pair-b cancelled" 30 state_is id-pair-b cancelled
check_eq "pair: the first pushed succeeded" "$(jstate id-pair-a)" succeeded
check_eq "pair: the second pushed is cancelled" "$(jstate id-pair-b)" cancelled
check_match "pair: its error names the first" "$(jfield id-pair-b error)" 'duplicate of job id-pair-a\b'

# The execution log: only the jobs that ran have attempts.
wait_for "3 finished attempts rows" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE finished_at IS NOT NULL AND attempt > 0" 3
check_eq "attempts rows: one per job that ran, none for the duplicates" \
	"$(sql n1 "SELECT job_id || ':' || state FROM attempts WHERE attempt > 0 ORDER BY job_id" | paste -sd' ' -)" \
	"id-first:succeeded id-other:succeeded id-pair-a:succeeded"
check_ge "stats: cancelled counted" "$(stat_count cancelled)" 2
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

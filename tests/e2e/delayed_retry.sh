#!/usr/bin/env bash
# delayed_retry: a job with run_at in the future waits in the scheduled set and does not start before its
# time; a failing job passes through retrying, and its attempts are spaced by at least the backoff.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1

# --- delayed ---
run_at=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t + 2 }')
push_job default "$(job_json dr-delayed noop '{}' "\"run_at\":$run_at")"
in_scheduled() {
	rcli ZRANGE "$(qkey default scheduled)" 0 -1 | grep -q '"dr-delayed"'
}
wait_for "the delayed job in the scheduled set" 10 in_scheduled
check "delayed: waits in the scheduled set" in_scheduled
score=$(rcli ZSCORE "$(qkey default scheduled)" "$(rcli ZRANGE "$(qkey default scheduled)" 0 -1 | grep '"dr-delayed"')")
check "delayed: its score is run_at" near "$score" "$run_at" 0.01
check_match "delayed: its hash reads queued (or has none yet) while it waits" "$(jstate dr-delayed)" '^(queued|)$'
wait_for "the delayed job succeeded" 30 state_is dr-delayed succeeded
check_eq "delayed: succeeded" "$(jstate dr-delayed)" succeeded
check "delayed: started no earlier than run_at (hash)" fcmp "$(jfield dr-delayed started_at)" '>=' "$run_at"
wait_for "its attempts row" 10 sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='dr-delayed' AND finished_at IS NOT NULL" 1
check "delayed: started no earlier than run_at (attempts row)" \
	fcmp "$(sql n1 "SELECT started_at FROM attempts WHERE job_id='dr-delayed'")" '>=' "$run_at"
check_eq "delayed: no longer scheduled" "$(rcli ZCARD "$(qkey default scheduled)")" 0

# --- retries with backoff ---
push_job default "$(job_json dr-fail fail '{"message":"again"}' '"max_attempts":3,"backoff_s":0.5')"
saw_retrying=0
# Poll the state (the event list below is the record that does not depend on polling fast enough).
for ((i = 0; i < 300 * TIME_SCALE; i++)); do
	s=$(jstate dr-fail)
	[ "$s" = retrying ] && saw_retrying=1
	[ "$s" = dead ] && break
	sleep 0.05
done
check_eq "retry: ends dead after 3 attempts" "$(jstate dr-fail)/$(jfield dr-fail attempt)" dead/3
in_events=$(rcli LRANGE "$(qkey default events dr-fail)" 0 -1 | grep -c '"retrying"')
check "retry: passed through retrying (seen in the hash or the event list)" \
	test "$saw_retrying" = 1 -o "$in_events" -ge 1
check_ge "retry: the event list records both retrying states" "$in_events" 2
wait_for "3 attempts rows" 10 sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='dr-fail' AND finished_at IS NOT NULL" 3
# Equal jitter: the wait before retry k is at least half of backoff_s * 2^(k-1): 0.25 s, then 0.5 s.
gaps=$(sql n1 "SELECT a2.attempt || ':' || printf('%.3f', a2.started_at - a1.finished_at) FROM attempts a1
	JOIN attempts a2 ON a2.job_id = a1.job_id AND a2.attempt = a1.attempt + 1
	WHERE a1.job_id = 'dr-fail' ORDER BY a2.attempt" | paste -sd' ' -)
note "gaps before attempts 2 and 3: $gaps"
check_eq "retry: attempts spaced by the backoff (>= 0.25 s, then >= 0.5 s)" \
	"$(echo "$gaps" | awk '{ for (i = 1; i <= NF; i++) { split($i, p, ":"); min = (p[1] == 2) ? 0.24 : 0.49; printf "%s%s", (i > 1 ? " " : ""), p[1] ":" (p[2] >= min) } }')" "2:1 3:1"
check_eq "retry: in the dead list" "$(dead_entries_with '"dr-fail"')" 1
finish_hopperd n1
end_scenario

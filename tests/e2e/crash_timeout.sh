#!/usr/bin/env bash
# crash_timeout: a job that crashes its worker and a job that runs past its timeout each fail cleanly with a
# readable error while 20 noop jobs succeed; a job that crashes on every attempt ends dead after
# max_attempts; the daemon stays up and keeps consuming.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --kill-grace-s=1 || exit 1

push_job default "$(job_json ct-crash crash '{}' '"max_attempts":1')"
push_job default "$(job_json ct-timeout sleep '{"ms":5000}' '"max_attempts":1,"timeout_s":0.5')"
for i in $(seq 1 20); do
	push_job default "$(job_json "ct-noop-$i" noop)"
done
push_job default "$(job_json ct-crash3 crash '{}' '"max_attempts":3,"backoff_s":0.1')"

is_failed() { # ID: a terminal failure state
	case $(jstate "$1") in dead | failed) return 0 ;; esac
	return 1
}
wait_for "ct-crash failed" 30 is_failed ct-crash
wait_for "ct-timeout failed" 60 is_failed ct-timeout
wait_for "20 noop jobs succeeded" 60 all_in_state ct-noop- 1 20 succeeded
wait_for "ct-crash3 dead" 60 state_is ct-crash3 dead
wait_for "25 attempts rows finished" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE finished_at IS NOT NULL" 25

# The crash.
check_match "crash: state" "$(jstate ct-crash)" '^(dead|failed)$'
check_match "crash: hash error names the crash" "$(jfield ct-crash error)" 'signal|SIGSEGV|segmentation|crash'
check_match "crash: its attempts row" "$(sql n1 "SELECT count(*) || ' ' || group_concat(state || ': ' || error)
	FROM attempts WHERE job_id='ct-crash'")" '^1 (dead|failed): .*(signal|SIGSEGV|segmentation|crash)'

# The timeout: stopped (the sleep would take 5 s), with an error that says so.
check_match "timeout: state" "$(jstate ct-timeout)" '^(dead|failed)$'
check_match "timeout: hash error names the timeout" "$(jfield ct-timeout error)" 'time'
check_match "timeout: its attempts row" "$(sql n1 "SELECT count(*) || ' ' || group_concat(state || ': ' || error)
	FROM attempts WHERE job_id='ct-timeout'")" '^1 (dead|failed): .*time'
check_eq "timeout: the attempt was stopped well before the sleep's 5 s" \
	"$(sql n1 "SELECT duration_ms < 4500 FROM attempts WHERE job_id='ct-timeout'")" 1

# The others were untouched.
check_eq "noop jobs: all succeeded in Redis" "$(job_states ct-noop- 1 20)" "succeeded=20"
check_eq "noop jobs: 20 succeeded rows" \
	"$(sql n1 "SELECT count(*) || '/' || count(DISTINCT job_id) FROM attempts WHERE job_id LIKE 'ct-noop-%' AND state='succeeded'")" 20/20

# Crashing on every attempt: dead after 3.
check_eq "crash x3: state" "$(jstate ct-crash3)" dead
check_eq "crash x3: attempt counter" "$(jfield ct-crash3 attempt)" 3
check_eq "crash x3: attempts rows 1, 2, 3, each with a signal error" \
	"$(sql n1 "SELECT attempt || ':' || (error LIKE '%signal%' OR error LIKE '%SIGSEGV%' OR error LIKE '%segmentation%')
		FROM attempts WHERE job_id='ct-crash3' ORDER BY attempt" | paste -sd' ' -)" "1:1 2:1 3:1"
check_eq "crash x3: in the dead list" "$(dead_entries_with '"ct-crash3"')" 1

# Still consuming.
check "daemon alive" hopperd_alive n1
push_job default "$(job_json ct-after noop)"
wait_for "ct-after succeeded" 30 state_is ct-after succeeded
check_eq "a noop pushed afterwards succeeds" "$(jstate ct-after)" succeeded
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

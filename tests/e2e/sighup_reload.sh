#!/usr/bin/env bash
# sighup_reload: SIGHUP re-reads the config file. A new job default (max_attempts) applies to the jobs that
# follow; an invalid file is rejected with file:line in the log, the running configuration stays whole and
# the daemon keeps serving.
. "$(dirname "$0")/../lib.sh"

start_redis
printf '# sighup_reload: first version\nmax_attempts = 1\n' >"$T/h.conf"
start_hopperd n1 -c "$T/h.conf" --workers=1 || exit 1

log_count() { # FIXED-STRING: how many lines of n1.log contain it
	grep -cF -- "$1" "$T/n1.log"
}
log_count_above() { # FIXED-STRING N
	[ "$(log_count "$1")" -gt "$2" ]
}
finished_rows() { # ID: finished attempts rows of that job
	sql n1 "SELECT count(*) FROM attempts WHERE job_id='$1' AND finished_at IS NOT NULL"
}

# --- max_attempts = 1 from the file ---
push_job default "$(job_json sh-fail1 fail '{"message":"one"}')"
wait_for "sh-fail1 dead" 30 state_is sh-fail1 dead
wait_for "sh-fail1's attempts row" 15 sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='sh-fail1' AND finished_at IS NOT NULL" 1
check_eq "file max_attempts=1: the fail job is dead" "$(jstate sh-fail1)" dead
check_eq "file max_attempts=1: its hash max_attempts and attempt counter" \
	"$(jfield sh-fail1 max_attempts)/$(jfield sh-fail1 attempt)" 1/1
check_eq "file max_attempts=1: one attempts row" "$(finished_rows sh-fail1)" 1

# --- reload: max_attempts = 2 ---
printf '# sighup_reload: second version\nmax_attempts = 2\nbackoff_base_s = 0.1\n' >"$T/h.conf"
before=$(log_count "configuration reloaded")
kill -s HUP "${HD_PID[n1]}"
wait_for "the reload logged" 15 log_count_above "configuration reloaded" "$before"
check_eq "SIGHUP: the log says configuration reloaded" "$(log_count "configuration reloaded")" $((before + 1))
check "SIGHUP: daemon alive after the reload" hopperd_alive n1
push_job default "$(job_json sh-fail2 fail '{"message":"two"}')"
wait_for "sh-fail2 dead" 30 state_is sh-fail2 dead
wait_for "sh-fail2's 2 attempts rows" 15 sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='sh-fail2' AND finished_at IS NOT NULL" 2
check_eq "reloaded max_attempts=2: the fail job is dead" "$(jstate sh-fail2)" dead
check_eq "reloaded max_attempts=2: its hash max_attempts and attempt counter" \
	"$(jfield sh-fail2 max_attempts)/$(jfield sh-fail2 attempt)" 2/2
check_eq "reloaded max_attempts=2: attempts rows 1 and 2" \
	"$(sql n1 "SELECT attempt FROM attempts WHERE job_id='sh-fail2' ORDER BY attempt" | paste -sd' ' -)" "1 2"
check_ge "reloaded max_attempts=2: it passed through retrying" \
	"$(rcli LRANGE "$(qkey default events sh-fail2)" 0 -1 | grep -c '"retrying"')" 1

# --- an invalid file: the running configuration stays whole ---
# max_attempts = 5 on a line before the bad one must not take effect either.
printf '# sighup_reload: broken version\nmax_attempts = 5\ntimeout_s = x\n' >"$T/h.conf"
before=$(log_count "keeping the running configuration")
kill -s HUP "${HD_PID[n1]}"
wait_for "the rejection logged" 15 log_count_above "keeping the running configuration" "$before"
line=$(grep -F "keeping the running configuration" "$T/n1.log" | tail -n 1)
note "rejection: $line"
check_eq "invalid file: the log says keeping the running configuration" \
	"$(log_count "keeping the running configuration")" $((before + 1))
check_match "invalid file: the log line names file:line" "$line" 'h\.conf:3\b'
check_match "invalid file: the log line names the option" "$line" 'timeout_s'
check "invalid file: daemon alive" hopperd_alive n1
push_job default "$(job_json sh-noop noop)"
wait_for "sh-noop succeeded" 30 state_is sh-noop succeeded
check_eq "invalid file: a noop still succeeds" "$(jstate sh-noop)" succeeded
push_job default "$(job_json sh-fail3 fail '{"message":"three"}')"
wait_for "sh-fail3 dead" 30 state_is sh-fail3 dead
wait_for "sh-fail3's attempts rows" 15 sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='sh-fail3' AND finished_at IS NOT NULL" 2
check_eq "invalid file: max_attempts is still 2 (the file's 5 was not applied)" \
	"$(jfield sh-fail3 max_attempts)/$(jfield sh-fail3 attempt)/$(finished_rows sh-fail3)" 2/2/2
finish_hopperd n1
end_scenario

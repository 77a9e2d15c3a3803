#!/usr/bin/env bash
# store_clock: the daemon's wall clock steps while jobs run (the chaos checker's LD_PRELOAD clock shim,
# tests/chaos/clockshim.c, moves CLOCK_REALTIME, gettimeofday and time of the running hopperd and its
# workers). Timeouts, kill grace and the log's commit interval run on CLOCK_MONOTONIC, so:
#   +1 h while a 3 s job with a 300 s timeout runs: it succeeds (it used to "time out after 300 s");
#   -1 h while a job with a 2 s timeout hangs: it is killed at its timeout, not an hour late, and its
#        attempt row is committed at once (the commit interval used to wait for the wall clock to catch up).
. "$(dirname "$0")/../lib.sh"

SHIM=$HOPPER_BUILD/chaos/clockshim.so
if [ ! -f "$SHIM" ]; then
	not_ok "the clock shim is built" "$SHIM missing (make $SHIM)"
	end_scenario
fi
OFFSET=$T/clock-offset
set_offset() { # SECONDS: rewritten in place, as the shim maps the file (see clockshim.c)
	printf '%-63s\n' "$1" | dd of="$OFFSET" conv=notrunc status=none
}
set_offset 0
cat >"$T/hopperd-shifted" <<EOS
#!/bin/sh
HOPPER_CLOCK_FILE='$OFFSET' LD_PRELOAD='$SHIM' ASAN_OPTIONS="\${ASAN_OPTIONS:-}:verify_asan_link_order=0" exec '$HOPPERD' "\$@"
EOS
chmod +x "$T/hopperd-shifted"

start_redis
HOPPERD=$T/hopperd-shifted start_hopperd n1 --workers=2 --kill-grace-s=0.5 || exit 1
hpid=${HD_PID[n1]}
check "hopperd runs with the shim" grep -q clockshim "/proc/$hpid/maps"

# +1 h in the middle of a 3 s job whose timeout is 300 s.
push_job default "$(job_json ck-fwd sleep '{"ms":3000}' '"timeout_s":300,"max_attempts":1')"
wait_for "ck-fwd running" 30 state_is ck-fwd running
set_offset 3600
wait_for "ck-fwd ends" 60 sh -c "s=\$(redis-cli -s '$SOCK' HGET '${HP}job:ck-fwd' state); [ \"\$s\" = succeeded ] || [ \"\$s\" = dead ]"
check_eq "a +1 h step does not time out a 3 s job with a 300 s timeout" "$(jstate ck-fwd)" succeeded
check_eq "and its log says no timeout" "$(grep -c 'job ck-fwd: timed out' "$T/n1.log")" 0
wait_for "ck-fwd's row" 15 sql_is n1 "SELECT state FROM attempts WHERE job_id = 'ck-fwd'" succeeded
# (its duration_ms is finished_at - started_at, both wall-clock times: it includes the step)
check_eq "its attempt row: succeeded, no error" \
	"$(sql n1 "SELECT state || ' ' || (error IS NULL) FROM attempts WHERE job_id = 'ck-fwd'")" "succeeded 1"

# -1 h (two hours back from +1 h) while a job hangs past its 2 s timeout.
push_job default "$(job_json ck-back sleep '{"ms":120000,"ignore_term":true}' '"timeout_s":2,"max_attempts":1')"
wait_for "ck-back running" 30 state_is ck-back running
set_offset -3600
wait_for "ck-back dead" 40 state_is ck-back dead
check_eq "a -1 h step does not delay the 2 s timeout by an hour" "$(jstate ck-back)" dead
check_match "it died of its timeout" "$(jfield ck-back error)" 'timed out'
wait_for "ck-back's row committed" 20 sql_is n1 "SELECT state FROM attempts WHERE job_id = 'ck-back'" dead
check_eq "its row is committed while the wall clock is an hour behind" \
	"$(sql n1 "SELECT state FROM attempts WHERE job_id = 'ck-back'")" dead

# The daemon keeps serving on the stepped clock.
push_job default "$(job_json ck-after noop)"
wait_for "ck-after succeeded" 30 state_is ck-after succeeded
check_eq "a job pushed afterwards succeeds" "$(jstate ck-after)" succeeded
set_offset 0
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# timeout_kill: a handler that ignores SIGTERM (sleep with ignore_term) and runs past its timeout is killed
# with SIGKILL kill_grace_s after the SIGTERM: the job ends dead with a timeout error long before its sleep
# would have ended, its worker process is gone (and reaped), and a new worker serves the next job.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 --kill-grace-s=0.5 || exit 1

push_job default "$(job_json tk-stuck sleep '{"ms":20000,"ignore_term":true}' '"timeout_s":0.5,"max_attempts":1')"
wait_for "tk-stuck dead" 30 state_is tk-stuck dead
wait_for "its attempts row" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='tk-stuck' AND finished_at IS NOT NULL" 1

check_eq "the stuck job is dead" "$(jstate tk-stuck)" dead
check_match "its hash error says it timed out" "$(jfield tk-stuck error)" 'timed out'
check_match "its attempts row: one, with the timeout error" \
	"$(sql n1 "SELECT count(*) || ' ' || group_concat(state || ': ' || error) FROM attempts WHERE job_id='tk-stuck'")" \
	'^1 (dead|failed): .*timed out'
# The sleep alone would take 20 s: ending well before proves it was killed, not that it finished.
check_eq "the attempt ended well before the 20 s sleep would have" \
	"$(sql n1 "SELECT duration_ms < 15000 FROM attempts WHERE job_id='tk-stuck'")" 1
check_match "the log shows the SIGKILL after the grace period" \
	"$(grep -F 'job tk-stuck:' "$T/n1.log" | grep -F SIGKILL)" 'SIGKILL'
check_eq "in the dead list" "$(dead_entries_with '"tk-stuck"')" 1

# The worker that ran it: named by the hash and the attempts row, and gone (a zombie still answers kill -0,
# so this also checks that hopperd reaped it).
wpid=$(jfield tk-stuck worker_pid)
check_match "the hash names the worker pid" "$wpid" '^[1-9][0-9]*$'
check_eq "the attempts row names the same worker" \
	"$(sql n1 "SELECT worker_pid FROM attempts WHERE job_id='tk-stuck'")" "$wpid"
worker_gone() {
	! kill -0 "$wpid" 2>/dev/null
}
if [ -n "$wpid" ]; then
	wait_for "worker $wpid gone" 10 worker_gone
	if worker_gone; then
		ok "the worker process that ran it no longer exists"
	else
		echo "$wpid" >"$T/pids/worker.$wpid" # let cleanup end it
		not_ok "the worker process that ran it no longer exists" \
			"pid $wpid still there: $(ps -o pid=,stat=,args= -p "$wpid" 2>/dev/null)"
	fi
fi

# The daemon keeps serving, with a new worker.
check "daemon alive" hopperd_alive n1
push_job default "$(job_json tk-after noop)"
wait_for "tk-after succeeded" 30 state_is tk-after succeeded
check_eq "a noop pushed afterwards succeeds" "$(jstate tk-after)" succeeded
check "it ran in another worker" test "$(jfield tk-after worker_pid)" != "$wpid"
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# ctl_cancel: cancel through the control socket. A job claimed and waiting for a worker is dropped and
# never runs; a running job that ignores SIGTERM is SIGKILLed after kill_grace_s and recorded cancelled
# (not failed, not retried); a job cancelled just before its daemon is killed stays cancelled after the
# restart, which does not run it again.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 --prefetch=2 --kill-grace-s=1 || exit 1
C() { py "$HOPPER_ROOT/tests/ctl/ctlclient.py" --socket "$T/n1.sock" --peercred "$@"; }
field() { py -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d.get("result", {}).get(sys.argv[1], d.get("error", {}).get("code")))' "$1"; }

C submit '{"job":{"id":"stuck","type":"sleep","args":{"ms":60000,"ignore_term":true}}}' >/dev/null
wait_for "stuck runs" 20 state_is stuck running
C submit '{"job":{"id":"waiting","type":"noop"}}' >/dev/null
wait_for "waiting is held by n1" 10 test "$(llen "$(qkey default inflight n1)")" = 2
check_eq "the waiting job is claimed, not started" "$(jstate waiting)" queued
check_eq "cancel the waiting job: it was queued" "$(C cancel '{"job":"waiting"}' | field was)" queued
t0=$(now)
check_eq "cancel the stuck job: it was running" "$(C cancel '{"job":"stuck"}' | field was)" running
wait_for "stuck's attempt recorded cancelled" 20 sql_is n1 "SELECT state FROM attempts WHERE job_id='stuck'" cancelled
t1=$(now)
check "a job ignoring SIGTERM is killed after the grace, well before its 60 s" fcmp "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" '<' 15
check "the SIGKILL is logged" grep -q 'stuck: still running after the grace period; SIGKILL' "$T/n1.log"
check_eq "stuck stays cancelled" "$(jstate stuck)" cancelled
check_eq "stuck ran once" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id='stuck'")" 1
wait_for "the inflight list empties" 10 test "$(llen "$(qkey default inflight n1)")" = 0
sleep 0.5
check_eq "the waiting job never ran" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id='waiting'")" 0
check_eq "the waiting job is cancelled" "$(jstate waiting)" cancelled

# cancel, then kill -9 before the daemon wrote anything more: the restart must not run it again
C submit '{"job":{"id":"long","type":"sleep","args":{"ms":60000}}}' >/dev/null
wait_for "long runs" 20 state_is long running
check_eq "cancel long" "$(C cancel '{"job":"long"}' | field was)" running
kill9_hopperd n1
check_eq "killed right after: long is cancelled in Redis" "$(jstate long)" cancelled
start_hopperd n1 --workers=1 --kill-grace-s=1 || exit 1
wait_for "the restart returns n1's leftovers" 20 test "$(llen "$(qkey default inflight n1)")" = 0
sleep 1
check_eq "after the restart long is still cancelled" "$(jstate long)" cancelled
check_eq "and was not started again" "$(jfield long attempt)" 1
check_eq "its queue holds nothing" "$(llen "$(qkey default queue)")" 0
finish_hopperd n1
end_scenario

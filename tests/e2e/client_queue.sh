#!/usr/bin/env bash
# client_queue (issue 10): ids are unique per queue, so the clients' job calls take the queue. One id in two
# queues: without a queue status/cancel/retry/watch answer bad_request ("ambiguous"); with it, libhopper
# (hopper_status_in / _cancel_in / _retry_in / _watch_in, through the example program) and hopper.py
# (queue=) reach exactly that queue's job and leave the other one alone.
. "$(dirname "$0")/../lib.sh"

EX=$HOPPER_BUILD/examples/submit_and_wait
start_redis
start_hopperd n1 --workers=2 --queues=default,q2 --max-attempts=1 || exit 1
check "pause default" ctl pause default
check "submit twin to default" ctl submit noop --id twin --queue default
check "submit twin to q2" ctl submit fail --id twin --queue q2 --args '{"message":"q2 twin"}'
wait_for "q2's twin dead" 30 test "$(rcli HGET "$(qkey q2 job twin)" state)" = dead
check_eq "default's twin waits" "$(rcli HGET "$(qkey default job twin)" state)" queued

py - "$CTL_SOCK" "$HOPPER_ROOT/client" >"$T/py.out" 2>&1 <<'PY'
import sys
sock, client_dir = sys.argv[1:3]
sys.path.insert(0, client_dir)
import hopper
c = hopper.Client(socket=sock)
def code(f):
    try:
        f()
        return "ok"
    except hopper.HopperError as e:
        return e.code
print("status-noqueue", code(lambda: c.status("twin")))
print("cancel-noqueue", code(lambda: c.cancel("twin")))
print("status-q2", c.status("twin", queue="q2")["state"], c.status("twin", queue="q2")["queue"])
print("status-default", c.status("twin", queue="default")["state"])
c.call("pause", queue="q2")  # the retried twin waits: its event list ends "dead", "queued"
print("retry-q2", c.retry("twin", queue="q2")["queue"])
try:
    print("wait-paused", c.wait("twin", timeout=2, queue="q2")["state"])
except hopper.HopperError as e:
    print("wait-paused", e.code)
c = hopper.Client(socket=sock)  # the timed-out watch closed the connection
c.call("resume", queue="q2")
print("wait-q2", c.wait("twin", timeout=30, queue="q2")["state"])
print("logs-q2", len(c.logs("twin", queue="q2")["attempts"]))
print("cancel-default", c.cancel("twin", queue="default")["state"])
print("watch-default", c.wait("twin", timeout=10, queue="default")["state"])
print("status-q2-after", c.status("twin", queue="q2")["state"])
PY
check_eq "hopper.py: status without queue is ambiguous" "$(sed -n 's/^status-noqueue //p' "$T/py.out")" bad_request
check_eq "hopper.py: cancel without queue is ambiguous" "$(sed -n 's/^cancel-noqueue //p' "$T/py.out")" bad_request
check_eq "hopper.py: status(queue=q2) is q2's job" "$(sed -n 's/^status-q2 //p' "$T/py.out")" "dead q2"
check_eq "hopper.py: status(queue=default) is default's" "$(sed -n 's/^status-default //p' "$T/py.out")" queued
check_eq "hopper.py: retry(queue=q2)" "$(sed -n 's/^retry-q2 //p' "$T/py.out")" q2
check_eq "hopper.py: a retried job's earlier dead event does not end its watch" \
	"$(sed -n 's/^wait-paused //p' "$T/py.out")" timeout
check_eq "hopper.py: wait/watch(queue=q2) follows it to its end" "$(sed -n 's/^wait-q2 //p' "$T/py.out")" dead
check_eq "hopper.py: logs(queue=q2): its two attempts" "$(sed -n 's/^logs-q2 //p' "$T/py.out")" 2
check_eq "hopper.py: cancel(queue=default)" "$(sed -n 's/^cancel-default //p' "$T/py.out")" cancelled
check_eq "hopper.py: watch(queue=default) ends cancelled" "$(sed -n 's/^watch-default //p' "$T/py.out")" cancelled
check_eq "q2's twin untouched by the cancel" "$(sed -n 's/^status-q2-after //p' "$T/py.out")" dead
check_eq "no traceback" "$(grep -c Traceback "$T/py.out")" 0

# libhopper: the example submits id twin2 to q2 while default holds a twin2 too; its watch and final
# status name the queue (hopper_watch_in, hopper_status_in). Without the queue they are ambiguous.
check "submit twin2 to default" ctl submit noop --id twin2 --queue default
HOME=$T HOPPER_QUEUE=q2 HOPPER_JOB_ID=twin2 "$EX" "$CTL_SOCK" sleep '{"ms":200}' >"$T/ex.out" 2>&1
check_eq "example with HOPPER_QUEUE=q2 exits 0" "$?" 0
check_eq "it ends succeeded" "$(grep '^final state' "$T/ex.out")" "final state succeeded"
check_eq "its status is q2's job" "$(grep '^queue' "$T/ex.out")" "queue q2"
check_eq "default's twin2 still waits" "$(rcli HGET "$(qkey default job twin2)" state)" queued
check "resume default" ctl resume default
HOME=$T HOPPER_JOB_ID=twin3 "$EX" "$CTL_SOCK" noop >/dev/null 2>&1
check_eq "control: no queue, a unique id, works" "$?" 0
check "submit twin3 to q2 as well" ctl submit noop --id twin3 --queue q2
wait_for "q2's twin3 ran" 20 test "$(rcli HGET "$(qkey q2 job twin3)" state)" = succeeded
out=$(ctl status twin3 2>&1)
check_match "hopperctl: ambiguous without --queue" "$out" 'ambiguous'
check_eq "hopperctl status --queue q2" "$(ctl --json status twin3 --queue q2 | py -c 'import json,sys; print(json.load(sys.stdin)["queue"])')" q2
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# celery_recovery: at least once for Celery messages. hopperd killed -9 during a Celery task: after the
# restart the task completes and its SUCCESS is published once. A message taken from a Celery queue but not
# yet converted (hopperd died in between) is converted by the restarted daemon, and one held by a node whose
# heartbeat expired is adopted by another.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

FLAGS=(--workers=1 --queues=celery --celery-queues=celery --celery-tasks="t.noop=noop t.sleep=sleep:ms"
	--celery-track-started=1)
start_redis
# Every result publication, from the start: the SUCCESS of the killed task must appear exactly once.
py -u -c '
import sys, redis
p = redis.Redis(unix_socket_path=sys.argv[1]).pubsub()
p.psubscribe("celery-task-meta-*")
for m in p.listen():
    if m["type"] == "pmessage":
        print(m["channel"].decode(), m["data"].decode(), flush=True)
' "$SOCK" >"$T/published.log" 2>&1 &
echo $! >"$T/pids/aux.sub"
subscribed() { [ "$(rcli PUBSUB NUMPAT)" -ge 1 ]; }
wait_for "subscriber" 10 subscribed

start_hopperd n1 "${FLAGS[@]}" || exit 1
export TIME_SCALE
id=$(py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" kill_send)
wait_for "task running" 20 state_is "$id" running
progressed() { [ "$(jfield "$id" progress)" -gt 0 ]; }
wait_for "some progress" 20 progressed
kill9_hopperd n1
check_match "killed mid-task: Celery sees it unfinished" "$(rcli GET "celery-task-meta-$id")" '"status": "PROGRESS"'

# A message hopperd took but never converted: it sits in the inflight list as "queue\nmessage".
seed=$("$HOPPERCTL" --redis-unix "$SOCK" celery send t.noop --queue seedq --kwargs '{"seed":1}')
rcli LPUSH "$(gkey celery:inflight n1)" "$(printf 'celery\n%s' "$(rcli RPOP seedq)")" >/dev/null
# And one held by node "ghost", whose heartbeat is gone.
ghost=$("$HOPPERCTL" --redis-unix "$SOCK" celery send t.noop --queue seedq --kwargs '{"ghost":1}')
rcli LPUSH "$(gkey celery:inflight ghost)" "$(printf 'celery\n%s' "$(rcli RPOP seedq)")" >/dev/null
rcli SADD "$(gkey celery:nodes)" ghost >/dev/null

start_hopperd n1 "${FLAGS[@]}" || exit 1
relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" kill_check
wait_for "seeded task done" 20 key_exists "celery-task-meta-$seed"
check_match "an inflight message left by a dead daemon runs after the restart" \
	"$(rcli GET "celery-task-meta-$seed")" '"status": "SUCCESS"'
wait_for "ghost's task done" 20 key_exists "celery-task-meta-$ghost"
check_match "a dead node's inflight message is adopted and runs" "$(rcli GET "celery-task-meta-$ghost")" \
	'"status": "SUCCESS"'
check_eq "inflight lists empty" "$(rcli LLEN "$(gkey celery:inflight n1)")/$(rcli LLEN "$(gkey celery:inflight ghost)")" 0/0
sleep 0.5
check_eq "the killed task's SUCCESS was published once" \
	"$(grep -c "^celery-task-meta-$id .*\"SUCCESS\"" "$T/published.log")" 1
check_eq "STARTED published for each attempt (celery_track_started=1), before its PROGRESS" \
	"$(grep "^celery-task-meta-$id " "$T/published.log" | grep -o '"status": "[A-Z]*"' | uniq | tr -d '"' |
		sed 's/status: //' | tr '\n' ' ')" "STARTED PROGRESS STARTED PROGRESS SUCCESS "
check_eq "no result published twice" "$(grep '"SUCCESS"' "$T/published.log" | cut -d' ' -f1 | sort | uniq -d | wc -l)" 0
finish_hopperd n1
end_scenario

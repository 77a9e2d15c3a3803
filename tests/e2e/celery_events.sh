#!/usr/bin/env bash
# celery_events: with celery_events = on hopperd sends Celery's events on the celeryev exchange. Flower is
# not packaged in Debian 12 (`apt-cache policy flower`: none), so the stock consumers check it: Celery's
# app.events.Receiver (task-received/started/succeeded/failed/retried/revoked, worker-heartbeat) and the
# stock `celery events --dump` command (worker-online and worker-offline of hopperd@n1).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
out=$("$HOPPERD" --check-config --celery-events=maybe 2>&1)
check_match "config: celery_events is on or off" "$out" "must be on or off"
cat >"$T/evapp.py" <<PY
from celery import Celery
app = Celery('evapp', broker='redis+socket://$SOCK', backend='redis+socket://$SOCK')
PY
(cd "$T" && exec /usr/bin/python3 -m celery -A evapp events --dump >"$T/dump.log" 2>&1) &
echo $! >"$T/pids/aux.dump"
DUMP_PID=$!
dump_subscribed() { [ "$(rcli PUBSUB NUMPAT)" -ge 1 ]; }
wait_for "celery events --dump subscribed" 30 dump_subscribed
start_hopperd n1 --workers=2 --queues=celery --celery-queues=celery --celery-events=on --max-attempts=2 \
	--backoff-base-s=0.1 --kill-grace-s=1 --celery-tasks="t.sleep=sleep:ms t.fail=fail:message" || exit 1

export TIME_SCALE HOPPERCTL CTL_SOCK T
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" events

finish_hopperd n1
wait_for "celery events --dump shows worker-offline (dumped as shutdown)" 10 grep -q "hopperd@n1 .*\] shutdown" "$T/dump.log"
check "celery events --dump: hopperd@n1 online (dumped as started)" grep -q "hopperd@n1 .*\] started" "$T/dump.log"
check "celery events --dump: a task succeeded on hopperd@n1" grep -q "hopperd@n1.*task succeeded" "$T/dump.log"
kill "$DUMP_PID" 2>/dev/null
end_scenario

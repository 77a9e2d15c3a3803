#!/usr/bin/env bash
# celery_canvas: canvases, routing and result shapes with a stock Celery app and a stock `celery worker`
# (Debian's python3-celery): chords over the Redis result backend (header on hopperd, body on hopperd or on
# the stock worker; a failing or refused member and an unsupported body give ChordError, never a hang),
# groups; celery_routes for the links hopperd publishes; celery_types (exception types, soft time limits,
# PROGRESS shape); the Python side is tests/celery/v2.py.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
cat >"$T/pytasks.py" <<'PY'
import os
from celery import Celery
url = 'redis+socket://' + os.environ['HOPPER_TEST_SOCK']
app = Celery('pytasks', broker=url, backend=url)
@app.task(name='py.total')
def total(results):
    return [r['slept_ms'] for r in results]
@app.task(name='py.wrap')
def wrap(prev):
    return {'got': prev}
PY
(cd "$T" && HOPPER_TEST_SOCK=$SOCK exec /usr/bin/python3 -m celery -A pytasks worker --pool=solo -Q py \
	--without-heartbeat --without-gossip --without-mingle -l info >"$T/worker.log" 2>&1) &
echo $! >"$T/pids/aux.worker"
types='t.fail:exc=builtins.ValueError; t.fail:exc[disk]=builtins.OSError; t.sleepr:soft_retry=1;
	t.sleep:progress={"current": progress, "total": 100, "status": stage}'
out=$("$HOPPERD" --check-config --celery-types="t.x:progress={\"a\": nosuchname}" 2>&1)
check_match "config: a progress template naming an unknown value is refused" "$out" "not JSON over progress"
out=$("$HOPPERD" --check-config --celery-types="t.x:exc=ValueError" 2>&1)
check_match "config: exc must be MODULE.TYPE" "$out" "is not MODULE.TYPE"
out=$("$HOPPERD" --check-config --celery-routes="py.*" 2>&1)
check_match "config: a route must be PATTERN=QUEUE" "$out" "is not PATTERN=QUEUE"
start_hopperd n1 --workers=2 --queues=celery --celery-queues=celery --max-attempts=2 --backoff-base-s=0.1 \
	--celery-tasks="t.noop=noop t.sleep=sleep:ms t.sleepr=sleep:ms t.fail=fail:message t.other=fail:message" \
	--celery-routes="py.*=py" --celery-types="$types" --kill-grace-s=1 || exit 1

export TIME_SCALE HOPPERCTL CTL_SOCK T
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" chord types

check "hopperd survived" hopperd_alive n1
finish_hopperd n1
end_scenario

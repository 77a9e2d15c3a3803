#!/usr/bin/env bash
# celery_canvas: canvases, routing and result shapes with a stock Celery app and a stock `celery worker`
# (Debian's python3-celery): chords over the Redis result backend (header on hopperd, body on hopperd or on
# the stock worker; a failing or refused member and an unsupported body give ChordError, never a hang),
# groups; the Python side is tests/celery/v2.py.
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
PY
(cd "$T" && HOPPER_TEST_SOCK=$SOCK exec /usr/bin/python3 -m celery -A pytasks worker --pool=solo -Q py \
	--without-heartbeat --without-gossip --without-mingle -l info >"$T/worker.log" 2>&1) &
echo $! >"$T/pids/aux.worker"
start_hopperd n1 --workers=2 --queues=celery --celery-queues=celery \
	--celery-tasks="t.noop=noop t.sleep=sleep:ms t.fail=fail:message" --max-attempts=1 || exit 1

export TIME_SCALE HOPPERCTL CTL_SOCK T
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" chord

check "hopperd survived" hopperd_alive n1
finish_hopperd n1
end_scenario

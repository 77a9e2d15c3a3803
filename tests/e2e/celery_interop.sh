#!/usr/bin/env bash
# celery_interop: hopper and a stock Celery worker (Debian's `celery worker`) on one broker. A task
# published by `hopperctl celery send` is run by the stock worker; chains cross between the two in both
# directions, each side publishing the next link in Celery's format.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
cat >"$T/wtasks.py" <<'PY'
import os
from celery import Celery
url = 'redis+socket://' + os.environ['HOPPER_TEST_SOCK']
app = Celery('wtasks', broker=url, backend=url)
@app.task(name='w.add')
def add(x, y):
    return x + y
@app.task(name='w.wrap')
def wrap(prev):
    return {'got': prev}
PY
(cd "$T" && HOPPER_TEST_SOCK=$SOCK exec /usr/bin/python3 -m celery -A wtasks worker --pool=solo -Q wq \
	--without-heartbeat --without-gossip --without-mingle -l info >"$T/worker.log" 2>&1) &
echo $! >"$T/pids/aux.worker"
WORKER_PID=$!
start_hopperd n1 --workers=1 --queues=celery --celery-queues=celery \
	--celery-tasks="t.sleep=sleep:ms t.after=sleep:prev" || exit 1

id=$("$HOPPERCTL" --redis-unix "$SOCK" celery send w.add --args '[2,3]' --queue wq)
id2=$("$HOPPERCTL" --redis-unix "$SOCK" celery send w.add --args '[20]' --kwargs '{"y":22}' --queue wq --countdown 1)
wait_for "the stock worker's result" 60 key_exists "celery-task-meta-$id"
check_match "a task sent by hopperctl celery send is run by a stock Celery worker" \
	"$(rcli GET "celery-task-meta-$id")" '"status": "SUCCESS", "result": 5,'
wait_for "the second result" 30 key_exists "celery-task-meta-$id2"
check_match "args, kwargs and countdown understood by the stock worker" \
	"$(rcli GET "celery-task-meta-$id2")" '"status": "SUCCESS", "result": 42,'
check "the stock worker logged the task by name" grep -q "Task w.add\[$id\] succeeded" "$T/worker.log"

export TIME_SCALE
relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" interop_chain

kill -TERM "$WORKER_PID" 2>/dev/null
_wait_gone "$WORKER_PID" 20 || kill -KILL "$WORKER_PID" 2>/dev/null
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# celery_interop: hopper and a stock Celery worker (Debian's `celery worker`) on one broker. A task
# published by `hopperctl celery send` is run by the stock worker; chains cross between the two in both
# directions, each side publishing the next link in Celery's format. Through the control socket (the
# celery.send op): tasks published by hopperctl, by the libhopper example program and by hopper.py are run by
# the stock worker and read back with AsyncResult; priorities land in kombu's lists; a read-only token is
# forbidden; bad fields are bad_request.
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

# --- the celery.send op: hopperctl (without --redis-*), libhopper's example, hopper.py ---
hc() { HOME=$T "$HOPPERCTL" --socket "$CTL_SOCK" "$@"; }
sid1=$(hc celery send w.add --args '[4,5]' --queue wq)
check "hopperctl celery send over the socket prints a task id" test -n "$sid1"
sid2=$(HOME=$T "$HOPPER_BUILD/examples/celery_send" "$CTL_SOCK" w.add '[6]' '{"y":7}' wq)
check "the libhopper example celery_send prints a task id" test -n "$sid2"
cat >"$T/csend.py" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(sys.argv[1]), 'tests', 'ctl'))
from hopper import Client, HopperError
from celery import Celery
from ctltest import schema_errors
ctl_sock, redis_sock, reader, ids = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
url = 'redis+socket://' + redis_sock
app = Celery('wtasks', broker=url, backend=url)
def check(name, got, want):
    print(('ok - %s' % name) if got == want else ('not ok - %s: got %r, want %r' % (name, got, want)), flush=True)
def code_of(fn):
    try:
        fn()
        return 'no error'
    except HopperError as e:
        return e.code
with Client(socket=ctl_sock) as c:
    r = c.celery_send('w.add', [10, 11], queue='wq')
    check('hopper.py celery_send replies the queue and its list', (r['queue'], r['key']), ('wq', 'wq'))
    ids.append(r['task_id'])
    check('the reply matches celery.send.schema.json', schema_errors('urn:hopper:schema:control:celery.send#/$defs/result', r), [])
    req = {'op': 'celery.send', 'task': 'w.add', 'args': [1], 'kwargs': {}, 'queue': 'wq', 'priority': 3,
           'countdown_s': 1, 'expires_s': 60, 'task_id': 'x-1'}
    check('a full request matches the request schema', schema_errors('urn:hopper:schema:control:celery.send#/$defs/request', req), [])
    check('the schema refuses countdown_s with eta',
          bool(schema_errors('urn:hopper:schema:control:celery.send#/$defs/request', dict(req, eta=5))), True)
    r = c.celery_send('w.wrap', kwargs={'prev': 'x'}, queue='wq', id='py-fixed-id-1')
    check('a given task id is kept', r['task_id'], 'py-fixed-id-1')
    ids.append(r['task_id'])
    # priorities: kombu's Redis transport keeps buckets 0, 3, 6, 9 as queue, queue\x06\x163, ...
    keys = [c.celery_send('w.add', [1, 1], queue='pq', priority=p)['key'] for p in (0, 2, 3, 5, 6, 9)]
    check('each priority goes to its kombu bucket list', keys,
          ['pq', 'pq', 'pq\x06\x163', 'pq\x06\x163', 'pq\x06\x166', 'pq\x06\x169'])
    # null fields count as absent (hopper.py leaves None out, so this frame is written by hand)
    c._send_frame('{"id":"n1","op":"celery.send","task":"w.add","args":null,"kwargs":null,"queue":"nq"}')
    r = c.recv()
    check('null args and kwargs count as absent', (r.get('ok'), r.get('result', {}).get('key')), (True, 'nq'))
    bad = [
        ('args not an array', dict(task='w.add', args={'x': 1})),
        ('priority over 9', dict(task='w.add', priority=10)),
        ('countdown and eta together', dict(task='w.add', countdown_s=5, eta=2000000000)),
        ('no task name', dict(args=[1])),
        ('an unknown field', dict(task='w.add', routing='x')),
        ('a queue name with a space', dict(task='w.add', queue='a b')),
    ]
    for name, fields in bad:
        check('celery.send refuses %s: bad_request' % name, code_of(lambda: c.call('celery.send', **fields)),
              'bad_request')
with Client(socket=ctl_sock, token=reader) as c:
    check('a read-only token may not celery.send: forbidden', code_of(lambda: c.celery_send('w.add', [1, 2])),
          'forbidden')
want = {0: 9, 1: 13, 2: 21, 3: {'got': 'x'}}
for i, tid in enumerate(ids):
    res = app.AsyncResult(tid)
    got = res.get(timeout=60 * int(os.environ.get('TIME_SCALE', '1')))
    check('task %d (%s) run by the stock worker: AsyncResult SUCCESS with the right result' % (i, tid),
          (res.state, got), ('SUCCESS', want[i]))
PY
READER=$(ctl token create celery-reader --scopes read 2>/dev/null)
export TIME_SCALE
relay py "$T/csend.py" "$HOPPER_ROOT/client" "$CTL_SOCK" "$SOCK" "$READER" "$sid1" "$sid2"
check_eq "priority 0-2 tasks wait in kombu's list pq" "$(rcli LLEN pq)" 2
check_eq "priority 3-5 tasks wait in pq\x06\x163" "$(rcli LLEN $'pq\x06\x163')" 2
check_eq "priority 9 waits in pq\x06\x169" "$(rcli LLEN $'pq\x06\x169')" 1
check_match "the published message is Celery protocol 2 JSON for the task, with its priority" \
	"$(rcli LINDEX $'pq\x06\x169' 0)" '"task":"w\.add".*"priority":9,"body_encoding":"base64"'
check_match "hopperctl celery send's task is in Celery's result backend" \
	"$(rcli GET "celery-task-meta-$sid1")" '"status": "SUCCESS", "result": 9,'
hc celery send w.add --args '[1,2]' --queue eq --countdown 30 --expires 60 >/dev/null
check_match "--countdown and --expires over the socket become the eta and expires headers" \
	"$(rcli LINDEX eq 0)" '"eta":"20[0-9-]+T[0-9:.]+\+00:00","expires":"20[0-9-]+T'
out=$(HOPPER_TOKEN=$READER hc celery send w.add --args '[1,2]' --queue wq 2>&1)
st=$?
check_eq "hopperctl celery send with a read-only token exits 9 (forbidden)" "$st" 9
check_match "... and says forbidden" "$out" forbidden
out=$(hc celery send w.add --priority 12 2>&1)
check_eq "hopperctl celery send --priority 12 is a usage error" "$?" 2
out=$(hc celery send w.add --celery-prefix x: 2>&1)
check_match "--celery-prefix without --redis-* is refused" "$out" "goes with --redis"

relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" interop_chain

kill -TERM "$WORKER_PID" 2>/dev/null
_wait_gone "$WORKER_PID" 20 || kill -KILL "$WORKER_PID" 2>/dev/null
finish_hopperd n1
end_scenario

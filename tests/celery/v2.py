"""Celery v2 checks for tests/e2e/celery_v2.sh (and celery_control.sh): a stock Celery app (Debian's
python3-celery) against hopperd. Usage: v2.py SOCKET CASE... Prints "ok - NAME" / "not ok - NAME: why"
lines (relayed by tests/celery/relay.sh). hopper's side is read through hopperctl ($HOPPERCTL, with
$CTL_SOCK), never through hopper's Redis keys."""
import json
import os
import subprocess
import sys
import time

import redis
from celery import Celery
from celery.exceptions import TaskRevokedError

SOCK = sys.argv[1]
URL = 'redis+socket://' + SOCK
SCALE = float(os.environ.get('TIME_SCALE', '1'))
WAIT = 30 * SCALE

app = Celery('hopperv2', broker=URL, backend=URL)
R = redis.Redis(unix_socket_path=SOCK, decode_responses=True)


def check(name, cond, why=''):
    print(('ok - ' + name) if cond else ('not ok - %s: %s' % (name, why)), flush=True)


def check_eq(name, got, want):
    check(name, got == want, 'got %r, want %r' % (got, want))


def hopper(*args):
    """hopperctl --json ARGS against the scenario's daemon: the parsed reply (or {'error': text})."""
    p = subprocess.run([os.environ['HOPPERCTL'], '--socket', os.environ['CTL_SOCK'], '--json'] + list(args),
                       capture_output=True, text=True, env=dict(os.environ, HOME=os.environ.get('T', '/tmp')))
    try:
        return json.loads(p.stdout.splitlines()[0])
    except (IndexError, ValueError):
        return {'error': p.stdout + p.stderr}


def hstate(tid):
    return hopper('status', tid).get('state')


def wait_until(pred, limit=WAIT):
    deadline = time.time() + limit
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def outcome(res, limit=WAIT):
    """(elapsed seconds, value or exception) of res.get(), never waiting past limit."""
    t0 = time.time()
    try:
        v = res.get(timeout=limit)
    except Exception as e:  # reported by the checks
        v = e
    return time.time() - t0, v


def case_big():
    for label, n in (('1 MB', 1 << 20), ('5 MB', 5 << 20)):
        r = app.send_task('t.noop', args=('x' * n,))
        took, v = outcome(r)
        check('%s argument: get() raises instead of hanging' % label, isinstance(v, Exception), repr(v)[:200])
        check_eq('%s argument: FAILURE under the task\'s own id' % label, r.state, 'FAILURE')
        check('%s argument: the exception names the limit' % label, 'max_message_bytes' in str(v), str(v)[:300])
        check_eq('%s argument: HopperMessageError' % label, type(v).__name__, 'HopperMessageError')
        check_eq('%s argument: the hopper job is dead' % label, hstate(r.id), 'dead')
    r = app.send_task('t.noop', kwargs={'blob': 'y' * 900000})
    took, v = outcome(r)
    check_eq('900 kB argument (1.2 MB once base64-encoded by kombu) runs', v, {})
    # An envelope with readable headers but a broken rest still gets its FAILURE.
    tid = 'broken-0000-4000-8000-000000000001'
    R.lpush('celery', '{"headers": {"id": "%s", "task": "t.noop", "lang": "py"}, "body": "W1tdLCB7fV0=", '
            '"content-type": "application/json", "properties": {' % tid)
    took, v = outcome(app.AsyncResult(tid))
    check('truncated envelope with an id: FAILURE, not a hang', isinstance(v, Exception), repr(v))
    check_eq('truncated envelope: HopperMessageError', type(v).__name__, 'HopperMessageError')
    check_eq('after all that a task still runs', outcome(app.send_task('t.noop'))[1], {})


def case_cancel():
    r = app.send_task('t.sleep', args=(int(60000 * SCALE),))
    check('cancel running: the task runs', wait_until(lambda: hstate(r.id) == 'running'), hstate(r.id))
    reply = hopper('cancel', r.id)
    check_eq('hopperctl cancel of a running Celery task', reply.get('was'), 'running')
    took, v = outcome(r)
    check_eq('cancelled running task: get() raises TaskRevokedError', type(v), TaskRevokedError)
    check_eq('cancelled running task: state REVOKED', r.state, 'REVOKED')
    q = app.send_task('t.noop', countdown=60)
    check('cancel queued: the task waits', wait_until(lambda: hstate(q.id) == 'queued'), hstate(q.id))
    check_eq('hopperctl cancel of a queued Celery task', hopper('cancel', q.id).get('was'), 'queued')
    took, v = outcome(q)
    check_eq('cancelled queued task: get() raises TaskRevokedError', type(v), TaskRevokedError)
    check('cancelled queued task: the reason names the cancel', 'cancelled by' in str(v), str(v))
    f = app.send_task('t.fail', kwargs={'message': 'permanent', 'retry': False})
    took, v = outcome(f)
    check_eq('failed task: FAILURE', (f.state, hstate(f.id)), ('FAILURE', 'failed'))


if __name__ == '__main__':
    for c in sys.argv[2:]:
        globals()['case_' + c]()

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


def case_control():
    """Remote control against two daemons (n1, n2) started by celery_control.sh."""
    names = sorted(os.environ.get('HOPPERD_NAMES', 'hopperd@n1').split())
    pongs = app.control.ping(timeout=5 * SCALE, limit=len(names))
    check_eq('control.ping: every hopperd answers pong', sorted(pongs, key=lambda d: list(d)[0]),
             [{n: {'ok': 'pong'}} for n in names])
    i = app.control.inspect(timeout=5 * SCALE, limit=len(names))
    reg = i.registered() or {}
    check_eq('inspect registered: the mapped Celery task names', sorted(reg.get(names[0], [])),
             ['t.fail', 't.noop', 't.sleep'])
    st = (i.stats() or {}).get(names[0], {})
    check('inspect stats: pid, pool and broker', isinstance(st.get('pid'), int) and
          st.get('pool', {}).get('max-concurrency') == 1 and st.get('broker', {}).get('transport') == 'redis', st)
    run = app.send_task('t.sleep', args=(int(60000 * SCALE),))
    check('a long task starts', wait_until(lambda: hstate(run.id) == 'running'), hstate(run.id))
    waiting = [app.send_task('t.sleep', args=(int(60000 * SCALE),)) for _ in range(3)]
    wait_until(lambda: sum(len(v) for v in (app.control.inspect(timeout=1, limit=len(names)).reserved() or {}).values()) >= 1, 10)
    act = i.active() or {}
    flat = [t for v in act.values() for t in v]
    ids = {run.id} | {w.id for w in waiting}
    check('inspect active: the running tasks by id and name, at most one per 1-worker daemon',
          (run.id, 't.sleep') in [(t.get('id'), t.get('name')) for t in flat] and len(flat) <= len(names) and
          all(t.get('id') in ids and t.get('name') == 't.sleep' for t in flat), flat)
    check('inspect active: worker_pid and time_start', flat and isinstance(flat[0].get('worker_pid'), int) and
          flat[0].get('time_start', 0) > 0, flat)
    res = [t.get('id') for v in (i.reserved() or {}).values() for t in v]
    check('inspect reserved: tasks fetched but not started', res and set(res) <= {w.id for w in waiting}, res)
    check_eq('inspect scheduled: answered (none held in memory)', sorted((i.scheduled() or {}).keys()), names)
    # revoke a queued task: it never runs
    q = app.send_task('t.noop', countdown=30)
    wait_until(lambda: hstate(q.id) == 'queued')
    rep = app.control.revoke(q.id, reply=True, timeout=5 * SCALE, limit=len(names))
    check('revoke: every daemon replies "flagged as revoked"',
          len(rep) == len(names) and all('flagged as revoked' in list(d.values())[0].get('ok', '') for d in rep), rep)
    took, v = outcome(q)
    check_eq('revoked queued task: get() raises TaskRevokedError', type(v), TaskRevokedError)
    check_eq('revoked queued task: hopper job cancelled, never ran', (hstate(q.id), hopper('status', q.id).get(
        'attempt')), ('cancelled', 0))
    # revoke before the message is even sent: refused when hopperd takes it
    pre = 'pre-revoked-4000-8000-000000000001'
    app.control.revoke(pre)
    time.sleep(0.5 * SCALE)
    took, v = outcome(app.send_task('t.noop', task_id=pre))
    check_eq('a task revoked before it was sent never runs: TaskRevokedError', type(v), TaskRevokedError)
    # revoke without terminate leaves a running task alone; terminate=True stops it
    app.control.revoke(run.id)
    time.sleep(1 * SCALE)
    check_eq('revoke without terminate: the running task goes on', hstate(run.id), 'running')
    rep = app.control.revoke(run.id, terminate=True, reply=True, timeout=5 * SCALE, limit=len(names))
    check('revoke terminate=True: one daemon reports the termination',
          any(list(d.values())[0].get('ok') == 'terminate: ' + run.id for d in rep), rep)
    took, v = outcome(run)
    check_eq('terminated task: get() raises TaskRevokedError', type(v), TaskRevokedError)
    check_eq('terminated task: hopper job cancelled', hstate(run.id), 'cancelled')
    for w in waiting:
        app.control.revoke(w.id, terminate=True)
    rv = i.revoked() or {}
    check('inspect revoked: every daemon lists the same revoked ids',
          len(rv) == len(names) and all(set(x) >= {q.id, pre, run.id} for x in rv.values()), rv)
    bad = app.control.broadcast('pool_grow', arguments={'n': 1}, reply=True, timeout=5 * SCALE, limit=len(names))
    check('an unsupported command gets an error reply, not silence',
          bad and all('does not support' in list(d.values())[0].get('error', '') for d in bad), bad)


def case_revoked_kept():
    """After a restart of every daemon: the revoked ids are still there."""
    names = os.environ.get('HOPPERD_NAMES', 'hopperd@n1').split()
    rv = app.control.inspect(timeout=5 * SCALE, limit=len(names)).revoked() or {}
    check('revoked ids are kept across restarts', len(rv) == len(names) and all(
        'pre-revoked-4000-8000-000000000001' in x for x in rv.values()), rv)


@app.task(name='py.total')
def total_stub(results):
    raise AssertionError('a stub: the stock worker of celery_canvas.sh runs py.total')


def body_meta(tid):
    """The result-backend value of a task, read by the backend itself (no parents), once ready."""
    def ready():
        raw = R.get(app.backend.get_key_for_task(tid).decode())
        m = json.loads(raw) if raw else {}
        return m if m.get('status') in ('SUCCESS', 'FAILURE', 'REVOKED') else None
    return wait_until(ready) or {}


def case_chord():
    from celery import chord, group
    header = [app.signature('t.sleep', args=(ms,)) for ms in (30, 10, 20)]
    c = chord(header, app.signature('py.total').set(queue='py'))
    took, v = outcome(c.apply_async())
    check_eq('chord: header on hopperd, body on a stock worker, results in group order', v, [30, 10, 20])
    c2 = chord([app.signature('t.sleep', args=(5,)), app.signature('t.sleep', args=(6,))], app.signature('t.noop'))
    r2 = c2.apply_async()
    took, v = outcome(r2)
    check_eq('chord: body run by hopperd too', v, {})
    check_eq('chord body on hopperd: a hopper job', hstate(r2.id), 'succeeded')
    c3 = chord([app.signature('t.sleep', args=(5,)), app.signature('t.fail', kwargs={'message': 'no', 'retry': False})],
               app.signature('py.total').set(queue='py'))
    r3 = c3.apply_async()
    m = body_meta(r3.id)
    check_eq('chord with a failing member: the body\'s result is FAILURE, ChordError',
             (m.get('status'), (m.get('result') or {}).get('exc_type')), ('FAILURE', 'ChordError'))
    check('ChordError names the failed member', 'Dependency' in str(m.get('result')), m)
    took, v = outcome(r3)
    check('chord with a failing member: get() raises (the member\'s error, as with Celery workers)',
          isinstance(v, Exception) and type(v).__name__ != 'TimeoutError', repr(v))
    c4 = chord([app.signature('t.sleep', args=(5,)), app.signature('t.unmapped')], app.signature('t.noop'))
    m = body_meta(c4.apply_async().id)
    check_eq('chord with an unmapped member: the body\'s result is ChordError, not a hang',
             (m.get('status'), (m.get('result') or {}).get('exc_type')), ('FAILURE', 'ChordError'))
    c6 = chord([app.signature('t.sleep', args=(5,)), app.signature('t.noop').set(countdown=30)],
               app.signature('t.noop'))
    r6 = c6.apply_async()
    late = r6.parent.results[1].id
    wait_until(lambda: hstate(late) == 'queued')
    app.control.revoke(late)
    m = body_meta(r6.id)
    check_eq('chord with a revoked member: the body\'s result is ChordError',
             (m.get('status'), (m.get('result') or {}).get('exc_type')), ('FAILURE', 'ChordError'))
    check('the ChordError says the member was revoked', 'REVOKED' in str(m.get('result')), m)
    body = group(app.signature('t.noop'), app.signature('t.noop'))
    c5 = chord([app.signature('t.sleep', args=(5,))], body)
    res = c5.apply_async()
    took, v = outcome(res)
    check('chord whose body is a group (unsupported): an error result, not a hang', isinstance(v, Exception),
          repr(v))
    check('the error says what is unsupported', 'not supported' in str(v), str(v))
    g = group(app.signature('t.sleep', args=(ms,)) for ms in (3, 4)).apply_async()
    took, v = outcome(g)
    check_eq('group: every member\'s result', v, [{'slept_ms': 3}, {'slept_ms': 4}])


def case_types():
    from celery import chain
    from celery.exceptions import SoftTimeLimitExceeded
    res = chain(app.signature('t.sleep', args=(5,)), app.signature('py.wrap')).apply_async()
    took, v = outcome(res)
    check_eq('celery_routes: a chain link routed by pattern runs on the stock worker\'s queue', v,
             {'got': {'slept_ms': 5}})
    took, v = outcome(app.send_task('t.fail', kwargs={'message': 'bad input', 'retry': False}))
    check_eq('celery_types exc: the failure is a ValueError', type(v), ValueError)
    try:
        app.send_task('t.fail', kwargs={'message': 'bad input', 'retry': False}).get(timeout=WAIT)
        caught = None
    except ValueError as e:
        caught = str(e)
    check('celery_types exc: `except ValueError` in the caller matches', caught and 'bad input' in caught, caught)
    took, v = outcome(app.send_task('t.fail', kwargs={'message': 'disk full', 'retry': False}))
    check_eq('celery_types exc[PREFIX]: an error starting with "disk" is an OSError', type(v), OSError)
    took, v = outcome(app.send_task('t.other', kwargs={'message': 'x', 'retry': False}))
    check_eq('a task without rules still reports HopperJobError', type(v).__name__, 'HopperJobError')
    r = app.send_task('t.sleep', args=(int(60000 * SCALE),), soft_time_limit=0.5 * SCALE, time_limit=60)
    took, v = outcome(r)
    check_eq('soft time limit: SoftTimeLimitExceeded', type(v), SoftTimeLimitExceeded)
    check_eq('soft time limit: one attempt, no retry', (hstate(r.id), hopper('status', r.id).get('attempt')),
             ('failed', 1))
    r = app.send_task('t.sleepr', args=(int(60000 * SCALE),), soft_time_limit=0.3 * SCALE, time_limit=60)
    took, v = outcome(r)
    check_eq('soft_retry=1: the soft limit is retried up to max_attempts',
             (hstate(r.id), hopper('status', r.id).get('attempt')), ('dead', 2))
    r = app.send_task('t.sleep', args=(int(3000 * SCALE),))
    info = wait_until(lambda: r.state == 'PROGRESS' and isinstance(r.info, dict) and
                      0 < r.info.get('current', 0) < 100 and r.info)
    check('celery_types progress: PROGRESS meta in the template\'s shape',
          isinstance(info, dict) and sorted(info) == ['current', 'status', 'total'] and info['total'] == 100 and
          info['status'] == 'sleeping', info)
    outcome(r)


def case_events():
    """Celery events from hopperd (celery_events = on), read with Celery's own app.events.Receiver."""
    import threading
    seen, lock = [], threading.Lock()

    def on_event(e):
        with lock:
            seen.append(e)

    ready, box = threading.Event(), {}

    def listen():
        with app.connection() as conn:
            recv = box['recv'] = app.events.Receiver(conn, handlers={'*': on_event})
            ready.set()
            try:
                recv.capture(limit=None, timeout=WAIT, wakeup=False)
            except Exception:
                pass
    th = threading.Thread(target=listen, daemon=True)
    th.start()
    ready.wait(5)
    time.sleep(0.5)
    ok = app.send_task('t.sleep', args=(50,))
    bad = app.send_task('t.fail', kwargs={'message': 'twice', 'retry': True})
    slow = app.send_task('t.sleep', args=(int(60000 * SCALE),))
    outcome(ok)
    outcome(bad)
    wait_until(lambda: hstate(slow.id) == 'running')
    app.control.revoke(slow.id, terminate=True)
    outcome(slow)

    def kinds(tid):
        with lock:
            return [e['type'] for e in seen if e.get('uuid') == tid]
    wait_until(lambda: 'task-revoked' in kinds(slow.id), 10)

    def heartbeats():
        with lock:
            return [e for e in seen if e.get('type') == 'worker-heartbeat' and e.get('hostname') == 'hopperd@n1']
    wait_until(heartbeats, 10 * SCALE)  # one every 2 s
    with lock:
        mine = [e for e in seen if e.get('hostname') == 'hopperd@n1']
    types = {e['type'] for e in mine}
    check('worker-heartbeat events from hopperd@n1', 'worker-heartbeat' in types, sorted(types))
    check_eq('a task\'s events: received, started, succeeded', kinds(ok.id),
             ['task-received', 'task-started', 'task-succeeded'])
    check_eq('a failing task retried once: received, started, retried, started, failed', kinds(bad.id),
             ['task-received', 'task-started', 'task-retried', 'task-started', 'task-failed'])
    check('a revoked task: task-revoked (terminated)', any(e.get('type') == 'task-revoked' and e.get('terminated')
                                                         for e in seen if e.get('uuid') == slow.id), kinds(slow.id))
    rec = [e for e in mine if e.get('uuid') == ok.id and e['type'] == 'task-received']
    check('task-received names the task and its args', rec and rec[0].get('name') == 't.sleep' and
          '50' in rec[0].get('args', ''), rec)
    hb = [e for e in mine if e['type'] == 'worker-heartbeat']
    check('heartbeat fields Flower reads (freq, active, processed, timestamp)', hb and all(
        k in hb[-1] for k in ('freq', 'active', 'processed', 'timestamp', 'pid', 'clock')), hb[-1:])
    box['recv'].should_stop = True
    th.join(5)


if __name__ == '__main__':
    for c in sys.argv[2:]:
        globals()['case_' + c]()

"""Celery-side checks for tests/e2e/celery_*.sh: a stock Celery app (Debian's python3-celery) talks to the
private redis-server that hopperd consumes. Usage: cases.py SOCKET CASE... Prints "ok - NAME" and
"not ok - NAME: why" lines for lib.sh to count (see relay in the scenarios)."""
import datetime
import json
import os
import sys
import time

import redis
from celery import Celery, chain

SOCK = sys.argv[1]
URL = 'redis+socket://' + SOCK
SCALE = float(os.environ.get('TIME_SCALE', '1'))
WAIT = 30 * SCALE
# hopper's key names come from tests/lib.sh (its py() exports qkey/gkey and jkey's Lua), never spelled here.
HP = os.environ['HOPPER_HP']
JFIND = os.environ['HOPPER_JFIND']

app = Celery('hoppertest', broker=URL, backend=URL)
R = redis.Redis(unix_socket_path=SOCK, decode_responses=True)


def check(name, cond, why=''):
    if cond:
        print('ok - ' + name, flush=True)
    else:
        print('not ok - %s: %s' % (name, why), flush=True)


def check_eq(name, got, want):
    check(name, got == want, 'got %r, want %r' % (got, want))


def qkey(queue, kind):
    """lib.sh's qkey QUEUE KIND."""
    return os.environ['HOPPER_QKEY_FMT'] % (queue, kind)


def gkey(kind):
    """lib.sh's gkey KIND."""
    return os.environ['HOPPER_GKEY_FMT'] % kind


def queues():
    return sorted(set(R.smembers(gkey('queues'))) | {'celery'})


def hjob(tid):
    """The job's hash, in whichever queue holds it (found as lib.sh's jkey finds it)."""
    flat = R.eval(JFIND + "\nreturn redis.call('HGETALL', jfind(ARGV[1], ARGV[2]))", 0, HP, tid)
    return dict(zip(flat[::2], flat[1::2]))


def dead_entries():
    out = []
    for q in queues():
        out += [R.hget(qkey(q, 'deadmsg'), i) or '' for i in R.zrange(qkey(q, 'dead'), 0, -1)]
    return out


def hargs(tid):
    return json.loads(hjob(tid).get('payload', '{}')).get('args')


def get(res, **kw):
    try:
        return res.get(timeout=WAIT, **kw)
    except Exception as e:  # reported by the check that follows
        return e


@app.task(name='t.sleep')
def sleep_stub(ms):
    raise AssertionError('a stub: hopperd runs t.sleep')


def case_basic():
    r1 = app.send_task('t.sleep', args=(200,))
    check_eq('send_task: AsyncResult.get returns the handler result', get(r1), {'slept_ms': 200})
    r2 = sleep_stub.delay(150)
    check_eq('delay on a task stub: result', get(r2), {'slept_ms': 150})
    r3 = sleep_stub.apply_async(kwargs={'ms': 50})
    check_eq('apply_async with kwargs: result', get(r3), {'slept_ms': 50})
    r4 = app.send_task('t.noop', kwargs={'a': [1, 2], 'b': 'x'})
    check_eq('noop: result', get(r4), {})
    check_eq('kwargs become the hopper args', hargs(r4.id), {'a': [1, 2], 'b': 'x'})
    r5 = app.send_task('t.sleep', args=(20, 'extra', 3))
    check_eq('positional args: named by the mapping, the rest in args["args"]', get(r5), {'slept_ms': 20})
    check_eq('positional args in the hopper job', hargs(r5.id), {'ms': 20, 'args': ['extra', 3]})
    h = hjob(r1.id)
    check_eq('the Celery task is a hopper job (id, type, queue, state)',
             (h.get('id'), h.get('type'), h.get('queue'), h.get('state')), (r1.id, 'sleep', 'celery', 'succeeded'))
    key = 'celery-task-meta-' + r1.id
    ttl = R.ttl(key)
    check('result key expires after celery_result_expires (3600 s)', 3000 < ttl <= 3600, 'ttl %s' % ttl)
    meta = json.loads(R.get(key) or '{}')
    check_eq('result value has Celery\'s fields', sorted(meta),
             ['children', 'date_done', 'result', 'status', 'task_id', 'traceback'])
    check_eq('result value: status and task_id', (meta.get('status'), meta.get('task_id')), ('SUCCESS', r1.id))
    try:
        datetime.datetime.fromisoformat(meta.get('date_done'))
        ok = True
    except Exception:
        ok = False
    check('date_done is an ISO-8601 time', ok, meta.get('date_done'))


def case_progress():
    r = app.send_task('t.sleep', args=(int(4000 * SCALE),))
    seen, info, deadline = set(), None, time.time() + WAIT
    while time.time() < deadline:
        st = r.state
        seen.add(st)
        if st == 'PROGRESS':
            info = r.info
            if isinstance(info, dict) and 0 < info.get('progress', 0) < 100:
                break
        if st in ('SUCCESS', 'FAILURE'):
            break
        time.sleep(0.05)
    check('AsyncResult.state reads PROGRESS while the job runs', info is not None, 'states seen: %s' % seen)
    check('PROGRESS meta carries the hopper progress and stage',
          isinstance(info, dict) and 0 < info.get('progress', 0) < 100 and info.get('stage') == 'sleeping', info)
    check_eq('the long task then succeeds', get(r), {'slept_ms': int(4000 * SCALE)})
    check_eq('final state', r.state, 'SUCCESS')


def case_failure():
    r = app.send_task('t.fail', kwargs={'message': 'disk on fire', 'retry': False})
    e = get(r)
    check('get() raises for a failed task', isinstance(e, Exception), repr(e))
    check_eq('the exception is HopperJobError', type(e).__name__, 'HopperJobError')
    check('the exception carries hopper\'s error message', 'disk on fire' in str(e), str(e))
    check_eq('state FAILURE', r.state, 'FAILURE')
    check_eq('hopper job failed (permanent: no retries)', hjob(r.id).get('state'), 'failed')
    r2 = app.send_task('t.fail', args=('boom twice',))
    v = get(r2, propagate=False)
    check('propagate=False returns the exception', isinstance(v, Exception) and 'boom twice' in str(v), repr(v))
    check('traceback names the hopper job and its last attempt', 'attempt 2' in (r2.traceback or ''), r2.traceback)
    check_eq('hopper job dead after max_attempts (2)', (hjob(r2.id).get('state'), hjob(r2.id).get('attempt')),
             ('dead', '2'))
    r3 = app.send_task('t.fail', args=('retried before',), retries=1)
    get(r3, propagate=False)
    h = hjob(r3.id)
    check_eq('Celery retries already made count against max_attempts', (h.get('max_attempts'), h.get('attempt')),
             ('1', '1'))
    r4 = app.send_task('t.sleep', args=(60000,), soft_time_limit=0.5 * SCALE, time_limit=30)
    v = get(r4, propagate=False)
    check('soft time limit -> the job\'s timeout: FAILURE "timed out"', 'timed out after' in str(v), repr(v))
    check_eq('time limit: hopper timeout_s is the soft limit', json.loads(hjob(r4.id).get('payload', '{}')).get(
        'timeout_s'), 0.5 * SCALE)


def case_chain():
    c = chain(app.signature('t.sleep', args=(100,)), app.signature('t.after', kwargs={'ms': 120}),
              app.signature('t.after', kwargs={'ms': 140}))
    res = c.apply_async()
    check_eq('chain of three: final result', get(res), {'slept_ms': 140})
    ids = [res.parent.parent.id, res.parent.id, res.id]
    check_eq('chain: each link\'s result', [get(app.AsyncResult(i)) for i in ids],
             [{'slept_ms': 100}, {'slept_ms': 120}, {'slept_ms': 140}])
    check_eq('chain: each result passed to the next link', [hargs(ids[1]).get('prev'), hargs(ids[2]).get('prev')],
             [{'slept_ms': 100}, {'slept_ms': 120}])
    started = [float(hjob(i).get('started_at', 0)) for i in ids]
    check('chain: links ran in order', started[0] < started[1] < started[2], started)
    fc = chain(app.signature('t.fail', kwargs={'message': 'mid', 'retry': False}), app.signature('t.noop'))
    fres = fc.apply_async()
    e = get(fres, propagate=False)
    check('chain with a failing first link: the last link reports FAILURE', isinstance(e, Exception), repr(e))
    check_eq('chain with a failing first link: the second never ran', hjob(fres.id).get('state'), None)
    cb = app.signature('t.noop', kwargs={'k': 1}).freeze()
    r = app.send_task('t.sleep', args=(10,), link=app.signature('t.noop', kwargs={'k': 1}, task_id=cb.id))
    get(r)
    check_eq('link (callback) runs with the result prepended', (get(cb), hargs(cb.id)),
             ({}, {'k': 1, 'args': [{'slept_ms': 10}]}))
    eb = app.signature('t.noop').freeze()
    rf = app.send_task('t.fail', kwargs={'message': 'x', 'retry': False}, link_error=app.signature('t.noop', task_id=eb.id))
    get(rf, propagate=False)
    check_eq('link_error (errback) runs with the failed task id', (get(eb), hargs(eb.id)), ({}, {'args': [rf.id]}))


def case_refused():
    papp = Celery('pickler', broker=URL, backend=URL)
    papp.conf.task_serializer = 'pickle'
    papp.conf.accept_content = ['pickle', 'json']
    r = papp.send_task('t.noop', args=(1,))
    v = get(r, propagate=False)
    check('pickle message: reported as a failure', isinstance(v, Exception), repr(v))
    check_eq('pickle message: ContentDisallowed', type(v).__name__, 'ContentDisallowed')
    check('pickle message: the reason names the content type', 'application/x-python-serialize' in str(v), str(v))
    check_eq('pickle message: hopper job dead', hjob(r.id).get('state'), 'dead')
    dead = [json.loads(x) for x in dead_entries()]
    check('pickle message: in the dead list, never decoded', any(d.get('id') == r.id for d in dead), dead)
    u = app.send_task('t.unknown')
    v = get(u, propagate=False)
    check_eq('unmapped task name: NotRegistered', type(v).__name__, 'NotRegistered')
    R.lpush('celery', b'\xff\xfe not UTF-8')
    R.lpush('celery', 'not json at all')
    deadline = time.time() + WAIT
    while time.time() < deadline and not any('not json' in x for x in dead_entries()):
        time.sleep(0.05)
    dead = [json.loads(x) for x in dead_entries()]
    check('garbage on a Celery queue goes to the dead list', any('not json' in d.get('payload', '') for d in dead))
    check('bytes that are not UTF-8 go to the dead list as payload_b64',
          any(d.get('payload_b64') == '//4gbm90IFVURi04' for d in dead), dead)
    check_eq('after all that a task still runs', get(app.send_task('t.noop')), {})


def case_eta():
    t0 = time.time()
    r = app.send_task('t.noop', countdown=2)
    time.sleep(0.5)
    check('countdown: the task waits in hopper\'s scheduled set in Redis',
          R.zcard(qkey('celery', 'scheduled')) >= 1 and hjob(r.id).get('state') == 'queued', hjob(r.id))
    check_eq('countdown: result', get(r), {})
    started = float(hjob(r.id).get('started_at', 0))
    check('countdown: not run early', started >= t0 + 2 - 0.01, 'started %.3f, sent %.3f' % (started, t0))
    eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1.5)
    r2 = app.send_task('t.noop', eta=eta)
    get(r2)
    started = float(hjob(r2.id).get('started_at', 0))
    check('eta: not run early', started >= eta.timestamp() - 0.01, 'started %.3f, eta %.3f' % (started, eta.timestamp()))


def case_expires():
    r = app.send_task('t.noop', countdown=2, expires=1)
    v = get(r, propagate=False)
    check_eq('expired while waiting for its eta: REVOKED', r.state, 'REVOKED')
    check_eq('expired: TaskRevokedError', type(v).__name__, 'TaskRevokedError')
    check_eq('expired: hopper job cancelled, never run', (hjob(r.id).get('state'), hjob(r.id).get('attempt')),
             ('cancelled', '0'))
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    r2 = app.send_task('t.noop', expires=past)
    get(r2, propagate=False)
    check_eq('expired on arrival: REVOKED, not run', (r2.state, hjob(r2.id).get('state')), ('REVOKED', 'cancelled'))


def case_prio_send():
    for p in range(9, -1, -1):
        r = app.send_task('t.noop', kwargs={'p': p}, priority=p)
        print('# id %s priority %d' % (r.id, p), flush=True)
        R.rpush('test:prio', r.id)


def case_prio_check():
    ids = R.lrange('test:prio', 0, -1)
    res = [get(app.AsyncResult(i)) for i in ids]
    check_eq('priorities: all 10 ran', res, [{}] * 10)


def case_kill_send():
    r = app.send_task('t.sleep', args=(int(3000 * SCALE),))
    R.set('test:kill', r.id)
    print(r.id, flush=True)


def case_kill_check():
    tid = R.get('test:kill')
    check_eq('killed mid-task: completes after the restart', get(app.AsyncResult(tid)), {'slept_ms': int(3000 * SCALE)})
    h = hjob(tid)
    check_eq('killed mid-task: second attempt after one stall', (h.get('attempt'), h.get('stalls')), ('2', '1'))



def case_interop_chain():
    c = chain(app.signature('t.sleep', args=(50,)), app.signature('w.wrap', queue='wq'))
    res = c.apply_async()
    check_eq('chain hopperd -> stock Celery worker: the worker gets hopper\'s result', get(res),
             {'got': {'slept_ms': 50}})
    c = chain(app.signature('w.add', args=(2, 3), queue='wq'), app.signature('t.after', kwargs={'ms': 30}))
    res = c.apply_async()
    check_eq('chain stock Celery worker -> hopperd: hopperd runs the next link', get(res), {'slept_ms': 30})
    check_eq('chain stock Celery worker -> hopperd: the worker\'s result passed on', hargs(res.id).get('prev'), 5)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith('case_')}
for name in sys.argv[2:]:
    try:
        CASES[name]()
    except Exception as e:
        check('case %s ran to its end' % name, False, repr(e))

#!/usr/bin/env bash
# bench/celery.sh BUILD_DIR: Celery tasks per second through hopperd vs through a stock Celery worker (Debian's
# celery, prefork pool), same concurrency, same Redis, both writing the Redis result backend. Figures are
# reported, not asserted.
#
# Each round, for each consumer: BENCH_CELERY_N (default 2000) `b.noop` tasks are published by Celery's own
# send_task into a staging list (not timed), the consumer's result keys are cleared, and the clock starts
# with one RENAME that hands the whole list to the consumer's queue; it stops when the N-th
# celery-task-meta-* key exists. Both consumers run idle side by side the whole time (each on its own
# queue), concurrency BENCH_CELERY_C (default 2). Then the app's view: from the first .delay() (send_task)
# of N tasks to the last AsyncResult.get(). Medians over BENCH_ROUNDS (default 3) rounds, and the ratios.
# Everything started here is stopped by PID at the end.
set -u

B=${1:?usage: bench/celery.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_CELERY_N:-2000}
C=${BENCH_CELERY_C:-2}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-bench-celery.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 1
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "${KEEP:-0}" = 1 ] && echo "bench: kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis-server --port 0 --unixsocket "$SOCK" --dir "$TMP" --save '' --appendonly no --daemonize no \
	--logfile "$TMP/redis.log" &
PIDS+=($!)
for _ in $(seq 50); do [ "$(redis-cli -s "$SOCK" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done

cat >"$TMP/btasks.py" <<'PY'
import os
from celery import Celery
url = 'redis+socket://' + os.environ['BENCH_SOCK']
app = Celery('btasks', broker=url, backend=url)
@app.task(name='b.noop')
def noop(**kwargs):
    return {}
PY
(cd "$TMP" && BENCH_SOCK=$SOCK exec "$PY" -m celery -A btasks worker --pool=prefork -c "$C" -Q cw \
	--without-heartbeat --without-gossip --without-mingle -l warning >"$TMP/celery.log" 2>&1) &
PIDS+=($!)
"$B/hopperd" --redis-unix="$SOCK" --db-path="$TMP/hopper.db" --node-id=bench --workers="$C" --queues=ch \
	--celery-queues=ch --celery-tasks="b.noop=noop" --log-level=warn >"$TMP/hopperd.log" 2>&1 &
PIDS+=($!)

BENCH_SOCK=$SOCK "$PY" - "$N" "$ROUNDS" "$C" <<'PY'
import os, statistics, sys, time
import redis
from celery import Celery
n, rounds, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sock = os.environ['BENCH_SOCK']
app = Celery('bench', broker='redis+socket://' + sock, backend='redis+socket://' + sock)
r = redis.Redis(unix_socket_path=sock)
CLEAR = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n"
COUNT = "return #redis.call('KEYS', ARGV[1])"

def wait_ready(deadline=60):
    # Both consumers must be up: a probe task through each.
    end = time.time() + deadline
    for q in ('ch', 'cw'):
        res = app.send_task('b.noop', queue=q)
        res.get(timeout=max(1, end - time.time()))

def run(queue):
    r.eval(CLEAR, 0, 'celery-task-meta-*')
    r.eval(CLEAR, 0, 'hopper:{*}:job:*')
    r.delete('staging')
    with app.producer_or_acquire() as prod:
        for i in range(n):
            app.send_task('b.noop', kwargs={'i': i}, queue='staging', producer=prod)
    assert r.llen('staging') == n, r.llen('staging')
    t0 = time.time()
    r.rename('staging', queue)
    last, last_t = 0, t0
    while True:
        done = r.eval(COUNT, 0, 'celery-task-meta-*')
        now = time.time()
        if done >= n:
            return n / (now - t0)
        if done != last:
            last, last_t = done, now
        elif now - last_t > 30:
            raise SystemExit('bench: %s stalled at %d of %d tasks' % (queue, done, n))
        time.sleep(0.01)

def run_delay(queue):
    # What an app sees: from the first .delay() (send_task) to the last AsyncResult.get().
    r.eval(CLEAR, 0, 'celery-task-meta-*')
    r.eval(CLEAR, 0, 'hopper:{*}:job:*')
    t0 = time.time()
    results = [app.send_task('b.noop', kwargs={'i': i}, queue=queue) for i in range(n)]
    for res in results:
        res.get(timeout=300)
    return time.time() - t0

def load():
    return '%.2f %.2f %.2f' % os.getloadavg()

wait_ready()
hop, cel, hopd, celd = [], [], [], []
for k in range(rounds):
    hop.append(run('ch'))
    cel.append(run('cw'))
    print('round %d: hopperd %.0f tasks/s, celery worker %.0f tasks/s' % (k + 1, hop[-1], cel[-1]), flush=True)
for k in range(rounds):
    hopd.append(run_delay('ch'))
    celd.append(run_delay('cw'))
    print('round %d, first .delay() to last get(): hopperd %.2f s, celery worker %.2f s (load %s)' % (
        k + 1, hopd[-1], celd[-1], load()), flush=True)
h, c = statistics.median(hop), statistics.median(cel)
hd, cd = statistics.median(hopd), statistics.median(celd)
print('celery benchmark: medians over %d rounds, N = %d tasks, concurrency %d, %d CPUs, load %s' % (
      rounds, n, conc, os.cpu_count(), load()))
print('  drain of a queued backlog (RENAME, until the last result key exists):')
print('    hopperd (Celery compatibility)   %8.0f tasks/s' % h)
print('    celery worker (prefork)          %8.0f tasks/s' % c)
print('    ratio hopperd / celery           %8.2f' % (h / c))
print('  first .delay() to last get() (the app\'s view, %d results read back):' % n)
print('    hopperd (Celery compatibility)   %8.2f s  %6.0f tasks/s' % (hd, n / hd))
print('    celery worker (prefork)          %8.2f s  %6.0f tasks/s' % (cd, n / cd))
print('    ratio celery time / hopperd time %8.2f' % (cd / hd))
PY

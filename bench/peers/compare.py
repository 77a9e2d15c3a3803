#!/usr/bin/python3
"""bench/peers/compare.py BUILD_DIR: hopperd beside other job systems in one invocation (make bench-peers).

Every system drains BENCH_PEERS_N (default 20000) pre-filled noop jobs, BENCH_ROUNDS (default 3) rounds, over
127.0.0.1 TCP and over a unix socket (BENCH_PEERS_TRANSPORTS, default "tcp unix"), on one private
redis-server (and private beanstalkd servers), rounds interleaved across systems so the load of the shared
machine spreads over all of them. Per run:
  - the consumers are started and left to settle (start-up not timed: their CPU use has gone quiet);
  - the clock and the counters start when the jobs are handed over at once (a RENAME of a staging list
    into the queue; BullMQ: a resume of its paused queue; beanstalkd: the 2 C consumers' start, which
    costs nothing), and stop when the system's own state says all N are done (below);
  - CPU us/job = utime+stime delta of the consumers' processes (/proc/PID/stat, tree) / N;
  - Redis us/job = redis-server's utime+stime delta / N (beanstalkd: the server's);
  - Redis commands/job = INFO commandstats "calls" delta (commands inside functions/scripts are counted by
    Redis itself), minus this driver's own polling commands, / N;
  - idle share = idle+iowait delta / total delta of /proc/stat's cpu line (the machine is shared).
Celery drains BENCH_CELERY_N (default min(N, 4000)) jobs instead: ~50x slower, it would not fit the time.
Done when: hopperd: P{bench}:stats succeeded = N; baseline and beanstalkd: both consumers exited after N/2
each; BullMQ: ZCARD of its completed set = N; Sidekiq: its queue list empty (at most -c jobs still
running); Celery: queue list and kombu's unacked hash empty (every task accepted by the pool). hopperd's
SQLite execution log must then hold N succeeded attempts, else the run counts as failed.
Bounded: BENCH_TIMEOUT (default 300 s) per run, a run without progress for 20 s is abandoned; every process
started here is stopped by PID (its tree recorded before the stop). Figures are reported, never asserted.
"""
import collections
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')
N = int(os.environ.get('BENCH_PEERS_N', '20000'))
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '3'))
TIMEOUT = float(os.environ.get('BENCH_TIMEOUT', '300'))
# Celery drains ~50x slower than the rest: its own N (per-job figures do not depend on it) keeps the run bounded.
CELERY_N = int(os.environ.get('BENCH_CELERY_N', str(min(N, 4000))))
TRANSPORTS = os.environ.get('BENCH_PEERS_TRANSPORTS', 'tcp unix').split()
ONLY = os.environ.get('BENCH_PEERS', '').split()
HZ = os.sysconf('SC_CLK_TCK')
TMP = tempfile.mkdtemp(prefix='hopper-bench-peers.')
STARTED = []  # every process started here, stopped by PID at the end


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import resp  # noqa: E402  (bench/resp.py, the RESP client every benchmark shares)


class Redis(resp.Redis):
    """bench/resp.py's client, with the commandstats this comparison reads."""

    def commandstats(self):
        calls = {}
        for line in self.cmd('INFO', 'commandstats').splitlines():
            if line.startswith('cmdstat_'):
                name, rest = line[8:].split(':', 1)
                calls[name] = int(dict(kv.split('=') for kv in rest.split(','))['calls'])
        return calls


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def spawn(argv, env=None, cwd=None, log=None, stdin=None):
    out = open(os.path.join(TMP, log), 'ab') if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=out, stdin=stdin or subprocess.DEVNULL,
                         start_new_session=True)
    STARTED.append(p)
    return p


def proc_stat(pid):
    """(state, utime+stime, cutime+cstime) in clock ticks, or None once the process is gone (reaped)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            rest = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return rest[0], int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def children(pid):
    kids = []
    try:
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/children' % (pid, tid)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_ticks(roots):
    """(roots' own ticks + their reaped children's, live descendants' ticks)."""
    own = desc = 0
    for r in roots:
        st = proc_stat(r)
        if st:
            own += st[1]
            desc += st[2]
        for d in tree(r)[1:]:
            st = proc_stat(d)
            if st:
                desc += st[1] + st[2]
    return own, desc


def machine():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])


def exited(p):
    st = proc_stat(p.pid)
    return st is None or st[0] in 'ZX'


def stop(procs, secs=10):
    """SIGTERM each process, SIGKILL what is left of its recorded tree after secs."""
    trees = {p.pid: tree(p.pid) for p in procs}
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + secs
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            print('bench-peers: PID %d did not stop within %d s of SIGTERM: killing it' % (p.pid, secs),
                  file=sys.stderr)
    for p in procs:
        for pid in trees[p.pid]:
            st = proc_stat(pid)
            if st and st[0] not in 'ZX':
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def settle(procs, max_s=30):
    """Waits until the consumers' start-up is over: >= 1 s and CPU quiet (< 2% of a core) for 0.5 s."""
    t0 = time.time()
    last, quiet_since = None, None
    while time.time() - t0 < max_s:
        if any(exited(p) for p in procs):
            raise RuntimeError('a consumer exited during start-up (see %s)' % TMP)
        cur = sum(cpu_ticks([p.pid for p in procs]))
        now = time.time()
        if last is not None and (cur - last[0]) * 1.0 / HZ < 0.02 * (now - last[1]):
            quiet_since = quiet_since or last[1]
        else:
            quiet_since = None
        last = (cur, now)
        if quiet_since and now - t0 >= 1 and now - quiet_since >= 0.5:
            return
        time.sleep(0.1)


class Env:
    """The private servers of this invocation."""

    def __init__(self):
        self.port = free_port()
        self.sock = os.path.join(TMP, 'redis.sock')
        self.redis = spawn(['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--unixsocket',
                            self.sock, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir',
                            TMP], log='redis.log')
        for _ in range(100):
            try:
                self.r = Redis(('127.0.0.1', self.port))
                self.r.cmd('PING')
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError('redis-server did not start')
        self.bs = {}

    def beanstalkd(self, transport):
        if transport not in self.bs:
            if transport == 'tcp':
                port = free_port()
                p = spawn(['beanstalkd', '-l', '127.0.0.1', '-p', str(port)], log='beanstalkd.log')
                addr = ('127.0.0.1', port)
            else:
                path = os.path.join(TMP, 'beanstalkd.sock')
                p = spawn(['beanstalkd', '-l', 'unix:' + path], log='beanstalkd.log')
                addr = path
            for _ in range(100):
                try:
                    socket.create_connection(addr).close() if transport == 'tcp' else \
                        socket.socket(socket.AF_UNIX).connect(addr)
                    break
                except OSError:
                    time.sleep(0.05)
            self.bs[transport] = (p, addr)
        return self.bs[transport]

    def url(self, transport, scheme='redis'):
        if transport == 'tcp':
            return 'redis://127.0.0.1:%d/0' % self.port
        return {'redis': 'unix://%s', 'celery': 'redis+socket://%s'}[scheme] % self.sock


# --- the systems: each is (label, prepare(env, transport) -> run state) with a consumer start and a done check ---

class System:
    server = 'redis'
    n = N  # jobs per run

    def __init__(self, env, transport):
        self.env, self.t = env, transport
        self.procs = []

    def staging_fill(self, key):
        pass

    def start_clock(self):
        """Hands the jobs over; returns the polling commands sent (excluded from the count)."""

    def done(self):
        return all(exited(p) for p in self.procs)

    def verify(self):
        """After the consumers stopped: None, or what is wrong with the run's result."""
        return None


class Hopperd(System):
    name = 'hopperd, 2 workers'
    queue = 'hopper:{bench}:queue'

    def prepare(self):
        self.env.r.cmd('FLUSHALL')
        addr = ['-s', self.env.sock] if self.t == 'unix' else ['-h', '127.0.0.1', '-p', str(self.env.port)]
        subprocess.run([B + '/bench/baseline'] + addr + ['-q', 'staging', '-n', str(N), '-f'], check=True,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT)
        db = os.path.join(TMP, 'hopper.db')
        for f in (db, db + '-wal', db + '-shm'):
            if os.path.exists(f):
                os.unlink(f)
        conn = ['--redis-unix=' + self.env.sock] if self.t == 'unix' else \
            ['--redis-host=127.0.0.1', '--redis-port=%d' % self.env.port]
        self.db = db
        self.procs = [spawn([B + '/hopperd', '-c', '/dev/null'] + conn +
                            ['--db-path=' + db, '--node-id=bench', '--workers=2', '--worker-path=' +
                             B + '/hopper-worker', '--log-level=warn', '--queues=bench'], log='hopperd.log')]

    def start_clock(self):
        self.env.r.cmd('RENAME', 'hopper:{staging}:queue', self.queue)

    def done(self):
        v = self.env.r.cmd('HGET', 'hopper:{bench}:stats', 'succeeded')
        return v is not None and int(v) >= N

    def verify(self):
        import sqlite3
        c = sqlite3.connect('file:%s?mode=ro' % self.db, uri=True, timeout=5)
        try:
            rows = c.execute("select count(*) from attempts where state = 'succeeded'").fetchone()[0]
        finally:
            c.close()
        return None if rows == N else 'the execution log holds %d succeeded attempts, not %d' % (rows, N)


class Baseline(System):
    name = 'bare C BLMOVE+LREM, 2 consumers'

    def prepare(self):
        self.env.r.cmd('FLUSHALL')
        self.addr = ['-s', self.env.sock] if self.t == 'unix' else ['-h', '127.0.0.1', '-p', str(self.env.port)]
        subprocess.run([B + '/bench/baseline'] + self.addr + ['-q', 'staging', '-n', str(N), '-f'], check=True,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT)
        self.procs = [spawn([B + '/bench/baseline'] + self.addr + ['-q', 'bench', '-n', str(N // 2), '-t', '60'],
                            log='baseline.log') for _ in range(2)]

    def start_clock(self):
        self.env.r.cmd('RENAME', 'hopper:{staging}:queue', 'hopper:{bench}:queue')


class Beanstalk(System):
    name = 'beanstalkd, 2 consumers'
    server = 'beanstalkd'

    def prepare(self):
        self.srv, addr = self.env.beanstalkd(self.t)
        self.addr = ['-s', addr] if self.t == 'unix' else ['-h', addr[0], '-p', str(addr[1])]
        subprocess.run([B + '/bench/peers/beanstalk'] + self.addr + ['-n', str(N), '-f'], check=True,
                       timeout=TIMEOUT)

    def start_clock(self):
        self.procs = [spawn([B + '/bench/peers/beanstalk'] + self.addr + ['-n', str(N // 2)],
                            log='beanstalk.log') for _ in range(2)]


class Sidekiq(System):
    server = 'redis'

    def __init__(self, env, transport, procs_n, conc):
        super().__init__(env, transport)
        self.pn, self.c = procs_n, conc

    def prepare(self):
        r = self.env.r
        r.cmd('FLUSHALL')
        now = time.time()
        for i in range(0, N, 1000):
            for j in range(i, min(N, i + 1000)):
                r.s.sendall(b'*3\r\n$5\r\nLPUSH\r\n$7\r\nstaging\r\n' + resp_bulk(
                    '{"class":"NoopJob","args":[%d],"retry":false,"queue":"bench","jid":"%024x",'
                    '"created_at":%.6f,"enqueued_at":%.6f}' % (j, j, now, now)))
            for j in range(i, min(N, i + 1000)):
                r.read()
        r.cmd('SADD', 'queues', 'bench')
        env = dict(os.environ, REDIS_URL=self.env.url(self.t), RAILS_MAX_THREADS=str(self.c))
        self.procs = [spawn(['sidekiq', '-r', os.path.join(HERE, 'sidekiq_jobs.rb'), '-c', str(self.c), '-q',
                             'bench', '-e', 'production'], env=env, cwd=TMP, log='sidekiq.log')
                      for _ in range(self.pn)]

    def start_clock(self):
        self.env.r.cmd('RENAME', 'staging', 'queue:bench')

    def done(self):
        return self.env.r.cmd('LLEN', 'queue:bench') == 0


def resp_bulk(s):
    b = s.encode()
    return b'$%d\r\n%s\r\n' % (len(b), b)


class BullMQ(System):
    name = 'BullMQ, concurrency 10'

    def env_vars(self):
        if self.t == 'unix':
            return dict(os.environ, REDIS_SOCK=self.env.sock, NODE_PATH=os.path.join(HERE, 'node_modules'))
        return dict(os.environ, REDIS_HOST='127.0.0.1', REDIS_PORT=str(self.env.port),
                    NODE_PATH=os.path.join(HERE, 'node_modules'))

    def prepare(self):
        self.env.r.cmd('FLUSHALL')
        js = os.path.join(HERE, 'bullmq.js')
        subprocess.run(['node', js, 'fill', str(N)], env=self.env_vars(), check=True, timeout=TIMEOUT)
        # Paused while the worker starts: its jobs wait in bull:bench:paused.
        self.env.r.cmd('RENAME', 'bull:bench:wait', 'bull:bench:paused')
        self.env.r.cmd('HSET', 'bull:bench:meta', 'paused', '1')
        self.env.r.cmd('DEL', 'bull:bench:marker')
        self.procs = [spawn(['node', js, 'work', '0', '10'], env=self.env_vars(), log='bullmq.log')]

    def start_clock(self):
        # What BullMQ's own resume does (its pause script, reversed), plus the marker that wakes a worker.
        self.env.r.cmd('HDEL', 'bull:bench:meta', 'paused')
        self.env.r.cmd('RENAME', 'bull:bench:paused', 'bull:bench:wait')
        self.env.r.cmd('ZADD', 'bull:bench:marker', '0', '0')

    def done(self):
        return self.env.r.cmd('ZCARD', 'bull:bench:completed') >= N


class Celery(System):
    name = 'Celery prefork -c 2'
    n = CELERY_N

    def prepare(self):
        self.env.r.cmd('FLUSHALL')
        env = dict(os.environ, BENCH_BROKER=self.env.url(self.t, 'celery'), PYTHONPATH=HERE)
        subprocess.run(['/usr/bin/python3', '-c', '''
import celery_app, sys
app = celery_app.app
with app.producer_or_acquire() as prod:
    for i in range(int(sys.argv[1])):
        app.send_task('bpeers.noop', kwargs={'i': i}, queue='staging', producer=prod)
''', str(self.n)], env=env, check=True, timeout=TIMEOUT * 2)
        self.procs = [spawn(['/usr/bin/python3', '-m', 'celery', '-A', 'celery_app', 'worker', '--pool=prefork',
                             '-c', '2', '-Q', 'bench', '--without-gossip', '--without-mingle',
                             '--without-heartbeat', '-l', 'warning'], env=env, cwd=HERE, log='celery.log')]

    def start_clock(self):
        self.env.r.cmd('RENAME', 'staging', 'bench')

    def done(self):
        return self.env.r.cmd('LLEN', 'bench') == 0 and self.env.r.cmd('HLEN', 'unacked') == 0


def sidekiq_1x2(env, t):
    s = Sidekiq(env, t, 1, 2)
    s.name = 'Sidekiq, 1 process -c 2'
    return s


def sidekiq_2x1(env, t):
    s = Sidekiq(env, t, 2, 1)
    s.name = 'Sidekiq, 2 processes -c 1'
    return s


def missing(what):
    return lambda: None if shutil.which(what) or os.path.exists(what) else '%s is not installed' % what


def node_ok():
    if not shutil.which('node'):
        return 'node is not installed'
    if not os.path.isdir(os.path.join(HERE, 'node_modules', 'bullmq')):
        return 'bench/peers/node_modules/bullmq missing (tools/install-deps.sh bench: npm ci failed?)'
    return None


def celery_ok():
    r = subprocess.run(['/usr/bin/python3', '-c', 'import celery'], capture_output=True)
    return None if r.returncode == 0 else 'python3-celery is not installed'


# (key, label, factory, availability check -> None or why not)
SYSTEMS = [
    ('hopperd', 'hopperd, 2 workers', Hopperd, missing(B + '/hopperd')),
    ('baseline', 'bare C BLMOVE+LREM, 2 consumers', Baseline, missing(B + '/bench/baseline')),
    ('beanstalkd', 'beanstalkd, 2 consumers', Beanstalk, missing('beanstalkd')),
    ('sidekiq1x2', 'Sidekiq, 1 process -c 2', sidekiq_1x2, missing('sidekiq')),
    ('sidekiq2x1', 'Sidekiq, 2 processes -c 1', sidekiq_2x1, missing('sidekiq')),
    ('bullmq', 'BullMQ, concurrency 10', BullMQ, node_ok),
    ('celery', 'Celery prefork -c 2', Celery, celery_ok),
]


def run_one(env, factory, t):
    s = factory(env, t)
    s.prepare()
    try:
        if s.procs:
            settle(s.procs)
        srv = env.redis.pid if s.server == 'redis' else s.srv.pid
        r = env.r
        r.sent.clear()
        c0 = r.commandstats()
        m0, s0 = machine(), proc_stat(srv)[1]
        roots0 = cpu_ticks([p.pid for p in s.procs]) if s.procs else (0, 0)
        t0 = time.time()
        s.start_clock()
        last_change, prev = time.time(), None
        while True:
            done = s.done()
            now = time.time()
            if done:
                break
            if now - t0 > TIMEOUT:
                raise RuntimeError('not done after %.0f s' % TIMEOUT)
            if s.procs and any(exited(p) for p in s.procs) and not isinstance(s, (Baseline, Beanstalk)):
                raise RuntimeError('a consumer exited (see %s)' % TMP)
            progress = sum(cpu_ticks([p.pid for p in s.procs]))
            if progress != prev:
                prev, last_change = progress, now
            elif now - last_change > 20:
                raise RuntimeError('no progress for 20 s')
            time.sleep(0.01)
        t1 = time.time()
        roots1 = cpu_ticks([p.pid for p in s.procs])
        m1, s1 = machine(), proc_stat(srv)[1]
        own = collections.Counter(r.sent)
        c1 = r.commandstats()
        if isinstance(s, (Baseline, Beanstalk)):
            for p in s.procs:
                if p.wait(10) != 0:
                    raise RuntimeError('a consumer failed (status %d, see %s)' % (p.returncode, TMP))
        stop(s.procs)
        bad = s.verify()
        if bad:
            raise RuntimeError(bad)
        calls = sum(c1.get(k, 0) - c0.get(k, 0) - own.get(k, 0) for k in c1 if k != 'info')
        secs = t1 - t0
        return {
            'rate': s.n / secs,
            'cpu': (roots1[0] - roots0[0]) * 1e6 / HZ / s.n,
            'cpu_kids': (roots1[1] - roots0[1]) * 1e6 / HZ / s.n,
            'srv': (s1 - s0) * 1e6 / HZ / s.n,
            'cmds': calls / s.n if s.server == 'redis' else None,
            'idle': (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
        }
    finally:
        stop(s.procs)


def fmt(x, spec):
    return '-' if x is None else format(x, spec)


def main():
    for f in ('redis-server',):
        if not shutil.which(f):
            print('bench-peers: %s is not installed (tools/install-deps.sh)' % f, file=sys.stderr)
            return 2
    env = Env()
    systems = [s for s in SYSTEMS if not ONLY or s[0] in ONLY]
    why_not = {key: check() for key, _, _, check in systems}
    res = collections.defaultdict(list)
    failed = {}
    print('bench-peers: N = %d noop jobs (Celery %d), %d rounds, transports %s, %d CPUs, private servers in %s'
          % (N, CELERY_N, ROUNDS, ' '.join(TRANSPORTS), os.cpu_count(), TMP), flush=True)
    for rnd in range(1, ROUNDS + 1):
        for key, label, factory, _ in systems:
            if why_not[key]:
                continue
            for t in TRANSPORTS:
                try:
                    m = run_one(env, factory, t)
                except Exception as e:  # reported in the table, never dropped
                    failed[(key, t)] = str(e)
                    print('  round %d %-34s %-4s FAILED: %s' % (rnd, label, t, e), flush=True)
                    continue
                res[(key, t)].append(m)
                print('  round %d %-34s %-4s %8.0f jobs/s  cpu %6.1f+%6.1f us/job  server %6.1f us/job  '
                      'cmds %5s/job  idle %3.0f%%' % (rnd, label, t, m['rate'], m['cpu'], m['cpu_kids'], m['srv'],
                                                      fmt(m['cmds'], '.1f'), m['idle'] * 100), flush=True)
    report(systems, why_not, res, failed)
    return 0


def med(ms, k):
    xs = [m[k] for m in ms if m[k] is not None]
    return statistics.median(xs) if xs else None


def report(systems, why_not, res, failed):
    print()
    print('Peers benchmark: %d pre-filled noop jobs per run (Celery %d), medians of %d rounds (rounds interleaved),'
          ' %d CPUs.' % (N, CELERY_N, ROUNDS, os.cpu_count()))
    print('CPU = consumer processes (hopperd: daemon + workers; Celery: main + pool); server = redis-server\'s')
    print('own CPU (beanstalkd\'s for beanstalkd); idle = the machine\'s idle share during the runs (min-max).')
    for t in TRANSPORTS:
        print()
        print('### over %s' % ('127.0.0.1 TCP' if t == 'tcp' else 'a unix socket'))
        print()
        print('| system | jobs/s (median; min-max) | CPU us/job | server us/job | Redis commands/job | idle | '
              'hopperd / this |')
        print('|---|---|---|---|---|---|---|')
        h = med(res.get(('hopperd', t), []), 'rate')
        for key, label, _, _ in systems:
            if why_not[key]:
                print('| %s | not run: %s | | | | | |' % (label, why_not[key]))
                continue
            ms = res.get((key, t), [])
            if not ms:
                print('| %s | failed: %s | | | | | |' % (label, failed.get((key, t), 'no run')))
                continue
            rate = med(ms, 'rate')
            rates = [m['rate'] for m in ms]
            cpu, kids = med(ms, 'cpu'), med(ms, 'cpu_kids')
            if key == 'hopperd':
                cpu_s = '%.0f daemon + %.0f workers' % (cpu, kids)
            else:
                cpu_s = '%.0f' % (cpu + kids)
            idles = [m['idle'] * 100 for m in ms]
            note = '' if len(ms) == ROUNDS else ' (%d of %d rounds; %s)' % (len(ms), ROUNDS,
                                                                            failed.get((key, t), ''))
            print('| %s | %s; %s-%s%s | %s | %.0f | %s | %.0f-%.0f%% | %s |' % (
                label, format(rate, ',.0f'), format(min(rates), ',.0f'), format(max(rates), ',.0f'), note, cpu_s,
                med(ms, 'srv'), fmt(med(ms, 'cmds'), '.1f'), min(idles), max(idles),
                'x%.2f' % (h / rate) if h and key != 'hopperd' else '-'))


if __name__ == '__main__':
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    finally:
        stop(list(reversed(STARTED)))
        if os.environ.get('KEEP') == '1':
            print('bench-peers: kept %s' % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)

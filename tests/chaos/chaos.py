#!/usr/bin/python3
"""chaos: hopper's fault-injecting checker (issue 10).

Starts a private redis-server (appendonly yes, appendfsync always, unix socket in a temp dir) and 2-3 hopperd
(each its own SQLite file, node id, control socket, a 2 s lease and the clock shim), submits a seeded random
mix of jobs (with and without ids, raw LPUSH and hopperctl, delayed, failing, crashing, duplicates of running
messages, cancels, retries, malformed messages of every kind), injects faults at seeded random times (see
faults.py: kill -9 of daemons, workers and Redis, SIGSTOP past the lease, Redis outages, CLIENT KILL of every
connection type, wall-clock steps, a full filesystem under one SQLite file), while an "@every 1s" schedule
fires beside the mix, lets everything settle, stops the daemons and checks the invariants of verify.py. It prints a faults x outcomes table (comment lines) and
one "ok - " / "not ok - " line per invariant (tests/run.sh counts them); exit status 1 if one failed.

  tests/chaos/chaos.py --seed 7 --jobs 20000          # one seed, the size make chaos uses
  tests/chaos/chaos.py --seed 7 --jobs 1500 --daemons 2 --keep   # what make check runs; keep the temp dir

Reproduce a finding with the same --seed and --jobs (the mix and the fault order are the seed's; exact
timings are the machine's).
"""

import argparse
import heapq
import itertools
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis  # noqa: E402  (Debian python3-redis)

import cluster  # noqa: E402
import faults  # noqa: E402
import layout  # noqa: E402
import verify  # noqa: E402
import workload  # noqa: E402
from workload import QUEUE, TERMINAL, Sub, enc  # noqa: E402

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ResponseError, OSError)
JOB_RE = re.compile(rb'"job":"((?:[^"\\]|\\.)*)"')


class Run:
    # The schedule every run carries (--no-schedule: none): @every 1s, misfire all within an hour, so every
    # fire time from its put to its pause must make exactly one job whatever the faults (verify.py).
    SCHED = "chaos-tick"

    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.dir = a.dir
        self.build = a.build
        self.lease = a.lease
        self.shim = a.shim if a.shim and os.path.exists(a.shim) else None
        self.layout = layout.make(a.layout)
        self.redis = cluster.Redis(self.dir)
        self.daemon_flags = ["--workers=2", "--lease-s=%g" % a.lease, "--heartbeat-s=%g" % (a.lease / 4),
                             "--max-stalls=5", "--backoff-base-s=0.05", "--backoff-max-s=0.3",
                             "--kill-grace-s=0.5", "--shutdown-grace-s=5",
                             "--max-message-bytes=%d" % a.max_bytes, "--poll-ms=100"]
        self.daemons = []
        self.fullfs, self.fullfs_node = None, None
        self.busy = {}
        self.timers = []
        self.tseq = itertools.count()
        self.faults = []
        self.subs = []
        self.by_id = {}
        self.captured = []
        self.last_event = {}
        self.offsets = {}
        self.problems = []  # (invariant, job, detail) seen while running (daemon exits)
        self.stop_capture = False
        self.t_start = self.t_end = None
        self.out = print
        self.sched_put = False
        self.sched_put_at = self.sched_paused_at = None
        self.sched_hash = None

    # --- plumbing ---

    def now(self):
        return time.time()

    def later(self, delay, fn):
        heapq.heappush(self.timers, (self.now() + delay, next(self.tseq), fn))

    def run_timers(self):
        while self.timers and self.timers[0][0] <= self.now():
            _, _, fn = heapq.heappop(self.timers)
            try:
                fn()
            except REDIS_ERRORS as e:
                self.out("# timer: %s (retried in 0.5 s)" % e)
                self.later(0.5, fn)

    def daemon(self, name):
        return next(d for d in self.daemons if d.name == name)

    def set_offset(self, d, off):
        d.set_offset(off)
        self.offsets[d.name].append((self.now(), off))

    def redis_ok(self):
        return not self.redis.down and not self.redis.paused

    def hget_state(self, jid):
        try:
            v = self.r.hget(self.layout.job(QUEUE, jid), "state")
        except REDIS_ERRORS:
            return "?"
        return v.decode() if v else None

    # --- setup ---

    def setup(self):
        self.redis.start()
        self.r = self.redis.client(timeout=3)
        names = ["a", "b", "c"][:self.a.daemons]
        db_dir = {n: self.dir for n in names}
        if self.a.fullfs:
            fs = cluster.FullFs(os.path.join(self.dir, "fullfs"), 24)
            ok, err = fs.mount()
            if ok:
                self.fullfs, self.fullfs_node = fs, names[-1]
                db_dir[names[-1]] = fs.path
            else:
                self.out("# disk_full: cannot mount a tmpfs (%s): that fault is not injected" % err)
        for n in names:
            d = cluster.Daemon(self, n, db_dir[n])
            self.daemons.append(d)
            self.offsets[n] = [(self.now(), 0)]
            d.start()
        deadline = self.now() + 30
        while self.now() < deadline:
            if self.a.layout is None:
                self.layout = layout.detect_live(self.r, self.daemons[0].name) or self.layout
            if all(self.layout.registered(self.r, d.name) for d in self.daemons):
                break
            time.sleep(0.1)
        threading.Thread(target=self.capture, daemon=True).start()
        if self.a.schedule:
            self.schedule_ctl("put", self.SCHED, "--cron", "@every 1s", "--misfire", "all", "--misfire-max", "100",
                              "--misfire-grace-s", "3600", "--job", '{"type":"noop"}')
            self.sched_put = True
            self.sched_put_at = self.now()

    def schedule_ctl(self, *args):
        """hopperctl schedule ARGS through a live daemon, until it answers (Redis may be held by a fault)."""
        deadline = self.now() + 120
        while self.now() < deadline:
            self.run_timers()
            d = self.live_daemon() or self.daemons[0]
            rc, _, err = d.ctl("schedule", *args, timeout=8)
            if rc == 0:
                return True
            time.sleep(0.3)
        self.out("# schedule %s: no daemon answered: %s" % (args[0], err.decode(errors="replace").strip()[:100]))
        return False

    def capture(self):
        """Every event published on the global channel, with the time it arrived (reconnects after faults)."""
        chan = self.layout.events_channel()
        while not self.stop_capture:
            try:
                c = self.redis.client(timeout=5)
                ps = c.pubsub(ignore_subscribe_messages=True)
                ps.subscribe(chan)
                while not self.stop_capture:
                    m = ps.get_message(timeout=0.5)
                    if m and m.get("type") == "message":
                        mm = JOB_RE.search(m["data"])
                        if mm:
                            jid = mm.group(1).decode("utf-8", "surrogateescape")
                            self.captured.append((jid, m["data"]))
                            self.last_event[jid] = time.time()
            except Exception:  # noqa: BLE001  (any failure: reconnect)
                time.sleep(0.2)

    # --- submitting ---

    def lpush(self, subs_and_data):
        """LPUSHes (sub, bytes) pairs in one pipeline; True when Redis answered."""
        pipe = self.r.pipeline(transaction=False)
        for _, data in subs_and_data:
            pipe.lpush(self.layout.queue(QUEUE), data)
        try:
            pipe.execute()
            return True
        except REDIS_ERRORS as e:
            self.out("# push of %d messages: %s (outcome unknown)" % (len(subs_and_data), e))
            return False

    def register(self, sub):
        sub.t_submit = self.now()
        sub.accepted = True
        if sub.id is not None:
            self.by_id.setdefault(sub.id, sub)

    def submit_raw(self, subs):
        pairs = []
        for sub in subs:
            if sub.kind.startswith("delayed"):
                d, delay = sub.extra
                d = dict(d, run_at=round(self.now() + delay, 3))
                sub.data = enc(d)
            pairs += [(sub, sub.data)] * (sub.copies if sub.kind.endswith("x3") else 1)
        ok = self.lpush(pairs)
        for sub in subs:
            self.register(sub)
            if not ok and sub.id is None:
                sub.copies_max, sub.copies = sub.copies, 0  # may or may not have been stored
            self.follow(sub)
        if not ok:
            again = [s for s in subs if s.id is not None]
            self.later(0.5, lambda: self.lpush([(s, s.data) for s in again]) or None)

    def live_daemon(self):
        ds = [d for d in self.daemons if d.alive() and not d.stopped and self.busy.get(d.name, 0) <= self.now()]
        return self.rng.choice(ds) if ds else None

    def submit_ctl(self, sub, tries=0):
        d = self.live_daemon()
        if d is None or not self.redis_ok():
            self.later(0.3, lambda: self.submit_ctl(sub, tries))
            return
        typ, args = sub.extra
        cmd = ["submit", typ, args, "--max-attempts", "50", "--timeout", "60"]
        if sub.id is not None:
            cmd += ["--id", sub.id]
        rc, out, err = d.ctl(*cmd, timeout=8)
        if rc == 0:
            self.register(sub)
            if sub.id is None:
                sub.note = out.decode().strip()
            self.follow(sub)
            return
        if sub.id is not None and self.hget_state(sub.id) not in (None, "?"):
            self.register(sub)  # the first try was stored after all
            self.follow(sub)
            return
        if sub.id is None and rc == 124:
            self.register(sub)
            sub.copies_max, sub.copies = 1, 0
            return
        if tries < 10:
            self.later(0.5, lambda: self.submit_ctl(sub, tries + 1))
        else:
            sub.note = "hopperctl submit failed: %s" % err.decode(errors="replace").strip()[:100]
            self.out("# %s %s: never accepted: %s" % (sub.kind, sub.id, sub.note))

    def add_sub(self, sub):
        self.subs.append(sub)
        return sub

    # --- follow-ups (duplicates, cancels, retries, malformed copies, corrections, colliding ids) ---

    def when_state(self, jid, states, fn, limit=600):
        deadline = self.now() + limit

        def poll():
            st = self.hget_state(jid)
            if st in states:
                fn()
            elif self.now() < deadline and st not in TERMINAL:
                self.later(0.4, poll)
        self.later(0.4, poll)

    def follow(self, sub):
        f = sub.follow
        if f == "dup":
            self.when_state(sub.id, ("running",), lambda: self.push_again(sub, sub.data, 6), limit=20)
        elif f == "cancel":
            self.when_state(sub.id, ("running",), lambda: self.cancel(sub, 0), limit=600)
        elif f == "retry":
            self.when_state(sub.id, ("dead",), lambda: self.retry(sub, 0), limit=60)
        elif f == "malcopy":
            bad = b'{"id":"%s","type":"noop","args":{"x":NaN}}' % sub.id.encode()
            self.when_state(sub.id, ("succeeded",), lambda: self.push_new(Sub(
                sub.n, "malcopy-bad", bad, sub.id, None, expect=("dead",), malformed=True)))
        elif f == "idem":
            self.later(0.3, lambda: self.push_new(Sub(sub.n, "idem-fixed", sub.extra,
                                                      sub.id[:-4], None)))
        elif f == "collide":
            tag = sub.tag + "e"
            other = Sub(sub.n, "collide-events", enc({"id": sub.id + ":events", "type": "noop",
                                                      "args": {"tag": tag}}), sub.id + ":events", tag,
                        expect=("succeeded", "dead"))
            other.extra = "or-dead-entry"
            self.when_state(sub.id, ("succeeded",), lambda: self.push_new(other))

    def push_again(self, sub, data, n):
        if not self.redis_ok():
            self.later(0.5, lambda: self.push_again(sub, data, n))
            return
        self.lpush([(sub, data)] * n)

    def push_new(self, sub):
        if not self.redis_ok():
            self.later(0.5, lambda: self.push_new(sub))
            return
        self.add_sub(sub)
        self.submit_raw([sub])

    def cancel(self, sub, tries):
        d = self.live_daemon()
        if d is None or not self.redis_ok():
            if tries < 20:
                self.later(0.5, lambda: self.cancel(sub, tries + 1))
            return
        if tries == 0 and self.rng.random() < 0.5:
            # drop every pub/sub link right before the cancel: it must arrive anyway
            self.inject("client_kill_pubsub")
        rc, out, err = d.ctl("cancel", sub.id, timeout=8)
        if rc == 0 or self.hget_state(sub.id) == "cancelled":
            sub.cancelled_ok = True
            sub.expect = {"cancelled"}
        elif tries < 20:
            self.later(0.5, lambda: self.cancel(sub, tries + 1))

    def retry(self, sub, tries):
        d = self.live_daemon()
        if d is None or not self.redis_ok():
            if tries < 20:
                self.later(0.5, lambda: self.retry(sub, tries + 1))
            return
        rc, out, err = d.ctl("retry", sub.id, timeout=8)
        st = self.hget_state(sub.id)
        if rc == 0 or st not in ("dead", "?"):
            sub.retried = True  # (a retry whose reply was lost still counts)
        elif tries < 20:
            self.later(0.5, lambda: self.retry(sub, tries + 1))

    # --- faults ---

    def inject(self, kind):
        res = faults.TABLE[kind](self, self.rng)
        if res is None:
            return False
        target, detail, gap = res
        flt = faults.Fault(kind, target, self.now(), detail)
        flt.t1 = flt.t0 + gap + self.lease  # its effects last until a lease after it ended
        self.faults.append(flt)
        self.out("# %6.1fs fault %s: %s" % (flt.t0 - self.t_start, kind, detail))
        return True

    def fault_plan(self, duration):
        kinds = list(faults.TABLE)
        if not self.shim:
            kinds.remove("clock_step")
        if self.fullfs is None:
            kinds.remove("disk_full")
        order = kinds[:]
        self.rng.shuffle(order)
        while len(order) < self.a.faults:
            order.append(self.rng.choice(kinds))
        times = sorted(self.rng.uniform(1.0, max(2.0, duration - 1.5)) for _ in order)
        return list(zip(times, order))

    def watch_daemons(self):
        for d in self.daemons:
            if d.proc is not None and d.proc.poll() is not None and not d.stopped and \
                    self.busy.get(d.name, 0) <= self.now():
                self.problems.append(("daemons", "", "hopperd %s exited by itself (status %s), restarted: see "
                                      "%s.log" % (d.name, d.proc.returncode, d.name)))
                self.out("# hopperd %s exited with status %s: restarting it" % (d.name, d.proc.returncode))
                d.deaths.append(self.now())
                d.start()
                self.busy[d.name] = self.now() + 1

    # --- the run ---

    def main_loop(self):
        a = self.a
        subs = workload.plan(self.rng, a.jobs, a.seed, a.max_bytes, max(2, a.jobs // 2000))
        self.subs = subs
        nplanned = len(subs)
        plan = self.fault_plan(a.duration)
        self.t_start = self.now()
        nxt = 0
        late = 0
        while nxt < nplanned or plan:
            el = self.now() - self.t_start
            self.run_timers()
            self.watch_daemons()
            if plan and plan[0][0] <= el:
                if self.inject(plan[0][1]) or late > 30:
                    plan.pop(0)
                    late = 0
                else:
                    late += 1
            target = min(nplanned, int(nplanned * min(1.0, el / a.duration)) + 1)
            if self.redis_ok() and nxt < target:
                raw = []
                while nxt < target:
                    sub = subs[nxt]
                    nxt += 1
                    if sub.via == "ctl":
                        self.submit_ctl(sub)
                    else:
                        raw.append(sub)
                if raw:
                    self.submit_raw(raw)
            time.sleep(0.02)
        self.t_load = self.now()
        if self.sched_put and self.schedule_ctl("pause", self.SCHED):
            self.sched_paused_at = self.now()
        self.out("# %6.1fs all %d planned messages sent; settling" % (self.now() - self.t_start, nplanned))

    def pending(self):
        """(ids of accepted jobs not yet terminal, entries left in queue/inflight/scheduled lists)."""
        ids = [s.id for s in self.subs if s.accepted and s.id is not None and not s.malformed]
        r = self.redis.client(timeout=30)
        try:
            res = []
            for i in range(0, len(ids), 2000):
                pipe = r.pipeline(transaction=False)
                for jid in ids[i:i + 2000]:
                    pipe.hget(self.layout.job(QUEUE, jid), "state")
                res += pipe.execute(raise_on_error=False)
            left = [jid for jid, st in zip(ids, res) if not isinstance(st, bytes) or st.decode() not in TERMINAL]
            lists = 0
            for k in self.layout.drained_keys([d.name for d in self.daemons], [QUEUE]):
                t = r.type(k)
                lists += r.zcard(k) if t == b"zset" else r.llen(k) if t == b"list" else 0
        finally:
            r.close()
        return left, lists

    def settle(self):
        """Until every job ended and every list drained. A loaded machine only slows this down: the wait
        gives up after --settle seconds without progress (or --settle-max in all)."""
        start = self.now()
        deadline = start + self.a.settle
        last = 0
        left, lists = ["?"], 1
        best = None
        while self.now() < deadline and self.now() < start + self.a.settle_max:
            self.run_timers()
            self.watch_daemons()
            if not self.redis_ok():  # a fault still holds Redis (its end is on the timer): wait it out
                deadline = max(deadline, self.now() + self.a.settle)
            elif self.now() - last >= 1:
                last = self.now()
                try:
                    left, lists = self.pending()
                except REDIS_ERRORS as e:
                    self.out("# settle: %s" % e)
                    deadline = max(deadline, self.now() + self.a.settle)
                    continue
                if not left and not lists and not self.timers:  # (timers: follow-ups still to send)
                    break
                if best is None or len(left) + lists < best:
                    best = len(left) + lists
                    deadline = self.now() + self.a.settle  # progress: wait on
            time.sleep(0.05)
        if left or lists:
            self.out("# settle: gave up after %d s (%d s without progress): %d jobs not terminal (e.g. %s), "
                     "%d list entries left" % (self.now() - start, self.a.settle, len(left), left[:3], lists))
        time.sleep(0.5)  # the last finishes' events
        self.t_end = self.now()
        if self.sched_put:
            try:
                r = self.redis.client(timeout=10)
                self.sched_hash = r.hgetall(self.layout.p + "{%s}:sched:%s" % (QUEUE, self.SCHED))
                r.close()
            except REDIS_ERRORS:
                self.sched_hash = None

    def stop(self):
        for d in self.daemons:
            st = d.terminate()
            if st != 0:
                self.problems.append(("daemons", "", "hopperd %s exited %s on SIGTERM" % (d.name, st)))
        self.stop_capture = True
        for d in self.daemons:
            try:
                with open(d.log, errors="replace") as f:
                    for line in f:
                        if "ERROR: AddressSanitizer" in line or "runtime error:" in line or \
                                "ERROR: LeakSanitizer" in line:
                            self.problems.append(("daemons", "", "%s.log: %s" % (d.name, line.strip()[:120])))
                            break
            except OSError:
                pass

    # --- what the verifier asks ---

    def correct(self, node, ts):
        """A timestamp written by node, back on the real clock (undoing the clock steps we made)."""
        segs = self.offsets.get(node, [])
        for i, (t0, off) in enumerate(segs):
            if off == 0:
                continue
            t1 = segs[i + 1][0] if i + 1 < len(segs) else float("inf")
            if t0 - 1 <= ts - off <= t1 + 1:
                return ts - off
        return ts

    def interval(self, row):
        if row["started_at"] is None:
            return None
        node = row["db"]
        t0 = self.correct(node, row["started_at"])
        deaths = [t for t in self.daemon(node).deaths if t >= t0]
        if row["finished_at"] is not None and row["state"] != "running":
            t1 = self.correct(node, row["finished_at"])
            if row["state"] == "reaped" and deaths:
                t1 = min(t1, deaths[0])  # marked when its node restarted; its worker died with the node
        else:
            t1 = deaths[0] if deaths else self.t_end
        return (t0, max(t0, t1))

    def window(self, jid, end=None):
        """The job's life: from its submission to its last event. The events are captured over pub/sub, which
        the faults cut (CLIENT KILL, Redis restarts), so a caller that knows the hash's updated_at (Redis TIME,
        the same wall clock as this process) passes it as end: the later of the two ends the life."""
        sub = self.sub_of(jid)
        t0 = sub.t_submit if sub and sub.t_submit else self.t_start
        t1 = self.last_event.get(jid, self.t_end)
        return (t0, max(t1, end) if end else t1)

    def was_stopped(self, node, iv):
        """True when node was SIGSTOPped during the interval iv."""
        return any(t0 <= iv[1] and (t1 or self.t_end) >= iv[0] for t0, t1 in self.daemon(node).stops)

    def during(self, jid, kind, end=None):
        """True when a fault of this kind was active during the job's life (end: see window)."""
        w = self.window(jid, end)
        return any(f.kind == kind and f.t0 <= w[1] and f.t1 >= w[0] for f in self.faults)

    def sub_of(self, jid):
        sub = self.by_id.get(jid)
        if sub is None and jid:
            return None
        return sub

    def cleanup(self):
        for d in self.daemons:
            if d.alive():
                d.proc.kill()
                d.proc.wait()
        for d in self.daemons:
            for w in cluster.children(d.proc.pid) if d.proc else []:
                try:
                    os.kill(w, 9)
                except OSError:
                    pass
        if self.redis.proc is not None:
            self.redis.stop()
        if self.fullfs is not None:
            self.fullfs.unmount()


def summary(run):
    kinds = {}
    for s in run.subs:
        if s.accepted:
            k = s.kind.split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
    fk = {}
    for f in run.faults:
        fk[f.kind] = fk.get(f.kind, 0) + 1
    run.out("# seed %d, layout %s, %d daemons, lease %g s: %d messages accepted in %.0f s of load (planned %.0f s), "
            "%.0f s in all" % (run.a.seed, run.layout.name, run.a.daemons, run.lease, sum(kinds.values()),
                               run.t_load - run.t_start, run.a.duration, run.t_end - run.t_start))
    run.out("# messages: " + " ".join("%s=%d" % kv for kv in sorted(kinds.items())))
    run.out("# faults: " + " ".join("%s=%d" % kv for kv in sorted(fk.items())))


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seed", type=int, default=1, help="the seed of the mix and the faults (default 1)")
    p.add_argument("--jobs", type=int, default=1500, help="messages in the random mix (default 1500)")
    p.add_argument("--daemons", type=int, default=3, choices=(2, 3), help="hopperd processes (default 3)")
    p.add_argument("--duration", type=float, default=0, help="seconds of load (default: from --jobs)")
    p.add_argument("--faults", type=int, default=0, help="faults to inject (default: from --duration; "
                   "every kind at least once)")
    p.add_argument("--settle", type=float, default=0, help="give up settling after this many seconds without progress (default 30)")
    p.add_argument("--settle-max", type=float, default=600, help="give up settling after this many seconds "
                   "in all (default 600)")
    p.add_argument("--lease", type=float, default=2.0, help="the daemons' lease_s (default 2)")
    p.add_argument("--max-bytes", type=int, default=65536, help="the daemons' max_message_bytes")
    p.add_argument("--build", default=os.path.join(root, "build"), help="directory of hopperd & co")
    p.add_argument("--shim", default=None, help="the clock shim (default: BUILD/chaos/clockshim.so)")
    p.add_argument("--layout", choices=("main", "v2"), default=None, help="key layout (default: detected)")
    p.add_argument("--tolerate-killed-rows", action="store_true", help="do not fail the rows invariant for an "
                   "attempt lost with a kill -9'd daemon that has no row (a known gap; make check's bounded run)")
    p.add_argument("--no-fullfs", dest="fullfs", action="store_false", help="no tmpfs for the disk_full fault")
    p.add_argument("--no-schedule", dest="schedule", action="store_false",
                   help="no @every 1s schedule beside the mix (its invariant: one job per fire time)")
    p.add_argument("--dir", default=None, help="scratch directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = p.parse_args(argv)
    a.build = os.path.abspath(a.build)
    a.shim = a.shim or os.path.join(a.build, "chaos", "clockshim.so")
    scale = 3 if os.environ.get("HOPPER_SAN") == "1" else 1
    a.duration = a.duration or max(20.0, a.jobs / 350.0) * scale
    a.faults = a.faults or max(len(faults.TABLE), int(a.duration / 2.5))
    a.settle = a.settle or 30.0 * scale
    return a


def main(argv):
    a = parse_args(argv)
    owned = a.dir is None
    a.dir = a.dir or tempfile.mkdtemp(prefix="hopper-chaos.")
    os.makedirs(a.dir, exist_ok=True)
    run = Run(a)
    sys.stdout.reconfigure(line_buffering=True)
    ok = False
    try:
        if not run.shim:
            print("# clock shim %s missing (make %s): clock_step is not injected" % (a.shim, a.shim))
        run.setup()
        run.main_loop()
        run.settle()
        run.stop()
        summary(run)
        facts = verify.Facts(run)
        verdict = verify.Verdict(run, facts)
        v = verdict.check() + run.problems
        print("# %d jobs lost SQLite rows to the full filesystem (allowed: counted by the store); %d rows "
              "had no start time to check" % (verdict.dropped_full, verdict.unchecked_rows))
        if a.tolerate_killed_rows:
            print("# --tolerate-killed-rows: %d jobs lack the row of an attempt lost with a kill -9'd daemon "
                  "(known gap F4, not counted as a failure)%s" % (
                      verdict.killed_rows, ", e.g. " + verdict.killed_eg if verdict.killed_eg else ""))
        verify.report(run, v, print)
        with open(os.path.join(a.dir, "violations.txt"), "w") as f:
            for inv, jid, d in v:
                f.write("%s\t%s\t%s\n" % (inv, jid, d))
        ok = not v
        print("# scratch dir: %s" % a.dir if (a.keep or not owned) else "# (scratch dir removed; --keep keeps it)")
    finally:
        run.cleanup()
        if owned and not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

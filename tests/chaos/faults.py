"""faults: one table of the faults a chaos run injects. Each injector starts its fault at once and schedules
its end (restart, SIGCONT, clock back, disk freed) on the run's timer; it returns a description, or None
when it cannot apply now (the node it needs is busy with another fault). Every fault is recorded with its
real start and end time, which is how outcomes are charged to faults in the final table.
"""

import os
import signal

import redis


class Fault:
    __slots__ = ("kind", "target", "t0", "t1", "detail")

    def __init__(self, kind, target, t0, detail=""):
        self.kind, self.target, self.t0, self.t1, self.detail = kind, target, t0, None, detail


def _free_daemon(run, rng, need_alive=True):
    names = [d.name for d in run.daemons if run.busy.get(d.name, 0) <= run.now() and (d.alive() or not need_alive)]
    return run.daemon(rng.choice(names)) if names else None


def kill9_daemon(run, rng):
    d = _free_daemon(run, rng)
    if d is None:
        return None
    d.kill9()
    gap = rng.uniform(0.2, 1.0)
    run.busy[d.name] = run.now() + gap + 0.5
    run.later(gap, d.start)
    return d.name, "kill -9 hopperd %s, restarted %.1f s later" % (d.name, gap), gap


def kill9_worker(run, rng):
    cands = [(d, w) for d in run.daemons if not d.stopped for w in d.workers()]
    if not cands:
        return None
    d, w = rng.choice(cands)
    try:
        os.kill(w, signal.SIGKILL)
    except OSError:
        return None
    return d.name, "kill -9 worker %d of %s" % (w, d.name), 0


def kill9_redis(run, rng):
    if run.busy.get("redis", 0) > run.now():
        return None
    run.redis.kill9()
    gap = rng.uniform(0.2, 1.0)
    run.busy["redis"] = run.now() + gap + 1
    run.later(gap, run.redis.start)
    return "redis", "kill -9 redis-server, restarted on its AOF %.1f s later" % gap, gap


def redis_outage(run, rng):
    """Redis unreachable for longer than the lease: SIGSTOP (keys expire at once on SIGCONT) or killed."""
    if run.busy.get("redis", 0) > run.now():
        return None
    gap = run.lease + rng.uniform(1.0, 2.5)
    run.busy["redis"] = run.now() + gap + 1
    if rng.random() < 0.5:
        run.redis.pause()
        run.later(gap, run.redis.cont)
        how = "SIGSTOP redis-server for %.1f s (lease %.0f s), then SIGCONT" % (gap, run.lease)
    else:
        run.redis.kill9()
        run.later(gap, run.redis.start)
        how = "redis-server down for %.1f s (lease %.0f s), restarted on its AOF" % (gap, run.lease)
    return "redis", how, gap


def sigstop_daemon(run, rng):
    d = _free_daemon(run, rng)
    if d is None:
        return None
    gap = run.lease + rng.uniform(1.0, 2.5)
    d.sigstop()
    run.busy[d.name] = run.now() + gap + 0.5
    run.later(gap, d.sigcont)
    return d.name, "SIGSTOP hopperd %s for %.1f s (lease %.0f s), then SIGCONT" % (d.name, gap, run.lease), gap


def _client_kill(typ):
    def inject(run, rng):
        if run.redis.down or run.redis.paused:
            return None
        try:
            n = run.r.execute_command("CLIENT", "KILL", "TYPE", typ)
        except (redis.ConnectionError, redis.TimeoutError):
            n = "?"  # our own connection was one of them
        return "redis", "CLIENT KILL TYPE %s (%s connections)" % (typ, n), 0
    return inject


def clock_step(run, rng):
    if not run.shim:
        return None
    d = _free_daemon(run, rng)
    if d is None:
        return None
    step = rng.choice([3600, 3600, -3600 // 4])
    gap = rng.uniform(2.0, 4.0)
    run.set_offset(d, step)
    run.busy[d.name] = run.now() + gap + 0.5
    run.later(gap, lambda: run.set_offset(d, 0))
    return d.name, "wall clock of %s stepped %+d s for %.1f s, then back" % (d.name, step, gap), gap


def disk_full(run, rng):
    if run.fullfs is None or not run.fullfs.mounted:
        return None
    d = run.daemon(run.fullfs_node)
    if run.busy.get(d.name, 0) > run.now() or not d.alive():
        return None
    gap = rng.uniform(2.0, 4.0)
    run.fullfs.fill()
    run.busy[d.name] = run.now() + gap + 0.5
    run.later(gap, run.fullfs.free)
    return d.name, "filesystem of %s's SQLite file full (ENOSPC) for %.1f s" % (d.name, gap), gap


# name -> injector. Every kind is injected at least once per run (chaos.py), the rest at random.
TABLE = {
    "kill9_daemon": kill9_daemon,
    "kill9_worker": kill9_worker,
    "kill9_redis": kill9_redis,
    "sigstop_daemon": sigstop_daemon,
    "redis_outage": redis_outage,
    "client_kill_normal": _client_kill("normal"),
    "client_kill_pubsub": _client_kill("pubsub"),
    "clock_step": clock_step,
    "disk_full": disk_full,
}

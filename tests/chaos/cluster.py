"""cluster: the real processes of one chaos run (a private redis-server, 2-3 hopperd, their workers) and the
means to hurt them. Every process started is recorded by PID under DIR/pids (tests/run.sh ends those after
a timeout) and ended by PID at the end; nothing is ever signalled by name.
"""

import os
import signal
import subprocess
import time

import redis

SHIM_SIZE = 64  # bytes of a clock file (tests/chaos/clockshim.c: CLOCKSHIM_SIZE)


def _pid_file(d, name, pid):
    os.makedirs(os.path.join(d, "pids"), exist_ok=True)
    with open(os.path.join(d, "pids", "%s.%d" % (name, pid)), "w") as f:
        f.write("%d\n" % pid)


def _unpid(d, name, pid):
    try:
        os.unlink(os.path.join(d, "pids", "%s.%d" % (name, pid)))
    except OSError:
        pass


def children(pid):
    """The PIDs of pid's child processes (its workers)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


class Redis:
    """redis-server on a unix socket in dir, appendonly yes + appendfsync always; restarts load its AOF."""

    def __init__(self, d):
        self.dir = d
        self.sock = os.path.join(d, "redis.sock")
        self.proc = None
        self.paused = False
        self.down = False

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--dir", self.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--maxmemory-policy", "noeviction"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        _pid_file(self.dir, "redis", self.proc.pid)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                c = redis.Redis(unix_socket_path=self.sock, socket_timeout=2)
                if c.ping():
                    c.close()
                    self.down = False
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, FileNotFoundError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("redis-server did not come up (see redis.log)")

    def kill9(self):
        if self.proc is None:
            return
        if self.paused:
            self.cont()
        self.proc.kill()
        self.proc.wait()
        _unpid(self.dir, "redis", self.proc.pid)
        self.proc = None
        self.down = True

    def stop(self):
        if self.paused:
            self.cont()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _unpid(self.dir, "redis", self.proc.pid)
        self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def cont(self):
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def client(self, timeout=5):
        return redis.Redis(unix_socket_path=self.sock, socket_timeout=timeout)


class Daemon:
    """One hopperd with its own SQLite file, node id, control socket and clock file (the shim's offset)."""

    def __init__(self, cfg, name, db_dir):
        self.cfg = cfg
        self.name = name
        self.db = os.path.join(db_dir, name + ".db")
        self.sock = os.path.join(cfg.dir, name + ".sock")
        self.clock = os.path.join(cfg.dir, name + ".clock")
        self.log = os.path.join(cfg.dir, name + ".log")
        self.proc = None
        self.stopped = False
        self.deaths = []  # real times this node's process was killed (its workers die with it)
        self.stops = []  # [t_sigstop, t_sigcont] of every SIGSTOP (its workers kept running meanwhile)
        self.starts = 0
        self.set_offset(0)

    def set_offset(self, seconds):
        text = ("%.3f" % seconds).ljust(SHIM_SIZE - 1) + "\n"
        fd = os.open(self.clock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, text.encode(), 0)  # in place: the shim has it mapped
        finally:
            os.close(fd)

    def start(self):
        c = self.cfg
        env = dict(os.environ)
        if c.shim:
            env["LD_PRELOAD"] = c.shim
            env["HOPPER_CLOCK_FILE"] = self.clock
            # ASan wants its runtime first in the library list; the shim only wraps three clock calls
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        args = [os.path.join(c.build, "hopperd"), "--redis-unix=" + c.redis.sock, "--db-path=" + self.db,
                "--node-id=" + self.name, "--worker-path=" + os.path.join(c.build, "hopper-worker"),
                "--ctl-socket=" + self.sock, "--log-level=info"] + c.daemon_flags
        with open(self.log, "ab") as log:
            log.write(("--- start %d: %s\n" % (self.starts, " ".join(args))).encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self.starts += 1
        self.stopped = False
        _pid_file(c.dir, "hopperd." + self.name, self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def workers(self):
        return children(self.proc.pid) if self.alive() else []

    def _record_workers(self):
        for w in self.workers():
            _pid_file(self.cfg.dir, "worker", w)

    def kill9(self):
        if not self.alive():
            return
        self._record_workers()
        self.proc.kill()
        self.proc.wait()
        self.deaths.append(time.time())
        if self.stops and self.stops[-1][1] is None:
            self.stops[-1][1] = time.time()
        _unpid(self.cfg.dir, "hopperd." + self.name, self.proc.pid)
        self.stopped = False

    def sigstop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped = True
            self.stops.append([time.time(), None])

    def sigcont(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False
        if self.stops and self.stops[-1][1] is None:
            self.stops[-1][1] = time.time()

    def terminate(self, limit=30):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self._record_workers()
        self.sigcont()
        self.proc.send_signal(signal.SIGTERM)
        try:
            st = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            st = None
        _unpid(self.cfg.dir, "hopperd." + self.name, self.proc.pid)
        return st

    def ctl(self, *args, timeout=10):
        """hopperctl against this daemon's control socket (peer credentials: tests run as root)."""
        env = dict(os.environ, HOME=self.cfg.dir)
        cmd = [os.path.join(self.cfg.build, "hopperctl"), "--socket", self.sock, "--redis-unix",
               self.cfg.redis.sock] + list(args)
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, b"", b"timeout"
        return p.returncode, p.stdout, p.stderr


class FullFs:
    """A small tmpfs (root only) holding one daemon's SQLite file, which can be filled to ENOSPC and freed."""

    def __init__(self, path, size_mb):
        self.path = path
        self.size_mb = size_mb
        self.mounted = False
        self.filler = os.path.join(path, "filler")

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % self.size_mb, "tmpfs", self.path],
                           capture_output=True)
        self.mounted = r.returncode == 0
        return self.mounted, r.stderr.decode(errors="replace").strip()

    def fill(self):
        chunk = b"\0" * (256 << 10)
        with open(self.filler, "ab") as f:
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
        # the last bytes too, so even a one-page write fails
        try:
            with open(self.filler, "ab") as f:
                while True:
                    f.write(b"\0" * 512)
                    f.flush()
        except OSError:
            pass

    def free(self):
        try:
            os.unlink(self.filler)
        except OSError:
            pass

    def unmount(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.path], capture_output=True)
            self.mounted = False

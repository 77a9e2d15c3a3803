#!/usr/bin/env bash
# bench/ctl.sh BUILD_DIR: the control socket's benchmark (make bench runs it after bench/run.sh; the TCP
# handshake's cost against protocol 1 is bench/ctl_handshake.sh, run right after it). Figures
# are reported, not asserted; medians of BENCH_ROUNDS (default 3) rounds.
#
# On a private redis-server and one hopperd (2 workers), with the tests' Python client (tests/ctl/ctlclient.py):
#   1. submits/s one at a time over the unix socket (CTL_N jobs, default 2000, each waiting for its reply),
#      against a baseline in the same run: the same jobs LPUSHed one at a time by python3-redis straight to
#      Redis (what a client without the socket would do);
#   2. submits/s in batches of 500 (CTL_BATCH_N jobs, default 20000), against pipelined LPUSHes of 500;
#   3. 100 concurrent watchers on a busy daemon: 100 sleep jobs of 30 ms on 2 workers, each watched by its
#      own connection until done, against the same jobs unwatched: hopperd's CPU seconds (utime + stime)
#      and RSS with and without the watchers, and the events delivered.
# The submitted jobs of 1 and 2 go to a queue nobody consumes, so the figures are the socket's cost alone.
set -u
B=${1:?usage: bench/ctl.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-ctlbench.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
REDIS_PID= HD_PID=
cleanup() {
	[ -n "$HD_PID" ] && kill -TERM "$HD_PID" 2>/dev/null && wait "$HD_PID" 2>/dev/null
	[ -n "$REDIS_PID" ] && kill -TERM "$REDIS_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT

redis-server --port 0 --unixsocket "$SOCK" --dir "$TMP" --save '' --appendonly no --daemonize yes \
	--pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log" >/dev/null || exit 1
for _ in $(seq 50); do [ -s "$TMP/redis.pid" ] && redis-cli -s "$SOCK" PING >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(cat "$TMP/redis.pid")
"$B/hopperd" --redis-unix="$SOCK" --db-path="$TMP/n1.db" --node-id=n1 --workers=2 --worker-path="$B/hopper-worker" \
	--log-level=warn >"$TMP/n1.log" 2>&1 &
HD_PID=$!
for _ in $(seq 100); do [ -S "$TMP/n1.sock" ] && break; sleep 0.1; done

CTL_N=${CTL_N:-2000} CTL_BATCH_N=${CTL_BATCH_N:-20000} ROUNDS=${BENCH_ROUNDS:-3} \
	/usr/bin/python3 - "$ROOT" "$TMP" "$SOCK" "$HD_PID" <<'PY'
import os, sys, time, statistics, threading, json
root, tmp, rsock, hpid = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "tests", "ctl"))
import ctlclient, redis
N, BN, ROUNDS = int(os.environ["CTL_N"]), int(os.environ["CTL_BATCH_N"]), int(os.environ["ROUNDS"])
r = redis.Redis(unix_socket_path=rsock)
c = ctlclient.connect(sock=tmp + "/n1.sock", peercred=True)

def cpu_rss():
    with open("/proc/%s/stat" % hpid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/%s/status" % hpid) as f:
        rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
    return (int(st[11]) + int(st[12])) / tick, rss

def job(i, tag):
    return {"id": "%s-%d" % (tag, i), "type": "noop", "queue": "parked"}

res = {k: [] for k in ("base1", "ctl1", "baseB", "ctlB", "cpu0", "cpu100", "rss0", "rss100", "ev")}
for rnd in range(ROUNDS):
    r.delete("hopper:{parked}:queue")
    t0 = time.time()
    for i in range(N):
        r.lpush("hopper:{parked}:queue", json.dumps(job(i, "b%d" % rnd)))
    res["base1"].append(N / (time.time() - t0))
    t0 = time.time()
    for i in range(N):
        c.result("submit", job=job(i, "c%d" % rnd))
    res["ctl1"].append(N / (time.time() - t0))
    t0 = time.time()
    for k in range(0, BN, 500):
        p = r.pipeline(transaction=False)
        for i in range(k, k + 500):
            p.lpush("hopper:{parked}:queue", json.dumps(job(i, "B%d" % rnd)))
        p.execute()
    res["baseB"].append(BN / (time.time() - t0))
    t0 = time.time()
    for k in range(0, BN, 500):
        c.result("submit", jobs=[job(i, "C%d" % rnd) for i in range(k, k + 500)])
    res["ctlB"].append(BN / (time.time() - t0))
    r.delete("hopper:{parked}:queue")

    # 100 sleep jobs on 2 workers, unwatched then watched
    for watched in (0, 100):
        ids = c.result("submit", jobs=[{"type": "sleep", "args": {"ms": 30}, "id": "w%d-%d-%d" % (rnd, watched, i)}
                                       for i in range(100)])["ids"]
        cpu0, rss0 = cpu_rss()
        events = [0]
        lock = threading.Lock()
        def watch(j):
            w = ctlclient.connect(sock=tmp + "/n1.sock", peercred=True)
            n = sum(1 for m in w.stream("watch", job=j) if "event" in m)
            with lock:
                events[0] += n
            w.close()
        ths = [threading.Thread(target=watch, args=(j,)) for j in ids] if watched else []
        for t in ths:
            t.start()
        while not all(c.result("status", job=j)["state"] == "succeeded" for j in ids[-5:]):
            time.sleep(0.05)
        for t in ths:
            t.join()
        cpu1, rss1 = cpu_rss()
        res["cpu%d" % watched].append(cpu1 - cpu0)
        res["rss%d" % watched].append(rss1)
        if watched:
            res["ev"].append(events[0])
med = {k: statistics.median(v) for k, v in res.items() if v}
print("control socket benchmark (medians of %d rounds; client: Python, one connection)" % ROUNDS)
print("  submit one at a time:  %8.0f jobs/s   baseline LPUSH one at a time %8.0f/s   ratio %.2f" %
      (med["ctl1"], med["base1"], med["ctl1"] / med["base1"]))
print("  submit batches of 500: %8.0f jobs/s   baseline pipelined LPUSH      %8.0f/s   ratio %.2f" %
      (med["ctlB"], med["baseB"], med["ctlB"] / med["baseB"]))
print("  100 jobs, unwatched:   hopperd CPU %.2f s, RSS %d KiB" % (med["cpu0"], med["rss0"]))
print("  100 jobs, 100 watchers: hopperd CPU %.2f s, RSS %d KiB, %d events delivered (%.1f per watcher)" %
      (med["cpu100"], med["rss100"], med["ev"], med["ev"] / 100))
print("  watchers' cost: +%.2f s CPU (%.1f ms per watcher), %+d KiB RSS" %
      (med["cpu100"] - med["cpu0"], (med["cpu100"] - med["cpu0"]) * 10, med["rss100"] - med["rss0"]))
PY

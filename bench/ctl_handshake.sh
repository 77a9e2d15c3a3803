#!/usr/bin/env bash
# bench/ctl_handshake.sh BUILD_DIR: the cost of the TCP handshake, protocol 2 (Noise XK, this tree) against
# protocol 1 (today's main: crypto_kx + the token hash as a PSK) in the same invocation. Figures are reported,
# not asserted: medians of BENCH_ROUNDS (default 5) rounds, old and new interleaved.
#
# The baseline: CTL_BASELINE_BUILD (a build dir of the old tree, with its tests/ctl/ctlclient.py at
# CTL_BASELINE_SRC), else `git archive main` built in a temp dir (about a minute on 2 cores). One redis-server,
# one hopperd per protocol (1 worker each), each driven by its own tree's test client (tests/ctl/ctlclient.py,
# Python: the same client code path for both, so the ratio is the protocol's). Per round and protocol:
#   - connections/s: CTL_HS_N (default 300) connect + hello + auth + close, one after the other;
#   - first-request latency: connect to the first ping reply (median over the round's CTL_HS_N / 3 connections);
#   - hopperd CPU (utime + stime) per connection, from /proc (the daemon's share, whatever the client's speed);
#   - the unix socket (unchanged by protocol 2) for reference.
set -u
B=${1:?usage: bench/ctl_handshake.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-hsbench.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -s "$TMP/redis.pid" ] && kill -TERM "$(cat "$TMP/redis.pid")" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT

OLDB=${CTL_BASELINE_BUILD:-}
OLDSRC=${CTL_BASELINE_SRC:-}
if [ -z "$OLDB" ]; then
	mkdir -p "$TMP/main"
	echo "building main ($(git -C "$ROOT" rev-parse --short main)) in $TMP/main for the baseline..." >&2
	git -C "$ROOT" archive main | tar -x -C "$TMP/main" || exit 1
	make -C "$TMP/main" -j2 build/hopperd build/hopper-worker >"$TMP/main-build.log" 2>&1 || {
		tail -20 "$TMP/main-build.log" >&2
		exit 1
	}
	OLDB=$TMP/main/build
	OLDSRC=$TMP/main
fi
[ -n "$OLDSRC" ] || OLDSRC=$(cd "$OLDB/.." && pwd)

redis-server --port 0 --unixsocket "$SOCK" --dir "$TMP" --save '' --appendonly no --daemonize yes \
	--pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log" >/dev/null || exit 1
for _ in $(seq 50); do [ -s "$TMP/redis.pid" ] && redis-cli -s "$SOCK" PING >/dev/null 2>&1 && break; sleep 0.1; done
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() { # NAME BUILD PORT
	"$2/hopperd" --redis-unix="$SOCK" --db-path="$TMP/$1.db" --node-id="$1" --workers=1 --worker-path="$2/hopper-worker" \
		--ctl-tcp="127.0.0.1:$3" --ctl-max-conns=4096 --log-level=warn >"$TMP/$1.log" 2>&1 &
	PIDS+=($!)
}
PNEW=$(port)
start new "$B" "$PNEW"
PNEW_PID=${PIDS[0]}
POLD=$(port)
start old "$OLDB" "$POLD"
POLD_PID=${PIDS[1]}
for _ in $(seq 100); do [ -S "$TMP/new.sock" ] && [ -S "$TMP/old.sock" ] && break; sleep 0.1; done

N=${CTL_HS_N:-300} ROUNDS=${BENCH_ROUNDS:-5} /usr/bin/python3 - "$ROOT" "$OLDSRC" "$TMP" "$PNEW" "$POLD" \
	"$PNEW_PID" "$POLD_PID" <<'PY'
import json, os, statistics, subprocess, sys, time
root, oldsrc, tmp, pnew, pold, pidnew, pidold = sys.argv[1:8]
N, ROUNDS = int(os.environ["N"]), int(os.environ["ROUNDS"])

# One round for one protocol, in a child process that imports that tree's test client.
CHILD = r'''
import os, sys, time, json
sys.path.insert(0, sys.argv[1])
import ctlclient
sock, port, token, pid, n, proto = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
def cpu():
    st = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
kw = {}
if proto == "2":
    kw["server_key"] = ctlclient.probe_key("127.0.0.1", port)
def tcp():
    return ctlclient.connect(tcp="127.0.0.1:%d" % port, token=token, **kw)
c0 = cpu(); t0 = time.perf_counter()
for _ in range(n):
    tcp().close()
dt = time.perf_counter() - t0; c1 = cpu()
lat = []
for _ in range(max(n // 3, 1)):
    t = time.perf_counter()
    c = tcp()
    c.call("ping")
    lat.append(time.perf_counter() - t)
    c.close()
t0 = time.perf_counter()
for _ in range(n):
    ctlclient.connect(sock=sock, token=token).close()
du = time.perf_counter() - t0
lat.sort()
print(json.dumps({"cps": n / dt, "cpu_us": (c1 - c0) / n * 1e6, "lat_ms": lat[len(lat) // 2] * 1e3, "unix_cps": n / du}))
'''

def token(side):
    r = subprocess.run([sys.executable, "-c", r'''
import sys; sys.path.insert(0, sys.argv[1]); import ctlclient
c = ctlclient.connect(sock=sys.argv[2], peercred=True)
print(c.result("token.create", name="bench", scopes=["read"])["token"])''', os.path.join(root if side == "new" else oldsrc, "tests", "ctl"),
                        "%s/%s.sock" % (tmp, side)], capture_output=True, text=True, check=True)
    return r.stdout.strip()

tok = {"new": token("new"), "old": token("old")}
res = {"new": [], "old": []}
def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
load0, t_start = loadavg(), time.time()
for rnd in range(ROUNDS):
    for side in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
        src = root if side == "new" else oldsrc
        r = subprocess.run([sys.executable, "-c", CHILD, os.path.join(src, "tests", "ctl"), "%s/%s.sock" % (tmp, side),
                            pnew if side == "new" else pold, tok[side], pidnew if side == "new" else pidold, str(N),
                            "2" if side == "new" else "1"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("bench child (%s) failed: %s" % (side, r.stderr[-800:]))
        res[side].append(json.loads(r.stdout))
load1 = loadavg()
med = {s: {k: statistics.median(x[k] for x in res[s]) for k in res[s][0]} for s in res}
o, n = med["old"], med["new"]
print("TCP handshake benchmark (medians of %d rounds of %d connections; Python test client of each tree; "
      "interleaved)" % (ROUNDS, N))
print("  connections/s over TCP:      protocol 1 %7.0f   protocol 2 (Noise XK) %7.0f   ratio %.2f" %
      (o["cps"], n["cps"], n["cps"] / o["cps"]))
print("  first-request latency:       protocol 1 %7.2f ms protocol 2            %7.2f ms ratio %.2f" %
      (o["lat_ms"], n["lat_ms"], n["lat_ms"] / o["lat_ms"]))
print("  hopperd CPU per connection:  protocol 1 %7.0f us protocol 2            %7.0f us ratio %.2f" %
      (o["cpu_us"], n["cpu_us"], n["cpu_us"] / o["cpu_us"] if o["cpu_us"] else float("nan")))
print("  unix socket connections/s (unchanged protocol, for reference): old daemon %.0f, new daemon %.0f" %
      (o["unix_cps"], n["unix_cps"]))
print("  machine load (1-min loadavg, %d cores): %.2f at start, %.2f at end of %.0f s (other developers share it)" %
      (os.cpu_count(), load0, load1, time.time() - t_start))
PY

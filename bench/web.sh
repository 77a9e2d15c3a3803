#!/usr/bin/env bash
# bench/web.sh BUILD_DIR: hopper-web's benchmark (make bench-web, and part of make bench). Figures are
# reported, not asserted. On a private redis-server, one hopperd and one hopper-web:
#   1. POST /v1/jobs (one noop job per request) with keep-alive, wrk -t2 -cC for WEB_SECONDS, and POST
#      /webhook/TOKEN (a stored workflow's run per request), against the baseline in the same run: the same
#      submits straight over the control socket by C connections of libhopper (bench/ctl_load.c), C of them.
#      The queue is paused, so the figures are ingress alone (no job runs);
#   2. the cost of 1,000 open event streams on a busy daemon: 4 workers running sleep jobs; hopper-web's and
#      hopperd's CPU seconds (utime + stime) and RSS over WEB_SECONDS with 1,000 SSE streams open on a job
#      that reports progress every 30 ms, against the same window without them.
# Medians of BENCH_ROUNDS (default 3). The machine is shared: the load average is printed with the figures.
set -u
B=${1:?usage: bench/web.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${WEB_CONNS:-16}
SECS=${WEB_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
command -v wrk >/dev/null || { echo "bench/web.sh: wrk is not installed (tools/install-deps.sh)" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-webbench.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
REDIS_PID= HD_PID= WEB_PID=
cleanup() {
	[ -n "$WEB_PID" ] && kill -TERM "$WEB_PID" 2>/dev/null && wait "$WEB_PID" 2>/dev/null
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
"$B/hopperd" --redis-unix="$SOCK" --db-path="$TMP/n1.db" --node-id=n1 --workers=4 --worker-path="$B/hopper-worker" \
	--queues=bench,default --log-level=warn >"$TMP/n1.log" 2>&1 &
HD_PID=$!
for _ in $(seq 100); do [ -S "$TMP/n1.sock" ] && break; sleep 0.1; done
CTL=("$B/hopperctl" --socket "$TMP/n1.sock")
TOKEN=$("${CTL[@]}" token create bench --scopes admin 2>/dev/null) || exit 1
"${CTL[@]}" token create web --scopes submit,read >"$TMP/web.token" 2>/dev/null || exit 1
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WEB=http://127.0.0.1:$PORT
"$B/hopper-web" --socket "$TMP/n1.sock" --token-file "$TMP/web.token" --listen "127.0.0.1:$PORT" \
	--pool-max "$C" --webhook-rate 1000000 --webhook-burst 1000000 --log-level warn >"$TMP/web.log" 2>&1 &
WEB_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "$WEB/metrics" && break; sleep 0.1; done
"${CTL[@]}" pause bench >/dev/null
printf '{"definition": {"name": "hooked", "steps": [{"id": "d", "type": "delay", "params": {"ms": 0}}]}}' >"$TMP/wf.json"
curl -s -X PUT -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" --data-binary @"$TMP/wf.json" "$WEB/v1/workflows/hooked" >"$TMP/put.out" || exit 1
HOOK=$(HOPPER_WEB_URL=$WEB "${CTL[@]}" workflow webhook hooked --create) || { cat "$TMP/put.out"; exit 1; }
cat >"$TMP/jobs.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"type":"noop","queue":"bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
cat >"$TMP/hook.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"event":"push","n":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
# The webhook's runs go to queue default: pause it too, so runs do not compete for the CPU.
"${CTL[@]}" pause default >/dev/null

load() { awk '{print $1}' /proc/loadavg; }
wrk_fig() { # wrk output -> "req/s p50 p99"
	awk '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print r, p50, p99}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== hopper-web ingress: $C keep-alive connections, ${SECS}s per round, $ROUNDS rounds (load average $(load) before)"
for r in $(seq "$ROUNDS"); do
	wrk -t2 -c"$C" -d"${SECS}s" --latency -s "$TMP/jobs.lua" "$WEB/v1/jobs" | wrk_fig >>"$TMP/jobs.txt"
	wrk -t2 -c"$C" -d"${SECS}s" --latency -s "$TMP/hook.lua" "$HOOK" | wrk_fig >>"$TMP/hook.txt"
	"$B/bench/ctl_load" "$TMP/n1.sock" "$TOKEN" "$C" "$SECS" bench | awk '{print $1, $4 "ms", $7 "ms"}' >>"$TMP/ctl.txt"
done
for f in jobs hook ctl; do
	case $f in jobs) what="POST /v1/jobs     " ;; hook) what="POST /webhook/TOKEN" ;; ctl) what="control socket    " ;; esac
	rps=$(awk '{print $1}' "$TMP/$f.txt" | median)
	p50=$(awk '{print $2}' "$TMP/$f.txt" | tr -d 'ms' | median)
	p99=$(awk '{print $3}' "$TMP/$f.txt" | tr -d 'ms' | median)
	echo "$what median $rps req/s, p50 ${p50} ms, p99 ${p99} ms   (rounds: $(awk '{printf "%s ", $1}' "$TMP/$f.txt"))"
	echo "$rps" >"$TMP/$f.rps"
done
awk -v a="$(cat "$TMP/jobs.rps")" -v b="$(cat "$TMP/ctl.rps")" -v c="$(cat "$TMP/hook.rps")" \
	'BEGIN {printf "ratio: POST /v1/jobs = %.2f x the control socket; webhook = %.2f x\n", a / b, c / b}'
echo "(wrk's latency units are as wrk prints them; load average $(load) after)"

"${CTL[@]}" resume default >/dev/null
echo "== 1,000 open event streams on a busy daemon (${SECS}s windows, load average $(load))"
WEB=$WEB TOKEN=$TOKEN SECS=$SECS WEB_PID=$WEB_PID HD_PID=$HD_PID /usr/bin/python3 - <<'PY'
import http.client, json, os, resource, selectors, socket, time, urllib.parse
WEB, TOKEN, SECS = os.environ["WEB"], os.environ["TOKEN"], float(os.environ["SECS"])
pids = {"hopper-web": int(os.environ["WEB_PID"]), "hopperd": int(os.environ["HD_PID"])}
u = urllib.parse.urlparse(WEB)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
tick = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def rss(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

def submit(body):
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("POST", "/v1/jobs", json.dumps(body), {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = json.loads(c.getresponse().read())
    c.close()
    return r

def status(job):
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("GET", "/v1/jobs/" + job, headers={"Authorization": "Bearer " + TOKEN})
    r = json.loads(c.getresponse().read())
    c.close()
    return r

def window(streams):
    before = {k: cpu(p) for k, p in pids.items()}
    time.sleep(SECS)
    return {k: (cpu(p) - before[k], rss(p)) for k, p in pids.items()}

# The 4 workers busy for both windows: the streamed job and 3 others, sleep jobs reporting progress every 30 ms.
long_ms = int(3 * SECS * 1000) + 20000
job = submit({"type": "sleep", "args": {"ms": long_ms}})["id"]
others = [submit({"type": "sleep", "args": {"ms": long_ms}})["id"] for _ in range(3)]
while any(status(j)["state"] != "running" for j in [job] + others):
    time.sleep(0.1)
quiet = window(0)
socks, sel = [], selectors.DefaultSelector()
req = ("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (job, TOKEN)).encode()
for i in range(1000):
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(req)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
got = 0
deadline = time.time() + 3
while time.time() < deadline:  # let every stream open, reading what arrives
    for k, _ in sel.select(0.2):
        try:
            got += len(k.fileobj.recv(65536))
        except BlockingIOError:
            pass
before = {k: cpu(p) for k, p in pids.items()}
end = time.time() + SECS
while time.time() < end:
    for k, _ in sel.select(0.2):
        try:
            got += len(k.fileobj.recv(65536))
        except BlockingIOError:
            pass
loaded = {k: (cpu(p) - before[k], rss(p)) for k, p in pids.items()}
for k in pids:
    print("%-10s without streams: %.2f CPU s, RSS %d MiB;  with 1,000 streams: %.2f CPU s, RSS %d MiB"
          % (k, quiet[k][0], quiet[k][1], loaded[k][0], loaded[k][1]))
print("bytes of events received by the 1,000 streams: %d (the streamed job was %s at the end)" % (got, status(job)["state"]))
for s in socks:
    s.close()
PY
echo "(the machine is shared with 7 other developers' builds and tests: load average $(load))"

#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: hopper's benchmark (make bench). Figures are reported, not asserted.
#
# On a private redis-server (unix socket, temp dir, no persistence), BENCH_ROUNDS rounds (default 3) of:
#   1. baseline: BUILD_DIR/bench/baseline consumes BENCH_N (default 20000) pre-filled noop jobs with one
#      BLMOVE + LREM round trip per job (no worker, no logging);
#   2. hopperd with 1 and with 2 workers: FLUSHALL, pre-fill BENCH_N noop jobs, start hopperd, time from its
#      start until all of them have succeeded (start-up included, nothing subtracted), read hopperd's and one
#      worker's RSS, check the SQLite log holds BENCH_N succeeded attempts;
#   3. on the now idle 2-worker daemon: BENCH_LAT_N (default 500) single noop jobs, 5 ms apart; enqueue-to-start
#      latency = the job hash's started_at - the send time written into the job's created_at.
# Then a table of medians over the rounds.
#
# BENCH_BASE=OTHER_BUILD_DIR (e.g. a build of an older commit) runs that build's hopperd the same way in the
# same invocation, interleaved (round 1: this build, then the other; round 2: ...), so both meet the same
# machine load; the report prints both and the ratio this/other. Each hopperd run also reports Redis
# commands per job (INFO commandstats, the commands inside functions included), CPU us per job of hopperd +
# its workers and of redis-server (/proc), and the machine's idle share during the run (/proc/stat).
# The key layout (hopper:{Q}:queue or the older hopper:queue:Q) is detected from what each build's
# bench/baseline -f writes. BENCH_LAT_N=0 skips the latency runs.
#
# Every wait is bounded (BENCH_TIMEOUT seconds per run, default 180; a run that makes no progress for 20 s is
# abandoned). Everything started here is stopped by PID at the end, also on Ctrl-C.
set -u

B=${1:?usage: bench/run.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_N:-20000}
LAT_N=${BENCH_LAT_N:-500}
TIMEOUT=${BENCH_TIMEOUT:-180}
PY=/usr/bin/python3
# bench/resp.py (the RESP client the embedded helpers import)
export BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
[ -x "$PY" ] || PY=python3
QUEUE=bench
PREFIX=hopper:

BASE=${BENCH_BASE:-}
[ -z "$BASE" ] || BASE=$(cd "$BASE" && pwd) || exit 2
for f in "$B/bench/baseline" "$B/hopperd" "$B/hopper-worker" ${BASE:+"$BASE/bench/baseline" "$BASE/hopperd" "$BASE/hopper-worker"}; do
	[ -x "$f" ] || { echo "bench: $f is missing: run 'make all $B/bench/baseline' first" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "bench: redis-server is not installed (tools/install-deps.sh)" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-bench.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
REDIS_PID=
HOPPERD_PID=

alive() { # PID: running and not a zombie
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# stop_pid PID SIGNAL SECONDS: signal PID, wait up to SECONDS for it to go, then SIGKILL. Sets STOP_STATUS.
stop_pid() {
	local pid=$1 sig=$2 secs=$3 i=0
	STOP_STATUS=
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null
	while alive "$pid" && [ "$i" -lt $((secs * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if alive "$pid"; then
		echo "bench: PID $pid did not exit within ${secs}s of SIG$sig: killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	STOP_STATUS=$?
}

cleanup() {
	trap - EXIT INT TERM
	stop_pid "$HOPPERD_PID" TERM 10
	stop_pid "$REDIS_PID" TERM 10
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

rcli() { redis-cli -s "$SOCK" "$@"; }

# --- helpers in Python (stdlib only): a tiny RESP client, polling, percentiles, medians ---
cat > "$TMP/bench.py" <<'EOF'
import math, os, socket, sqlite3, statistics, sys, time

sys.path.insert(0, os.environ['BENCH_DIR'])
from resp import Redis  # noqa: E402  (bench/resp.py)

def alive(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            return not any(l.startswith('State:') and 'Z' in l for l in f)
    except OSError:
        return False

def db_succeeded(db):
    if not os.path.exists(db):
        return None
    try:
        c = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=1)
        try:
            return c.execute("select count(*) from attempts where state = 'succeeded'").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return None

def wait_done(sock, n, start, timeout, db, qkey, ikey, pid, skey):
    """Polls every 10 ms until n jobs succeeded. Prints 'SECONDS SOURCE'. SOURCE says how completion was seen:
    'stats' (hopper:{QUEUE}:stats succeeded), else 'lists+db' (queue and inflight empty and the log holds n rows)."""
    n, start, timeout, pid = int(n), float(start), float(timeout), int(pid)
    r = Redis(sock)
    last, last_change = -1, time.time()
    while True:
        now = time.time()
        r.send('HGET', skey, 'succeeded'); r.send('LLEN', qkey); r.send('LLEN', ikey)
        ok, qlen, ilen = r.read(), r.read(), r.read()
        if ok is not None and int(ok) >= n:
            print('%.3f stats' % (now - start)); return 0
        if ok is None and qlen == 0 and ilen == 0:
            rows = db_succeeded(db)
            if rows is not None and rows >= n:
                print('%.3f lists+db' % (time.time() - start)); return 0
        progress = (int(ok) if ok is not None else 0, qlen, ilen)
        if progress != last:
            last, last_change = progress, now
        if not alive(pid):
            print('hopperd exited (succeeded=%s queue=%s inflight=%s)' % (ok, qlen, ilen), file=sys.stderr); return 1
        if now - start > timeout or now - last_change > 20:
            print('no completion after %.0f s (succeeded=%s queue=%s inflight=%s)' % (now - start, ok, qlen, ilen),
                  file=sys.stderr)
            return 1
        time.sleep(0.01)

def db_check(db, n, timeout):
    """Waits (bounded) until the log holds n succeeded attempts; prints the count."""
    n, deadline = int(n), time.time() + float(timeout)
    while True:
        rows = db_succeeded(db)
        if (rows is not None and rows >= n) or time.time() > deadline:
            print(rows if rows is not None else 'none'); return 0 if rows == n else 1
        time.sleep(0.05)

def pct(sorted_xs, p):
    return sorted_xs[max(0, math.ceil(p * len(sorted_xs)) - 1)]

def latency(sock, count, gap_ms, timeout, qkey, jobfmt, tag, db):
    """Sends count noop jobs gap_ms apart, waits for all to have started, prints 'p50_ms p99_ms max_ms digits'.
    started_at comes from the execution log (a REAL at full precision: digits 9) when it has every job,
    else from the job hash, where digits is the most decimals seen (3: rounded to the millisecond)."""
    count, gap = int(count), float(gap_ms) / 1000.0
    r = Redis(sock)
    sent = {}
    t0 = time.time()
    for i in range(count):
        due = t0 + i * gap
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        jid = 'lat-%s-%d' % (tag, i)
        t = time.time()
        r.cmd('LPUSH', qkey, '{"id":"%s","type":"noop","created_at":%.6f}' % (jid, t))
        sent[jid] = t
    deadline = time.time() + float(timeout)
    started = {}
    while len(started) < count and time.time() < deadline:
        ids = [j for j in sent if j not in started]
        for j in ids:
            r.send('HGET', jobfmt % j, 'started_at')
        for j in ids:
            v = r.read()
            if v:
                started[j] = v
        if len(started) < count:
            time.sleep(0.05)
    if len(started) < count:
        print('latency: only %d of %d jobs started within %s s' % (len(started), count, timeout), file=sys.stderr)
        if not started:
            return 1
    digits = max(len(v.split('.')[1]) if '.' in v else 0 for v in started.values())
    # The log is group-committed once per loop turn: give it a moment to catch up with the hashes.
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            c = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=1)
            rows = c.execute("select job_id, started_at from attempts where job_id like ? and started_at is not null",
                             ('lat-%s-%%' % tag,)).fetchall()
            c.close()
        except sqlite3.Error:
            rows = []
        precise = {j: repr(float(t)) for j, t in rows if j in started}
        if len(precise) == len(started):
            started, digits = precise, 9
            break
        time.sleep(0.05)
    lat = sorted((float(v) - sent[j]) * 1000.0 for j, v in started.items())
    print('%.3f %.3f %.3f %d' % (pct(lat, 0.50), pct(lat, 0.99), lat[-1], digits))
    return 0

def cmdstats(sock):
    """Prints the total of INFO commandstats calls (commands inside functions are counted too)."""
    r = Redis(sock)
    total = 0
    for line in r.cmd('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_') and 'calls=' in line:
            total += int(line.split('calls=')[1].split(',')[0])
    print(total)
    return 0

def report(path, n, rounds, base):
    vals = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            if v != 'na':
                vals.setdefault(k, []).append(float(v))
    def med(k):
        xs = vals.get(k)
        return statistics.median(xs) if xs else None
    def fmt(x, spec):
        return 'n/a' if x is None else format(x, spec)
    def row(label, k, spec, unit=''):
        xs = vals.get(k, [])
        line = '  %-36s %12s %-6s' % (label, fmt(med(k), spec), unit)
        if base and k != 'base':
            bk = k + '_base'
            m, bm = med(k), med(bk)
            line += ' %12s %-6s x%-6s' % (fmt(bm, spec), unit, fmt(m / bm if m and bm else None, '.2f'))
        if base and k == 'base':
            line += ' %28s' % '(one loop, shared)'
        print(line + ' (%d/%s rounds: %s)' % (len(xs), rounds, ' '.join(format(x, spec) for x in xs)))
    print()
    print('hopper benchmark: medians over %s rounds, N = %s noop jobs, %d CPUs' % (rounds, n, os.cpu_count()))
    print('  (hopperd times run from its start, start-up included, nothing subtracted)')
    if base:
        print('  %-36s %19s %19s %s' % ('', 'this build', 'BENCH_BASE', 'ratio this/base'))
        print('  (BENCH_BASE = %s; its rounds interleaved with this build\'s)' % base)
    row('baseline (BLMOVE+LREM, 1 at a time)', 'base', ',.0f', 'jobs/s')
    row('hopperd, 1 worker', 'w1', ',.0f', 'jobs/s')
    row('hopperd, 2 workers', 'w2', ',.0f', 'jobs/s')
    b, w1, w2 = med('base'), med('w1'), med('w2')
    print('  %-36s %12s' % ('ratio hopperd/baseline, 1 worker', fmt(w1 / b if b and w1 else None, '.2f')))
    print('  %-36s %12s' % ('ratio hopperd/baseline, 2 workers', fmt(w2 / b if b and w2 else None, '.2f')))
    if base:
        b1, b2 = med('w1_base'), med('w2_base')
        print('  %-36s %12s' % ('ratio BENCH_BASE/baseline, 1 worker', fmt(b1 / b if b and b1 else None, '.2f')))
        print('  %-36s %12s' % ('ratio BENCH_BASE/baseline, 2 workers', fmt(b2 / b if b and b2 else None, '.2f')))
    row('Redis commands/job, 1 worker', 'cmds1', '.1f')
    row('Redis commands/job, 2 workers', 'cmds2', '.1f')
    row('CPU us/job hopperd+workers, 1 w', 'cpud1', '.0f', 'us')
    row('CPU us/job redis-server, 1 w', 'cpur1', '.0f', 'us')
    row('CPU us/job hopperd+workers, 2 w', 'cpud2', '.0f', 'us')
    row('CPU us/job redis-server, 2 w', 'cpur2', '.0f', 'us')
    row('machine idle share, 1 worker', 'idle1', '.0f', '%')
    row('machine idle share, 2 workers', 'idle2', '.0f', '%')
    row('enqueue-to-start p50', 'lat_p50', '.3f', 'ms')
    row('enqueue-to-start p99', 'lat_p99', '.3f', 'ms')
    row('enqueue-to-start max', 'lat_max', '.3f', 'ms')
    d = vals.get('lat_digits')
    if d and min(d) <= 3:
        print('  note: started_at came from the job hash, which the daemon writes with %d decimals (rounded to'
              % min(d))
        print('        the %s): each latency is off by up to half of that; the send time is exact to the us.'
              % ('millisecond' if min(d) == 3 else 'unit of its last decimal'))
    elif d:
        print('  note: started_at from the SQLite log (full precision; the job hash rounds it to the ms);')
        print('        created_at = the send time to the microsecond, taken just before the LPUSH.')
    row('hopperd VmRSS after run, 1 worker', 'rss_d1', '.1f', 'MB')
    row('hopperd VmRSS after run, 2 workers', 'rss_d2', '.1f', 'MB')
    row('hopperd VmHWM (peak), 2 workers', 'hwm_d2', '.1f', 'MB')
    row('one worker VmRSS, 2 workers', 'rss_w2', '.1f', 'MB')
    return 0

cmds = {'wait-done': wait_done, 'db-check': db_check, 'latency': latency, 'report': report, 'cmdstats': cmdstats}
sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
EOF

# --- the private Redis ---
# In its own session, so that a Ctrl-C at the terminal does not kill Redis under a draining hopperd
# (setsid does not fork here: a background job of a script is no process-group leader, so $! is Redis).
setsid redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' --appendonly no \
	--dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
	[ -S "$SOCK" ] && rcli PING >/dev/null 2>&1 && break
	sleep 0.05
done
rcli PING >/dev/null 2>&1 || { echo "bench: redis-server did not start:" >&2; tail -5 "$TMP/redis.log" >&2; exit 1; }

RESULTS=$TMP/results
: > "$RESULTS"
record() { echo "$1 $2" >> "$RESULTS"; }
kb_to_mb() { awk -v k="${1:-}" 'BEGIN { if (k == "") print "na"; else printf "%.1f", k / 1024 }'; }
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }

# cpu_ticks PID...: utime+stime (clock ticks) of the processes, summed.
cpu_ticks() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
# idle_ticks: the machine's idle+iowait and total ticks (/proc/stat), "IDLE TOTAL".
idle_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t }' /proc/stat; }
HZ=$(getconf CLK_TCK)

# prefill BUILD: an empty Redis holding N noop jobs, written by BUILD's own baseline (its key layout). Sets
# QKEY, IKEY, SKEY and JOBFMT to that layout's queue, inflight, stats and job-hash key names.
prefill() {
	rcli FLUSHALL >/dev/null || return 1
	"$1/bench/baseline" -s "$SOCK" -k "$PREFIX" -q "$QUEUE" -n "$N" -f >/dev/null || return 1
	if [ "$(rcli EXISTS "${PREFIX}{$QUEUE}:queue")" = 1 ]; then
		QKEY="${PREFIX}{$QUEUE}:queue" IKEY="${PREFIX}{$QUEUE}:inflight:bench" SKEY="${PREFIX}{$QUEUE}:stats"
		JOBFMT="${PREFIX}{$QUEUE}:job:%s"
	else
		QKEY="${PREFIX}queue:$QUEUE" IKEY="${PREFIX}inflight:bench:$QUEUE" SKEY="${PREFIX}stats"
		JOBFMT="${PREFIX}job:%s"
	fi
}

# run_hopperd BUILD SUFFIX ROUND WORKERS: one timed hopperd run of BUILD, its figures recorded with SUFFIX
# ('' or _base). Leaves the daemon running in HOPPERD_PID.
run_hopperd() {
	local bd=$1 sfx=$2 round=$3 w=$4 out secs how
	rm -f "$TMP"/bench.db*
	prefill "$bd" || { echo "bench: prefill failed" >&2; record "w$w$sfx" na; return 1; }
	local log=$TMP/hopperd-r$round-w$w$sfx.log
	local start c0 r0 i0
	rcli CONFIG RESETSTAT >/dev/null
	c0=$("$PY" "$TMP/bench.py" cmdstats "$SOCK")
	r0=$(cpu_ticks "$REDIS_PID")
	i0=$(idle_ticks)
	start=$(date +%s.%N)
	"$bd/hopperd" -c /dev/null --redis-unix="$SOCK" --db-path="$TMP/bench.db" --node-id=bench --workers="$w" \
		--worker-path="$bd/hopper-worker" --log-level=warn --queues="$QUEUE" 2>"$log" &
	HOPPERD_PID=$!
	if ! out=$("$PY" "$TMP/bench.py" wait-done "$SOCK" "$N" "$start" "$TIMEOUT" "$TMP/bench.db" \
		"$QKEY" "$IKEY" "$HOPPERD_PID" "$SKEY"); then
		echo "bench: round $round, $w worker(s)$sfx: hopperd did not finish $N jobs; its log ends:" >&2
		tail -5 "$log" >&2
		record "w$w$sfx" na
		return 1
	fi
	local i1 r1 c1 d1 wpids
	i1=$(idle_ticks)
	r1=$(cpu_ticks "$REDIS_PID")
	wpids=$(pgrep -P "$HOPPERD_PID")
	# shellcheck disable=SC2086
	d1=$(cpu_ticks "$HOPPERD_PID" $wpids)
	c1=$("$PY" "$TMP/bench.py" cmdstats "$SOCK")
	read -r secs how <<<"$out"
	local rate cmds cpud cpur idle
	rate=$(awk -v n="$N" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
	# The poller's own commands (3 per 10 ms, plus INFO) are subtracted.
	cmds=$(awk -v a="$c0" -v b="$c1" -v n="$N" -v s="$secs" 'BEGIN { printf "%.1f", (b - a - 1 - 3 * s * 100) / n }')
	cpud=$(awk -v t="$d1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
	cpur=$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / hz * 1e6 / n }')
	idle=$(awk -v a="$i0" -v b="$i1" 'BEGIN { split(a, x, " "); split(b, y, " ");
		if (y[2] > x[2]) printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "na" }')
	record "w$w$sfx" "$rate"
	record "cmds$w$sfx" "$cmds"
	record "cpud$w$sfx" "$cpud"
	record "cpur$w$sfx" "$cpur"
	record "idle$w$sfx" "$idle"
	local wpid dkb hwm wkb
	dkb=$(proc_kb "$HOPPERD_PID" VmRSS)
	hwm=$(proc_kb "$HOPPERD_PID" VmHWM)
	wpid=$(head -1 <<<"$wpids")
	wkb=
	[ -n "$wpid" ] && wkb=$(proc_kb "$wpid" VmRSS)
	record "rss_d$w$sfx" "$(kb_to_mb "$dkb")"
	[ "$w" = 2 ] && { record "hwm_d2$sfx" "$(kb_to_mb "$hwm")"; record "rss_w2$sfx" "$(kb_to_mb "$wkb")"; }
	local rows
	rows=$("$PY" "$TMP/bench.py" db-check "$TMP/bench.db" "$N" 10) ||
		echo "bench: round $round, $w worker(s)$sfx: the SQLite log holds $rows succeeded attempts, expected $N" >&2
	printf '  %-5s hopperd, %d worker(s): %6d jobs/s (%s s, via %s; log rows %s; %s cmds/job; CPU us/job %s + redis %s; idle %s%%; RSS %s/%s MB)\n' \
		"${sfx:-this}" "$w" "$rate" "$secs" "$how" "$rows" "$cmds" "$cpud" "$cpur" "$idle" "$(kb_to_mb "$dkb")" "$(kb_to_mb "$wkb")"
}

stop_hopperd() {
	stop_pid "$HOPPERD_PID" TERM 40
	[ "$STOP_STATUS" = 0 ] || echo "bench: hopperd exited with status $STOP_STATUS after SIGTERM (expected 0)" >&2
	HOPPERD_PID=
}

# one_build BUILD SUFFIX ROUND: hopperd with 1 then 2 workers, then latency on the idle 2-worker daemon.
one_build() {
	local bd=$1 sfx=$2 round=$3
	run_hopperd "$bd" "$sfx" "$round" 1
	stop_hopperd
	if run_hopperd "$bd" "$sfx" "$round" 2 && [ "$LAT_N" -gt 0 ]; then
		if out=$("$PY" "$TMP/bench.py" latency "$SOCK" "$LAT_N" 5 30 "$QKEY" "$JOBFMT" "$round$sfx" "$TMP/bench.db"); then
			read -r p50 p99 max digits <<<"$out"
			record "lat_p50$sfx" "$p50"
			record "lat_p99$sfx" "$p99"
			record "lat_max$sfx" "$max"
			record "lat_digits$sfx" "$digits"
			if [ "$digits" = 9 ]; then src="started_at from the SQLite log"; else src="started_at from the job hash, $digits decimals"; fi
			echo "  ${sfx:-this}  latency ($LAT_N jobs, 5 ms apart): p50 $p50 ms, p99 $p99 ms, max $max ms ($src)"
		else
			echo "bench: latency run failed" >&2
		fi
	fi
	stop_hopperd
}

echo "bench: $ROUNDS round(s), N = $N, private redis-server at $SOCK${BASE:+, BENCH_BASE=$BASE}"
echo "  load at start: $(uptime)"
for round in $(seq "$ROUNDS"); do
	echo "round $round:"
	if prefill "$B" && out=$(timeout "$TIMEOUT" "$B/bench/baseline" -s "$SOCK" -k "$PREFIX" -q "$QUEUE" -n "$N"); then
		rate=$(sed -n 's/.*: \([0-9]*\) jobs\/s$/\1/p' <<<"$out")
		record base "${rate:-na}"
		echo "  $out"
	else
		record base na
		echo "bench: baseline failed" >&2
	fi
	# Alternate which build goes first, so neither always meets the other's leftovers.
	if [ -n "$BASE" ] && [ $((round % 2)) = 0 ]; then
		one_build "$BASE" _base "$round"
		one_build "$B" "" "$round"
	else
		one_build "$B" "" "$round"
		[ -z "$BASE" ] || one_build "$BASE" _base "$round"
	fi
done
echo "  load at end: $(uptime)"

"$PY" "$TMP/bench.py" report "$RESULTS" "$N" "$ROUNDS" "$BASE"

#!/usr/bin/env bash
# bench/limits.sh BUILD_DIR: the cost per job of a rate-limited and a concurrency-keyed job against a plain
# one (issue #17; make bench-limits, part of make bench). Figures are reported, not asserted.
#
# On a private redis-server (unix socket, temp dir, no persistence), BENCH_ROUNDS rounds (default 3); each
# round runs every kind once, in an order rotated per round so no kind always meets the others' leftovers:
#   plain     BENCH_N (default 5000) noop jobs;
#   limited   the same with "rate_limit": {"key": "bench", "rate": "100000/s", "burst": 100}: one bucket, far above
#             what one daemon claims, so no job waits (the run reports the deferrals: 0 expected);
#   keyed     the same with "concurrency": {"key": "bench", "limit": BENCH_CC_LIMIT} (default 1000: above the
#             workers and the daemon's prefetch, so no job waits; the waits are reported);
#   keyedw    (only with BENCH_KINDS including it) the key's limit = the workers: jobs the daemon prefetched
#             wait for a slot and are woken, the cost of the waiting path.
# For each run: FLUSHALL, pre-fill the jobs, start hopperd (BENCH_WORKERS workers, default 2), time from
# its start until all have succeeded (start-up included), then read Redis commands per job (INFO
# commandstats, the commands inside functions included, the poller's own subtracted exactly) and CPU us per
# job of hopperd + its workers and of redis-server (/proc/PID/stat utime+stime, as bench/run.sh does).
# The report gives medians and each kind's ratio to plain.
set -u

B=${1:?usage: bench/limits.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_N:-5000}
W=${BENCH_WORKERS:-2}
CC_LIMIT=${BENCH_CC_LIMIT:-1000}
KINDS=${BENCH_KINDS:-plain limited keyed}
TIMEOUT=${BENCH_TIMEOUT:-180}
PY=/usr/bin/python3
# bench/resp.py (the RESP client the embedded helpers import)
export BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
[ -x "$PY" ] || PY=python3
QUEUE=bench
for f in "$B/hopperd" "$B/hopper-worker"; do
	[ -x "$f" ] || { echo "bench-limits: $f is missing: run 'make all' first" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "bench-limits: redis-server is not installed" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-bench-limits.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
REDIS_PID=
HOPPERD_PID=

stop_pid() { # PID SIGNAL SECONDS: signal, wait, then SIGKILL. Sets STOP_STATUS.
	local pid=$1 i=0
	STOP_STATUS=
	[ -n "$pid" ] || return 0
	kill "-$2" "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null &&
		[ "$i" -lt $(($3 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && kill -KILL "$pid"
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
trap 'echo "bench-limits: interrupted" >&2; exit 130' INT TERM

# --- helpers in Python (stdlib only): pre-fill, completion wait, commandstats, the report ---
cat >"$TMP/limits.py" <<'EOF'
import json, os, socket, statistics, sys, time

sys.path.insert(0, os.environ['BENCH_DIR'])
from resp import Redis  # noqa: E402  (bench/resp.py)

def prefill(sock, qkey, n, kind, limit):
    """LPUSHes n noop jobs of the kind, 500 to a command."""
    extra = {'plain': {}, 'limited': {'rate_limit': {'key': 'bench', 'rate': '100000/s', 'burst': 100}},
             'keyed': {'concurrency': {'key': 'bench', 'limit': int(limit)}},
             'keyedw': {'concurrency': {'key': 'bench', 'limit': int(limit)}}}[kind]
    r, n = Redis(sock), int(n)
    for lo in range(0, n, 500):
        msgs = [json.dumps(dict({'id': 'b-%d' % i, 'type': 'noop'}, **extra)) for i in range(lo, min(n, lo + 500))]
        r.cmd('LPUSH', qkey, *msgs)
    return 0

def wait_done(sock, skey, n, start, timeout):
    """Polls every 10 ms until n jobs succeeded; prints 'SECONDS POLLS' (POLLS: commands this poller sent)."""
    r, n, start = Redis(sock), int(n), float(start)
    polls, last, last_change = 0, -1, time.time()
    while True:
        ok = int(r.cmd('HGET', skey, 'succeeded') or 0)
        polls += 1
        now = time.time()
        if ok >= n:
            print('%.3f %d' % (now - start, polls)); return 0
        if ok != last:
            last, last_change = ok, now
        if now - start > float(timeout) or now - last_change > 20:
            print('no completion after %.0f s (succeeded=%d)' % (now - start, ok), file=sys.stderr); return 1
        time.sleep(0.01)

def cmdstats(sock):
    total = 0
    for line in Redis(sock).cmd('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_') and 'calls=' in line:
            total += int(line.split('calls=')[1].split(',')[0])
    print(total)
    return 0

def report(path, n, rounds, workers, kinds):
    vals = {}
    for line in open(path):
        k, v = line.split()
        vals.setdefault(k, []).append(float(v))
    med = lambda k: statistics.median(vals[k]) if vals.get(k) else None
    cols = [('jobs/s', 'rate', ',.0f'), ('Redis cmds/job', 'cmds', '.1f'), ('CPU us/job hopperd+workers', 'cpud', '.0f'),
            ('CPU us/job redis-server', 'cpur', '.0f'), ('waits (deferrals)', 'waits', '.0f')]
    print()
    print('hopper limits benchmark: medians over %s rounds, N = %s noop jobs, %s workers, %d CPUs'
          % (rounds, n, workers, os.cpu_count()))
    print('  %-8s' % 'kind' + ''.join(' %26s' % c[0] for c in cols))
    for kind in kinds.split():
        cells = []
        for label, key, spec in cols:
            m, p = med(kind + '_' + key), med('plain_' + key)
            cell = 'n/a' if m is None else format(m, spec)
            if kind != 'plain' and key != 'waits' and m is not None and p:
                cell += ' (x%.2f)' % (m / p)
            cells.append(cell)
        print('  %-8s' % kind + ''.join(' %26s' % c for c in cells))
    print('  (xR: ratio to plain; per-round values:')
    for kind in kinds.split():
        print('   %-8s %s)' % (kind, '; '.join('%s %s' % (c[1], ' '.join(format(x, c[2]) for x in vals.get(kind + '_' + c[1], [])))
                                             for c in cols)))
    return 0

cmds = {'prefill': prefill, 'wait-done': wait_done, 'cmdstats': cmdstats, 'report': report}
sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
EOF

setsid redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' --appendonly no \
	--dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
	[ -S "$SOCK" ] && redis-cli -s "$SOCK" PING >/dev/null 2>&1 && break
	sleep 0.05
done
redis-cli -s "$SOCK" PING >/dev/null 2>&1 || { echo "bench-limits: redis-server did not start" >&2; exit 1; }
rcli() { redis-cli -s "$SOCK" "$@"; }

RESULTS=$TMP/results
: >"$RESULTS"
record() { echo "$1 $2" >>"$RESULTS"; }
cpu_ticks() { # PID...: utime+stime (clock ticks), summed
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)
stat_of() { # NAME: a counter of the queue's stats hash, 0 when absent
	local v
	v=$(rcli HGET "$SKEY" "$1")
	echo "${v:-0}"
}
QKEY="hopper:{$QUEUE}:queue"
SKEY="hopper:{$QUEUE}:stats"

# run_kind KIND ROUND: one timed hopperd run over N jobs of KIND.
run_kind() {
	local kind=$1 round=$2 limit=$CC_LIMIT out secs polls
	[ "$kind" = keyedw ] && limit=$W
	rm -f "$TMP"/bench.db*
	rcli FLUSHALL >/dev/null
	"$PY" "$TMP/limits.py" prefill "$SOCK" "$QKEY" "$N" "$kind" "$limit" || { echo "bench-limits: prefill failed" >&2; return 1; }
	rcli CONFIG RESETSTAT >/dev/null
	local c0 r0 start log=$TMP/hopperd-$kind-$round.log
	c0=$("$PY" "$TMP/limits.py" cmdstats "$SOCK")
	r0=$(cpu_ticks "$REDIS_PID")
	start=$(date +%s.%N)
	"$B/hopperd" -c /dev/null --redis-unix="$SOCK" --db-path="$TMP/bench.db" --node-id=bench --workers="$W" \
		--worker-path="$B/hopper-worker" --log-level=warn --queues="$QUEUE" 2>"$log" &
	HOPPERD_PID=$!
	if ! out=$("$PY" "$TMP/limits.py" wait-done "$SOCK" "$SKEY" "$N" "$start" "$TIMEOUT"); then
		echo "bench-limits: round $round, $kind: hopperd did not finish; its log ends:" >&2
		tail -5 "$log" >&2
		stop_pid "$HOPPERD_PID" TERM 40
		HOPPERD_PID=
		return 1
	fi
	local r1 d1 c1 wpids waits
	r1=$(cpu_ticks "$REDIS_PID")
	wpids=$(pgrep -P "$HOPPERD_PID")
	# shellcheck disable=SC2086
	d1=$(cpu_ticks "$HOPPERD_PID" $wpids)
	c1=$("$PY" "$TMP/limits.py" cmdstats "$SOCK")
	waits=$(($(stat_of rate_limited) + $(stat_of concurrency_waited)))
	read -r secs polls <<<"$out"
	local rate cmds cpud cpur
	rate=$(awk -v n="$N" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
	# Subtracted: the poller's HGETs and the first INFO (the second is counted after it is read).
	cmds=$(awk -v a="$c0" -v b="$c1" -v p="$polls" -v n="$N" 'BEGIN { printf "%.2f", (b - a - 1 - p) / n }')
	cpud=$(awk -v t="$d1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	cpur=$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }')
	record "${kind}_rate" "$rate"
	record "${kind}_cmds" "$cmds"
	record "${kind}_cpud" "$cpud"
	record "${kind}_cpur" "$cpur"
	record "${kind}_waits" "$waits"
	printf '  %-8s %6d jobs/s (%s s); %s cmds/job; CPU us/job %s + redis %s; waits %s\n' \
		"$kind" "$rate" "$secs" "$cmds" "$cpud" "$cpur" "$waits"
	stop_pid "$HOPPERD_PID" TERM 40
	[ "$STOP_STATUS" = 0 ] || echo "bench-limits: hopperd exited with status $STOP_STATUS after SIGTERM" >&2
	HOPPERD_PID=
}

read -r -a kinds <<<"$KINDS"
echo "bench-limits: $ROUNDS round(s), N = $N, $W workers, kinds: $KINDS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
	echo "round $round:"
	nk=${#kinds[@]}
	for ((i = 0; i < nk; i++)); do
		run_kind "${kinds[$(((i + round - 1) % nk))]}" "$round"
	done
done
echo "  load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" "$TMP/limits.py" report "$RESULTS" "$N" "$ROUNDS" "$W" "$KINDS"

#!/usr/bin/env bash
# bench/redis_cost.sh BUILD_DIR [LUA_DIR...] (make bench-redis-cost): what a noop job costs Redis, in
# instructions, free of the machine's noise. One drain of BENCH_N (default 5000) pre-filled noop jobs by
# BUILD_DIR's hopperd (2 workers) on a private redis-server is recorded with MONITOR, with the state before
# it; bench/redis_replay.py then sends the recorded function calls again to a redis-server under callgrind,
# once per LUA_DIR (default: this tree's daemon/lua), and prints instructions and commands per job. To weigh
# a change of the Lua code: pass the old and the new daemon/lua (both must take the recorded arguments).
# Figures are reported, not asserted. Everything started here is stopped by PID; the temp dir is removed.
set -u
B=${1:?usage: bench/redis_cost.sh BUILD_DIR [LUA_DIR...]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$HERE/../daemon/lua"
N=${BENCH_N:-5000}
for t in redis-server redis-cli valgrind; do
	command -v "$t" >/dev/null || { echo "bench: $t is not installed" >&2; exit 2; }
done
[ -x "$B/hopperd" ] && [ -x "$B/bench/baseline" ] || { echo "bench: build $B first (make all $B/bench/baseline)" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-cost.XXXXXX") || exit 1
SOCK=$TMP/redis.sock
RP= HP= MP=
cleanup() {
	for p in $HP $MP $RP; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

redis-server --port 0 --unixsocket "$SOCK" --dir "$TMP" --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
RP=$!
for _ in $(seq 100); do [ "$(redis-cli -s "$SOCK" PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
"$B/bench/baseline" -s "$SOCK" -k hopper: -q bench -n "$N" -f >/dev/null || exit 1
redis-cli -s "$SOCK" SAVE >/dev/null && cp "$TMP/dump.rdb" "$TMP/before.rdb" || exit 1
redis-cli -s "$SOCK" MONITOR >"$TMP/monitor.txt" &
MP=$!
sleep 0.3
"$B/hopperd" -c /dev/null --redis-unix="$SOCK" --db-path="$TMP/bench.db" --node-id=bench --workers=2 \
	--worker-path="$B/hopper-worker" --log-level=warn --queues=bench 2>"$TMP/hopperd.log" &
HP=$!
for _ in $(seq 1200); do
	s=$(redis-cli -s "$SOCK" HGET 'hopper:{bench}:stats' succeeded)
	[ "${s:-0}" -ge "$N" ] && break
	sleep 0.1
done
[ "${s:-0}" -ge "$N" ] || { echo "bench: hopperd did not finish $N jobs" >&2; exit 1; }
kill "$HP" && wait "$HP"
HP=
sleep 0.2
kill "$MP"
MP=
grep -v '\[0 lua\]' "$TMP/monitor.txt" | grep -E '"(FCALL|FCALL_RO)"' >"$TMP/calls.txt"
echo "bench: $N noop jobs, $(wc -l <"$TMP/calls.txt") function calls recorded; replaying under callgrind"
/usr/bin/python3 "$HERE/redis_replay.py" "$TMP/calls.txt" "$TMP/before.rdb" "$N" "$@"

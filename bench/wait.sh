#!/usr/bin/env bash
# bench/wait.sh [BUILD_DIR]: the cost of redis_wait_replicas=1. A master and one replica on loopback (TCP
# replication, unix socket for hopperd), one hopperd with 2 workers; BENCH_ROUNDS rounds (default 3), each
# runs redis_wait_replicas=0 and then =1 on the same servers: BENCH_N (default 5000) noop jobs pushed into a
# running daemon, timed from the push until all have succeeded. Prints jobs/s per run and the medians.
# Reported, not asserted. Uses tests/lib.sh's helpers: everything started is stopped by PID at exit.
HOPPER_BUILD=${1:-build}
. "$(dirname "$0")/../tests/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_N:-5000}
read -r PM PR <<<"$(py -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')"
start_rs() {
	local name=$1 port=$2
	shift 2
	redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$T/$name.sock" --unixsocketperm 700 --dir "$T" \
		--dbfilename "$name.rdb" --save '' --appendonly no --daemonize yes --pidfile "$T/$name.pid" \
		--logfile "$T/$name.redis.log" "$@" >/dev/null || return 1
	wait_for "$name pidfile" 10 test -s "$T/$name.pid" || return 1
	cp "$T/$name.pid" "$T/pids/aux.$name"
	wait_for "$name PING" 10 sh -c "[ \"\$(redis-cli -p $port PING)\" = PONG ]"
}
start_rs master "$PM" || exit 1
start_rs replica "$PR" --replicaof 127.0.0.1 "$PM" || exit 1
wait_for "replica linked" 20 sh -c "redis-cli -p $PR INFO replication | grep -q master_link_status:up"
SOCK=$T/master.sock

run() { # WAIT ROUND: prints jobs/s
	local w=$1 r=$2 name="b$1r$2"
	start_hopperd "$name" --workers=2 --redis-wait-replicas="$w" --redis-wait-timeout-ms=1000 >/dev/null || return 1
	seq 1 "$N" | awk -v p="$name-" '{ printf "{\"id\":\"%s%d\",\"type\":\"noop\"}\n", p, $1 }' >"$T/$name.jsonl"
	local t0 t1
	t0=$(now)
	push_many default "$T/$name.jsonl" || return 1
	while [ "$(count_state "$name-" 1 "$N" succeeded)" -lt "$N" ]; do sleep 0.05; done
	t1=$(now)
	stop_hopperd "$name" >/dev/null
	awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
off=() on=()
for ((r = 1; r <= ROUNDS; r++)); do
	a=$(run 0 "$r") b=$(run 1 "$r")
	off+=("$a") on+=("$b")
	echo "round $r: redis_wait_replicas=0 $a jobs/s, =1 $b jobs/s"
done
med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mo=$(med "${off[@]}") mn=$(med "${on[@]}")
echo "median of $ROUNDS ($N noop jobs, 2 workers, replica on loopback): off $mo jobs/s, WAIT 1 $mn jobs/s" \
	"($(awk -v a="$mn" -v b="$mo" 'BEGIN { printf "%.0f%%", 100 * a / b }') of off)"
end_scenario

#!/usr/bin/env bash
# sentinel_wait: redis_wait_replicas and the +switch-master watch. A master, one replica and three Sentinels
# on private 127.0.0.1 ports; one daemon with redis_wait_replicas=1. With the replica live every batch is
# acknowledged by it (WAIT answered 1: the short-WAIT counter stays 0). With the replica SIGSTOPped WAIT
# times out: the counter grows, one warning line, and jobs and submissions still end. Then SENTINEL
# FAILOVER while the old master stays up and reachable: the daemon follows the +switch-master announcement
# (its log line names it) within seconds, and no write of its reaches the old master after the switch.
. "$(dirname "$0")/../lib.sh"

NAME=hw
# freeports N: N distinct free ports below the ephemeral range (as in sentinel_failover.sh).
freeports() {
	py -c '
import random, socket, sys
got, held = [], []
while len(got) < int(sys.argv[1]):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    if p not in got:
        got.append(p); held.append(s)
print(" ".join(map(str, got)))' "$1"
}
read -r PM PR S1 S2 S3 <<<"$(freeports 5)"

# start_rs NAME PORT [args]: a redis-server on 127.0.0.1:PORT and $T/NAME.sock, ended by the exit trap.
start_rs() {
	local name=$1 port=$2
	shift 2
	rm -f "$T/$name.pid"
	redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$T/$name.sock" --unixsocketperm 700 --dir "$T" \
		--dbfilename "$name.rdb" --save '' --appendonly no --daemonize yes --pidfile "$T/$name.pid" \
		--logfile "$T/$name.redis.log" "$@" >/dev/null || return 1
	wait_for "$name pidfile" 10 test -s "$T/$name.pid" || return 1
	cp "$T/$name.pid" "$T/pids/aux.$name"
	wait_for "$name PING" 10 sh -c "[ \"\$(redis-cli -p $port PING)\" = PONG ]"
}
start_sentinel() {
	local name=$1 port=$2
	cat >"$T/$name.conf" <<-EOF2
		port $port
		bind 127.0.0.1
		dir $T
		sentinel monitor $NAME 127.0.0.1 $PM 2
		sentinel down-after-milliseconds $NAME 1000
		sentinel failover-timeout $NAME 5000
		sentinel parallel-syncs $NAME 1
	EOF2
	rm -f "$T/$name.pid"
	redis-server "$T/$name.conf" --sentinel --daemonize yes --pidfile "$T/$name.pid" \
		--logfile "$T/$name.redis.log" >/dev/null || return 1
	wait_for "$name pidfile" 10 test -s "$T/$name.pid" || return 1
	cp "$T/$name.pid" "$T/pids/aux.$name"
}
role_of() { redis-cli -p "$1" ROLE 2>/dev/null | head -1; }
sentinel_peers() { redis-cli -p "$1" SENTINEL sentinels "$NAME" 2>/dev/null | grep -c '^name$'; }
all_sentinels_met() {
	[ "$(sentinel_peers "$S1")" = 2 ] && [ "$(sentinel_peers "$S2")" = 2 ] && [ "$(sentinel_peers "$S3")" = 2 ]
}
replica_linked() { redis-cli -p "$PR" INFO replication | grep -q 'master_link_status:up'; }
cmdstat() {
	local n
	n=$(redis-cli -p "$1" INFO commandstats | tr -d '\r' | sed -n "s/^cmdstat_$2:calls=\([0-9]*\),.*/\1/p")
	echo "${n:-0}"
}
rejected() {
	redis-cli -p "$1" INFO commandstats | tr -d '\r' | grep -o 'rejected_calls=[0-9]*' |
		awk -F= '{ s += $2 } END { print s + 0 }'
}
logged() { grep -q -- "$2" "$T/$1.log"; }
local_stat() { ctl stats --json 2>/dev/null | py -c "import json,sys; print(json.load(sys.stdin)['local']['$1'])"; }

start_rs master "$PM" || { not_ok "start the master" "see master.redis.log"; exit 1; }
start_rs replica "$PR" --replicaof 127.0.0.1 "$PM" || { not_ok "start the replica" "see replica.redis.log"; exit 1; }
wait_for "replica linked" 20 replica_linked
for s in 1 2 3; do
	p=S$s
	start_sentinel "s$s" "${!p}" || { not_ok "start sentinel s$s" "see s$s.redis.log"; exit 1; }
done
wait_for "the sentinels know each other" 30 all_sentinels_met
check "each Sentinel knows the two others" all_sentinels_met
SOCK=$T/master.sock
start_hopperd n1 --workers=2 --lease-s=4 --heartbeat-s=1 --redis-sentinels="127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3" \
	--redis-master-name="$NAME" --redis-wait-replicas=1 --redis-wait-timeout-ms=300 || exit 1
wait_for "n1 watches +switch-master" 20 logged n1 "watching +switch-master on sentinel"
check "n1 subscribed to +switch-master on a Sentinel" logged n1 "watching +switch-master on sentinel 127.0.0.1:$S1"

# --- replica live: every batch WAITs and gets its acknowledgement ---
seq 1 100 | awk '{ printf "{\"id\":\"wl-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/live.jsonl"
push_many default "$T/live.jsonl" || not_ok "push 100 jobs" "redis-cli --pipe reported errors"
wait_for "100 jobs succeeded" 60 all_in_state wl- 1 100 succeeded
check_eq "the 100 jobs succeeded with the replica live" "$(job_states wl- 1 100)" "succeeded=100"
check_ge "the daemon sent WAIT (commandstats on the master)" "$(cmdstat "$PM" wait)" 1
check_eq "no WAIT came back short" "$(local_stat redis_wait_short)" 0
check "no short-WAIT warning" sh -c "! grep -q 'redis: WAIT' '$T/n1.log'"
out=$(ctl submit noop --id ws-1 2>&1)
check_match "a submission is acknowledged" "$out" "ws-1"
wait_for "ws-1 succeeded" 30 state_is ws-1 succeeded
check_eq "and its job succeeded" "$(jstate ws-1)" succeeded

# --- replica stopped: WAIT times out, is counted and warned, and the daemon carries on ---
kill -STOP "$(cat "$T/pids/aux.replica")"
seq 1 20 | awk '{ printf "{\"id\":\"wd-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/down.jsonl"
push_many default "$T/down.jsonl" || not_ok "push 20 jobs" "redis-cli --pipe reported errors"
t0=$(now)
out=$(ctl submit noop --id ws-2 2>&1)
t1=$(now)
check_match "a submission is still acknowledged with the replica stopped" "$out" "ws-2"
check "after the WAIT timeout at least (0.3 s)" fcmp "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" ">=" 0.29
wait_for "20 jobs succeeded without the replica" 60 all_in_state wd- 1 20 succeeded
check_eq "the 20 jobs still end" "$(job_states wd- 1 20)" "succeeded=20"
check_ge "short WAITs are counted (redis_wait_short)" "$(local_stat redis_wait_short)" 1
check "a warning is logged" logged n1 "redis: WAIT: only 0 of 1 replicas acknowledged within 300 ms"
check_le "rate-limited: a few warning lines, not one per batch" "$(grep -c 'redis: WAIT: only' "$T/n1.log")" 3
check "n1 is alive" hopperd_alive n1
kill -CONT "$(cat "$T/pids/aux.replica")"
wait_for "replica linked again" 30 replica_linked

# --- +switch-master while the old master stays up and reachable ---
failover_taken() {
	redis-cli -p "$S1" SENTINEL FAILOVER "$NAME" >/dev/null 2>&1
	[ "$(role_of "$PR")" = master ]
}
wait_for "the manual failover promotes the replica" 60 failover_taken
check_eq "SENTINEL FAILOVER promoted the replica" "$(role_of "$PR")" master
switched() { grep -q "+switch-master from sentinel .*: master $NAME is now 127.0.0.1:$PR (was 127.0.0.1:$PM)" "$T/n1.log"; }
wait_for "n1 hears +switch-master" 5 switched
check "n1 followed +switch-master within seconds (its log line names it)" switched
check "the old master stays up and reachable" sh -c "[ \"\$(redis-cli -p $PM PING)\" = PONG ]"
SOCK=$T/replica.sock
seen() { rcli HGET "$(gkey seen)" n1; }
s0=$(seen)
beats() { [ -n "$s0" ] && [ "$(seen)" -gt "$s0" ]; }
wait_for "n1 heartbeats on the new master" 30 beats
check "n1 heartbeats on the new master" beats
wait_for "the old master is a replica" 30 sh -c "[ \"\$(redis-cli -p $PM ROLE | head -1)\" = slave ]"
old_linked() { redis-cli -p "$PM" INFO replication | grep -q 'master_link_status:up'; }
wait_for "the old master replicates the new one" 30 old_linked
fc0=$(cmdstat "$PM" fcall)
short0=$(local_stat redis_wait_short) # (WAITs during the switch may come back short: counted, carried on)
seq 1 50 | awk '{ printf "{\"id\":\"wf-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/after.jsonl"
push_many default "$T/after.jsonl" || not_ok "push 50 jobs" "redis-cli --pipe reported errors"
wait_for "50 jobs succeeded on the new master" 60 all_in_state wf- 1 50 succeeded
check_eq "the 50 jobs pushed after the switch succeeded" "$(job_states wf- 1 50)" "succeeded=50"
check_eq "no FCALL reached the old master after the switch" "$(cmdstat "$PM" fcall)" "$fc0"
check_eq "the old master refused nothing (no write was tried there)" "$(rejected "$PM")" 0
check "no READONLY was needed to notice" sh -c "! grep -q 'connection: READONLY' '$T/n1.log'"
check_eq "the old master, now the replica, acknowledges each batch: no new short WAIT" \
	"$(local_stat redis_wait_short)" "$short0"
finish_hopperd n1
end_scenario

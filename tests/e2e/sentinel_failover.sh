#!/usr/bin/env bash
# sentinel_failover: hopperd finds its Redis through Redis Sentinel (redis_sentinels, redis_master_name) and
# follows a failover. A master, one replica and three Sentinels (quorum 2) on private 127.0.0.1 ports; two
# daemons. First a lying "Sentinel" that names the replica: the daemon it serves must refuse it (ROLE) and
# write nothing there. Then a daemon starts while one Sentinel is down (it asks the next), 300 sleep jobs
# run, the master is killed -9 mid-run, the Sentinels promote the replica and both daemons follow: their
# heartbeats reach the new master and jobs pushed there run exactly once. Jobs the old master acknowledged
# but had not replicated can be lost: their number is reported and must be small. Then a switch back by
# SENTINEL FAILOVER, a master demoted by plain REPLICAOF (READONLY drops the link), min-replicas-to-write
# refusals (NOREPLICAS: dropped, resent), and a master name the Sentinels do not know (logged, retried).
. "$(dirname "$0")/../lib.sh"

N=300
AFTER=100
NAME=hm
# freeports N: N distinct free ports below the ephemeral range (32768-60999 on Linux), so no outgoing
# connection's local port (hopperd reconnects a lot here) can take one before its server binds it.
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
read -r PM PR S1 S2 S3 PF PX PF2 <<<"$(freeports 8)"

# --- helpers: redis-servers and Sentinels by PID, recorded as aux.* so the exit trap ends them ---

# start_rs NAME PORT [args]: a redis-server on 127.0.0.1:PORT and $T/NAME.sock.
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

# start_sentinel NAME PORT: a Sentinel with its own writable config file (Sentinel rewrites it).
start_sentinel() {
	local name=$1 port=$2
	if [ ! -f "$T/$name.conf" ]; then
		cat >"$T/$name.conf" <<-EOF
			port $port
			bind 127.0.0.1
			dir $T
			sentinel monitor $NAME 127.0.0.1 $PM 2
			sentinel down-after-milliseconds $NAME 1000
			sentinel failover-timeout $NAME 5000
			sentinel parallel-syncs $NAME 1
		EOF
	fi
	rm -f "$T/$name.pid"
	redis-server "$T/$name.conf" --sentinel --daemonize yes --pidfile "$T/$name.pid" \
		--logfile "$T/$name.redis.log" >/dev/null || return 1
	wait_for "$name pidfile" 10 test -s "$T/$name.pid" || return 1
	cp "$T/$name.pid" "$T/pids/aux.$name"
}

# stop_aux NAME [SIGNAL]: ends a process started above, by its PID.
stop_aux() {
	local pid
	pid=$(cat "$T/pids/aux.$1" 2>/dev/null) || return 0
	kill -s "${2:-TERM}" "$pid" 2>/dev/null
	_wait_gone "$pid" 10
	rm -f "$T/pids/aux.$1"
}

role_of() { redis-cli -p "$1" ROLE 2>/dev/null | head -1; }
sentinel_peers() { redis-cli -p "$1" SENTINEL sentinels "$NAME" 2>/dev/null | grep -c '^name$'; }
all_sentinels_met() {
	[ "$(sentinel_peers "$S1")" = 2 ] && [ "$(sentinel_peers "$S2")" = 2 ] && [ "$(sentinel_peers "$S3")" = 2 ]
}
replica_linked() { redis-cli -p "$PR" INFO replication | grep -q 'master_link_status:up'; }
# cmdstat PORT CMD: the calls= count of CMD in INFO commandstats (0 if never called).
cmdstat() {
	local n
	n=$(redis-cli -p "$1" INFO commandstats | tr -d '\r' | sed -n "s/^cmdstat_$2:calls=\([0-9]*\),.*/\1/p")
	echo "${n:-0}"
}
# rejected PORT: the sum of rejected_calls (READONLY and other refusals) over every command.
rejected() {
	redis-cli -p "$1" INFO commandstats | tr -d '\r' | grep -o 'rejected_calls=[0-9]*' |
		awk -F= '{ s += $2 } END { print s + 0 }'
}
# launch_hopperd NAME FLAGS...: hopperd without waiting for a heartbeat (start_hopperd waits for one).
launch_hopperd() {
	local name=$1
	shift
	"$HOPPERD" --db-path="$T/$name.db" --node-id="$name" --worker-path="$WORKER" --log-level=debug \
		--ctl-socket="$T/$name.sock" "$@" </dev/null >>"$T/$name.log" 2>&1 &
	HD_PID[$name]=$!
	echo "$!" >"$T/pids/hopperd.$name.$!"
}
logged() { grep -q -- "$2" "$T/$1.log"; }

# --- master and replica ---
start_rs master "$PM" || { not_ok "start the master" "see master.redis.log"; exit 1; }
start_rs replica "$PR" --replicaof 127.0.0.1 "$PM" || { not_ok "start the replica" "see replica.redis.log"; exit 1; }
wait_for "replica linked" 20 replica_linked
check "the replica is linked to the master" replica_linked
SOCK=$T/master.sock # lib.sh's rcli, push_many, node_pid, jstate ... read the current master

# --- a lying Sentinel naming the replica: hopperd must check ROLE and refuse it ---
cat >"$T/liar.py" <<'EOF'
import socket, sys
port, host, mport = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        c.recv(4096)  # SENTINEL get-master-addr-by-name NAME, whatever the name
        c.sendall(b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(host), host.encode(), len(mport), mport.encode()))
    except OSError:
        pass
    c.close()
EOF
py "$T/liar.py" "$PF" 127.0.0.1 "$PR" &
echo $! >"$T/pids/aux.liar"
wait_for "the liar listens" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PF"
launch_hopperd n0 --workers=1 --redis-sentinels="127.0.0.1:$PF" --redis-master-name="$NAME"
wait_for "n0 refuses the replica" 20 logged n0 "is slave, not the master"
check "a daemon told the replica is the master refuses it (ROLE says slave)" logged n0 "is slave, not the master"
check_ge "it did ask the replica (ROLE calls there)" "$(cmdstat "$PR" role)" 1
check "n0 is alive, retrying" hopperd_alive n0
kill9_hopperd n0
stop_aux liar KILL
check_eq "n0 left no heartbeat on the master" "$(node_pid n0)" ""

# --- three Sentinels; one is down when the first daemon starts ---
for s in 1 2 3; do
	p=S$s
	start_sentinel "s$s" "${!p}" || { not_ok "start sentinel s$s" "see s$s.redis.log"; exit 1; }
done
wait_for "the sentinels know each other" 30 all_sentinels_met
check "each Sentinel knows the two others" all_sentinels_met
stop_aux s3
SENT="127.0.0.1:$S3,127.0.0.1:$S1,127.0.0.1:$S2"
FLAGS=(--workers=2 --lease-s=4 --heartbeat-s=1 --redis-sentinels="$SENT" --redis-master-name="$NAME")
start_hopperd n1 "${FLAGS[@]}" || exit 1
check "n1 (first Sentinel down) found the master through the next one" logged n1 "redis: master $NAME is 127.0.0.1:$PM"
check "n1 logged the Sentinel that was down" logged n1 "sentinel 127.0.0.1:$S3:"
start_sentinel s3 "$S3" || { not_ok "restart sentinel s3" "see s3.redis.log"; exit 1; }
start_hopperd n2 "${FLAGS[@]}" || exit 1
wait_for "the sentinels know each other again" 30 all_sentinels_met

# --- 300 jobs; the master dies mid-run ---
seq 1 "$N" | awk '{ printf "{\"id\":\"sf-%d\",\"type\":\"sleep\",\"args\":{\"ms\":40}}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"
mid_run() { [ "$(count_state sf- 1 "$N" succeeded)" -ge 60 ]; }
wait_for "60 jobs done" 60 mid_run
# Before the failover the replica only ever received the replication stream: no FCALL, no refused write.
check_eq "the replica ran no FCALL before its promotion" "$(cmdstat "$PR" fcall)" 0
check_eq "the replica ran no FCALL_RO before its promotion" "$(cmdstat "$PR" fcall_ro)" 0
check_eq "the replica refused no command (no write was tried there)" "$(rejected "$PR")" 0
check "the function library reached the replica by replication" \
	sh -c "redis-cli -p $PR FUNCTION LIST | grep -qx hopper"
before=$(job_states sf- 1 "$N")
stop_aux master KILL
note "master killed -9 at: $before"
check "the master died mid-run" test "$(echo "$before" | grep -o "succeeded=[0-9]*")" != "succeeded=$N"

wait_for "the replica is promoted" 60 sh -c "[ \"\$(redis-cli -p $PR ROLE | head -1)\" = master ]"
check_eq "the Sentinels promoted the replica" "$(role_of "$PR")" master
SOCK=$T/replica.sock
# The heartbeats written before the kill were replicated: a daemon that follows renews its own (seen, in
# Redis TIME, grows on the new master).
seen() { rcli HGET "$(gkey seen)" "$1"; }
declare -A SEEN0=([n1]=$(seen n1) [n2]=$(seen n2))
beats_again() { [ -n "${SEEN0[$1]}" ] && [ "$(seen "$1")" -gt "${SEEN0[$1]}" ]; }
for n in n1 n2; do
	wait_for "$n heartbeat on the new master" 60 beats_again "$n"
	check "$n heartbeats on the new master (its replicated 'seen' grows)" beats_again "$n"
	check_eq "$n's heartbeat there names its pid" "$(node_pid "$n")" "${HD_PID[$n]}"
	check "$n logged the master change" logged "$n" "master $NAME is now 127.0.0.1:$PR (was 127.0.0.1:$PM)"
	check "$n survived the failover" hopperd_alive "$n"
done
stats=$(ctl stats --json 2>&1)
check_ge "stats count the master change" \
	"$(printf '%s' "$stats" | py -c 'import json,sys; print(json.load(sys.stdin)["local"]["redis_master_changes"])')" 1

# What was lost: jobs whose push or progress the old master acknowledged but had not replicated.
wait_for "the jobs from before the failover settle" 60 all_in_state sf- 1 "$N" succeeded
after=$(job_states sf- 1 "$N")
done_n=$(count_state sf- 1 "$N" succeeded)
lost=$((N - done_n))
note "jobs from before the failover on the new master: $after; never terminal: $lost of $N"
note "attempts of those jobs: $(job_hist attempt sf- 1 "$N" | tr '\n' ' ')"
check_le "few jobs from before the failover were lost (never terminal)" "$lost" 15

# Everything pushed after the failover runs exactly once.
seq 1 "$AFTER" | awk '{ printf "{\"id\":\"sfa-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/after.jsonl"
push_many default "$T/after.jsonl" || not_ok "push $AFTER jobs to the new master" "redis-cli --pipe errors"
wait_for "$AFTER new jobs succeeded" 60 all_in_state sfa- 1 "$AFTER" succeeded
check_eq "Redis: the $AFTER jobs pushed after the failover succeeded" "$(job_states sfa- 1 "$AFTER")" "succeeded=$AFTER"
check_eq "Redis: each started once" "$(job_hist attempt sfa- 1 "$AFTER")" "1=$AFTER"
check_eq "dead list empty" "$(dead_count)" 0

# --- a switch back while both live: the old master returns (the Sentinels make it a replica), then a manual
# SENTINEL FAILOVER promotes it and demotes the current master without killing it. The daemons' links to
# the demoted master stay open: their writes get READONLY (or a blocked BLMOVE UNBLOCKED), which drops the
# link and asks the Sentinels again.
start_rs master "$PM" || { not_ok "restart the old master" "see master.redis.log"; exit 1; }
old_is_replica() {
	[ "$(role_of "$PM")" = slave ] && redis-cli -p "$PM" INFO replication | grep -q 'master_link_status:up'
}
wait_for "the old master rejoins as a replica" 60 old_is_replica
check "the returning old master was made a replica of the new one" old_is_replica
# A manual failover needs the Sentinels to have seen the replica's link up for a while: retried until taken.
failover_taken() {
	redis-cli -p "$S1" SENTINEL FAILOVER "$NAME" >/dev/null 2>&1
	[ "$(role_of "$PM")" = master ]
}
wait_for "the manual failover promotes the old master" 60 failover_taken
check_eq "SENTINEL FAILOVER promoted the old master" "$(role_of "$PM")" master
# The end of the failover is announced (+switch-master); each daemon's Sentinel watch hears it and leaves the
# demoted master at once, without waiting for a READONLY or a dropped link.
switch_heard() { grep -q "+switch-master from sentinel .*: master $NAME is now 127.0.0.1:$PM (was 127.0.0.1:$PR)" "$T/$1.log"; }
for n in n1 n2; do
	wait_for "$n hears +switch-master" 10 switch_heard "$n"
	check "$n followed the +switch-master announcement (logged once)" \
		test "$(grep -c "+switch-master from sentinel .*now 127.0.0.1:$PM" "$T/$n.log")" = 1
done
wait_for "the demoted master is a replica" 30 sh -c "[ \"\$(redis-cli -p $PR ROLE | head -1)\" = slave ]"
fcall_demoted=$(cmdstat "$PR" fcall) # its FCALLs as master; none may follow
SOCK=$T/master.sock
SEEN0=([n1]=$(seen n1) [n2]=$(seen n2))
for n in n1 n2; do
	wait_for "$n heartbeat on the switched-back master" 60 beats_again "$n"
	check "$n heartbeats on the switched-back master" beats_again "$n"
	check "$n logged the switch back" logged "$n" "master $NAME is now 127.0.0.1:$PM (was 127.0.0.1:$PR)"
done
note "how n1 noticed: $(grep -Eo '\+switch-master|READONLY|UNBLOCKED|is slave, not the master|leaving [0-9.:]+|connection lost' \
	"$T/n1.log" | sort | uniq -c | tr '\n' ' ')"
seq 1 50 | awk '{ printf "{\"id\":\"sfb-%d\",\"type\":\"noop\"}\n", $1 }' >"$T/back.jsonl"
push_many default "$T/back.jsonl" || not_ok "push 50 jobs after the switch back" "redis-cli --pipe errors"
wait_for "50 jobs after the switch back succeeded" 60 all_in_state sfb- 1 50 succeeded
check_eq "Redis: the 50 jobs pushed after the switch back succeeded, once each" \
	"$(job_states sfb- 1 50) $(job_hist attempt sfb- 1 50)" "succeeded=50 1=50"
check_eq "the demoted master ran no FCALL while a replica" "$(cmdstat "$PR" fcall)" "$fcall_demoted"

# --- READONLY: a master turned into a replica without its clients being killed (a plain REPLICAOF; the
# Sentinels' own failover kills them, see above). The daemon's next write gets READONLY (its blocked BLMOVE
# UNBLOCKED): it drops the link and asks again; the (lying) Sentinel names the same server, now refused.
start_rs x "$PX" || { not_ok "start server x" "see x.redis.log"; exit 1; }
py "$T/liar.py" "$PF2" 127.0.0.1 "$PX" &
echo $! >"$T/pids/aux.liar2"
wait_for "the second liar listens" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PF2"
launch_hopperd n4 --workers=1 --heartbeat-s=0.5 --lease-s=4 --redis-sentinels="127.0.0.1:$PF2" \
	--redis-master-name="$NAME"
x_beat() { [ -n "$(redis-cli -s "$T/x.sock" HGET "$(gkey hb)" n4)" ]; }
wait_for "n4 heartbeats on x" 30 x_beat
check "n4 serves from x while x is a master" x_beat
redis-cli -p "$PX" REPLICAOF 127.0.0.1 "$PM" >/dev/null
dropped() { grep -Eq 'connection: (READONLY|UNBLOCKED)[^;]*; reconnecting to the master' "$T/n4.log"; }
wait_for "n4 sees READONLY" 30 dropped
check "a READONLY (or UNBLOCKED) reply drops the link" dropped
refused_again() { grep -A1000 -E 'connection: (READONLY|UNBLOCKED)' "$T/n4.log" | grep -q 'is slave, not the master'; }
wait_for "n4 asks again and refuses x" 30 refused_again
check "after it the daemon asks the Sentinel again and refuses the demoted server" refused_again
check "n4 keeps running" hopperd_alive n4
kill9_hopperd n4
stop_aux liar2 KILL
stop_aux x KILL

# --- min-replicas-to-write (README: bounds what a failover can lose): a master without enough replicas
# refuses writes with NOREPLICAS; hopperd drops the link, backs off and resends, and runs once it may write.
read -r PY <<<"$(freeports 1)"
start_rs y "$PY" --min-replicas-to-write 1 --min-replicas-max-lag 10 || { not_ok "start y" "see y.redis.log"; exit 1; }
launch_hopperd n5 --workers=1 --redis-unix="$T/y.sock"
noreplicas() { grep -q 'connection: NOREPLICAS' "$T/n5.log"; }
wait_for "n5 is refused with NOREPLICAS" 30 noreplicas
check "writes refused for want of replicas drop the link (NOREPLICAS)" noreplicas
check_eq "n5 wrote no heartbeat while refused" "$(redis-cli -s "$T/y.sock" HGET "$(gkey hb)" n5)" ""
redis-cli -p "$PY" CONFIG SET min-replicas-to-write 0 >/dev/null
y_beat() { [ -n "$(redis-cli -s "$T/y.sock" HGET "$(gkey hb)" n5)" ]; }
wait_for "n5 heartbeats once writes are allowed" 30 y_beat
check "n5 resends and runs once writes are allowed" y_beat
SOCK=$T/y.sock push_job default "$(job_json sfy-1 noop)"
y_state() { redis-cli -s "$T/y.sock" --raw HGET "$(qkey default job sfy-1)" state; }
wait_for "a job on y succeeded" 30 sh -c "[ \"\$(redis-cli -s $T/y.sock --raw HGET '$(qkey default job sfy-1)' state)\" = succeeded ]"
check_eq "a job pushed there succeeds" "$(y_state)" succeeded
kill9_hopperd n5
stop_aux y KILL

# --- a master name no Sentinel knows: a clear log line, and retries ---
launch_hopperd n3 --workers=1 --redis-sentinels="127.0.0.1:$S1,127.0.0.1:$S2" --redis-master-name=nosuch
retried() { [ "$(grep -c "no sentinel named the master 'nosuch'; retrying" "$T/n3.log")" -ge 3 ]; }
wait_for "n3 retries" 30 retried
check "an unknown master name is logged clearly" logged n3 "does not know a master named 'nosuch'"
check "and asked again (3 tries or more)" retried
check "n3 keeps running" hopperd_alive n3
check_eq "n3 wrote no heartbeat" "$(node_pid n3)" ""
kill9_hopperd n3

finish_hopperd n1
finish_hopperd n2
rows() {
	local a b
	a=$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'sfa-%' AND state='succeeded'")
	b=$(sql n2 "SELECT count(*) FROM attempts WHERE job_id LIKE 'sfa-%' AND state='succeeded'")
	echo $((${a:-0} + ${b:-0}))
}
check_eq "SQLite: one succeeded row per job pushed after the failover (n1 + n2)" "$(rows)" "$AFTER"
end_scenario

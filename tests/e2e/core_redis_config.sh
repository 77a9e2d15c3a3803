#!/usr/bin/env bash
# core_redis_config (issue 10, "Redis as a real dependency"): hopperd refuses a Redis whose maxmemory-policy
# evicts keys (allkeys-*, volatile-*) with a clear error, unless redis_allow_eviction is set; at maxmemory
# with noeviction the read-only ops (FCALL_RO, no-writes) answer and a running job still finishes
# (allow-oom); the Redis functions the daemon calls are the ones its library registers, with the same keys,
# arguments and flags (the C table and the Lua SPEC agree).
. "$(dirname "$0")/../lib.sh"

start_redis --maxmemory-policy allkeys-lru
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/x.db" --node-id=x --worker-path="$WORKER" --workers=1 \
	</dev/null >"$T/x.log" 2>&1 &
pid=$!
echo "$pid" >"$T/pids/aux.x"
st=0
for ((i = 0; i < 100 * TIME_SCALE; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
	st=running
	kill -9 "$pid"
fi
wait "$pid" 2>/dev/null || st=${st/0/$?}
check_eq "allkeys-lru: hopperd exits with status 1" "$st" 1
check "its log says why and what to do" grep -q 'maxmemory-policy is allkeys-lru.*noeviction' "$T/x.log"
start_hopperd o --redis-allow-eviction=1 --workers=1 || exit 1
check "with redis_allow_eviction=1 it runs, warning" grep -q 'used anyway because redis_allow_eviction' "$T/o.log"
finish_hopperd o
rcli CONFIG SET maxmemory-policy noeviction >/dev/null

# The two tables agree.
"$HOPPERD" --functions | sort >"$T/c.txt"
rcli FCALL_RO hopper_spec 0 | sort >"$T/lua.txt"
check_eq "hopperd --functions equals the library's hopper_spec" "$(diff "$T/c.txt" "$T/lua.txt" && echo same)" same
check_ge "the table lists the functions" "$(wc -l <"$T/c.txt")" 25
flags_of() { # NAME: the flags Redis registered for hopper_NAME
	rcli FUNCTION LIST LIBRARYNAME hopper | awk -v n="hopper_$1" '$0 == n { f = 1; next } f && /^flags$/ { g = 1; next } g { print; exit }'
}
check_eq "held is registered no-writes" "$(flags_of held)" no-writes
check_eq "finish is registered allow-oom" "$(flags_of finish)" allow-oom

# At maxmemory (noeviction): reads answer, a running job still finishes.
start_hopperd n1 --workers=1 || exit 1
CTL_SOCK=$T/n1.sock
# Every socket hopperd holds (its three Redis connections among them) is close-on-exec.
socks_without_cloexec() {
	local pid=${HD_PID[n1]} fd n=0 total=0
	for fd in /proc/"$pid"/fd/*; do
		case $(readlink "$fd") in socket:*) ;; *) continue ;; esac
		total=$((total + 1))
		flags=$(awk '/^flags:/ { print $2 }' /proc/"$pid"/fdinfo/"${fd##*/}")
		(( (8#$flags & 8#2000000) != 0 )) || n=$((n + 1))
	done
	echo "$n of $total"
}
check_match "hopperd's sockets are all FD_CLOEXEC" "$(socks_without_cloexec)" '^0 of [3-9]'
push_job default "$(job_json oom-1 sleep '{"ms":1500}')"
wait_for "oom-1 running" 20 state_is oom-1 running
rcli CONFIG SET maxmemory 1 >/dev/null
check_match "a write is refused now (OOM)" "$(rcli SET probe 1 2>&1)" 'OOM'
check_match "stats answers under OOM" "$(ctl stats 2>&1)" 'running'
check_match "list answers under OOM" "$(ctl list 2>&1)" 'oom-1'
check_match "queues answers under OOM" "$(ctl queues 2>&1)" 'default' 
wait_for "oom-1 succeeded under OOM" 20 state_is oom-1 succeeded
check_eq "the running job finished under OOM" "$(jstate oom-1)" succeeded
rcli CONFIG SET maxmemory 0 >/dev/null
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# core_loading (issue 10, "Redis errors such as LOADING back off like any other"): Redis restarts on an AOF
# that takes seconds to load (DEBUG POPULATE keys, each loaded with key-load-delay), answering LOADING to
# every command meanwhile. hopperd backs off (one warning per connection, not one per loop turn), keeps
# answering its control socket (ping), and once Redis is up every job ends: none lost, none run twice at once.
. "$(dirname "$0")/../lib.sh"

start_redis --appendonly yes --appendfsync always --enable-debug-command local
rcli DEBUG POPULATE 15000 ballast: 64 >/dev/null
rcli BGREWRITEAOF >/dev/null
wait_for "AOF rewrite done" 30 bash -c "[ \"\$(redis-cli -s $SOCK INFO persistence | tr -d '\r' | sed -n 's/^aof_rewrite_in_progress://p')\" = 0 ]"
start_hopperd n1 --workers=2 || exit 1
N=200
for ((i = 1; i <= N; i++)); do job_json ld-$i sleep '{"ms":30}'; echo; done >"$T/jobs"
push_many default "$T/jobs"
some_done() { [ "$(count_state ld- 1 $N succeeded)" -ge 20 ]; }
wait_for "some jobs done" 30 some_done

# While Redis loads: probe what Redis and the daemon answer, every 0.1 s, until Redis answers PONG.
(
	for ((i = 0; i < 600; i++)); do
		r=$(redis-cli -s "$SOCK" PING 2>&1 | head -c 7)
		c=$(HOME=$T "$HOPPERCTL" --socket "$CTL_SOCK" ping >/dev/null 2>&1 && echo pong || echo fail)
		echo "$r $c"
		[ "$r" != PONG ] && seen=1
		[ "$r" = PONG ] && [ -n "${seen:-}" ] && break
		sleep 0.1
	done
) >"$T/probe" 2>&1 &
probe=$!
before=$(grep -c . "$T/n1.log")
REDIS_ARGS+=(--key-load-delay 30 --loading-process-events-interval-bytes 1024)
restart_redis
wait "$probe"
loading=$(grep -c '^LOADING' "$T/probe")
note "probes while loading: $loading LOADING; $(grep -c '^LOADING pong' "$T/probe") of them with the daemon answering"
check_ge "Redis answered LOADING for a while (>= 0.5 s of probes)" "$loading" 5
check_eq "hopperd answered its control socket all along" "$(grep -c ' fail$' "$T/probe")" 0
wait_for "all $N jobs succeeded" 120 all_in_state ld- 1 $N succeeded
check "every job ended succeeded, none lost" all_in_state ld- 1 $N succeeded
tail -n +"$before" "$T/n1.log" >"$T/outage.log"
warned=$(grep -c 'loading its dataset' "$T/outage.log")
note "outage log: $(wc -l <"$T/outage.log") lines, $warned loading warnings"
check_ge "hopperd logged the loading" "$warned" 1
check_le "once per connection, not once per loop turn (<= 3)" "$warned" 3
check_le "the outage made few log lines, not thousands (<= 150 redis lines)" "$(grep -c 'redis' "$T/outage.log")" 150
check "hopperd is still running" hopperd_alive n1
check_eq "nothing left in flight" "$(rcli LLEN "$(qkey default inflight n1)")" 0
check_eq "nothing left queued" "$(rcli LLEN "$(qkey default queue)")" 0
overlap=$(sql n1 "select count(*) from attempts a join attempts b on a.job_id = b.job_id and a.id < b.id and a.state = 'succeeded' and b.state = 'succeeded' and b.started_at < a.finished_at and a.started_at < b.finished_at where a.job_id like 'ld-%'")
check_eq "no two successful attempts of a job overlapped" "$overlap" 0
finish_hopperd n1
end_scenario

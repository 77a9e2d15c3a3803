#!/usr/bin/env bash
# concurrency_keys: "concurrency" (README "Rate limits and concurrency keys") with three daemons on one Redis.
# - 10 jobs of key cust-1 (limit 2) and 5 of cust-2 (limit 1), 1 s each, on 3 daemons x 3 workers: a sampler
#   reading the job hashes every 50 ms never sees more than 2 (1) of a key running, and sees 2 at some point.
# - Plain jobs pushed behind them run while they wait (waiting jobs hold no worker); a waiting job shows
#   stage concurrency; `hopperctl queues` counts them (concurrency_waiting).
# - kill -9 of a daemon running a cust-1 job: its slot comes back with the job (the lease), the job runs
#   again elsewhere, the limit still holds, and at the end no slot and no waiter is left (nothing leaks).
. "$(dirname "$0")/../lib.sh"

start_redis
for n in n1 n2 n3; do
	start_hopperd "$n" --workers=3 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1
done

n_done() { [ "$(count_state "$1" 1 "$2" succeeded)" = "$2" ]; }
stage_is() { [ "$(jfield "$1" stage)" = "$2" ]; }
# The sampler: the most jobs of each key in state running at once, over the job hashes, every 50 ms.
cat >"$T/sample.lua" <<'LUAEOF'
local p, out = ARGV[1], {}
for _, spec in ipairs({{'c1-', 10}, {'c2-', 5}}) do
  local n = 0
  for i = 1, spec[2] do
    if redis.call('HGET', p .. '{default}:job:' .. spec[1] .. i, 'state') == 'running' then n = n + 1 end
  end
  out[#out + 1] = n
end
return out
LUAEOF
( while [ ! -e "$T/stop.sampler" ]; do
	rcli EVAL "$(cat "$T/sample.lua")" 0 "$HP" | paste -sd' ' >>"$T/samples"
	sleep 0.05
done ) &
SAMPLER=$!

msgs=()
for i in $(seq 1 10); do
	msgs+=("$(job_json "c1-$i" sleep '{"ms":1000}' '"concurrency":{"key":"cust-1","limit":2}')")
done
for i in $(seq 1 5); do
	msgs+=("$(job_json "c2-$i" sleep '{"ms":1000}' '"concurrency":{"key":"cust-2","limit":1}')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null

wait_for "c1-10 waits for a slot" 10 stage_is c1-10 concurrency
check_eq "a waiting job's stage" "$(jfield c1-10 stage)" concurrency
check_match "its message names the key" "$(jfield c1-10 message)" 'concurrency key cust-1: 2 of 2 slots held'
Q=$(ctl --json queues)
check_ge "hopperctl queues counts the jobs waiting for a slot" \
	"$(echo "$Q" | py -c 'import json,sys; print([q for q in json.load(sys.stdin)["queues"] if q["name"]=="default"][0]["concurrency_waiting"])')" 5

plain=()
for i in $(seq 1 6); do plain+=("$(job_json "plain-$i" sleep '{"ms":200}')"); done
rcli LPUSH "$(qkey default queue)" "${plain[@]}" >/dev/null
wait_for "the plain jobs" 15 n_done plain- 6
check_eq "plain jobs behind the waiting ones ran" "$(count_state plain- 1 6 succeeded)" 6
check_le "...while most cust-1 jobs still waited" "$(count_state c1- 1 10 succeeded)" 6

# kill -9 the daemon running a cust-1 job; restart it after its lease.
victim=
for i in $(seq 1 10); do
	if [ "$(jstate "c1-$i")" = running ]; then victim=c1-$i; break; fi
done
vnode=$(jfield "$victim" node)
check "a cust-1 job runs on some node ($victim on $vnode)" test -n "$vnode"
kill9_hopperd "$vnode"
sleep 4
start_hopperd "$vnode" --workers=3 --lease-s=3 --heartbeat-s=1 --poll-ms=50

wait_for "all cust-1 jobs" 60 n_done c1- 10
wait_for "all cust-2 jobs" 30 n_done c2- 5
touch "$T/stop.sampler"
wait "$SAMPLER"
check_eq "every cust-1 job succeeded" "$(count_state c1- 1 10 succeeded)" 10
check_eq "every cust-2 job succeeded" "$(count_state c2- 1 5 succeeded)" 5
check_ge "the killed daemon's job ran again ($victim attempt)" "$(jfield "$victim" attempt)" 2
m1=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$T/samples")
m2=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$T/samples")
note "$(wc -l <"$T/samples") samples; most running at once: cust-1 $m1, cust-2 $m2"
check_eq "cust-1 never had more than 2 running, and had 2" "$m1" 2
check_eq "cust-2 never had more than 1 running, and had 1" "$m2" 1
check_eq "no slot is left held (cust-1)" "$(rcli ZCARD "$(qkey default cc:cust-1)")" 0
check_eq "no slot is left held (cust-2)" "$(rcli ZCARD "$(qkey default cc:cust-2)")" 0
check_eq "no waiter is left" "$(($(llen "$(qkey default ccw:cust-1)") + $(llen "$(qkey default ccw:cust-2)")))" 0
check_ge "stats count the waits (concurrency_waited)" "$(stat_count concurrency_waited)" 8

for n in n1 n2 n3; do finish_hopperd "$n"; done
end_scenario

#!/usr/bin/env bash
# limits_faults (issue #17): rate limits and concurrency keys (README "Rate limits and concurrency keys")
# under faults, with real daemons on one Redis.
# (a) SIGSTOP past the lease: daemon a holds both slots of key cust-s (limit 2) and is stopped (SIGSTOP)
#     for longer than its lease; b reaps it, the slots come back, b runs the jobs again. When a is
#     continued its stale outcomes are fenced (rows superseded, nothing written): no slot b holds is given
#     back, no third job starts. A sampler reading Redis every 50 ms sees at most 2 of the key running,
#     every live running job holding a slot, and the slot set never above 2.
#     (The jobs are shorter than the lease, so a's workers, which SIGSTOP does not stop, are done before
#     the reap: the real runs never overlap b's either.)
# (b) Redis killed (-9) and restarted with its data (append-only file, fsync always) in the middle of a
#     rate-limited (10/s) and a keyed (limit 2) run on two daemons: every job ends succeeded exactly once
#     (Redis hashes and one succeeded row per job over both logs), the bucket's tokens stay within
#     rate x W + burst across the restart, no job starts before its token, the keyed jobs never exceed 2,
#     and nothing is left: no slot, no waiter, no reserved token (rlw), no keys-with-waiters entry (ccq).
# (c) Clock steps of the daemon hosts (tests/chaos/clockshim.c, LD_PRELOAD, as store_clock.sh): one
#     daemon +1 h, the other -1 h, stepped again mid-run. Limits run on Redis TIME, so nothing changes:
#     token times are Redis's (within seconds of it, not an hour off), the bucket holds within one token,
#     the keyed jobs never exceed their limit, every job succeeds once.
# (d) A bucket far above the claim rate (1000000/s, burst 1) defers none of 300 jobs pushed at once: a
#     regression test for the millisecond-tick bug this work found (17_limits.lua TICK_MS).
. "$(dirname "$0")/../lib.sh"

LEASE=(--lease-s=3 --heartbeat-s=1 --poll-ms=50)
stage_is() { [ "$(jfield "$1" stage)" = "$2" ]; }
n_done() { [ "$(count_state "$1" 1 "$2" succeeded)" = "$2" ]; }
ccm() { rcli ZRANGE "$(qkey default cc:"$1")" 0 -1 | sort | paste -sd' ' -; }

# The sampler (sample.lua PFX N KEY): of jobs PFX1..PFXN, "running live orphans slots": how many are in
# state running, how many of those were claimed by an incarnation that was not reaped, how many of those
# live ones hold no slot of cc:KEY, and the size of the slot set.
cat >"$T/sample.lua" <<'LUAEOF'
local p, pfx, n, key = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local q = p .. '{default}:'
local running, live, orphans = 0, 0, 0
for i = 1, n do
  local id = pfx .. i
  local h = redis.call('HMGET', q .. 'job:' .. id, 'state', 'inc')
  if h[1] == 'running' then
    running = running + 1
    if h[2] and h[2] ~= '' and not redis.call('ZSCORE', q .. 'reaped', h[2]) then
      live = live + 1
      if not redis.call('ZSCORE', q .. 'cc:' .. key, id) then orphans = orphans + 1 end
    end
  end
end
return {running, live, orphans, redis.call('ZCARD', q .. 'cc:' .. key)}
LUAEOF
# start_sampler NAME PFX N KEY: samples into $T/NAME.samples until stop_sampler NAME (a Redis outage
# just loses samples).
declare -A SAMPLER=()
start_sampler() {
	local name=$1
	shift
	( while [ ! -e "$T/stop.$name" ]; do
		rcli EVAL "$(cat "$T/sample.lua")" 0 "$HP" "$@" 2>/dev/null | paste -sd' ' - | grep -E '^[0-9]+ [0-9]+ [0-9]+ [0-9]+$' >>"$T/$name.samples"
		sleep 0.05
	done ) &
	SAMPLER[$name]=$!
	echo "$!" >"$T/pids/aux.sampler.$name"
}
stop_sampler() {
	touch "$T/stop.$1"
	wait "${SAMPLER[$1]}"
}
col_max() { awk -v c="$2" '$c > m { m = $c } END { print m + 0 }' "$T/$1.samples"; }
# check_samples NAME LIMIT: the sampler's maxima.
check_samples() {
	local name=$1 lim=$2
	note "$name: $(wc -l <"$T/$name.samples") samples; most running $(col_max "$name" 1), live $(col_max "$name" 2), orphans $(col_max "$name" 3), slots $(col_max "$name" 4)"
	check_ge "$name: the sampler ran" "$(wc -l <"$T/$name.samples")" 20
	check_eq "$name: never more than $lim running at once, and $lim at some point" "$(col_max "$name" 1)" "$lim"
	check_eq "$name: a live running job always holds a slot" "$(col_max "$name" 3)" 0
	check_le "$name: the slot set never held more than $lim" "$(col_max "$name" 4)" "$lim"
}
# no_leaks KEY...: nothing of the keys' limits is left.
no_leaks() {
	local tag=$1 k
	shift
	for k in "$@"; do
		check_eq "$tag: no slot of $k is left" "$(rcli ZCARD "$(qkey default cc:"$k")")" 0
		check_eq "$tag: no waiter of $k is left" "$(llen "$(qkey default ccw:"$k")")" 0
	done
	ccq_empty() { [ "$(rcli HLEN "$(qkey default ccq)")" = 0 ]; }
	wait_for "the sweep forgets the keys" 10 ccq_empty
	check_eq "$tag: no key is left with waiters (ccq)" "$(rcli HLEN "$(qkey default ccq)")" 0
	check_eq "$tag: no reserved token is left (rlw)" "$(rcli ZCARD "$(qkey default rlw)")" 0
	check_eq "$tag: no message is left in the queue or the scheduled set" \
		"$(($(llen "$(qkey default queue)") + $(rcli ZCARD "$(qkey default scheduled)")))" 0
	check_eq "$tag: no dead entry" "$(dead_count)" 0
}
# succeeded_rows PFX NODE...: "rows/distinct jobs" of succeeded attempts of jobs PFX* over the nodes' logs.
succeeded_rows() {
	local pfx=$1 n ids=
	shift
	for n in "$@"; do
		ids+=$(sql "$n" "SELECT job_id FROM attempts WHERE job_id LIKE '$pfx%' AND state = 'succeeded'")$'\n'
	done
	echo "$(grep -c . <<<"$ids")/$(grep . <<<"$ids" | sort -u | grep -c .)"
}
# token_check NAME PFX N RATE BURST: the bucket's schedule over jobs PFX1..PFXN ("started_at run_at" each:
# run_at is when the job's reserved token was due, 0 for a token due at once, which counts at its start).
# Prints "t1 t5 early lag": the most tokens in any 1 s and 5 s window, starts before their token, and the
# largest start lag behind a token (s).
token_check() {
	job_starts "$2" "$3" >"$T/$1.starts"
	py - "$T/$1.starts" <<'PYEOF'
import sys
rows = [tuple(float(v) for v in x.split()) for x in open(sys.argv[1]) if x.strip()]
tokens = sorted(r if r > 0 else s for s, r in rows)
def most(t, w):
    best, j = 0, 0
    for i in range(len(t)):
        while t[i] - t[j] > w:
            j += 1
        best = max(best, i - j + 1)
    return best
early = sum(1 for s, r in rows if r > 0 and s < r - 0.001)
lag = max([s - r for s, r in rows if r > 0] or [0])
print(most(tokens, 1), most(tokens, 5), early, "%.3f" % lag)
PYEOF
}

start_redis --appendonly yes --appendfsync always

# --- (a) SIGSTOP past the lease while holding both slots ---
start_hopperd a --workers=2 "${LEASE[@]}" || exit 1
start_sampler stop cs- 6 cust-s
msgs=()
for i in $(seq 1 6); do
	msgs+=("$(job_json "cs-$i" sleep '{"ms":1500}' '"concurrency":{"key":"cust-s","limit":2}')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
two_on_a() { [ "$(count_state cs- 1 6 running a)" = 2 ]; }
wait_for "a runs two cust-s jobs" 10 two_on_a
start_hopperd b --workers=3 "${LEASE[@]}" || exit 1
kill -STOP "${HD_PID[a]}"
held=$(ccm cust-s)
note "a stopped holding the slots of: $held"
check_eq "a holds both slots when it is stopped" "$(wc -w <<<"$held")" 2
check "the other jobs wait for a slot meanwhile" stage_is cs-6 concurrency

wait_for "b reaps a" 30 node_gone a
check "b reaped a" node_gone a
reclaimed() { # every job a held was claimed again (a later fencing token)
	local id
	for id in $held; do [ "$(jfield "$id" fence)" -ge 2 ] || return 1; done
}
wait_for "b claims a's jobs again" 20 reclaimed
check "b claimed a's jobs again under new fencing tokens" reclaimed
two_on_b() { [ "$(count_state cs- 1 6 running b)" = 2 ]; }
wait_for "b runs two cust-s jobs" 20 two_on_b
before_cont=$(ccm cust-s)
running_b=$(ids_in_state cs- 1 6 running | sort | paste -sd' ' -)
note "a continued while b holds the slots of: $before_cont (running: $running_b)"
kill -CONT "${HD_PID[a]}"
# a's stale outcomes reach Redis with its old tokens: refused, rows marked superseded.
superseded_rows() { [ "$(sql a "SELECT count(*) FROM attempts WHERE job_id LIKE 'cs-%' AND state = 'superseded'")" = 2 ]; }
wait_for "a marks its two attempts superseded" 20 superseded_rows
check_eq "a's rows of the jobs it held: superseded" \
	"$(sql a "SELECT group_concat(job_id, ' ') FROM (SELECT job_id FROM attempts WHERE job_id LIKE 'cs-%' AND state = 'superseded' ORDER BY job_id)")" \
	"$held"
still=$(ids_in_state cs- 1 6 running | sort | paste -sd' ' -)
holds_all() { # every job in $1 is in cc:cust-s
	local id m
	m=" $(ccm cust-s) "
	for id in $1; do case $m in *" $id "*) ;; *) return 1 ;; esac; done
}
check "every job still running after a's stale outcomes holds its slot (running: $still; slots: $(ccm cust-s))" \
	holds_all "$still"
check_le "no third job started meanwhile" "$(count_state cs- 1 6 running)" 2
check "a's log says it was reaped while alive" grep -q 'was reaped while alive' "$T/a.log"
stale_refused() { [ "$(grep -c 'was superseded: its outcome .* was not applied' "$T/a.log")" -ge 2 ]; }
wait_for "a's stale outcomes were refused" 10 stale_refused
check "a sent its two stale outcomes and Redis refused both (log: not applied)" stale_refused

wait_for "all cust-s jobs" 60 n_done cs- 6
stop_sampler stop
check_eq "every cust-s job succeeded" "$(count_state cs- 1 6 succeeded)" 6
for id in $held; do
	check_eq "$id: succeeded on b, its outcome written under b's token" "$(jstate "$id")/$(jfield "$id" node)" succeeded/b
done
check_samples stop 2
finish_hopperd a
finish_hopperd b
check_eq "one succeeded row per cust-s job over both logs" "$(succeeded_rows cs- a b)" 6/6
no_leaks "(a)" cust-s

# --- (b) Redis killed and restarted mid-run (persistence on) ---
for n in r1 r2; do start_hopperd "$n" --workers=2 "${LEASE[@]}" || exit 1; done
start_sampler restart kk- 16 cust-r
msgs=()
for i in $(seq 1 40); do
	msgs+=("$(job_json "rr-$i" noop '{}' '"rate_limit":{"key":"api-r","rate":"10/s","burst":1}')")
done
for i in $(seq 1 16); do
	msgs+=("$(job_json "kk-$i" sleep '{"ms":500}' '"concurrency":{"key":"cust-r","limit":2}')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
mid_run() { [ "$(count_state rr- 1 40 succeeded)" -ge 10 ] && [ "$(count_state kk- 1 16 succeeded)" -ge 3 ]; }
wait_for "10 limited and 3 keyed jobs done" 30 mid_run
before="limited: $(job_states rr- 1 40); keyed: $(job_states kk- 1 16)"
kill9_redis
note "redis killed at: $before"
sleep 2 # the outage
check "hopperd r1 survives the outage" hopperd_alive r1
check "hopperd r2 survives the outage" hopperd_alive r2
restart_redis
rr_left=$((40 - $(count_state rr- 1 40 succeeded)))
kk_left=$((16 - $(count_state kk- 1 16 succeeded)))
note "after the restart: $rr_left limited and $kk_left keyed jobs not yet succeeded"
check_ge "the outage hit the rate-limited run mid-way (jobs were left)" "$rr_left" 1
check_ge "the outage hit the keyed run mid-way (jobs were left)" "$kk_left" 1
wait_for "all limited jobs" 90 n_done rr- 40
wait_for "all keyed jobs" 90 n_done kk- 16
stop_sampler restart
check_eq "Redis: every limited job succeeded" "$(count_state rr- 1 40 succeeded)" 40
check_eq "Redis: every keyed job succeeded" "$(count_state kk- 1 16 succeeded)" 16
check_eq "Redis: every limited job started once" "$(job_hist attempt rr- 1 40)" "1=40"
check_eq "Redis: every keyed job started once" "$(job_hist attempt kk- 1 16)" "1=16"
read -r t1 t5 early lag <<<"$(token_check restart rr- 40 10 1)"
note "(b) tokens: most in 1 s $t1, in 5 s $t5; early starts $early; largest lag ${lag}s"
check_le "(b) the bucket's tokens stay within 10/s + 1 in any 1 s window across the restart ($t1)" "$t1" 11
check_le "(b) ... and in any 5 s window ($t5)" "$t5" 51
check_eq "(b) no job started before its token was due" "$early" 0
check_samples restart 2
for n in r1 r2; do finish_hopperd "$n"; done
check_eq "SQLite: one succeeded row per limited job over both logs" "$(succeeded_rows rr- r1 r2)" 40/40
check_eq "SQLite: one succeeded row per keyed job over both logs" "$(succeeded_rows kk- r1 r2)" 16/16
check_eq "SQLite: no other rows of these jobs" \
	"$(($(sql r1 "SELECT count(*) FROM attempts WHERE state <> 'succeeded'") + $(sql r2 "SELECT count(*) FROM attempts WHERE state <> 'succeeded'")))" 0
no_leaks "(b)" cust-r

# --- (c) the daemons' wall clocks step (+1 h on one, -1 h on the other, then swapped) mid-run ---
SHIM=$HOPPER_BUILD/chaos/clockshim.so
if [ ! -f "$SHIM" ]; then
	not_ok "the clock shim is built" "$SHIM missing (make $SHIM)"
	end_scenario
fi
set_offset() { # NODE SECONDS: rewritten in place, as the shim maps the file (see clockshim.c)
	printf '%-63s\n' "$2" | dd of="$T/clock-$1" conv=notrunc status=none
}
redis_now() { rcli TIME | paste -sd' ' - | awk '{ printf "%.3f", $1 + $2 / 1e6 }'; }
for n in c1 c2; do
	set_offset "$n" 0
	cat >"$T/hopperd-$n" <<EOS
#!/bin/sh
HOPPER_CLOCK_FILE='$T/clock-$n' LD_PRELOAD='$SHIM' ASAN_OPTIONS="\${ASAN_OPTIONS:-}:verify_asan_link_order=0" exec '$HOPPERD' "\$@"
EOS
	chmod +x "$T/hopperd-$n"
	HOPPERD=$T/hopperd-$n start_hopperd "$n" --workers=2 "${LEASE[@]}" || exit 1
	check "hopperd $n runs with the clock shim" grep -q clockshim "/proc/${HD_PID[$n]}/maps"
done
set_offset c1 3600
set_offset c2 -3600
start_sampler clock kc- 10 cust-c
R0=$(redis_now)
msgs=()
for i in $(seq 1 30); do
	msgs+=("$(job_json "ck-$i" noop '{}' '"rate_limit":{"key":"api-c","rate":"10/s","burst":2}')")
done
for i in $(seq 1 10); do
	msgs+=("$(job_json "kc-$i" sleep '{"ms":400}' '"concurrency":{"key":"cust-c","limit":2}')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
wait_for "ck-30 waits for a token" 10 stage_is ck-30 rate_limited
# The bucket (its theoretical arrival time, ms) is on Redis's clock: at most the backlog (30 tokens of
# 0.1 s) ahead of Redis TIME, not an hour off either way.
tat=$(rcli GET "$(qkey default rl:api-c)")
rnow=$(redis_now)
note "bucket tat $tat ms, Redis TIME $rnow s"
check "the bucket's time is Redis's (within 5 s of TIME, not +-1 h): $tat ms vs $rnow s" \
	near "$(awk -v t="$tat" 'BEGIN { printf "%.3f", t / 1000 }')" "$rnow" 5
due=$(jfield ck-30 rl_due)
check "a reserved token's due time is Redis's (within 5 s of TIME): $due ms vs $rnow s" \
	near "$(awk -v t="$due" 'BEGIN { printf "%.3f", t / 1000 }')" "$rnow" 5
half() { [ "$(count_state ck- 1 30 succeeded)" -ge 10 ]; }
wait_for "10 limited jobs done" 30 half
set_offset c1 -3600
set_offset c2 3600
note "clocks swapped: c1 -1 h, c2 +1 h"
wait_for "all clock-stepped limited jobs" 60 n_done ck- 30
wait_for "all clock-stepped keyed jobs" 60 n_done kc- 10
stop_sampler clock
R1=$(redis_now)
check_eq "every limited job succeeded with the clocks stepped" "$(count_state ck- 1 30 succeeded)" 30
check_eq "every keyed job succeeded with the clocks stepped" "$(count_state kc- 1 10 succeeded)" 10
check_eq "each limited job started once" "$(job_hist attempt ck- 1 30)" "1=30"
read -r t1 t5 early lag <<<"$(token_check clock ck- 30 10 2)"
note "(c) tokens: most in 1 s $t1, in 5 s $t5; early starts $early; largest lag ${lag}s"
check_le "(c) the bucket holds within 10/s + 2 in any 1 s window ($t1)" "$t1" 12
check_le "(c) ... and in any 5 s window ($t5)" "$t5" 52
check_eq "(c) no job started before its token was due" "$early" 0
outside=$(awk -v a="$R0" -v b="$R1" '{ r = ($2 > 0) ? $2 : $1; if (r < a - 1 || r > b + 1 || $1 < a - 1 || $1 > b + 1) n++ } END { print n + 0 }' "$T/clock.starts")
check_eq "(c) every token and start time lies within the run on Redis's clock ($R0 .. $R1)" "$outside" 0
check_samples clock 2
for n in c1 c2; do set_offset "$n" 0; done

# --- (d) a bucket far above the claim rate defers nothing (the bug bench/limits.sh found) ---
# 1000000/s with the default burst 1 admits up to 1000 tokens per millisecond; claims take several us
# each, so none may wait. Comparing due times with Redis's millisecond clock alone deferred every job but
# the first claimed in each millisecond (about 90% of them; see TICK_MS in 17_limits.lua).
before=$(stat_count rate_limited)
msgs=()
for i in $(seq 1 300); do msgs+=("$(job_json "fast-$i" noop '{}' '"rate_limit":{"key":"api-fast","rate":"1000000/s"}')"); done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
wait_for "the 300 fast-bucket jobs" 60 n_done fast- 300
check_eq "(d) all 300 jobs of a 1000000/s bucket succeeded" "$(count_state fast- 1 300 succeeded)" 300
check_eq "(d) none of them was deferred (stats rate_limited unchanged: $before)" "$(stat_count rate_limited)" "$before"
check_eq "(d) none waited in the scheduled set (no run_at)" "$(job_hist run_at fast- 1 300)" "missing=300"
for n in c1 c2; do finish_hopperd "$n"; done
# The steps took: each daemon's own log rows (its wall clock) lie an hour ahead and an hour behind.
for n in c1 c2; do
	check_eq "$n's log rows were written on both stepped clocks (+1 h and -1 h)" \
		"$(sql "$n" "SELECT (sum(started_at > $R0 + 3000) > 0) || (sum(started_at < $R0 - 3000) > 0) FROM attempts")" 11
done
no_leaks "(c)" cust-c

# --- (e) a claim taken over and parked for a slot: the stopped holder's stale run is fenced ---
# a2 (1 worker, busy with the plain job sp-1) has claimed se-1 (key cust-e, limit 1) into its prefetch
# when it is stopped. b2 (consuming another queue) reaps it; se-3, put at the head of the queue, takes the
# slot se-1's reaped claim held; c2 then claims se-1 again and parks it (slot held). When a2 continues its
# worker is free (sp-1 ended during the stop) and it starts se-1 on its old claim: that `run` must be
# refused (superseded), or se-1 runs beside se-3 with a limit of 1.
start_hopperd a2 --workers=1 --prefetch=1 "${LEASE[@]}" || exit 1
push_job default "$(job_json sp-1 sleep '{"ms":2000}')"
on_a2() { [ "$(jstate "$1")" = running ] && [ "$(jfield "$1" node)" = a2 ]; }
wait_for "sp-1 running on a2" 10 on_a2 sp-1
push_job default "$(job_json se-1 sleep '{"ms":1500}' '"concurrency":{"key":"cust-e","limit":1}')"
claimed_a2() { [ "$(jfield se-1 fence)" = 1 ] && [ "$(jfield se-1 node)" = a2 ]; }
wait_for "a2 claims se-1 (prefetched)" 10 claimed_a2
check_eq "a2 claimed se-1 into its prefetch while its worker is busy (fence 1, slot held)" \
	"$(jstate se-1)/$(jfield se-1 fence)/$(ccm cust-e)" queued/1/se-1
kill -STOP "${HD_PID[a2]}"
start_sampler stale se- 3 cust-e
start_hopperd b2 --workers=1 --queues=other "${LEASE[@]}" || exit 1
returned() { node_gone a2 && [ "$(llen "$(qkey default queue)")" = 2 ]; }
wait_for "b2 reaps a2 and returns its two jobs" 30 returned
check "b2 reaped a2 and returned sp-1 and se-1 to the queue" returned
rcli RPUSH "$(qkey default queue)" "$(job_json se-3 sleep '{"ms":4000}' '"concurrency":{"key":"cust-e","limit":1}')" >/dev/null
start_hopperd c2 --workers=2 "${LEASE[@]}" || exit 1
wait_for "se-1 parked for the slot" 20 stage_is se-1 concurrency
wait_for "se-3 running" 20 state_is se-3 running
check_eq "se-3 took the slot of se-1's reaped claim" "$(ccm cust-e)" se-3
check_eq "c2 parked se-1 (its slot is held)" "$(jfield se-1 stage)/$(jstate se-1)" concurrency/queued
kill -CONT "${HD_PID[a2]}"
wait_for "a2 learns it was reaped" 20 grep -q 'was reaped while alive' "$T/a2.log"
sleep 1 # a2's stale writes, if any, have landed by now
check_eq "a2's stale start of se-1 was refused: se-1 still parked" "$(jfield se-1 stage)/$(jstate se-1)" concurrency/queued
check_eq "the slot is still se-3's alone" "$(ccm cust-e)" se-3
wait_for "se-1 succeeded" 60 state_is se-1 succeeded
wait_for "se-3 succeeded" 60 state_is se-3 succeeded
stop_sampler stale
check_eq "se-1 succeeded on c2 (not on a2's stale claim)" "$(jstate se-1)/$(jfield se-1 node)" succeeded/c2
note "stale: $(wc -l <"$T/stale.samples") samples; most running $(col_max stale 1), live $(col_max stale 2), orphans $(col_max stale 3), slots $(col_max stale 4)"
check_eq "cust-e (limit 1) never had 2 jobs running" "$(col_max stale 1)" 1
check_eq "no row of a2 says se-1 succeeded" "$(sql a2 "SELECT count(*) FROM attempts WHERE job_id = 'se-1' AND state = 'succeeded'")" 0
for n in a2 b2 c2; do finish_hopperd "$n"; done
no_leaks "(e)" cust-e

end_scenario

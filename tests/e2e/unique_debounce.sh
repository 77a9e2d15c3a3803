#!/usr/bin/env bash
# unique_debounce: "debounce" (README "Unique jobs and debounce") with two daemons on one Redis.
# - A burst of 20 submits 100 ms apart runs once, the last one; the others end cancelled "debounced by" their
#   successor; its start waits delay_s after the last submit.
# - max_wait_s bounds the wait: a longer burst runs more than once, each run scheduled no later than its
#   burst's first submit + max_wait_s; no submit is lost (each ran or was debounced).
# - 20 concurrent submits (control sockets and raw LPUSHes together) run once.
# - Cancelling the pending job releases the key.
. "$(dirname "$0")/../lib.sh"

start_redis
for n in n1 n2; do
	start_hopperd "$n" --workers=2 --poll-ms=50 || exit 1
done

sub_id() { # SOCKET JOB_JSON
	local f=$T/sub.$BASHPID.json
	printf '[%s]' "$2" >"$f"
	HOME=$T "$HOPPERCTL" --socket "$T/$1.sock" --json submit --file "$f" |
		py -c 'import json, sys; print(json.load(sys.stdin)["ids"][0])'
}
dj() { # ID N DEBOUNCE-JSON
	job_json "$1" noop "{\"n\":$2}" "\"debounce\":$3"
}
fge() { # A B: A >= B (decimals)
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'
}
ran_total() { # LIKE
	local n t=0
	for n in n1 n2; do t=$((t + $(sql "$n" "SELECT count(*) FROM attempts WHERE job_id LIKE '$1' AND attempt > 0"))); done
	echo "$t"
}

# --- a burst of 20, 100 ms apart ---
D='{"key":"burst","delay_s":1.5,"max_wait_s":60}'
for i in $(seq 1 20); do
	check_eq "burst: submit $i admitted" "$(sub_id "n$((1 + i % 2))" "$(dj "bu-$i" "$i" "$D")")" "bu-$i" >/dev/null
	sleep 0.1
done
wait_for "burst: the last one succeeded" 30 state_is bu-20 succeeded
sleep 0.3
ok=0
for i in $(seq 1 19); do
	[ "$(jstate "bu-$i")" = cancelled ] && [ "$(jfield "bu-$i" error)" = "debounced by bu-$((i + 1))" ] &&
		[ "$(jfield "bu-$i" debounced_by)" = "bu-$((i + 1))" ] && ok=$((ok + 1))
done
check_eq "burst: the 19 earlier ones ended cancelled, debounced by their successor" "$ok" 19
check_eq "burst: exactly one attempt ran" "$(ran_total 'bu-%')" 1
check_match "burst: it ran with the last payload" "$(jfield bu-20 payload)" '"n": *20\b'
check "burst: its start waited delay_s after the last submit" \
	fge "$(jfield bu-20 run_at)" "$(awk -v e="$(jfield bu-20 enqueued_at)" 'BEGIN { printf "%.3f", e + 1.499 }')"
check "burst: it started no earlier than its run_at" fge "$(jfield bu-20 started_at)" "$(jfield bu-20 run_at)"
check_eq "burst: the burst's first submit is kept" "$(jfield bu-20 debounce_first)" "$(jfield bu-1 enqueued_at)"
check "burst: the key is released once it ran" key_gone "$(jfield bu-20 flow | cut -f3)"
check_ge "stats: debounced counted" "$(stat_count debounced)" 19

# --- max_wait_s bounds the wait ---
M='{"key":"bounded","delay_s":1,"max_wait_s":1.5}'
for i in $(seq 1 30); do
	sub_id "n$((1 + i % 2))" "$(dj "mw-$i" "$i" "$M")" >/dev/null
	sleep 0.1
done
wait_for "max_wait: the last one ended" 30 state_is mw-30 succeeded
sleep 0.3
runs=0
within=0
lost=0
for i in $(seq 1 30); do
	st=$(jstate "mw-$i")
	case $st in
	succeeded)
		runs=$((runs + 1))
		fge "$(awk -v f="$(jfield "mw-$i" debounce_first)" 'BEGIN { printf "%.4f", f + 1.5001 }')" "$(jfield "mw-$i" run_at)" &&
			within=$((within + 1))
		;;
	cancelled) [ -n "$(jfield "mw-$i" debounced_by)" ] || lost=$((lost + 1)) ;;
	*) lost=$((lost + 1)) ;;
	esac
done
check_ge "max_wait: a 3 s burst with max_wait_s 1.5 runs more than once" "$runs" 2
check_eq "max_wait: every run was scheduled within first submit + max_wait_s" "$within" "$runs"
check_eq "max_wait: every submit ran or was debounced" "$lost" 0
check_eq "max_wait: one attempt per run" "$(ran_total 'mw-%')" "$runs"

# --- 20 concurrent submits: control sockets and raw pushes ---
C='{"key":"crowd","delay_s":1,"max_wait_s":30}'
pids=()
for i in $(seq 1 10); do
	sub_id "n$((1 + i % 2))" "$(dj "cr-$i" "$i" "$C")" >"$T/cr.$i" 2>&1 &
	pids+=($!)
	push_job default "$(job_json "cr-raw-$i" noop '{}' "\"owner\":\"uid:0\",\"debounce\":$C")" &
	pids+=($!)
done
wait "${pids[@]}"
one_left() {
	local n=0 id
	for id in $(seq -f 'cr-%g' 1 10) $(seq -f 'cr-raw-%g' 1 10); do
		case $(jstate "$id") in queued | running | succeeded) n=$((n + 1)) ;; esac
	done
	[ "$n" = 1 ]
}
wait_for "crowd: one job left pending" 30 one_left
crowd_done() {
	[ "$(ran_total 'cr-%')" = 1 ]
}
wait_for "crowd: it ran" 30 crowd_done
sleep 1.5
check_eq "crowd: exactly one attempt ran for 20 concurrent submits" "$(ran_total 'cr-%')" 1
deb=0
for id in $(seq -f 'cr-%g' 1 10) $(seq -f 'cr-raw-%g' 1 10); do
	[ "$(jstate "$id")" = cancelled ] && [ -n "$(jfield "$id" debounced_by)" ] && deb=$((deb + 1))
done
check_eq "crowd: the 19 others were debounced" "$deb" 19

# --- a cancel releases the key ---
X='{"key":"cancelme","delay_s":30}'
check_eq "cancel: admitted" "$(sub_id n1 "$(dj ca-1 1 "$X")")" ca-1
check_eq "cancel: the key names it" "$(rcli HGET "$(jfield ca-1 flow | cut -f3)" id)" ca-1
ctl cancel ca-1 >/dev/null 2>&1
wait_for "cancel: ca-1 cancelled" 10 state_is ca-1 cancelled
check "cancel: the key is released" key_gone "$(jfield ca-1 flow | cut -f3)"
check_eq "cancel: the scheduled set no longer holds it" "$(rcli ZCARD "$(qkey default scheduled)")" 0

finish_hopperd n1
finish_hopperd n2
end_scenario

#!/usr/bin/env bash
# sched_misfire: fire times missed while no daemon ran (README "Schedules": misfire skip / once / all).
# Three "@every 2s" schedules with misfire_grace_s 1 fire while a daemon runs; the daemon stops for ~9 s
# (every daemon of the queue gone); after the restart the missed fire times (~4) give: skip no job, once one
# job (the first missed), all at most misfire_max (3) jobs, the oldest first; then each fires on time again.
# show counts the missed fires; a fire id is never made twice.
. "$(dirname "$0")/../lib.sh"

start_redis
HD_CTL=1
start_hopperd n1 --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1

for p in skip once all; do
	ctl schedule put "m-$p" --cron '@every 2s' --misfire "$p" --misfire-max 3 --misfire-grace-s 1 \
		--job '{"type":"noop"}' >/dev/null
done
fires_of() { rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep "^sched-$1-" | sed "s/^sched-$1-//" | sort -n; }
fired() { [ "$(fires_of "m-$1" | wc -l)" -ge "$2" ]; }
for p in skip once all; do wait_for "m-$p fires" 10 fired "$p" 2; done
stop_hopperd n1
declare -A last
for p in skip once all; do last[$p]=$(fires_of "m-$p" | tail -1); done
sleep 9
restart_ms=$(py -c 'import time; print(int(time.time() * 1000))')
start_hopperd n1 --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1
sleep 5
gap() { # POLICY: jobs whose fire time fell while no daemon ran (before restart - 2 s)
	fires_of "m-$1" | awk -v a="${last[$1]}" -v b="$((restart_ms - 2000))" '$1 > a && $1 <= b' | wc -l
}
check_eq "skip: no job for the missed fire times" "$(gap skip)" 0
check_eq "once: one job for the run of misses" "$(gap once)" 1
check_eq "all: misfire_max (3) jobs" "$(gap all)" 3
first_all=$(fires_of m-all | awk -v a="${last[all]}" '$1 > a' | head -1)
check_eq "all: the oldest missed first (the fire after the last before the stop)" "$first_all" "$((last[all] + 2000))"
for p in skip once all; do
	after=$(fires_of "m-$p" | awk -v b="$restart_ms" '$1 > b' | wc -l)
	check_ge "$p: on time again after the restart" "$after" 1
	check_eq "$p: no fire id twice" "$(fires_of "m-$p" | uniq -d | wc -l)" 0
done
missed=$(ctl --json schedule show m-skip | py -c 'import json,sys; print(json.load(sys.stdin)["missed"])')
check_ge "show counts the missed fires (skip)" "$missed" 3
check_ge "stats: schedule_missed counted" "$(stat_count schedule_missed)" 3
finish_hopperd n1
end_scenario

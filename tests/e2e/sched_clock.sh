#!/usr/bin/env bash
# sched_clock: schedules fire on Redis's clock, not a daemon's. Two daemons run under the chaos checker's clock
# shim (tests/chaos/clockshim.c), one an hour ahead and one an hour behind, then both step by two hours the
# other way mid-run. An "@every 1s" schedule still makes one job per second: consecutive fire times, no gap,
# no duplicate, nothing counted missed, each job's created_at within a second of its fire time.
. "$(dirname "$0")/../lib.sh"

SHIM=$HOPPER_BUILD/chaos/clockshim.so
if [ ! -f "$SHIM" ]; then
	not_ok "the clock shim is built" "$SHIM missing (make $SHIM)"
	end_scenario
fi
set_offset() { printf '%-63s\n' "$2" | dd of="$T/offset.$1" conv=notrunc status=none; }
for n in fast slow; do
	cat >"$T/hopperd-$n" <<EOS
#!/bin/sh
HOPPER_CLOCK_FILE='$T/offset.$n' LD_PRELOAD='$SHIM' ASAN_OPTIONS="\${ASAN_OPTIONS:-}:verify_asan_link_order=0" exec '$HOPPERD' "\$@"
EOS
	chmod +x "$T/hopperd-$n"
done
set_offset fast 3600
set_offset slow -3600

start_redis
HD_CTL=1
HOPPERD=$T/hopperd-fast start_hopperd fast --workers=2 --poll-ms=50 || exit 1
HOPPERD=$T/hopperd-slow start_hopperd slow --workers=2 --poll-ms=50 || exit 1
check "the daemons run with the shim" grep -q clockshim "/proc/${HD_PID[fast]}/maps"

ctl schedule put tick --cron '@every 1s' --misfire-grace-s 2 --job '{"type":"noop"}' >/dev/null
sleep 5
set_offset fast -3600
set_offset slow 3600
sleep 5
ctl schedule pause tick >/dev/null
ids() { rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep '^sched-tick-' | sed 's/^sched-tick-//' | sort -n; }
ids >"$T/fires"
n=$(wc -l <"$T/fires")
note "$n fires in ~10 s with daemons at +1 h / -1 h, then stepped to -1 h / +1 h"
check_ge "about one job per second" "$n" 8
check_le "... and not more" "$n" 12
check_eq "no duplicate" "$(uniq -d "$T/fires" | wc -l)" 0
check_eq "consecutive seconds (no gap)" "$(awk 'NR > 1 && $1 - p != 1000 { g++ } { p = $1 } END { print g + 0 }' "$T/fires")" 0
check_eq "nothing counted missed" "$(ctl --json schedule show tick | py -c 'import json,sys; print(json.load(sys.stdin)["missed"])')" 0
far=0
while read -r f; do
	c=$(jfield "sched-tick-$f" created_at)
	awk -v c="$c" -v f="$f" 'BEGIN { d = c - f / 1000; exit !(d < -0.01 || d > 1.5) }' && far=$((far + 1))
done <"$T/fires"
check_eq "each job's created_at is Redis's time of its fire (within 1.5 s)" "$far" 0
for n in fast slow; do finish_hopperd "$n"; done
end_scenario

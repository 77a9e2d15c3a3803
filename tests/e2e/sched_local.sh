#!/usr/bin/env bash
# sched_local: what a schedule does when one daemon cannot make its jobs, and when its previous run still runs.
# - n1 knows the configured rate limit "api" its job names, n2 does not: n2 claims nothing (it notes why on
#   the schedule and leaves it to n1), so every fire second still has its job, each made by n1's claim, also
#   the seconds while n1 was stopped (made late, within the grace).
# - A job with a unique key (until finished) that runs longer than the period: overlapping fires are skipped
#   (counted, said in error), never two of its runs at once.
. "$(dirname "$0")/../lib.sh"

start_redis
HD_CTL=1
start_hopperd n1 --workers=2 --poll-ms=50 --rate-limits='api:1000/s:100' || exit 1
start_hopperd n2 --workers=2 --poll-ms=50 || exit 1

ctl schedule put lim --cron '@every 1s' --misfire-grace-s 10 --job '{"type":"noop","rate_limit":"api"}' >/dev/null
sleep 3
kill -STOP "${HD_PID[n1]}" # n2 alone for 3 s: it must try, and fail
sleep 3
kill -CONT "${HD_PID[n1]}"
sleep 4
ctl schedule pause lim >/dev/null
fires=$(rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep '^sched-lim-' | sed 's/^sched-lim-//' | sort -n)
n=$(echo "$fires" | grep -c .)
note "$n fires of lim with n2 unable to make its jobs"
check_ge "every fire second has its job although n2 cannot make them" "$n" 6
check_eq "... consecutive (n2's failures delayed nothing)" \
	"$(echo "$fires" | awk 'NR > 1 && $1 - p != 1000 { g++ } { p = $1 } END { print g + 0 }')" 0
check_eq "... nothing counted missed" "$(ctl --json schedule show lim | py -c 'import json,sys; print(json.load(sys.stdin)["missed"])')" 0
check "n2 logged why it cannot fire it" grep -q "schedule default/lim: node n2 cannot fire it: its job is refused: field 'rate_limit': no configured limit 'api'" "$T/n2.log"

ctl schedule put one --cron '@every 1s' --misfire-grace-s 2 \
	--job '{"type":"sleep","args":{"ms":2500},"unique":{"key":"one-at-a-time"}}' >/dev/null
running_max=0
for i in $(seq 1 40); do
	r=$(rcli EVAL "local n = 0 for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
		if string.find(id, '^sched%-one%-') and redis.call('HGET', ARGV[1] .. id, 'state') == 'running' then n = n + 1 end end
		return n" 1 "$(qkey default jobs)" "$(qkey default job):")
	[ "$r" -gt "$running_max" ] && running_max=$r
	sleep 0.2
done
ctl schedule pause one >/dev/null
v=$(ctl --json schedule show one)
sk=$(echo "$v" | py -c 'import json,sys; print(json.load(sys.stdin)["skipped"])')
note "one: skipped $sk fires, most running at once $running_max"
check_eq "a unique job running longer than the period: never two runs at once" "$running_max" 1
check_ge "... the overlapping fires are skipped and counted" "$sk" 3
check_match "... and show says why" "$(echo "$v" | py -c 'import json,sys; print(json.load(sys.stdin).get("error", ""))')" \
	'skipped: job sched-one-[0-9]+ holds its unique key'
for n in n1 n2; do finish_hopperd "$n"; done
end_scenario

#!/usr/bin/env bash
# sched_fire: schedules (README "Schedules"), fired by three daemons on one Redis.
# - schedule put / list / show / pause / resume / rm over the control socket (hopperctl), with the stored
#   definition, its next fire times, and refusals (bad cron, unknown zone, job with an id, both job and
#   workflow, a job the daemon's parser refuses) that store nothing.
# - "@every 1s" for ~30 s with three daemons, two of them kill -9'd and restarted during it (one is always
#   alive): every fire second from the first to the last has exactly one job (ids sched-NAME-<ms>, one per
#   second, no gap, no duplicate), each job succeeded once, and the schedule's fires count equals the jobs.
# - A paused schedule makes no job; resumed, it fires from now on (the paused seconds are not run).
. "$(dirname "$0")/../lib.sh"

start_redis
HD_CTL=1
for n in n1 n2 n3; do
	start_hopperd "$n" --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1
done

# --- refusals: nothing stored ---
refused() { # DESC EXPECTED_TEXT ARGS...
	local desc=$1 want=$2 out st=0
	shift 2
	out=$(ctl schedule put "$@" 2>&1) || st=$?
	check "refused: $desc (exit $st)" test "$st" -eq 2
	check_match "... says why: $desc" "$out" "$want"
}
refused "bad cron" "field 'cron'" bad --cron '61 * * * *' --job '{"type":"noop"}'
refused "unknown time zone" "field 'tz'" bad --cron '@hourly' --tz 'Mars/Olympus' --job '{"type":"noop"}'
refused "a job with an id" "job.id" bad --cron '@hourly' --job '{"type":"noop","id":"x"}'
refused "job and workflow" "exactly one of" bad --cron '@hourly' --job '{"type":"noop"}' --workflow w
refused "a job the parser refuses" "job:" bad --cron '@hourly' --job '{"type":"noop","max_attempts":0}'
refused "an unknown misfire policy" "misfire" bad --cron '@hourly' --misfire sometimes --job '{"type":"noop"}'
check_eq "nothing was stored" "$(ctl --json schedule list | py -c 'import json,sys; print(len(json.load(sys.stdin)["schedules"]))')" 0

# --- put / show / list ---
out=$(ctl --json schedule put daily --cron '30 9 * * 1-5' --job '{"type":"noop","args":{"x":1}}')
check_match "put answers created" "$out" '"created": *true'
show=$(ctl --json schedule show daily --count 3)
upc=$(echo "$show" | py -c '
import json, sys, datetime
v = json.load(sys.stdin)
ts = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in v["upcoming"]]
print(len(ts), all(t.hour == 9 and t.minute == 30 and t.weekday() < 5 for t in ts), v["definition"]["job"]["type"],
      v["next_fire"] == v["upcoming"][0])')
check_eq "show: 3 upcoming fire times, weekdays 09:30 UTC, the first is next_fire" "$upc" "3 True noop True"
out=$(ctl --json schedule put daily --cron '30 9 * * 1-5' --job '{"type":"noop"}')
check_match "a second put replaces" "$out" '"created": *false'
check_eq "list shows it once" "$(ctl --json schedule list | py -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)["schedules"]])')" "['daily']"
check_match "schedule list prints a table with the next fire time in local time" "$(TZ=UTC ctl schedule list)" \
	'NEXT FIRE.*'$'\n''default +daily +30 9 \* \* 1-5 +UTC +20[0-9][0-9]-[0-9][0-9]-[0-9][0-9] 09:30:00'
check_match "schedule show lists the upcoming fire times" "$(TZ=UTC ctl schedule show daily --count 2)" 'upcoming:'$'\n''  20[0-9-]+ 09:30:00'
ctl schedule rm daily >/dev/null
# A zone with a DST change in the window: 02:30 Europe/Berlin around the 2027 spring-forward day (28 March).
ctl schedule put berlin --cron '30 2 * * *' --tz Europe/Berlin --start 1806105600 --job '{"type":"noop"}' >/dev/null
wait_for "berlin's next fire computed" 10 sh -c "$HOPPERCTL --socket '$CTL_SOCK' --json schedule show berlin | grep -q '\"next_fire\": *[0-9]'"
check_eq "Europe/Berlin 02:30: CET, the gap day once at 03:00 CEST, then CEST" \
	"$(ctl --json schedule show berlin --count 3 | py -c '
import json, sys, datetime
print(" ".join(datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%m-%dT%H:%M") for t in json.load(sys.stdin)["upcoming"]))')" \
	"03-27T01:30 03-28T01:00 03-29T00:30"
ctl schedule rm berlin >/dev/null
st=0; ctl schedule show daily >/dev/null 2>&1 || st=$?
check_eq "rm: show answers not found (exit 10)" "$st" 10

# --- every second, three daemons, two killed and restarted ---
t0=$(now)
ctl schedule put tick --cron '@every 1s' --misfire-grace-s 5 --job '{"type":"noop"}' >/dev/null
sleep 6
kill9_hopperd n2
sleep 5
start_hopperd n2 --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50
sleep 4
kill9_hopperd n3
sleep 3
kill9_hopperd n1
start_hopperd n1 --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50
sleep 5
start_hopperd n3 --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50
sleep 6
ctl schedule pause tick >/dev/null
t1=$(now)
ids_tick() { rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep '^sched-tick-' | sort; }
all_done() { local id; for id in $(ids_tick); do [ "$(jstate "$id")" = succeeded ] || return 1; done; }
wait_for "every tick job ended" 30 all_done
ids_tick >"$T/ticks"
n=$(wc -l <"$T/ticks")
note "$n tick jobs in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
check_ge "about one job per second for ~29 s" "$n" 25
check_eq "no duplicate fire time" "$(sed 's/^sched-tick-//' "$T/ticks" | sort -u | wc -l)" "$n"
gaps=$(sed 's/^sched-tick-//' "$T/ticks" | sort -n | awk 'NR > 1 && $1 - p != 1000 { g++ } { p = $1 } END { print g + 0 }')
check_eq "fire times are consecutive seconds (no gap, no extra)" "$gaps" 0
again=$(for id in $(cat "$T/ticks"); do [ "$(jfield "$id" attempt)" = 1 ] || echo "$id"; done | wc -l)
note "$again tick job(s) ran twice: claimed by a daemon killed before it finished (at-least-once)"
check_le "at most the killed daemons' jobs ran again" "$again" 6
fires=$(ctl --json schedule show tick | py -c 'import json,sys; print(json.load(sys.stdin)["fires"])')
check_eq "the schedule's fires count equals the jobs" "$fires" "$n"
rows=0
for node in n1 n2 n3; do
	r=$(sql "$node" "SELECT count(*) FROM attempts WHERE job_id LIKE 'sched-tick-%' AND state = 'succeeded'")
	rows=$((rows + r))
done
check_eq "one succeeded attempt row per tick job across the three logs" "$rows" "$n"

# --- paused: no job; resumed: from now on ---
sleep 3
check_eq "paused: no new job" "$(ids_tick | wc -l)" "$n"
ctl schedule resume tick >/dev/null
sleep 3
ctl schedule pause tick >/dev/null
m=$(ids_tick | wc -l)
check_ge "resumed: fires again" "$m" $((n + 2))
check_le "... from now on (the paused seconds were not run)" "$m" $((n + 4))
ctl schedule rm tick >/dev/null

for n in n1 n2 n3; do finish_hopperd "$n"; done
end_scenario

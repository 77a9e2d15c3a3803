#!/usr/bin/env bash
# chaos: the brief's quality bar. Two daemons share one Redis (append-only, fsync always) under a mixed
# load while the scenario, at random moments, kills a worker (-9), kills a daemon (-9) and restarts it
# with the same node id, kills Redis (-9) and restarts it with its data, or drops every connection.
# Afterwards every job must end exactly where it should: noop and sleep succeeded, fail and crash dead
# (each in the dead list exactly once), nothing left in a queue, an inflight list or the scheduled set.
# make soak runs it longer (CHAOS_ROUNDS, CHAOS_NOOP).
. "$(dirname "$0")/../lib.sh"

ROUNDS=${CHAOS_ROUNDS:-8}
NOOP=${CHAOS_NOOP:-400}
SLEEP=${CHAOS_SLEEP:-80}
FAIL=10
CRASH=6
if [ "$HOPPER_SAN" = 1 ]; then
	NOOP=${CHAOS_NOOP:-150}
	SLEEP=${CHAOS_SLEEP:-40}
fi
# Plenty of attempts and stalls: a job must never die of the chaos itself, only of its own failure.
FLAGS=(--workers=2 --lease-s=3 --heartbeat-s=1 --max-stalls=100 --backoff-base-s=0.05 --backoff-max-s=0.3
	--kill-grace-s=0.5 --shutdown-grace-s=5)

start_redis --appendonly yes --appendfsync always
start_hopperd a "${FLAGS[@]}" || exit 1
start_hopperd b "${FLAGS[@]}" || exit 1
{
	seq 1 "$NOOP" | awk '{ printf "{\"id\":\"ch-noop-%d\",\"type\":\"noop\",\"max_attempts\":50}\n", $1 }'
	seq 1 "$SLEEP" | awk '{ printf "{\"id\":\"ch-sleep-%d\",\"type\":\"sleep\",\"args\":{\"ms\":%d},\"max_attempts\":50}\n", $1, 100 + ($1 * 37) % 400 }'
	seq 1 "$FAIL" | awk '{ printf "{\"id\":\"ch-fail-%d\",\"type\":\"fail\",\"args\":{\"message\":\"boom\"},\"max_attempts\":2}\n", $1 }'
	seq 1 "$CRASH" | awk '{ printf "{\"id\":\"ch-crash-%d\",\"type\":\"crash\",\"max_attempts\":2}\n", $1 }'
} | shuf >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push the jobs" "redis-cli --pipe reported errors"

kill_a_worker() {
	local node=$1 pid w
	pid=${HD_PID[$node]:-}
	[ -n "$pid" ] || return 0
	w=$(ps -o pid= --ppid "$pid" 2>/dev/null | shuf -n 1)
	[ -n "$w" ] && kill -KILL "$w" 2>/dev/null && note "round $r: killed worker $w of $node"
}

for r in $(seq 1 "$ROUNDS"); do
	sleep "0.$((RANDOM % 6 + 2))"
	node=$([ $((RANDOM % 2)) = 0 ] && echo a || echo b)
	case $((RANDOM % 4)) in
	0) kill_a_worker "$node" ;;
	1)
		note "round $r: kill -9 hopperd $node, then restart it"
		kill9_hopperd "$node"
		sleep 0.3
		start_hopperd "$node" "${FLAGS[@]}" || exit 1
		;;
	2)
		note "round $r: kill -9 Redis, restart it after 0.5 s"
		kill9_redis
		sleep 0.5
		restart_redis
		;;
	3) rcli CLIENT KILL TYPE normal >/dev/null 2>&1 && note "round $r: dropped every connection" ;;
	esac
done

all_done() {
	[ "$(count_state ch-noop- 1 "$NOOP" succeeded)" = "$NOOP" ] &&
		[ "$(count_state ch-sleep- 1 "$SLEEP" succeeded)" = "$SLEEP" ] &&
		[ "$(count_state ch-fail- 1 "$FAIL" dead)" = "$FAIL" ] &&
		[ "$(count_state ch-crash- 1 "$CRASH" dead)" = "$CRASH" ]
}
wait_for "every job ended" 240 all_done
check_eq "noop jobs: all succeeded" "$(job_states ch-noop- 1 "$NOOP")" "succeeded=$NOOP"
check_eq "sleep jobs: all succeeded" "$(job_states ch-sleep- 1 "$SLEEP")" "succeeded=$SLEEP"
check_eq "fail jobs: all dead" "$(job_states ch-fail- 1 "$FAIL")" "dead=$FAIL"
check_eq "crash jobs: all dead" "$(job_states ch-crash- 1 "$CRASH")" "dead=$CRASH"
check_eq "fail jobs: each used its 2 attempts" "$(job_hist attempt ch-fail- 1 "$FAIL")" "2=$FAIL"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "scheduled set empty" "$(rcli ZCARD "$(qkey default scheduled)")" 0
check_eq "a's inflight list empty" "$(llen "$(qkey default inflight a)")" 0
check_eq "b's inflight list empty" "$(llen "$(qkey default inflight b)")" 0
dead_ids=$(dead_entries | py -c 'import json,sys; print("\n".join(sorted(json.loads(l)["id"] for l in sys.stdin)))')
check_eq "dead list: exactly the fail and crash jobs, once each" "$(echo "$dead_ids" | grep -c .)" "$((FAIL + CRASH))"
check_eq "dead list: no other job" "$(echo "$dead_ids" | grep -cvE '^ch-(fail|crash)-')" 0
check_eq "dead list: no job twice" "$(echo "$dead_ids" | sort | uniq -d | grep -c .)" 0
check "daemon a still serving" hopperd_alive a
check "daemon b still serving" hopperd_alive b
finish_hopperd a
finish_hopperd b
end_scenario

#!/usr/bin/env bash
# event_publish: the Redis functions publish a job's events at the end of each call, and only on channels
# that have a subscriber then (PUBSUB NUMSUB; with any pattern subscription, on every channel). Whoever
# listens gets every event, in order; nobody listening means no PUBLISH at all; the events list always
# holds them for late readers.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
SUBS=

# listen FILE KIND CHANNEL...: a redis-cli (P)SUBSCRIBE in the background, until it is registered.
listen() {
	local file=$1 kind=$2
	shift 2
	redis-cli -s "$SOCK" --raw "$kind" "$@" >"$file" 2>&1 &
	SUBS="$SUBS $!"
	local i=0
	while [ "$i" -lt 100 ]; do
		if [ "$kind" = PSUBSCRIBE ]; then
			[ "$(rcli PUBSUB NUMPAT)" -ge 1 ] && return 0
		else
			[ "$(rcli PUBSUB NUMSUB "$1" | sed -n 2p)" = 1 ] && return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
stop_listeners() {
	# shellcheck disable=SC2086
	[ -z "$SUBS" ] || { kill $SUBS 2>/dev/null; wait $SUBS 2>/dev/null; }
	SUBS=
}
# events FILE JOB: the event kinds/states of JOB's messages in FILE, in order, on one line.
events() { grep -o "\"job\":\"$2\",\"event\":\"[a-z]*\",\"state\":\"[a-z]*\"" "$1" | sed 's/.*"state":"//; s/"$//' | tr '\n' ' '; }
list_states() { rcli LRANGE "$(qkey default events):$1" 0 -1 | sed 's/.*"state":"\([a-z]*\)".*/\1/' | tr '\n' ' '; }

# 1. A subscriber of one job's channel and one of the all-jobs channel.
check "a subscriber of pub-a's channel is registered" listen "$T/job.out" SUBSCRIBE "$(qkey default job):pub-a"
check "a subscriber of the all-jobs channel P{@}:events is registered" listen "$T/all.out" SUBSCRIBE "$(gkey events)"
push_job default "$(job_json pub-a noop)"
push_job default "$(job_json pub-b noop)"
wait_for "pub-a succeeded" 20 state_is pub-a succeeded
wait_for "pub-b succeeded" 20 state_is pub-b succeeded
sleep 0.2
check_match "pub-a's channel got its events, queued first, succeeded last" "$(events "$T/job.out" pub-a)" '^queued (running )?succeeded $'
check_eq "... and none of pub-b (another job's channel)" "$(events "$T/job.out" pub-b)" ""
check_match "the all-jobs channel got pub-a's events" "$(events "$T/all.out" pub-a)" '^queued (running )?succeeded $'
check_match "... and pub-b's" "$(events "$T/all.out" pub-b)" '^queued (running )?succeeded $'
stop_listeners

# 2. A pattern subscription: every channel is published.
check "a pattern subscriber is registered" listen "$T/pat.out" PSUBSCRIBE "$(qkey default job):*"
push_job default "$(job_json pub-c noop)"
wait_for "pub-c succeeded" 20 state_is pub-c succeeded
sleep 0.2
check_match "the pattern subscriber got pub-c's events" "$(events "$T/pat.out" pub-c)" '^queued (running )?succeeded $'
stop_listeners

# 3. Nobody listens: no PUBLISH at all, and the lists still hold every event.
i=0
while [ "$(rcli PUBSUB NUMPAT)" != 0 ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
rcli CONFIG RESETSTAT >/dev/null
for i in $(seq 1 20); do push_job default "$(job_json quiet-$i noop)"; done
for i in $(seq 1 20); do wait_for "quiet-$i succeeded" 20 state_is "quiet-$i" succeeded; done
pubs=$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p')
# (hopperd's own pings on its pub/sub link are published too: at most one every 2 s.)
check "with no subscriber, 20 jobs made (almost) no PUBLISH (got ${pubs:-0})" test "${pubs:-0}" -le 3
check_match "quiet-1's events list holds its events" "$(list_states quiet-1)" '^queued (running )?succeeded $'
check_match "quiet-20's too" "$(list_states quiet-20)" '^queued (running )?succeeded $'
check_eq "the counters were written once per call, and agree" "$(rcli HGET "$(qkey default stats)" succeeded)" 23
check_eq "the job index holds all 23 jobs" "$(rcli ZCARD "$(qkey default jobs)")" 23

# 4. A deferred write that fails (the counters' key made a string by hand) costs only that write: the job
#    still ends, is indexed and announced, and Redis's log names the failure.
check "a subscriber of pub-x's channel is registered" listen "$T/x.out" SUBSCRIBE "$(qkey default job):pub-x"
rcli DEL "$(qkey default stats)" >/dev/null
rcli SET "$(qkey default stats)" not-a-hash >/dev/null
push_job default "$(job_json pub-x noop)"
wait_for "pub-x succeeded although its counter could not be written" 20 state_is pub-x succeeded
sleep 0.2
check_match "pub-x's subscriber got its events" "$(events "$T/x.out" pub-x)" '^queued (running )?succeeded $'
check_eq "pub-x is in the job index" "$(rcli ZSCORE "$(qkey default jobs)" pub-x | grep -c .)" 1
check_match "Redis's log names the failed deferred write" "$(grep 'deferred HINCRBY failed' "$T/redis.log" | head -1)" 'WRONGTYPE'
stop_listeners
rcli DEL "$(qkey default stats)" >/dev/null

finish_hopperd n1
end_scenario

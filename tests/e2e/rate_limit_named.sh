#!/usr/bin/env bash
# rate_limit_named: configured rate limits (hopperd.conf rate_limits, queue_rate_limits; README "Rate limits
# and concurrency keys"), on two daemons configured alike.
# - "rate_limit": "api" (api:5/s, burst 1): 10 jobs of owner alice and 10 of bob draw from ONE bucket (the
#   operator's limit is deployment-wide): at most 6 of the 20 start in any 1 s, the starts span >= 3.5 s.
#   The same two owners with a job-given {"key": "own", "rate": "5/s"} draw from two buckets (per owner).
# - queue_rate_limits slow:api: the queue's jobs that name no limit are limited (12 jobs span >= 2 s); a job
#   of that queue with its own limit uses its own.
# - A name no daemon knows: refused at submit (bad_request naming the field); pushed raw, the message is
#   buried as a dead entry with the reason. A bad rate_limits line: hopperd refuses to start, naming the entry.
. "$(dirname "$0")/../lib.sh"

out=$("$HOPPERD" --rate-limits='api:5/x' -n 2>&1)
check_match "a bad rate_limits entry is refused at start, naming it" "$out" "rate_limits: 'api:5/x' is not NAME:RATE"
out=$("$HOPPERD" --rate-limits='api:5/s' --queue-rate-limits='slow:nope' -n 2>&1)
check_match "a queue default naming an unknown limit is refused" "$out" "queue_rate_limits: 'slow:nope'"

start_redis
HD_CTL=1
for n in n1 n2; do
	start_hopperd "$n" --workers=3 --queues=default,slow --rate-limits='api:5/s other:100/s:10' \
		--queue-rate-limits='slow:api' --poll-ms=50 || exit 1
done

starts() { # PREFIX N QUEUE: started_at of jobs PREFIX1..PREFIXN, sorted
	local i
	for i in $(seq 1 "$2"); do rcli HGET "$(qkey "$3" job):$1$i" started_at; done | sort -n
}
n_done() { [ "$(count_state "$1" 1 "$2" succeeded)" = "$2" ]; }
max_in_1s() { awk '{ t[NR] = $1 } END { m = 0; j = 1; for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 1) j++; if (i - j + 1 > m) m = i - j + 1 } print m }'; }
span() { awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f", b - a }'; }

msgs=()
for i in $(seq 1 10); do
	msgs+=("$(job_json "a-$i" noop '{}' '"owner":"alice","rate_limit":"api"')")
	msgs+=("$(job_json "b-$i" noop '{}' '"owner":"bob","rate_limit":"api"')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
stage_is() { [ "$(jfield "$1" stage)" = "$2" ]; }
wait_for "a job waits for the configured limit's token" 10 stage_is b-10 rate_limited
check_match "the waiting job's message names the configured limit" "$(jfield b-10 message)" 'rate limit =api: starts at'
check "its bucket is the deployment-wide =api key (no owner in its name)" test "$(rcli EXISTS "$(qkey default rl):=api")" = 1
wait_for "the 20 named-limit jobs" 30 n_done a- 10
wait_for "... bob's too" 30 n_done b- 10
(starts a- 10 default; starts b- 10 default) | sort -n >"$T/named"
m=$(max_in_1s <"$T/named"); s=$(span <"$T/named")
note "named limit api 5/s, two owners: most starts in 1 s $m, span $s s"
check_le "one bucket for both owners: at most 6 starts in any 1 s" "$m" 6
check "... and the 20 starts span at least 3.5 s (19 tokens at 5/s)" awk -v s="$s" 'BEGIN { exit !(s >= 3.5) }'

msgs=()
for i in $(seq 1 6); do
	msgs+=("$(job_json "oa-$i" noop '{}' '"owner":"alice","rate_limit":{"key":"own","rate":"5/s"}')")
	msgs+=("$(job_json "ob-$i" noop '{}' '"owner":"bob","rate_limit":{"key":"own","rate":"5/s"}')")
done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
wait_for "the job-given limit's jobs" 30 n_done oa- 6
wait_for "... bob's too" 30 n_done ob- 6
m=$( (starts oa- 6 default; starts ob- 6 default) | sort -n | max_in_1s)
note "job-given key own 5/s, two owners: most starts in 1 s $m"
check_ge "a job-given key is per owner: two buckets (more than 6 starts in 1 s)" "$m" 7

msgs=()
for i in $(seq 1 12); do msgs+=("$(job_json "s-$i" noop '{}')"); done
msgs+=("$(job_json "own-1" noop '{}' '"rate_limit":{"key":"fast","rate":"1000/s","burst":10}')")
rcli LPUSH "$(qkey slow queue)" "${msgs[@]}" >/dev/null
wait_for "the slow queue's jobs" 30 n_done s- 12
s=$(starts s- 12 slow | span)
note "queue slow's default limit api: 12 jobs span $s s"
check "a queue's default limit holds its jobs that name none (span >= 2 s)" awk -v s="$s" 'BEGIN { exit !(s >= 2) }'
wait_for "own-1" 10 state_is own-1 succeeded
check "a job of that queue with its own limit used its own (started before the default's last token)" \
	awk -v a="$(jfield own-1 started_at)" -v b="$(jfield s-12 started_at)" 'BEGIN { exit !(a < b - 1) }'

echo '[{"type":"noop","rate_limit":"nope"}]' >"$T/bad.json"
st=0; out=$(ctl submit --file "$T/bad.json" 2>&1) || st=$?
check_eq "submit naming an unknown limit: bad_request (2)" "$st" 2
check_match "... naming the field" "$out" "field 'rate_limit': no configured limit 'nope'"
push_job default "$(job_json raw-nope noop '{}' '"rate_limit":"nope"')"
buried() { dead_entries default | grep -q '"message_id":"raw-nope"'; }
wait_for "the raw message naming an unknown limit is buried" 15 buried
check_match "... as a dead entry with the reason" "$(dead_entries default | grep '"message_id":"raw-nope"')" \
	"\"error\":\"field 'rate_limit': no configured limit 'nope'"
for n in n1 n2; do finish_hopperd "$n"; done
end_scenario

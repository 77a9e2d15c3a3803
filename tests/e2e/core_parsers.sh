#!/usr/bin/env bash
# core_parsers (issue 10, "one admission verdict"): one parser (jansson, common/job.c) decides a message's
# fate before anything is written for it. Messages Redis's cjson would accept but hopper rejects (NaN,
# Infinity, 1e400, raw NUL, invalid UTF-8, 20-digit integers) end as dead entries with their original bytes
# and no job hash (they used to leave a hash "queued" forever); a malformed message carrying the id of a
# finished job does not touch that job (it used to be dropped silently); a malformed message does not hold
# its idempotency key, so the corrected resubmission runs (it used to be cancelled as its duplicate).
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
push_job default "$(job_json done-1 noop)"
wait_for "done-1 succeeded" 20 state_is done-1 succeeded
fin=$(jfield done-1 finished_at)

bad=(
	'{"id":"p-nan","type":"noop","max_attempts":NaN}'
	'{"id":"p-inf","type":"noop","args":{"x":Infinity}}'
	'{"id":"p-big","type":"noop","args":{"x":1e400}}'
	'{"id":"p-int","type":"noop","max_attempts":12345678901234567890}'
	'{"id":"done-1","type":"noop",'
	'{"id":"p-idem","type":"noop","max_attempts":"three","idempotency_key":"k-1"}'
)
for m in "${bad[@]}"; do push_job default "$m"; done
printf '{"id":"p-utf8","type":"noop","args":{"s":"\xff\xfe"}}' | redis-cli -s "$SOCK" -x LPUSH "$(qkey default queue)" >/dev/null
printf '{"id":"p-nul","type":"noop","args":{"s":"a\0b"}}' | redis-cli -s "$SOCK" -x LPUSH "$(qkey default queue)" >/dev/null
n=$((${#bad[@]} + 2))
all_dead() { [ "$(dead_count)" = "$n" ]; }
wait_for "$n dead entries" 20 all_dead
check_eq "every rejected message is one dead entry" "$(dead_count)" "$n"
for id in p-nan p-inf p-big p-int p-idem p-utf8 p-nul; do
	check "$id: no job hash" key_gone "$(qkey default job "$id")"
done
check_eq "the finished job done-1 is untouched (state)" "$(jstate done-1)" succeeded
check_eq "the finished job done-1 is untouched (finished_at)" "$(jfield done-1 finished_at)" "$fin"
check_eq "the malformed copy of done-1 has its own dead entry (msg- id, its bytes)" \
	"$(dead_entries | grep -F 'done-1' | grep -c '"id":"msg-')" 1
check "the rejected message does not hold its idempotency key" key_gone "$(qkey default idem k-1)"
check_eq "the invalid UTF-8 message's bytes are kept (payload_b64)" \
	"$(dead_entries | py -c '
import base64, json, sys
for l in sys.stdin:
    e = json.loads(l)
    if "payload_b64" in e and b"p-utf8" in base64.b64decode(e["payload_b64"]):
        print(base64.b64decode(e["payload_b64"]) == b"{\"id\":\"p-utf8\",\"type\":\"noop\",\"args\":{\"s\":\"\xff\xfe\"}}")')" True
push_job default '{"id":"p-idem-fixed","type":"noop","max_attempts":3,"idempotency_key":"k-1"}'
wait_for "the corrected resubmission succeeded" 20 state_is p-idem-fixed succeeded
check_eq "the corrected resubmission runs (not a duplicate)" "$(jstate p-idem-fixed)" succeeded
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check "daemon alive" hopperd_alive n1
finish_hopperd n1
end_scenario

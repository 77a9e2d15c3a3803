#!/usr/bin/env bash
# bad_messages: malformed JSON, a JSON array, a job without a type, an unknown type, a mistyped field and an
# oversized message each end in the dead set with a readable error (none dropped) and hold no job key; the
# daemon keeps running and a valid job after them succeeds.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --max-message-bytes=1024 || exit 1

pad=$(head -c 2048 /dev/zero | tr '\0' x)
# Each case: a marker (it survives JSON escaping, so it finds the message's dead entry), the pattern its
# error must match, and the message.
markers=(bmmalformed bmarray bmnotype bmunknown bmwrongtype bmbig)
declare -A want=(
	[bmmalformed]='json'
	[bmarray]='object'
	[bmnotype]='type'
	[bmunknown]='unknown'
	[bmwrongtype]='max_attempts'
	[bmbig]='limit|bytes|large|size'
)
declare -A msg=(
	[bmmalformed]='{"id":"bmmalformed","type":"noop",'
	[bmarray]='["bmarray","noop"]'
	[bmnotype]='{"id":"bmnotype","args":{}}'
	[bmunknown]='{"id":"bmunknown","type":"no-such-type"}'
	[bmwrongtype]='{"id":"bmwrongtype","type":"noop","max_attempts":"x"}'
	[bmbig]='{"id":"bmbig","type":"noop","args":{"pad":"'$pad'"}}'
)
ncases=${#markers[@]}
for m in "${markers[@]}"; do
	push_job default "${msg[$m]}"
done
check_ge "the oversized message is over 1024 bytes" "${#msg[bmbig]}" 1025

dead_count_is() {
	[ "$(dead_count)" = "$1" ]
}
wait_for "$ncases dead entries" 30 dead_count_is "$ncases"
check_eq "dead list: one entry per bad message" "$(dead_count)" "$ncases"
check "daemon alive" hopperd_alive n1

# Each entry: found by its marker, with an error that says what was wrong.
dead_entries >"$T/dead.jsonl"
for m in "${markers[@]}"; do
	got=$(py - "$T/dead.jsonl" "$m" <<'PY'
import json, sys
path, marker = sys.argv[1], sys.argv[2]
hits = []
for line in open(path):
    line = line.strip()
    if not line or marker not in line:
        continue
    try:
        e = json.loads(line)
    except ValueError:
        print("entry is not JSON: " + line[:80])
        sys.exit()
    hits.append(e)
if len(hits) != 1:
    print("%d entries mention it" % len(hits))
elif not isinstance(hits[0].get("error"), str) or not hits[0]["error"].strip():
    print("entry has no error text")
else:
    print("error: " + hits[0]["error"])
PY
)
	check_match "$m: one dead entry whose error says what is wrong" "$got" "^error: .*(${want[$m]})"
done

# A rejected message holds no key of a job, even with a usable id: no hash, and its entry has an id of its
# own ("msg-" UUID) with the id it named in message_id.
for id in bmunknown bmwrongtype; do
	check "$id: no job hash for a rejected message" key_gone "$(qkey default job "$id")"
	check_eq "$id: its entry names the id it carried" \
		"$(dead_entries | grep -F "\"$id\"" | py -c 'import json,sys; e=json.loads(sys.stdin.readline()); print(e["message_id"], e["id"].startswith("msg-"))')" \
		"$id True"
done

# And the execution log records every undeliverable message (attempt 0: it never became a job).
wait_for "$ncases attempt-0 rows" 15 sql_is n1 "SELECT count(*) FROM attempts WHERE attempt = 0" "$ncases"
check_eq "SQLite: one attempt-0 row with an error per bad message" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE attempt = 0 AND length(error) > 0")" "$ncases"

push_job default "$(job_json bm-valid noop)"
wait_for "valid job succeeded" 30 state_is bm-valid succeeded
check_eq "a valid job after them succeeds" "$(jstate bm-valid)" succeeded
check_eq "dead list unchanged by it" "$(dead_count)" "$ncases"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# core_identity (issue 10, "one identity"): a message without an id gets one at admission, written into the
# stored message, so every later path sees the same job. The README's first example
# (LPUSH '{"type":"fail","max_attempts":3}') ends dead after exactly 3 attempts as ONE job (it used to loop
# forever, a new job per redelivery); three identical delayed pushes without ids are three jobs, each run
# once (they used to collapse into one scheduled member); an id like "x:events" cannot name another kind of
# key nor strand the messages fetched with it.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --backoff-base-s=0.05 --backoff-max-s=0.1 || exit 1

# Every job hash of queue default, as "id state attempt" lines.
all_jobs() {
	rcli EVAL "
		local out = {}
		for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '{default}:job:*')) do
			local f = redis.call('HMGET', k, 'id', 'state', 'attempt', 'type')
			out[#out + 1] = (f[1] or '?') .. ' ' .. (f[2] or '?') .. ' ' .. (f[3] or '?') .. ' ' .. (f[4] or '?')
		end
		return out" 0 "$HP" | sort
}
count_type() { all_jobs | awk -v t="$1" '$4 == t' | wc -l; }

push_job default '{"type":"fail","max_attempts":3}'
one_fail_dead() { all_jobs | awk '$4 == "fail" && $2 == "dead"' | grep -q .; }
wait_for "the README example ends dead" 30 one_fail_dead
sleep 1 # any redelivery would make a second hash now
check_eq "README example: exactly one job hash" "$(count_type fail)" 1
check_match "README example: it is dead after 3 attempts" "$(all_jobs | awk '$4 == "fail"')" ' dead 3 fail$'
fid=$(all_jobs | awk '$4 == "fail" { print $1 }')
check_eq "its stored payload carries the id it was given" \
	"$(jfield "$fid" payload | py -c 'import json,sys; print(json.load(sys.stdin)["id"])')" "$fid"
check_eq "its dead entry is the job's (same id, the stored payload)" "$(dead_entries | grep -c "\"id\":\"$fid\"")" 1
check_eq "SQLite: 3 attempt rows for it" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id = '$fid'")" 3

# Three identical delayed pushes without ids: three jobs, each run once.
at=$(awk -v n="$(now)" 'BEGIN { printf "%.3f", n + 1 }')
for i in 1 2 3; do push_job default "{\"type\":\"noop\",\"run_at\":$at,\"args\":{\"same\":1}}"; done
three_noop() { [ "$(all_jobs | awk '$4 == "noop" && $2 == "succeeded"' | wc -l)" = 3 ]; }
wait_for "three delayed jobs succeeded" 30 three_noop
check_eq "three identical delayed pushes: three jobs" "$(count_type noop)" 3
check_eq "each ran once" "$(all_jobs | awk '$4 == "noop" && $3 == 1' | wc -l)" 3

# Ids that look like other kinds of key: they stay jobs of their own; nothing is stranded in inflight.
push_job default '{"id":"x:events","type":"noop"}'
push_job default '{"id":"job:x","type":"noop"}'
push_job default "$(job_json plain-after noop)"
wait_for "x:events succeeded" 20 state_is x:events succeeded
check_eq "id x:events: its own job, succeeded" "$(jstate x:events)" succeeded
check_eq "id job:x: its own job, succeeded" "$(jstate job:x)" succeeded
wait_for "the job fetched after them succeeded" 20 state_is plain-after succeeded
check_eq "the job fetched with them succeeded" "$(jstate plain-after)" succeeded
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "scheduled set empty" "$(rcli ZCARD "$(qkey default scheduled)")" 0
check_eq "every job hash is in the list index" \
	"$(rcli ZCARD "$(qkey default jobs)")" "$(all_jobs | wc -l)"
finish_hopperd n1
end_scenario

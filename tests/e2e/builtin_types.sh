#!/usr/bin/env bash
# builtin_types: each built-in job type ends in the right state with the right execution-log rows, in Redis
# (job hash, events, dead list) and in SQLite (attempts, attempt_events); hopperctl status reports them; an
# unknown id answers "unknown" (exit 3) while a job submitted with nobody consuming its queue reads "queued".
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1

push_job default "$(job_json bt-noop noop)"
push_job default "$(job_json bt-sleep sleep '{"ms":300}')"
push_job default "$(job_json bt-fail fail '{"message":"boom"}' '"max_attempts":2,"backoff_s":0.1')"
push_job default "$(job_json bt-crash crash '{}' '"max_attempts":1')"

wait_for "bt-noop succeeded" 30 state_is bt-noop succeeded
wait_for "bt-sleep succeeded" 30 state_is bt-sleep succeeded
wait_for "bt-fail dead" 30 state_is bt-fail dead
wait_for "bt-crash dead" 30 state_is bt-crash dead
# One transaction per loop turn: the rows follow the Redis states within a turn or so.
wait_for "5 finished attempts rows" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'bt-%' AND finished_at IS NOT NULL" 5

# --- noop ---
check_eq "noop: state" "$(jstate bt-noop)" succeeded
check_eq "noop: attempt counter" "$(jfield bt-noop attempt)" 1
check_eq "noop: attempts rows (attempt|state|node|has worker pid|queue|type)" \
	"$(sql n1 "SELECT attempt, state, node, worker_pid > 0, queue, type FROM attempts WHERE job_id='bt-noop'")" \
	"1|succeeded|n1|1|default|noop"
check_eq "noop: result recorded as JSON" \
	"$(sql n1 "SELECT json_valid(result) FROM attempts WHERE job_id='bt-noop'")" 1

# --- sleep ---
check_eq "sleep: state" "$(jstate bt-sleep)" succeeded
check_eq "sleep: hash progress" "$(jfield bt-sleep progress)" 100
check_eq "sleep: attempts rows" "$(sql n1 "SELECT attempt, state FROM attempts WHERE job_id='bt-sleep'")" \
	"1|succeeded"
check_eq "sleep: duration_ms covers the 300 ms sleep" \
	"$(sql n1 "SELECT duration_ms >= 300 AND finished_at >= started_at FROM attempts WHERE job_id='bt-sleep'")" 1
check_eq "sleep: result is the handler's" \
	"$(sql n1 "SELECT json_extract(result, '$.slept_ms') FROM attempts WHERE job_id='bt-sleep'")" 300

# progress_shape: reads progress values (one a line) and says whether they run 0 -> 100 (or, for
# execution-log rows, which need not hold the final 100, 0 -> something) without going down.
progress_shape() {
	awk -v want_last="$1" 'NF {
		if (n == 0) first = $1
		if (n > 0 && $1 + 0 < prev + 0) down = 1
		prev = $1; n++
	} END {
		if (n < 3) { print "only " n " progress values"; exit }
		if (first != 0) { print "first progress is " first ", not 0"; exit }
		if (down) { print "progress went down"; exit }
		if (want_last != "" && prev != want_last) { print "last progress is " prev ", not " want_last; exit }
		print "ok"
	}'
}
# The job's progress as its Redis event list tells it: every event that carries a progress value (progress
# events, and state events: queued and running at 0, succeeded at 100), oldest first.
redis_progress=$(rcli LRANGE "$(qkey default events bt-sleep)" 0 -1 | py -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line:
        e = json.loads(line)
        if isinstance(e.get("progress"), (int, float)):
            print(int(e["progress"]))
')
check_ge "sleep: progress events in the Redis event list" \
	"$(rcli LRANGE "$(qkey default events bt-sleep)" 0 -1 | py -c '
import json, sys
print(sum(1 for l in sys.stdin if l.strip() and "progress" in (json.loads(l).get("event"), json.loads(l).get("kind"))))
')" 3
check_eq "sleep: Redis progress events go 0 -> 100, never down" \
	"$(printf '%s\n' "$redis_progress" | progress_shape 100)" ok
check_eq "sleep: attempt_events progress rows go up from 0, never down" \
	"$(sql n1 "SELECT e.progress FROM attempt_events e JOIN attempts a ON a.id = e.attempt_id
		WHERE a.job_id='bt-sleep' AND e.kind='progress' ORDER BY e.id" | progress_shape '')" ok

# --- fail ---
check_eq "fail: state" "$(jstate bt-fail)" dead
check_match "fail: hash error" "$(jfield bt-fail error)" boom
check_eq "fail: attempt counter" "$(jfield bt-fail attempt)" 2
check_eq "fail: two attempts rows, both with error boom, neither succeeded" \
	"$(sql n1 "SELECT attempt || ':' || (error LIKE '%boom%') || ':' || (state <> 'succeeded' AND state <> 'running')
		FROM attempts WHERE job_id='bt-fail' ORDER BY attempt" | paste -sd' ' -)" "1:1:1 2:1:1"
check_eq "fail: one entry in the dead set" "$(dead_entries_with '"bt-fail"')" 1
check_eq "fail: the handler's log line is in attempt_events" \
	"$(sql n1 "SELECT count(*) > 0 FROM attempt_events e JOIN attempts a ON a.id = e.attempt_id
		WHERE a.job_id='bt-fail' AND e.kind='log' AND e.message LIKE '%boom%'")" 1

# --- crash ---
check_eq "crash: state" "$(jstate bt-crash)" dead
check_match "crash: hash error names the signal" "$(jfield bt-crash error)" 'signal|SIGSEGV|segmentation'
check_eq "crash: one attempts row" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id='bt-crash'")" 1
check_match "crash: attempts row error names the signal" \
	"$(sql n1 "SELECT state || ' ' || error FROM attempts WHERE job_id='bt-crash'")" \
	'^(failed|dead).*(signal|SIGSEGV|segmentation)'
check_eq "crash: one entry in the dead set" "$(dead_entries_with '"bt-crash"')" 1

# --- hopperctl status ---
for pair in bt-noop:succeeded bt-sleep:succeeded bt-fail:dead bt-crash:dead; do
	id=${pair%%:*} want=${pair#*:}
	out=$(ctl status "$id" 2>&1)
	st=$?
	check_eq "hopperctl status $id exits 0" "$st" 0
	check_match "hopperctl status $id says $want" "$out" "\\b$want\\b"
done
out=$(ctl status bt-no-such-job 2>&1)
st=$?
check_eq "hopperctl status of an unknown id exits 10 (not_found)" "$st" 10
check_match "hopperctl status of an unknown id says not_found" "$out" 'not_found'

# A job submitted through hopperctl to a queue nobody consumes reads queued at once.
out=$(ctl submit noop --queue nobody --id bt-queued 2>&1)
st=$?
check_eq "hopperctl submit exits 0" "$st" 0
check_match "hopperctl submit prints the id" "$out" 'bt-queued'
check_eq "submitted job: hash state queued" "$(jstate bt-queued)" queued
check_eq "submitted job: on its queue" "$(rcli LRANGE "$(qkey nobody queue)" 0 -1 | grep -c '"bt-queued"')" 1
out=$(ctl status bt-queued 2>&1)
st=$?
check_eq "hopperctl status of a queued job exits 0" "$st" 0
check_match "hopperctl status of a queued job says queued" "$out" '\bqueued\b'
out=$(ctl submit noop --queue nobody 2>&1)
check_eq "hopperctl submit without --id prints a new id whose hash reads queued" \
	"$(jstate "$(printf '%s\n' "$out" | grep -Eo '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9A-HJKMNP-TV-Z]{26}' | head -n1)")" queued

check_eq "queue default empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

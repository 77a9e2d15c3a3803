#!/usr/bin/env bash
# hopperctl_flow: hopperctl against a running daemon, the way a user drives it: submit --wait (exit 0 on
# success, 1 on failure), status (--json; exit 3 for an unknown id; queued for a job nobody consumes yet),
# watch (a finished job; a running one, piped: JSON lines with progress, ending in the terminal state),
# and the dead list with requeue (the job runs again). hopperctl talks to the daemon's control socket
# (peer credentials: the tests run as root).
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
WAIT_S=$((60 * TIME_SCALE))
UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# json_field FIELD: reads one JSON object on stdin, prints FIELD (empty if absent or not JSON).
json_field() {
	py -c '
import json, sys
try:
    v = json.load(sys.stdin).get(sys.argv[1], "")
except Exception:
    v = ""
print(v)' "$1"
}

# --- submit --wait, a job that succeeds ---
out=$(ctl submit sleep --args '{"ms":600}' --wait --wait-timeout "$WAIT_S" 2>&1)
st=$?
note "submit --wait: $(printf '%s' "$out" | head -n 1)"
check_eq "submit --wait of a succeeding job exits 0" "$st" 0
id=$(printf '%s\n' "$out" | head -n 1)
check_match "submit --wait prints the id first" "$id" "$UUID_RE"
check_match "submit --wait prints the final state" "$out" '\bsucceeded\b'
check_eq "the job hash agrees" "$(jstate "$id")" succeeded

# --- status --json ---
out=$(ctl status "$id" --json 2>&1)
st=$?
check_eq "status --json exits 0" "$st" 0
check_eq "status --json: state succeeded" "$(printf '%s' "$out" | json_field state)" succeeded
check_eq "status --json: the id" "$(printf '%s' "$out" | json_field id)" "$id"
check_eq "status --json: type sleep" "$(printf '%s' "$out" | json_field type)" sleep

# --- watch a finished job ---
out=$(ctl watch "$id" --timeout "$WAIT_S" 2>&1)
st=$?
check_eq "watch of a finished job exits 0" "$st" 0
check_eq "watch of a finished job: its last line is the succeeded state" \
	"$(printf '%s\n' "$out" | tail -n 1 | json_field state)" succeeded

# --- watch a running job, piped ---
id2=$(ctl submit sleep --args '{"ms":800}' 2>/dev/null)
check_match "submit without --wait prints the id" "$id2" "$UUID_RE"
ctl watch "$id2" --timeout "$WAIT_S" 2>"$T/watch.err" | cat >"$T/watch.out"
st=${PIPESTATUS[0]}
check_eq "watch of a running job exits 0 when it succeeds" "$st" 0
summary=$(py -c '
import json, sys
n = prog = bad = other = 0
last = None
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    n += 1
    try:
        e = json.loads(line)
    except ValueError:
        bad += 1
        continue
    if e.get("job") != sys.argv[2]:
        other += 1
    if e.get("event") == "progress":
        prog += 1
    last = e
print("lines=%d bad=%d other=%d progress=%s last=%s/%s" % (n, bad, other, "yes" if prog else "no",
      last and last.get("event"), last and last.get("state")))' "$T/watch.out" "$id2")
note "watch: $summary"
check_match "watch, piped: every line is a JSON event of that job" "$summary" '^lines=[1-9][0-9]* bad=0 other=0 '
check_match "watch, piped: at least one progress event" "$summary" 'progress=yes'
check_match "watch, piped: ends with the succeeded state" "$summary" 'last=state/succeeded$'
check_eq "watch, piped: the job did succeed" "$(jstate "$id2")" succeeded

# --- submit --wait, a job that fails; the dead list ---
out=$(ctl submit fail --args '{"message":"nope"}' --max-attempts 1 --wait --wait-timeout "$WAIT_S" 2>&1)
st=$?
check_eq "submit --wait of a failing job exits 1" "$st" 1
fid=$(printf '%s\n' "$out" | head -n 1)
check_match "submit --wait of a failing job prints the id" "$fid" "$UUID_RE"
check_eq "the failing job is dead" "$(jstate "$fid")" dead
out=$(ctl dead 2>&1)
st=$?
check_eq "dead exits 0" "$st" 0
check_match "dead lists the job" "$out" "$fid"
check_match "dead shows its error" "$(printf '%s\n' "$out" | grep -F "$fid")" 'nope'
wait_for "its attempts row" 15 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='$fid' AND finished_at IS NOT NULL" 1
check_eq "one attempts row before the requeue" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE job_id='$fid'")" 1

# --- dead requeue: the job runs again, fails again, and is dead again ---
out=$(ctl dead requeue "$fid" 2>&1)
st=$?
note "dead requeue: $out"
check_eq "dead requeue exits 0" "$st" 0
wait_for "a second attempts row" 30 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE job_id='$fid' AND finished_at IS NOT NULL" 2
wait_for "dead again" 30 state_is "$fid" dead
check_eq "requeued: it ran again (two attempts rows, both failed with nope)" \
	"$(sql n1 "SELECT count(*) || ':' || sum(error LIKE '%nope%') FROM attempts WHERE job_id='$fid'")" 2:2
check_eq "requeued: dead again" "$(jstate "$fid")" dead
check_eq "requeued: in the dead list once more (one entry)" "$(dead_entries_with "\"$fid\"")" 1
check_match "requeued: dead lists it" "$(ctl dead 2>&1)" "$fid"

# --- status of an unknown id ---
out=$(ctl status no-such-id 2>&1)
st=$?
check_eq "status of an unknown id exits 10 (not_found)" "$st" 10
check_match "status of an unknown id says not_found" "$out" 'not_found'

# --- a job nobody consumes reads queued ---
qid=$(ctl submit noop --queue nobody-consumes-this 2>/dev/null)
st=$?
check_eq "submit to a queue nobody consumes exits 0" "$st" 0
check_match "it prints the id" "$qid" "$UUID_RE"
out=$(ctl status "$qid" 2>&1)
st=$?
check_eq "status of the queued job exits 0" "$st" 0
check_match "status of the queued job says queued" "$out" '\bqueued\b'
check_eq "status --json of the queued job: state queued" \
	"$(ctl status "$qid" --json 2>/dev/null | json_field state)" queued
check_eq "it waits on its queue" "$(llen "$(qkey nobody-consumes-this queue)")" 1

check_eq "queue default empty" "$(llen "$(qkey default queue)")" 0
finish_hopperd n1
end_scenario

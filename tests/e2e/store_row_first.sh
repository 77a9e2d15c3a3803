#!/usr/bin/env bash
# store_row_first (issue 10, F4): an attempt's row is committed to the execution log before Redis hears of
# the attempt. While another program holds SQLite's write lock, a job a worker took stays un-"running" in
# Redis (its attempt not counted); a kill -9 of the daemon then leaves no attempt Redis counts without a row:
# the next daemon runs it as attempt 1, and the logs of both daemons together hold exactly one row per
# attempt Redis counts. (Before, "running" left at once: Redis counted attempt 1, the killed daemon's
# queued row was lost, and no log ever held that attempt.)
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 --lease-s=2 --heartbeat-s=0.5 || exit 1

# Hold the write lock of n1's log (BEGIN IMMEDIATE) until this script kills the holder.
/usr/bin/python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(120)
' "$T/n1.db" "$T/locked" &
LOCKER=$!
echo "$LOCKER" >"$T/pids/locker.$LOCKER"
wait_for "the log's write lock is held" 10 test -f "$T/locked"

push_job default "$(job_json rf-sleep sleep '{"ms":1500}')"
claimed() { [ "$(jfield rf-sleep fence)" = 1 ]; }
wait_for "n1 claimed rf-sleep" 20 claimed
sleep 0.5
check "a worker of n1 runs it" pgrep -P "${HD_PID[n1]}"
check_eq "Redis has not heard of the attempt (its row is not committed)" "$(jfield rf-sleep attempt)" 0
check "the job is not 'running' in Redis yet" test "$(jstate rf-sleep)" != running

kill9_hopperd n1
kill "$LOCKER"
wait "$LOCKER" 2>/dev/null
start_hopperd n2 --workers=1 --lease-s=2 --heartbeat-s=0.5 || exit 1
wait_for "rf-sleep succeeded on n2" 40 state_is rf-sleep succeeded
attempts=$(jfield rf-sleep attempt)
rows=$( (sql n1 "SELECT attempt FROM attempts WHERE job_id = 'rf-sleep'"; sql n2 "SELECT attempt FROM attempts WHERE job_id = 'rf-sleep'") | sort -un | tr '\n' ' ')
check_eq "Redis counts one attempt" "$attempts" 1
check_eq "the logs hold a row for every attempt Redis counts" "$rows" "$(seq 1 "$attempts" | tr '\n' ' ')"
finish_hopperd n2
end_scenario

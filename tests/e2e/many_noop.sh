#!/usr/bin/env bash
# many_noop: 10,000 noop jobs (2,000 under sanitizers), pushed in one pipelined stream before the daemon
# starts, all succeed exactly once: every hash succeeded with attempt 1, exactly one succeeded attempts row
# per job, and nothing left in the queue, the inflight list or the dead list.
. "$(dirname "$0")/../lib.sh"

N=${MANY_NOOP_N:-10000}
[ "$HOPPER_SAN" = 1 ] && N=${MANY_NOOP_N:-2000}

start_redis
seq 1 "$N" | awk '{ printf "{\"id\":\"mn-%d\",\"type\":\"noop\",\"args\":{}}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"
check_eq "queue holds $N jobs before the daemon starts" "$(llen "$(qkey default queue)")" "$N"

start_hopperd n1 --workers=2 || exit 1
wait_for "all $N jobs succeeded" 300 all_in_state mn- 1 "$N" succeeded
check_eq "Redis: $N hashes succeeded" "$(job_states mn- 1 "$N")" "succeeded=$N"
check_eq "Redis: every job started exactly once (attempt=1)" "$(job_hist attempt mn- 1 "$N")" "1=$N"
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
check_eq "inflight list empty" "$(llen "$(qkey default inflight n1)")" 0
check_eq "dead list empty" "$(dead_count)" 0
check "daemon alive after the run" hopperd_alive n1
wait_for "$N attempts rows finished" 60 \
	sql_is n1 "SELECT count(*) FROM attempts WHERE finished_at IS NOT NULL" "$N"

# A clean stop loses no row; count after it.
finish_hopperd n1
check_eq "SQLite: exactly $N attempts rows" "$(sql n1 "SELECT count(*) FROM attempts")" "$N"
check_eq "SQLite: all of them succeeded" "$(sql n1 "SELECT count(*) FROM attempts WHERE state='succeeded'")" "$N"
check_eq "SQLite: $N distinct job ids, all ours" \
	"$(sql n1 "SELECT count(DISTINCT job_id) FROM attempts WHERE job_id LIKE 'mn-%'")" "$N"
check_eq "SQLite: every row is attempt 1 on node n1" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE attempt = 1 AND node = 'n1'")" "$N"
end_scenario

#!/usr/bin/env bash
# two_daemons: daemons a and b share one Redis. While both live no job runs twice. After kill -9 of a,
# b returns a's jobs to the queue once a's heartbeat expires (not before) and finishes them: all succeed.
. "$(dirname "$0")/../lib.sh"

N=60
start_redis
start_hopperd a --workers=2 --lease-s=3 --heartbeat-s=1 || exit 1
start_hopperd b --workers=2 --lease-s=3 --heartbeat-s=1 || exit 1
seq 1 "$N" | awk '{ printf "{\"id\":\"td-%d\",\"type\":\"sleep\",\"args\":{\"ms\":500}}\n", $1 }' >"$T/jobs.jsonl"
push_many default "$T/jobs.jsonl" || not_ok "push $N jobs" "redis-cli --pipe reported errors"

a_mid_run() {
	[ "$(count_state td- 1 "$N" succeeded)" -ge 8 ] && [ "$(count_state td- 1 "$N" running a)" -ge 1 ]
}
wait_for "8 jobs done, a running some" 60 a_mid_run

# While both were alive no job started twice (Redis attempt counter; execution logs below).
check_eq "both alive: no job's attempt counter passed 1" \
	"$(job_hist attempt td- 1 "$N" | tr ' ' '\n' | awk -F= '$1 != "missing" && $1 + 0 > 1 { n += $2 } END { print n + 0 }')" 0
check_ge "both alive: a has run jobs" "$(job_states td- 1 "$N" a | tr ' ' '\n' | awk -F= '{ n += $2 } END { print n + 0 }')" 1
check_ge "both alive: b has run jobs" "$(job_states td- 1 "$N" b | tr ' ' '\n' | awk -F= '{ n += $2 } END { print n + 0 }')" 1
kill_t=$(now)
kill9_hopperd a
# What a held at its death: nothing changes these hashes until a's lease expires.
a_running=$(rcli EVAL "
	local r = {}
	for i = 1, tonumber(ARGV[1]) do
		local k = 'hopper:{default}:job:td-' .. i
		if redis.call('HGET', k, 'state') == 'running' and redis.call('HGET', k, 'node') == 'a' then
			r[#r + 1] = 'td-' .. i
		end
	end
	return r" 0 "$N")
note "a was running: $(echo $a_running) at $kill_t"

both="ATTACH '$T/b.db' AS b;"
check_eq "both alive: no job has two attempts rows started before the kill (a.db + b.db)" \
	"$(sql a "$both SELECT count(*) FROM (SELECT job_id FROM (
		SELECT job_id, started_at FROM main.attempts UNION ALL SELECT job_id, started_at FROM b.attempts)
		WHERE started_at < $kill_t GROUP BY job_id HAVING count(*) > 1)")" 0

wait_for "a was reaped (silent for a lease)" 30 node_gone a
check "a was reaped (silent for a lease)" node_gone a
check "b still registered" node_known b
wait_for "all $N jobs succeeded" 120 all_in_state td- 1 "$N" succeeded
check_eq "Redis: all $N hashes succeeded" "$(job_states td- 1 "$N")" "succeeded=$N"
check_eq "a's inflight list empty" "$(llen "$(qkey default inflight a)")" 0
check_eq "b's inflight list empty" "$(llen "$(qkey default inflight b)")" 0
check_eq "queue empty" "$(llen "$(qkey default queue)")" 0
n_a=0
for id in $a_running; do
	n_a=$((n_a + 1))
	check_eq "$id (running on a at the kill) finished on b" "$(jfield "$id" state)/$(jfield "$id" node)" succeeded/b
done
check_ge "a was running jobs when it died" "$n_a" 1
finish_hopperd b

check_eq "SQLite: every job has exactly one succeeded row across both logs" \
	"$(sql a "$both SELECT count(*) FROM (SELECT job_id FROM (
		SELECT job_id, state FROM main.attempts UNION ALL SELECT job_id, state FROM b.attempts)
		WHERE state = 'succeeded' GROUP BY job_id HAVING count(*) = 1)")" "$N"
check_eq "SQLite: a job with two rows is one a lost (its row in a.db never finished)" \
	"$(sql a "$both SELECT count(*) FROM (SELECT job_id FROM (
		SELECT job_id FROM main.attempts UNION ALL SELECT job_id FROM b.attempts) GROUP BY job_id HAVING count(*) > 1
		EXCEPT SELECT job_id FROM main.attempts WHERE finished_at IS NULL)")" 0
check_ge "SQLite: a.db records the attempts a lost (unfinished rows)" \
	"$(sql a "SELECT count(*) FROM attempts WHERE finished_at IS NULL")" 1
# The lease: b may start a's lost jobs only after a's heartbeat expired, at least lease_s - heartbeat_s
# (3 - 1 s) after a's last beat; 1 s after the kill leaves a margin for scheduling.
check_eq "SQLite: b started none of a's lost jobs within 1 s of the kill" \
	"$(sql a "$both SELECT count(*) FROM b.attempts WHERE job_id IN (SELECT job_id FROM main.attempts WHERE finished_at IS NULL)
		AND started_at < $kill_t + 1.0")" 0
# ... and promptly after it: within lease_s plus a generous margin, not at some later restart.
check_eq "SQLite: b started each of a's lost jobs within 15 s of the kill" \
	"$(sql a "$both SELECT count(*) FROM main.attempts a1 WHERE a1.finished_at IS NULL AND NOT EXISTS (
		SELECT 1 FROM b.attempts b1 WHERE b1.job_id = a1.job_id AND b1.started_at < $kill_t + 15 * $TIME_SCALE)")" 0
end_scenario

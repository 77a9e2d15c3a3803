#!/usr/bin/env bash
# workflow_park: durable waits (README "Durable waits"). A workflow run whose step waits (enqueue with
# wait: true, delay, sleep_until) parks in its queue's scheduled set and holds no worker:
#   - with one worker, a run that enqueues a noop and waits for it succeeds (the child ran while the parent
#     was parked), and the child's end wakes the parent well before the fallback time;
#   - a 3 s delay parks: a plain job submitted meanwhile runs at once on the single worker; the delay ends
#     after >= 3 s from the step's start; the attempt rows say parked then succeeded; max_attempts = 1 still
#     succeeds after two parks; sleep_until parks until its ISO time;
#   - a lost wake (the parent's wake field dropped, so the child's end does not move it) is recovered by the
#     fallback poll (30 s);
#   - a parked run cancelled ends cancelled and never runs again; a stale fence cannot park;
#   - 200 runs with a 4 s delay on workers = 2: plain jobs run meanwhile, hopperd is killed with SIGKILL and
#     restarted during the wait, every run succeeds exactly once, none before its time.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_hopperd n1 --workers=1 || exit 1

# hget ID FIELD in queue default
hget() { rcli HGET "$(qkey default job "$1")" "$2"; }

# --- 1. enqueue + wait with a single worker ---
DEF='{"steps": [{"id": "child", "type": "enqueue", "params": {"type": "noop", "wait": true}}]}'
push_job default "$(wf_job p1 "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "p1 ends" 30 is_final p1
check_eq "enqueue+wait on one worker: the run succeeded" "$(jstate p1)" succeeded
check_eq "the child succeeded" "$(jstate p1.child)" succeeded
check_eq "the step's output carries the child's state" "$(jresult p1 'r["output"]["state"]')" succeeded
check_ge "the parent parked at least once" "$(hget p1 parks)" 1
child_end=$(hget p1.child finished_at)
parent_end=$(hget p1 finished_at)
check "the child ended before the parent's last attempt ended" fcmp "$child_end" '<' "$parent_end"
check "the wake came well before the 30 s fallback" fcmp "$parent_end" '<' "$(py -c "print($child_end + 10)")"
check_eq "the child names its parent" "$(hget p1.child payload | py -c 'import json,sys; print(json.load(sys.stdin)["parent"]["id"])')" p1
check_eq "attempt rows: parked, then succeeded, all attempt 1" \
	"$(sql n1 "SELECT group_concat(attempt || ':' || state, ' ') FROM (SELECT * FROM attempts WHERE job_id='p1' ORDER BY id)")" \
	"1:parked 1:succeeded"
check_eq "the hash says attempt 1 of 1" "$(hget p1 attempt)/$(hget p1 max_attempts)" "1/1"

# --- 2. a 3 s delay parks; a plain job runs meanwhile; max_attempts 1 after two parks ---
DEF='{"steps": [
  {"id": "a", "type": "delay", "params": {"ms": 3000}},
  {"id": "b", "type": "delay", "depends_on": ["a"], "params": {"ms": 2500}}
]}'
t0=$(now)
push_job default "$(wf_job p2 "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "p2 is parked" 10 bash -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job p2)' state)\" = scheduled ]"
check_match "the parked run says what it waits for" "$(hget p2 message)" '^waiting: sleep until 20[0-9-]+T[0-9:.]+Z$'
check_eq "the parked run is in the scheduled set" "$(rcli ZCARD "$(qkey default scheduled)")" 1
push_job default "$(job_json plain1 noop)"
wait_for "a plain job runs while p2 waits" 5 bash -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job plain1)' state)\" = succeeded ]"
check_eq "the plain job ran on the single worker while p2 waited" "$(jstate plain1)" succeeded
check_eq "p2 is still parked when the plain job is done" "$(jstate p2)" scheduled
wait_for "p2 ends" 30 is_final p2
t1=$(hget p2 finished_at)
check_eq "the delays succeeded with max_attempts 1 after two parks" "$(jstate p2)" succeeded
check_eq "two parks counted" "$(hget p2 parks)" 2
check "the run took >= 5.5 s (3 s + 2.5 s)" fcmp "$t1" '>=' "$(py -c "print($t0 + 5.5)")"
check_eq "attempt rows: parked, parked, succeeded" \
	"$(sql n1 "SELECT group_concat(attempt || ':' || state, ' ') FROM (SELECT * FROM attempts WHERE job_id='p2' ORDER BY id)")" \
	"1:parked 1:parked 1:succeeded"
a_start=$(sql n1 "SELECT min(started_at) FROM workflow_steps WHERE job_id='p2' AND step_id='a'")
a_end=$(sql n1 "SELECT max(finished_at) FROM workflow_steps WHERE job_id='p2' AND step_id='a' AND state='succeeded'")
check "step a ended >= 3 s after its first start" fcmp "$a_end" '>=' "$(py -c "print($a_start + 3)")"
check "step a ended not long after start + 3 s (the resume does not restart the delay)" fcmp "$a_end" '<' \
	"$(py -c "print($a_start + 5.5)")"

# sleep_until an ISO time 3 s ahead
until_iso=$(py -c 'import datetime, time; print(datetime.datetime.fromtimestamp(time.time() + 3, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")')
until_s=$(py -c "import datetime; print(datetime.datetime.strptime('$until_iso', '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp())")
DEF="{\"steps\": [{\"id\": \"u\", \"type\": \"sleep_until\", \"params\": {\"until\": \"$until_iso\"}}]}"
push_job default "$(wf_job p3 "{\"definition\":$DEF}")"
wait_for "p3 ends" 20 is_final p3
check_eq "sleep_until succeeded" "$(jstate p3)" succeeded
check "sleep_until did not end before its time" fcmp "$(hget p3 finished_at)" '>=' "$until_s"
check_eq "sleep_until parked once" "$(hget p3 parks)" 1
DEF='{"steps": [{"id": "u", "type": "sleep_until", "params": {"until": "tomorrow"}}]}'
push_job default "$(wf_job p3bad "{\"definition\":$DEF}")"
wait_for "p3bad ends" 20 is_final p3bad
check_eq "a bad sleep_until time fails the run" "$(jstate p3bad)" failed
check_match "it says why" "$(hget p3bad error)" 'ISO-8601'

# --- 3. cancel of a parked run ---
DEF='{"steps": [{"id": "long", "type": "delay", "params": {"ms": 60000}}]}'
push_job default "$(wf_job p4 "{\"definition\":$DEF}")"
wait_for "p4 is parked" 10 bash -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job p4)' state)\" = scheduled ]"
ctl cancel p4 >/dev/null 2>&1
check_eq "the cancelled parked run is cancelled" "$(jstate p4)" cancelled
check_eq "it left the scheduled set" "$(rcli ZSCORE "$(qkey default scheduled)" "$(hget p4 payload)")" ""
check_eq "its only attempt row is the parked one" \
	"$(sql n1 "SELECT group_concat(state, ' ') FROM attempts WHERE job_id='p4'")" parked

# --- 4. a stale fence cannot park ---
fence=$(hget p2 fence)
out=$(rcli FCALL hopper_park 5 "$(qkey default inflight n1)" "$(qkey default job p2)" "$(qkey default events p2)" \
	"$(qkey default scheduled)" "$(qkey default steps p2)" "$(hget p2 payload)" p2 "$((fence - 1))" n1 1 "$(now)" test '' 0 0 60 100)
check_eq "a park with a stale fence is refused" "$out" superseded
check_eq "and wrote nothing" "$(jstate p2)" succeeded

# --- 5. a lost wake is recovered by the fallback ---
DEF='{"steps": [{"id": "c", "type": "enqueue", "params": {"type": "sleep", "args": {"ms": 3000}, "wait": true}}]}'
push_job default "$(wf_job p5 "{\"definition\":$DEF}")"
wait_for "p5 is parked on its child" 10 bash -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job p5)' wake)\" = p5.c ]"
rcli HSET "$(qkey default job p5)" wake '' >/dev/null # the wake is lost: the child's end will not move it
parked_at=$(now)
wait_for "the child ends" 15 is_final p5.c
sleep 1
check_eq "without its wake, the parent is still parked after the child ended" "$(jstate p5)" scheduled
wait_for "p5 ends by the fallback" 45 is_final p5
check_eq "the run recovered from the lost wake" "$(jstate p5)" succeeded
check "it resumed at the fallback (>= 25 s after parking)" fcmp "$(hget p5 finished_at)" '>=' "$(py -c "print($parked_at + 25)")"

finish_hopperd n1

# --- 6. 200 runs with a 4 s delay on two workers, hopperd killed and restarted during the wait ---
start_hopperd n2 --workers=2 || exit 1
DEF='{"steps": [{"id": "d", "type": "delay", "params": {"ms": 4000}}]}'
: >"$T/many.jsonl"
for i in $(seq 1 200); do
	printf '%s\n' "$(wf_job "m$i" "{\"definition\":$DEF}" '"max_attempts":3')" >>"$T/many.jsonl"
done
# m_succeeded: how many of m1..m200 succeeded
m_succeeded() {
	rcli EVAL "local n = 0 for i = 1, 200 do if redis.call('HGET', ARGV[1] .. i, 'state') == 'succeeded' then n = n + 1 end end return n" 0 "$(qkey default job m)"
}
tm=$(now)
push_many default "$T/many.jsonl"
wait_for "all 200 runs are parked" 30 bash -c "[ \"\$(redis-cli -s '$SOCK' ZCARD '$(qkey default scheduled)')\" -ge 200 ]"
for i in 1 2 3 4 5; do push_job default "$(job_json "q$i" noop)"; done
wait_for "plain jobs run while 200 runs wait" 5 bash -c "for i in 1 2 3 4 5; do [ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job q)'\$i state)\" = succeeded ] || exit 1; done"
q_ok=0
for i in 1 2 3 4 5; do [ "$(jstate "q$i")" = succeeded ] && q_ok=$((q_ok + 1)); done
check_eq "5 plain jobs ran on 2 workers while 200 runs waited" "$q_ok" 5
check_le "no run had ended when the plain jobs were done" "$(m_succeeded)" 0
kill9_hopperd n2
start_hopperd n2 --workers=2 || exit 1
all_m_done() { [ "$(m_succeeded)" = 200 ]; }
wait_for "all 200 runs end" 90 all_m_done
ok=0 early=0
for i in $(seq 1 200); do
	[ "$(jstate "m$i")" = succeeded ] && ok=$((ok + 1))
done
check_eq "every run succeeded" "$ok" 200
check_eq "each succeeded exactly once (one succeeded row per run)" \
	"$(sql n2 "SELECT count(*) FROM attempts WHERE job_id LIKE 'm%' AND state='succeeded'")" 200
early=$(sql n2 "SELECT count(*) FROM workflow_steps s WHERE s.job_id LIKE 'm%' AND s.state='succeeded' AND
	s.finished_at < (SELECT min(started_at) FROM workflow_steps t WHERE t.job_id = s.job_id) + 4")
check_eq "none woke before its time (step end >= first start + 4 s)" "$early" 0
check "the runs took >= 4 s" fcmp "$(py -c "print(max(float(x) for x in open('/dev/stdin').read().split()))" <<<"$(for i in 1 100 200; do hget "m$i" finished_at; done)")" '>=' "$(py -c "print($tm + 4)")"

# --- 7. a step's timeout counts from its first start, across parks ---
DEF='{"steps": [{"id": "c", "type": "enqueue", "timeout_s": 3, "params": {"type": "sleep", "args": {"ms": 8000}, "wait": true}}]}'
t7=$(now)
push_job default "$(wf_job p7 "{\"definition\":$DEF}")"
wait_for "p7 ends" 30 is_final p7
check_eq "an enqueue wait past its step timeout fails the run" "$(jstate p7)" failed
check_match "it says it timed out" "$(hget p7 error)" 'timed out waiting for job p7.c'
check "it ended before the child (the timeout, not the child's end)" fcmp "$(hget p7 finished_at)" '<' \
	"$(py -c "print($t7 + 8)")"
check_ge "it parked while it waited" "$(hget p7 parks)" 1

end_scenario

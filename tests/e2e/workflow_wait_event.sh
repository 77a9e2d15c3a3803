#!/usr/bin/env bash
# workflow_wait_event: a wait_event step parks its run until an event with its key is sent (README "Durable
# waits"; hopperctl event send). With one worker:
#   - an event sent during the wait: the run parked (state scheduled, "waiting: event KEY") held no worker (a
#     plain job ran meanwhile); the send woke it at once (event.send says woken 1), the step's output is the
#     event's data, the attempt rows say parked then succeeded;
#   - an event sent before the wait, within lookback_s: found at once, no park; outside the lookback (0 s):
#     not seen, and the wait times out after timeout_s (the run fails, saying so);
#   - the key is rendered from the input; another owner's event of the same key does not wake the run;
#   - two daemons: the run's daemon is killed with SIGKILL while the run is parked, the event is sent through
#     the other daemon, which wakes and finishes the run (once);
#   - a cancelled run is taken off its key's waiters at once (event.list, event.send wake nobody).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
HD_CTL=1
start_hopperd n1 --workers=1 --poll-ms=50 || exit 1
hget() { rcli HGET "$(qkey default job "$1")" "$2"; }
jq1() { py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
rows() { sql n1 "SELECT group_concat(state, ' ') FROM (SELECT * FROM attempts WHERE job_id='$1' ORDER BY id)"; }
step_out() { sql "$1" "SELECT json_extract(output, '$4') FROM workflow_steps WHERE job_id='$2' AND step_id='$3' AND state='succeeded'"; }
parked_on() { [ "$(jstate "$1")" = scheduled ] && [ "$(hget "$1" message)" = "waiting: event $2" ]; }

# --- 1. sent during the wait ---
DEF='{"steps": [{"id": "paid", "type": "wait_event", "params": {"key": "order-{{input.order}}.paid", "timeout_s": 120}},
	{"id": "after", "type": "filter", "depends_on": ["paid"], "params": {"condition": "{{steps.paid.output.data.amount}} == 12"}}]}'
push_job default "$(wf_job w1 "{\"definition\":$DEF,\"input\":{\"order\":\"A7\"}}" '"max_attempts":1')"
wait_for "w1 parks on its event" 15 parked_on w1 order-A7.paid
check_eq "... holding no worker: a plain job runs on the single worker meanwhile" \
	"$(push_job default '{"id":"plain1","type":"noop"}'; wait_for "plain1 ends" 10 is_final plain1; jstate plain1)" succeeded
check_eq "event.list shows one waiting run" "$(ctl --json event list order-A7.paid | jq1 'd["waiters"]')" 1
t_send=$(now)
r=$(ctl --json event send order-A7.paid --data '{"amount":12}')
check_eq "event.send woke the waiting run" "$(echo "$r" | jq1 'd["woken"]')" 1
wait_for "w1 ends" 20 is_final w1
check_eq "the run succeeded" "$(jstate w1)" succeeded
check "... soon after the send (well before the 30 s fallback)" fcmp "$(hget w1 finished_at)" '<' "$(py -c "print($t_send + 10)")"
check_eq "the step's output is the event's data, and the next step read it" "$(jresult w1 'r["steps"]')" \
	'{"paid": "succeeded", "after": "succeeded"}'
check_eq "... its output names the key and holds the data" "$(step_out n1 w1 paid '$.key'):$(step_out n1 w1 paid '$.data.amount')" \
	order-A7.paid:12
check_eq "attempt rows: parked, then succeeded" "$(rows w1)" "parked succeeded"

# --- 2. sent before the wait: lookback ---
ctl event send early.key --data '{"n":1}' >/dev/null
sleep 1.2
DEF2='{"steps": [{"id": "e", "type": "wait_event", "params": {"key": "early.key", "lookback_s": 60, "timeout_s": 60}}]}'
push_job default "$(wf_job w2 "{\"definition\":$DEF2}" '"max_attempts":1')"
wait_for "w2 ends" 15 is_final w2
check_eq "an event sent 1 s before the wait, lookback 60 s: the run succeeds" "$(jstate w2)" succeeded
check_eq "... without parking" "$(hget w2 parks)" ""
check_eq "... with that event's data" "$(jresult w2 'r["output"]["data"]["n"]')" 1
DEF3='{"steps": [{"id": "e", "type": "wait_event", "params": {"key": "early.key", "lookback_s": 0, "timeout_s": 4}}]}'
push_job default "$(wf_job w3 "{\"definition\":$DEF3}" '"max_attempts":1')"
wait_for "w3 parks" 10 parked_on w3 early.key
check_eq "lookback 0: the earlier event is not taken (the run waits)" "$(jstate w3)" scheduled
wait_for "w3 ends" 20 is_final w3
check_eq "... and times out after timeout_s: the run fails" "$(jstate w3)" failed
check_match "... saying so" "$(hget w3 error)" 'timed out waiting for event early.key after 4 s'

ctl retry w3 >/dev/null
wait_for "the retried w3 parks again" 10 parked_on w3 early.key
check_eq "a retried run's wait gets a new window (it waits, not 'timed out' at once)" "$(jstate w3)" scheduled
ctl event send early.key --data '{"n":2}' >/dev/null
wait_for "w3 ends" 20 is_final w3
check_eq "... and takes the event sent then" "$(jstate w3):$(jresult w3 'r["output"]["data"]["n"]')" succeeded:2
DEF6='{"steps": [{"id": "e", "type": "wait_event", "timeout_s": 3, "params": {"key": "k.steptimeout", "timeout_s": 120}}]}'
push_job default "$(wf_job w6 "{\"definition\":$DEF6}" '"max_attempts":1')"
wait_for "w6 ends" 20 is_final w6
check_eq "the step's own timeout_s cuts a longer wait short" "$(jstate w6)" failed
check_match "... saying so" "$(hget w6 error)" "timed out \\(the step's timeout_s\\) waiting for event k.steptimeout"

# --- 3. owners ---
ALICE=$(ctl token create alice --scopes submit,read --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read --owner bob 2>/dev/null)
as() { local tok=$1; shift; HOPPER_TOKEN=$tok ctl "$@" 2>"$T/err"; }
DEF4='{"steps": [{"id": "e", "type": "wait_event", "params": {"key": "k.owned", "timeout_s": 120}}]}'
as "$ALICE" submit workflow.run "{\"definition\":$DEF4}" --id w4 --max-attempts 1 >/dev/null
W4=$(nsid alice w4)
wait_for "alice's run parks" 15 parked_on "$W4" k.owned
check_eq "bob's event of the same key wakes nothing" "$(as "$BOB" --json event send k.owned | jq1 'd["woken"]')" 0
check_eq "admin's (no owner) neither" "$(ctl --json event send k.owned | jq1 'd["woken"]')" 0
sleep 1
check_eq "... alice's run still waits" "$(jstate "$W4")" scheduled
check_eq "alice's own event wakes it" "$(as "$ALICE" --json event send k.owned --data '{"by":"alice"}' | jq1 'd["woken"]')" 1
wait_for "alice's run ends" 20 is_final "$W4"
check_eq "... with her event's data" "$(jresult "$W4" 'r["output"]["data"]["by"]')" alice
as "$ALICE" submit workflow.run "{\"definition\":{\"steps\":[{\"id\":\"e\",\"type\":\"wait_event\",\"params\":{\"key\":\"k.forge\",\"timeout_s\":120}}]}}" \
	--id w7 --max-attempts 1 >/dev/null
W7=$(nsid alice w7)
wait_for "alice's second run parks" 15 parked_on "$W7" k.forge
push_job default "{\"id\":\"forger\",\"type\":\"noop\",\"parent\":{\"id\":\"$W7\",\"queue\":\"default\"}}"
wait_for "the forged child ends" 10 is_final forger
check_eq "a job that names another owner's run as its parent does not touch it" "$(hget "$W7" woken)|$(jstate "$W7")" "|scheduled"
as "$ALICE" event send k.forge >/dev/null
wait_for "w7 ends" 20 is_final "$W7"

# --- 4. a wait longer than result_ttl_s keeps the run's step records ---
start_hopperd n3 --workers=1 --poll-ms=50 --result-ttl-s=3 --ctl-socket="$T/n3b.sock" || exit 1
kill -STOP "${HD_PID[n1]}"
DEF8='{"steps": [{"id": "a", "type": "filter", "params": {"condition": "1 == 1"}},
	{"id": "e", "type": "wait_event", "depends_on": ["a"], "params": {"key": "k.ttl", "timeout_s": 120}}]}'
push_job default "$(wf_job w8 "{\"definition\":$DEF8}" '"max_attempts":1')"
wait_for "w8 parks (on n3)" 15 parked_on w8 k.ttl
sleep 5
CTL_SOCK=$T/n3b.sock ctl event send k.ttl >/dev/null
wait_for "w8 ends" 20 is_final w8
check_eq "a run parked past result_ttl_s succeeds" "$(jstate w8)" succeeded
check_eq "... without running its earlier step again" "$(sql n3 "SELECT count(*) FROM workflow_steps WHERE job_id='w8' AND step_id='a'")" 1
kill -CONT "${HD_PID[n1]}"
finish_hopperd n3

# --- 5. the run's daemon dies while it waits; the event arrives through another ---
start_hopperd n2 --workers=1 --poll-ms=50 --ctl-socket="$T/n2b.sock" || exit 1
kill -STOP "${HD_PID[n2]}" # n1 takes the run
DEF5='{"steps": [{"id": "e", "type": "wait_event", "params": {"key": "k.failover", "timeout_s": 120}}]}'
push_job default "$(wf_job w5 "{\"definition\":$DEF5}" '"max_attempts":1')"
wait_for "w5 parks (on n1)" 15 parked_on w5 k.failover
kill -CONT "${HD_PID[n2]}"
kill9_hopperd n1
r=$(CTL_SOCK=$T/n2b.sock ctl --json event send k.failover --data '{"via":"n2"}')
check_eq "the event sent through n2 wakes the run" "$(echo "$r" | jq1 'd["woken"]')" 1
wait_for "w5 ends" 20 is_final w5
check_eq "n2 finishes it" "$(jstate w5):$(hget w5 node)" succeeded:n2
check_eq "... one succeeded attempt in all logs" \
	"$(( $(sql n1 "SELECT count(*) FROM attempts WHERE job_id='w5' AND state='succeeded'") + \
	     $(sql n2 "SELECT count(*) FROM attempts WHERE job_id='w5' AND state='succeeded'") ))" 1

# --- 6. a cancelled run is taken off its key's waiters (not left there until its deadline) ---
DEF6='{"steps": [{"id": "e", "type": "wait_event", "params": {"key": "k.cancel", "timeout_s": 3600}}]}'
push_job default "$(wf_job wcan "{\"definition\":$DEF6}" '"max_attempts":1')"
wait_for "wcan parks (on n2)" 15 parked_on wcan k.cancel
waiters() { CTL_SOCK=$T/n2b.sock ctl --json event list k.cancel | jq1 'd["waiters"]'; }
check_eq "wcan waits for k.cancel" "$(waiters)" 1
check_eq "its hash notes the key" "$(hget wcan evwait)" k.cancel
CTL_SOCK=$T/n2b.sock ctl cancel wcan >/dev/null 2>&1
check_eq "wcan cancelled" "$(jstate wcan)" cancelled
no_waiters() { [ "$(waiters)" = 0 ]; }
wait_for "the cancel takes wcan off the waiters" 10 no_waiters
check_eq "... so k.cancel has no waiter left" "$(waiters)" 0
r=$(CTL_SOCK=$T/n2b.sock ctl --json event send k.cancel)
check_eq "an event for k.cancel wakes nobody" "$(echo "$r" | jq1 'd["woken"]')" 0
check_eq "... and wcan stays cancelled" "$(jstate wcan)" cancelled
finish_hopperd n2
end_scenario

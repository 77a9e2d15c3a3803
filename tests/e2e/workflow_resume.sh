#!/usr/bin/env bash
# workflow_resume: hopperd is killed with SIGKILL while a run is between steps (its worker dies with it).
# Restarted, it runs the job's next attempt, which resumes after the steps whose records were made durable:
# the POST that already succeeded is not sent again (the test server counts requests per path). The delays
# are under 2 s: a longer one parks the run instead of holding the worker (workflow_park.sh).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_http
start_hopperd n1 --workers=1 || exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "order", "type": "http", "params": {"url": "$HTTP/orders", "method": "POST", "json": {"item": 1}}},
  {"id": "pause", "type": "delay", "depends_on": ["order"], "params": {"ms": 1900}},
  {"id": "confirm", "type": "http", "depends_on": ["pause"], "params": {"url": "$HTTP/echo",
    "query": {"order": "{{steps.order.output.json.n}}"}}}
]}
J
)
push_job default "$(wf_job wres "{\"definition\":$DEF}" '"max_attempts":3')"
wait_for "the order step's record is in Redis" 20 bash -c "[ \"\$(redis-cli -s '$SOCK' HEXISTS '$(qkey default steps wres)' order)\" = 1 ]"
wait_for "the pause step started" 10 bash -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(qkey default job wres)' stage)\" = pause ]"
check_eq "before the kill: one order was posted" "$(hits /orders)" 1
sleep 0.2
kill9_hopperd n1
check_eq "the job was left running" "$(jstate wres)" running

start_hopperd n1 --workers=1 || exit 1
wait_for "wres ends" 40 is_final wres

check_eq "resumed run succeeded" "$(jstate wres)" succeeded
check_eq "it took a second attempt" "$(jfield wres attempt)" 2
check_eq "the completed POST was not sent again" "$(hits /orders)" 1
check_eq "the last step ran once" "$(hits /echo)" 1
check_eq "the result says one step was resumed" "$(jresult wres 'r["resumed_steps"]')" 1
check_eq "the resumed output still fed the last step" "$(jresult wres 'r["output"]["json"]["query"]["order"]')" 1
check_eq "rows: order in attempt 1 only; pause and confirm in attempt 2" \
	"$(sql n1 "SELECT group_concat(step_id || '@' || run_attempt || ':' || state, ' ') FROM (SELECT * FROM workflow_steps WHERE job_id='wres' ORDER BY id)")" \
	"order@1:succeeded pause@2:succeeded confirm@2:succeeded"
check_match "the daemon logged the resume" "$(cat "$T/n1.log")" 'job wres: attempt 2 resumes after 1 recorded steps'

# A run stopped by its job timeout is retried as a job: it resumes too, unless the definition says
# "resume": false (then the POST goes out again on every attempt).
for mode in true false; do
	code=$([ $mode = true ] && echo 202 || echo 201)
	DEF=$(cat <<J
{"resume": $mode, "steps": [
  {"id": "post", "type": "http", "params": {"url": "$HTTP/status/$code", "method": "POST", "expected_status": $code}},
  {"id": "slow", "type": "delay", "depends_on": ["post"], "params": {"ms": 1900}}
]}
J
)
	push_job default "$(wf_job "wres-$mode" "{\"definition\":$DEF}" '"max_attempts":2,"timeout_s":1.5,"backoff_s":0.1')"
done
wait_for "both stopped runs end" 40 bash -c "case \$(redis-cli -s '$SOCK' HGET '$(qkey default job wres-true)' state)\$(redis-cli -s '$SOCK' HGET '$(qkey default job wres-false)' state) in deaddead) exit 0;; esac; exit 1"
check_eq "timeout retry: both runs used their two attempts" "$(jfield wres-true attempt) $(jfield wres-false attempt)" "2 2"
check_eq "timeout retry: resumed, the POST went out once" "$(hits /status/202)" 1
check_eq "timeout retry: with resume false, once per attempt" "$(hits /status/201)" 2

end_scenario

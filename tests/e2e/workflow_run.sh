#!/usr/bin/env bash
# workflow_run: workflow.run jobs against a real HTTP server on 127.0.0.1 (tests/workflow/server.py): the
# AutomateOS example shape runs unchanged, templates pass data between steps, a DAG with branches runs in
# dependency order, a filter that says no ends `filtered` (state succeeded, result.status "filtered") while a
# failing step ends `failed`, step retries wait their backoff, every validation error is listed at once,
# stored workflows run by name, an idempotency key makes a repeated submission a duplicate, and an enqueue
# step waits for its child job and uses its result. Each step execution is a workflow_steps row.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_http
start_hopperd n1 --workers=2 || exit 1

# --- the AutomateOS example, as AutomateOS stores it ---
AOS=$(cat <<J
{"nodes": [
  {"id": "trigger", "type": "webhook", "config": {"method": "POST"}},
  {"id": "fetch", "type": "http_request", "config": {"url": "$HTTP/echo", "method": "POST",
    "headers": {"X-Run": "{{trigger.payload.run}}"}, "body": {"name": "{{trigger.payload.name}}"}, "timeout": 10}},
  {"id": "check", "type": "filter", "config": {"condition": "{{fetch.status_code}} == 200 and fetch.response.json.json.name == 'ada'"}}
 ],
 "connections": [{"from": "trigger", "to": "fetch"}, {"from": "fetch", "to": "check"}]}
J
)
push_job default "$(wf_job wr-aos "{\"definition\":$AOS,\"input\":{\"name\":\"ada\",\"run\":\"r1\"}}")"

# --- a DAG with branches: a -> (b, c) -> d; templates carry data from a and from both branches into d ---
DAG=$(cat <<J
{"name": "dag", "steps": [
  {"id": "d", "type": "http", "depends_on": ["b", "c"], "params": {"url": "$HTTP/echo",
    "json": {"from_b": "{{steps.b.output.json.query.who}}", "from_c": "{{steps.c.output.json.user.name}}", "n": "{{input.n}}"}}},
  {"id": "b", "type": "http", "depends_on": ["a"], "params": {"url": "$HTTP/echo", "query": {"who": "{{steps.a.output.json.user.name}}-b"}}},
  {"id": "c", "type": "http", "depends_on": ["a"], "params": {"url": "$HTTP/json"}},
  {"id": "a", "type": "http", "params": {"url": "$HTTP/json", "method": "GET"}}
]}
J
)
push_job default "$(wf_job wr-dag "{\"definition\":$DAG,\"input\":{\"n\":42}}")"

# --- filtered vs failed ---
FILT=$(cat <<J
{"steps": [
  {"id": "get", "type": "http", "params": {"url": "$HTTP/json"}},
  {"id": "adults", "type": "filter", "depends_on": ["get"], "params": {"condition": "steps.get.output.json.user.age > 40"}},
  {"id": "notify", "type": "http", "depends_on": ["adults"], "params": {"url": "$HTTP/notify-filtered", "method": "POST", "body": "x"}},
  {"id": "other", "type": "delay", "depends_on": ["get"], "params": {"ms": 10}}
]}
J
)
push_job default "$(wf_job wr-filtered "{\"definition\":$FILT}")"
FAIL=$(cat <<J
{"steps": [
  {"id": "boom", "type": "http", "params": {"url": "$HTTP/status/500"}},
  {"id": "after", "type": "http", "depends_on": ["boom"], "params": {"url": "$HTTP/after-failed"}}
]}
J
)
push_job default "$(wf_job wr-failed "{\"definition\":$FAIL}" '"max_attempts":1')"

# --- step retries with backoff: /flaky fails twice, then answers ---
RETRY=$(cat <<J
{"steps": [{"id": "flaky", "type": "http", "retries": 3, "backoff_s": 0.3, "backoff_max_s": 5,
  "params": {"url": "$HTTP/flaky?fail=2&key=wr"}}]}
J
)
push_job default "$(wf_job wr-retry "{\"definition\":$RETRY}")"

# --- every validation error, at once, and never retried ---
BAD=$(cat <<J
{"steps": [
  {"id": "a", "type": "teleport"},
  {"id": "b", "type": "delay"}, {"id": "b", "type": "delay"},
  {"id": "x", "type": "delay", "depends_on": ["y"]}, {"id": "y", "type": "delay", "depends_on": ["x"]},
  {"id": "early", "type": "http", "params": {"url": "$HTTP/{{steps.late.output.x}}"}},
  {"id": "late", "type": "delay"},
  {"id": "tmpl", "type": "http", "params": {"url": "$HTTP/{{input.x"}},
  {"id": "expr", "type": "filter", "params": {"condition": "input.x === 1"}},
  {"id": "sh", "type": "exec", "params": {"argv": ["/bin/sh", "-c", "true"]}}
]}
J
)
push_job default "$(wf_job wr-invalid "{\"definition\":$BAD}" '"max_attempts":3')"

all_in_state_final() { for j in wr-aos wr-dag wr-filtered wr-failed wr-retry wr-invalid; do is_final $j || return 1; done; }
wait_for "the first five runs end" 60 all_in_state_final

check_eq "AutomateOS: run succeeded" "$(jstate wr-aos)" succeeded
check_eq "AutomateOS: result status" "$(jresult wr-aos 'r["status"]')" succeeded
check_eq "AutomateOS: every node succeeded" "$(jresult wr-aos 'sorted(r["steps"].items())')" \
	'[["check", "succeeded"], ["fetch", "succeeded"], ["trigger", "succeeded"]]'
check_eq "AutomateOS: the webhook payload reached the request body" \
	"$(sql n1 "SELECT json_extract(output, '$.json.json.name') FROM workflow_steps WHERE job_id='wr-aos' AND step_id='fetch'")" ada
check_eq "AutomateOS: and its header" \
	"$(sql n1 "SELECT json_extract(output, '$.json.headers.X-Run') FROM workflow_steps WHERE job_id='wr-aos' AND step_id='fetch'")" r1
check_eq "AutomateOS: one row per node, linked to the attempt" \
	"$(sql n1 "SELECT count(*), count(DISTINCT attempt_id), min(attempt_id IS NOT NULL) FROM workflow_steps WHERE job_id='wr-aos'")" "3|1|1"

check_eq "DAG: succeeded" "$(jstate wr-dag)" succeeded
order=$(sql n1 "SELECT group_concat(step_id, '') FROM (SELECT step_id FROM workflow_steps WHERE job_id='wr-dag' ORDER BY started_at)")
check_match "DAG: a first, d last, branches between (got $order)" "$order" '^a(bc|cb)d$'
check_eq "DAG: d got data from a (through b), c and the input" \
	"$(jresult wr-dag '[r["output"]["json"]["json"][k] for k in ("from_b", "from_c", "n")]')" '["ada-b", "ada", 42]'
check_eq "DAG: rows carry duration and attempt" \
	"$(sql n1 "SELECT min(duration_ms >= 0), min(step_attempt), max(run_attempt) FROM workflow_steps WHERE job_id='wr-dag'")" "1|1|1"

check_eq "filtered: the job state is succeeded (not failed)" "$(jstate wr-filtered)" succeeded
check_eq "filtered: result.status says filtered" "$(jresult wr-filtered 'r["status"]')" filtered
check_eq "filtered: its branch was skipped, the independent branch ran" \
	"$(jresult wr-filtered '[r["steps"][k] for k in ("get", "adults", "notify", "other")]')" \
	'["succeeded", "filtered", "skipped", "succeeded"]'
check_eq "filtered: the skipped step sent no request" "$(hits /notify-filtered)" 0
check_eq "filtered: rows" \
	"$(sql n1 "SELECT step_id || '=' || state FROM workflow_steps WHERE job_id='wr-filtered' AND step_id IN ('adults','notify') ORDER BY step_id")" \
	"$(printf 'adults=filtered\nnotify=skipped')"

check_eq "failed: the job state is failed" "$(jstate wr-failed)" failed
check_match "failed: the error names the step and the status" "$(jfield wr-failed error)" 'step boom \(http\) failed: .*answered 500'
check_eq "failed: the step after it never ran" "$(hits /after-failed)" 0
check_eq "failed: a failed row" "$(sql n1 "SELECT state FROM workflow_steps WHERE job_id='wr-failed'")" failed

check_eq "retry: succeeded" "$(jstate wr-retry)" succeeded
check_eq "retry: three executions, two failed then one succeeded" \
	"$(sql n1 "SELECT group_concat(step_attempt || ':' || state, ' ') FROM (SELECT * FROM workflow_steps WHERE job_id='wr-retry' ORDER BY id)")" \
	"1:failed 2:failed 3:succeeded"
# Rows of other runs interleave with these (two workers): the gaps come from this run's rows in order.
gaps=$(sql n1 "SELECT group_concat(g, ' ') FROM (SELECT round((started_at - lag(finished_at) OVER (ORDER BY id)) * 1000) AS g FROM workflow_steps WHERE job_id='wr-retry' ORDER BY id) WHERE g IS NOT NULL")
check "retry: backoff 0.3 s then 0.6 s between executions (got $gaps ms)" \
	awk -v g="$gaps" 'BEGIN { split(g, a, " "); exit !(a[1] >= 280 && a[2] >= 580 && a[2] > a[1]) }'
check_eq "retry: the server saw three requests" "$(hits /flaky)" 3

check_eq "invalid: failed at once, not retried" "$(jstate wr-invalid)|$(jfield wr-invalid attempt)" "failed|1"
err=$(jfield wr-invalid error)
check_match "invalid: lists 8 errors" "$err" '^invalid workflow \(8 errors\)'
check_match "invalid: unknown type" "$err" 'step a: unknown step type "teleport"'
check_match "invalid: duplicate id" "$err" 'step b: duplicate step id'
check_match "invalid: cycle" "$err" 'step x: is part of a dependency cycle'
check_match "invalid: cycle (other side)" "$err" 'step y: is part of a dependency cycle'
check_match "invalid: reference to a step that does not precede" "$err" 'step early: .*refers to step late, which does not precede it'
check_match "invalid: bad template" "$err" 'step tmpl: unterminated'
check_match "invalid: bad expression" "$err" 'step expr: condition col'
check_match "invalid: exec disabled" "$err" 'step sh: exec steps are disabled'
check_eq "invalid: no step ran" "$(sql n1 "SELECT count(*) FROM workflow_steps WHERE job_id='wr-invalid'")" 0

# --- stored workflows: by name, and an unknown name ---
STORED=$(cat <<J
{"name": "greet", "steps": [{"id": "hello", "type": "http", "params": {"url": "$HTTP/echo", "query": {"hi": "{{input.who}}"}}}]}
J
)
sql n1 "INSERT INTO workflows (name, description, definition, owner, active, created_at, updated_at) VALUES ('greet', 'says hi', '$STORED', 'tests', 1, 0, 0)"
sql n1 "INSERT INTO workflows (name, definition, active) VALUES ('off', '$STORED', 0)"
push_job default "$(wf_job wr-stored '{"workflow":"greet","input":{"who":"bob"}}')"
push_job default "$(wf_job wr-unknown '{"workflow":"nosuch"}' '"max_attempts":3')"
push_job default "$(wf_job wr-inactive '{"workflow":"off"}' '"max_attempts":3')"

# --- idempotency: the same key twice runs once ---
IDEM=$(cat <<J
{"steps": [{"id": "order", "type": "http", "params": {"url": "$HTTP/orders", "method": "POST", "json": {"n": 1}}}]}
J
)
push_job default "$(wf_job wr-idem1 "{\"definition\":$IDEM}" '"idempotency_key":"order-77"')"
wait_for "wr-idem1 ends" 30 is_final wr-idem1
push_job default "$(wf_job wr-idem2 "{\"definition\":$IDEM}" '"idempotency_key":"order-77"')"

# --- enqueue: a child job, waited for; its result feeds the next step ---
ENQ=$(cat <<J
{"steps": [
  {"id": "child", "type": "enqueue", "params": {"type": "sleep", "args": {"ms": 300}, "wait": true}},
  {"id": "use", "type": "http", "depends_on": ["child"], "params": {"url": "$HTTP/echo", "query": {"slept": "{{steps.child.output.result.slept_ms}}"}}}
]}
J
)
push_job default "$(wf_job wr-enqueue "{\"definition\":$ENQ}")"

for j in wr-stored wr-unknown wr-inactive wr-idem2 wr-enqueue; do wait_for "$j ends" 60 is_final $j; done

check_eq "stored: ran by name" "$(jstate wr-stored)" succeeded
check_eq "stored: the input reached it" "$(jresult wr-stored 'r["output"]["json"]["query"]["hi"]')" bob
check_eq "stored: result names the workflow" "$(jresult wr-stored 'r["workflow"]')" greet
check_eq "stored: unknown name fails at once" "$(jstate wr-unknown)|$(jfield wr-unknown attempt)" "failed|1"
check_match "stored: with a clear error" "$(jfield wr-unknown error)" 'stored workflow nosuch does not exist'
check_match "stored: an inactive one is refused" "$(jstate wr-inactive) $(jfield wr-inactive error)" '^failed stored workflow off is not active'

check_eq "idempotency: first run succeeded" "$(jstate wr-idem1)" succeeded
check_eq "idempotency: the repeat is a duplicate" "$(jstate wr-idem2)" cancelled
check_match "idempotency: naming the existing run" "$(jfield wr-idem2 error)" 'duplicate of job wr-idem1'
check_eq "idempotency: the POST was sent once" "$(hits /orders)" 1

check_eq "enqueue: succeeded" "$(jstate wr-enqueue)" succeeded
check_eq "enqueue: the child ran as its own job" "$(jstate wr-enqueue.child)|$(jfield wr-enqueue.child type)" "succeeded|sleep"
check_eq "enqueue: the child's result reached the next step" "$(jresult wr-enqueue 'r["output"]["json"]["query"]["slept"]')" 300
check "enqueue: the parent ended after the child" fcmp "$(jfield wr-enqueue finished_at)" '>=' "$(jfield wr-enqueue.child finished_at)"

# --- enqueue of a unique child: a second run's step gets the holder instead of a second job ---
UNQ='{"steps": [{"id": "child", "type": "enqueue", "params": {"type": "sleep", "args": {"ms": 2000}, "unique": {"key": "sku-9"}}}]}'
push_job default "$(wf_job wr-ua "{\"definition\":$UNQ}")"
wait_for "wr-ua ends" 30 is_final wr-ua
push_job default "$(wf_job wr-ub "{\"definition\":$UNQ}")"
wait_for "wr-ub ends" 30 is_final wr-ub
check_eq "unique child: both runs succeeded" "$(jstate wr-ua) $(jstate wr-ub)" "succeeded succeeded"
check_eq "unique child: the first made its child" "$(jresult wr-ua 'r["output"]["job_id"]')" wr-ua.child
check_eq "unique child: the second's step names the holder" \
	"$(jresult wr-ub 'r["output"]["job_id"] + " " + r["output"]["duplicate_of"]')" "wr-ua.child wr-ua.child"
check "unique child: no second child job" test -z "$(jstate wr-ub.child)"
wait_for "the unique child ends" 30 state_is wr-ua.child succeeded
push_job default "$(wf_job wr-uc "{\"definition\":$UNQ}")"
wait_for "wr-uc ends" 30 is_final wr-uc
check_eq "unique child: once the holder ended, a new run makes its own" "$(jresult wr-uc 'r["output"]["job_id"]')" wr-uc.child
BADC='{"steps": [{"id": "child", "type": "enqueue", "params": {"type": "noop", "unique": {"key": "k", "until": "never"}}}]}'
push_job default "$(wf_job wr-ubad "{\"definition\":$BADC}")"
wait_for "wr-ubad ends" 30 is_final wr-ubad
check_match "a child with a bad unique spec fails the step with the parser's reason" "$(jstate wr-ubad) $(jfield wr-ubad error)" \
	"^failed .*'until' must be started, finished or ttl"

# --- progress: steps done over steps total, current step as stage ---
stages=$(rcli LRANGE "$(qkey default events wr-dag)" 0 -1 | py -c '
import json, sys
print(" ".join(e.get("stage", "") + "@" + str(e["progress"]) for e in map(json.loads, sys.stdin) if e["event"] == "progress"))')
check_match "progress: stage is the step id, progress steps done / total ($stages)" "$stages" 'a@0 .*d@75'

end_scenario

#!/usr/bin/env bash
# ctl_workflow: stored workflows over the control socket, with hopperctl and the Python client: workflow put
# (valid; bad shapes and bad files refused with a clear message), list, show, run by name with input (the
# result checked), run --wait's exit code for a run that succeeds and one that fails, an inactive workflow,
# rm; the owner and scope rules with two owners' tokens and a read-only one; `hopperctl logs` showing the
# step table of a multi-step run with a retried step; the Python client's workflow_* calls, each reply
# checked against schema/control/workflow.*.schema.json.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_http
start_hopperd n1 --workers=2 || exit 1
ALICE=$(ctl token create alice --scopes submit,read --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read --owner bob 2>/dev/null)
READER=$(ctl token create reader --scopes read --owner alice 2>/dev/null)
check_match "three tokens made" "$ALICE $BOB $READER" '^hop_[^ ]+ hop_[^ ]+ hop_[^ ]+$'
as() { # as TOKEN hopperctl-args...: hopperctl with that credential; stdout, stderr kept in $T/err
	local tok=$1
	shift
	HOPPER_TOKEN=$tok ctl "$@" 2>"$T/err"
}
code() { # code TOKEN hopperctl-args...: the exit code only
	as "$@" >/dev/null
	echo $?
}

# A multi-step workflow: get JSON, a flaky endpoint that fails once (retried after a backoff), an echo of
# the input and of the first step's output.
cat >"$T/greet.json" <<J
{"name": "greet", "steps": [
  {"id": "get", "type": "http", "params": {"url": "$HTTP/json"}},
  {"id": "flaky", "type": "http", "depends_on": ["get"], "retries": 2, "backoff_s": 0.05,
   "params": {"url": "$HTTP/flaky?fail=1&key={{input.who}}"}},
  {"id": "echo", "type": "http", "depends_on": ["flaky"],
   "params": {"url": "$HTTP/echo", "query": {"who": "{{input.who}}", "age": "{{steps.get.output.json.user.age}}"}}}
]}
J

# --- put ---
out=$(as "$ALICE" workflow put "$T/greet.json" --description "says hello")
check_eq "workflow put exits 0" "$?" 0
check_match "workflow put prints the stored row" "$out" 'name +greet'
check_match "... owned by the credential's owner" "$out" 'owner +alice'
echo '{"name": "empty", "steps": []}' >"$T/empty.json"
check_eq "put of a definition without steps: bad_request (2)" "$(code "$ALICE" workflow put "$T/empty.json")" 2
check_match "... with a clear message" "$(cat "$T/err")" 'bad_request: invalid workflow: .*non-empty "steps"'
echo '{"steps": [{"id": "a"}]}' >"$T/notype.json"
check_eq "put of a step without a type: 2" "$(code "$ALICE" workflow put "$T/notype.json" --name notype)" 2
check_match "... naming the step" "$(cat "$T/err")" 'steps\[0\] needs a string "id" and "type"'
echo '{"steps": [' >"$T/broken.json"
check_eq "put of a file that is not JSON: 2" "$(code "$ALICE" workflow put "$T/broken.json")" 2
check_match "... saying where" "$(cat "$T/err")" 'broken.json: .*line'
check_eq "put of a definition without a name: 2" "$(code "$ALICE" workflow put "$T/notype.json")" 2
check_eq "a read-only token cannot put (forbidden, 9)" "$(code "$READER" workflow put "$T/greet.json")" 9
check_eq "put for another owner needs admin (9)" "$(code "$ALICE" workflow put "$T/greet.json" --owner bob)" 9
check_eq "bob cannot replace alice's workflow (conflict, 11)" "$(code "$BOB" workflow put "$T/greet.json")" 11
check_match "... told it belongs to another owner" "$(cat "$T/err")" 'belongs to another owner'
out=$(as "$ALICE" workflow put "$T/greet.json" --description "says hello")
check_match "alice replaces her own" "$out" 'replaced +yes'

# --- list and show ---
check_match "alice's list shows greet" "$(as "$ALICE" workflow list)" 'greet +alice +yes .*says hello'
check_match "the read-only token of the same owner lists it" "$(as "$READER" workflow list)" 'greet'
check_eq "bob's list does not show it" "$(as "$BOB" --json workflow list)" '{"workflows":[]}'
check_match "admin (peer credentials) lists it" "$(ctl workflow list)" 'greet +alice'
out=$(as "$ALICE" workflow show greet)
check_match "show prints the definition" "$out" '"url": "http://127.0.0.1:[0-9]+/flaky'
check_eq "bob cannot show it (not_found, 10)" "$(code "$BOB" workflow show greet)" 10
check_eq "show of an unknown name: 10" "$(code "$ALICE" workflow show nope)" 10

# --- run by name ---
ID=$(as "$ALICE" workflow run greet --input '{"who": "ada"}' --id wf-ada)
check_eq "workflow run prints the job id" "$ID" wf-ada
wait_for "wf-ada succeeded" 30 state_is "$(nsid alice wf-ada)" succeeded
check_eq "the run used the input and the first step's output" \
	"$(jresult "$(nsid alice wf-ada)" 'r["output"]["json"]["query"]')" '{"who": "ada", "age": "36"}'
check_eq "the job records the runner's owner" "$(jfield "$(nsid alice wf-ada)" owner)" alice
check_eq "the job carries the definition (any daemon can run it)" \
	"$(jfield "$(nsid alice wf-ada)" payload | py -c 'import json,sys; a=json.load(sys.stdin)["args"]; print(a["workflow"], len(a["definition"]["steps"]))')" "greet 3"
as "$ALICE" workflow run greet --input '{"who": "bea"}' --id wf-bea --wait >"$T/wait.out"
check_eq "run --wait exits 0 when the run succeeded" "$?" 0
check_match "run --wait ends with the job's status" "$(cat "$T/wait.out")" 'state +succeeded'
check_eq "bob cannot run alice's workflow (10)" "$(code "$BOB" workflow run greet)" 10
check_eq "a read-only token cannot run (9)" "$(code "$READER" workflow run greet)" 9
check_eq "--input must be a JSON object (2)" "$(code "$ALICE" workflow run greet --input '[1]')" 2
k1=$(as "$ALICE" workflow run greet --input '{"who": "cy"}' --idempotency-key once-1 --id wf-once)
check_eq "a run with an idempotency key" "$k1" wf-once
k2=$(as "$ALICE" workflow run greet --input '{"who": "cy"}' --idempotency-key once-1 --id wf-once-again)
check_eq "the same key again returns the existing run" "$k2" wf-once
check_eq "... and writes no second job" "$(rcli EXISTS "$(qkey default job "$(nsid alice wf-once-again)")")" 0
# Keys are per owner (schema/control-protocol.md, "Job ids and other owners"): bob's once-1 is a free key.
check_eq "another owner's use of the key is a new job of its own, not alice's run (as for a free key)" \
	"$(code "$BOB" submit noop --idempotency-key once-1 --id wf-once-bob)" 0
echo '[{"id": "b-1", "type": "noop", "idempotency_key": "batch-k"},
      {"id": "b-2", "type": "noop", "idempotency_key": "batch-k"},
      {"id": "b-3", "type": "noop", "idempotency_key": "once-1"}]' >"$T/batch.json"
check_eq "a batch answers repeated keys with the runs that hold them" \
	"$(as "$ALICE" submit --file "$T/batch.json" | tr '\n' ' ')" "b-1 b-1 wf-once "

# A shape-valid definition with an unknown step type is stored (the daemon checks the shape only) and its
# run fails at once, with the engine's error, and run --wait exits 1.
echo '{"name": "bad-type", "steps": [{"id": "t", "type": "teleport"}]}' >"$T/badtype.json"
check_eq "put of an unknown step type is stored (shape only)" "$(code "$ALICE" workflow put "$T/badtype.json")" 0
as "$ALICE" workflow run bad-type --id wf-bad --wait >/dev/null
check_eq "run --wait exits 1 when the run failed" "$?" 1
check_match "... failed with the validation error" "$(jfield "$(nsid alice wf-bad)" error)" 'unknown step type'
as "$ALICE" workflow put "$T/greet.json" --name sleepy --inactive >/dev/null
check_eq "an inactive workflow does not run (conflict, 11)" "$(code "$ALICE" workflow run sleepy)" 11

# --- the step table ---
wait_for "wf-bea final" 30 is_final "$(nsid alice wf-bea)"
out=$(as "$ALICE" logs wf-ada)
check_match "logs has a steps table" "$(printf '%s' "$out" | grep -A1 '^steps:$')" '^STEP'
check_match "... with its header" "$out" '^STEP +TYPE +RUN +TRY +STATE +DURATION +ERROR OR OUTPUT$'
check_match "... the first step" "$out" '^get +http +1 +1 +succeeded +[0-9.]+ ms +\{"status":200'
check_match "... the flaky step's failed first try with its error" "$out" '^flaky +http +1 +1 +failed +[0-9.]+ ms +http: GET .*answered 503$'
check_match "... and its retry" "$out" '^flaky +http +1 +2 +succeeded'
check_match "... the last step" "$out" '^echo +http +1 +1 +succeeded'
check_eq "logs --json has the four step rows" \
	"$(as "$ALICE" --json logs wf-ada | py -c 'import json,sys; print(" ".join("%s/%s/%s" % (s["step"], s["step_attempt"], s["state"]) for s in json.load(sys.stdin)["steps"]))')" \
	"get/1/succeeded flaky/1/failed flaky/2/succeeded echo/1/succeeded"
check_eq "bob cannot read the run's logs (10)" "$(code "$BOB" logs wf-ada)" 10

# --- rm ---
check_eq "bob cannot rm alice's workflow (10)" "$(code "$BOB" workflow rm greet)" 10
check_match "alice removes it" "$(as "$ALICE" workflow rm greet)" 'removed +yes'
check_eq "show after rm: 10" "$(code "$ALICE" workflow show greet)" 10
check_eq "rm again: 10" "$(code "$ALICE" workflow rm greet)" 10
check_eq "a run submitted before the rm still ran" "$(jstate "$(nsid alice wf-once)")" succeeded

# --- the Python client, replies checked against the schemas ---
py - "$HOPPER_ROOT" "$CTL_SOCK" "$ALICE" "$BOB" "$HTTP" <<'PY'
import os, sys
root, sock, alice, bob, http = sys.argv[1:6]
sys.path.insert(0, os.path.join(root, "client"))
sys.path.insert(0, os.path.join(root, "tests", "ctl"))
os.environ["SCENARIO"] = "ctl_workflow"
from ctltest import check, check_eq, schema_errors, done
import hopper

def valid(op, result, label):
    errs = schema_errors("urn:hopper:schema:control:%s#/$defs/result" % op, result)
    check(label + " (schema)", not errs, errs)

a = hopper.Client(socket=sock, token=alice)
b = hopper.Client(socket=sock, token=bob)
d = {"name": "py-wf", "steps": [{"id": "e", "type": "http", "params": {"url": http + "/echo", "query": {"n": "{{input.n}}"}}},
                                {"id": "d", "type": "delay", "depends_on": ["e"], "params": {"ms": 1}}]}
r = a.workflow_put(d, description="from python")
valid("workflow.put", r, "python: workflow_put")
check_eq("python: workflow_put stores it for alice", (r["name"], r["owner"], r["replaced"]), ("py-wf", "alice", False))
valid("workflow.put", a.workflow_put(d, name="py-wf2", active=False), "python: workflow_put inactive")
ws = a.workflow_list()
valid("workflow.list", {"workflows": ws}, "python: workflow_list")
check("python: workflow_list has both", {"py-wf", "py-wf2"} <= {w["name"] for w in ws}, ws)
check("python: bob's list does not", not any(w["name"].startswith("py-") for w in b.workflow_list()))
r = a.workflow_show("py-wf")
valid("workflow.show", r, "python: workflow_show")
check_eq("python: workflow_show returns the definition", r["definition"], d)
try:
    b.workflow_show("py-wf")
    check("python: bob's workflow_show is not_found", False, "no error")
except hopper.HopperError as e:
    check_eq("python: bob's workflow_show is not_found", e.code, "not_found")
r = a.workflow_run("py-wf", input={"n": 7})
valid("workflow.run", r, "python: workflow_run")
v = a.wait(r["id"], timeout=60)
check_eq("python: the run succeeded with its input", (v["state"], v["result"]["steps"]["e"]), ("succeeded", "succeeded"))
v = a.workflow_run("py-wf", input={"n": 8}, wait=True, timeout=60)
check_eq("python: workflow_run(wait=True) returns the final view", v["state"], "succeeded")
logs = a.logs(v["id"])
valid("logs", logs, "python: logs")
check_eq("python: logs has the step rows", [s["step"] for s in logs["steps"]], ["e", "d"])
try:
    a.workflow_run("py-wf2")
    check("python: an inactive workflow's run is a conflict", False, "no error")
except hopper.HopperError as e:
    check_eq("python: an inactive workflow's run is a conflict", e.code, "conflict")
r = a.workflow_rm("py-wf2")
valid("workflow.rm", r, "python: workflow_rm")
check_eq("python: workflow_rm", r, {"name": "py-wf2", "removed": True})
done()
PY
check_eq "the Python client's checks passed" "$?" 0

finish_hopperd n1
end_scenario

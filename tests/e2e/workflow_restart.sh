#!/usr/bin/env bash
# workflow_restart: `hopperctl workflow restart RUN --from STEP` and `--all` (issue #18 item 4). A succeeded run
# a -> b -> c, a -> d, e restarted from b runs b and c again (c sees b's new output) and not a, d or e (the
# test server counts requests per path); a failed run restarted from its failed step succeeds without
# repeating the step before it; the same op through hopper.py and hopper-web; and the refusals: a step
# without a record (names the ones that have one), a job that is not a workflow, a run still going, another
# owner's run (answers like a missing one), an unknown id. In bulk: every failed run from a step (hopperctl
# --all --state failed, hopper.py workflow_restart_all), each once, runs without the step counted, other
# owners' runs not touched.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_http
start_hopperd n1 --workers=2 || exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "a", "type": "http", "params": {"url": "$HTTP/status/201", "method": "POST", "expected_status": 201}},
  {"id": "b", "type": "http", "depends_on": ["a"], "params": {"url": "$HTTP/orders", "method": "POST"}},
  {"id": "c", "type": "http", "depends_on": ["b"], "params": {"url": "$HTTP/echo",
    "query": {"n": "{{steps.b.output.json.n}}"}}},
  {"id": "d", "type": "http", "depends_on": ["a"], "params": {"url": "$HTTP/status/202", "method": "POST",
    "expected_status": 202}},
  {"id": "e", "type": "http", "params": {"url": "$HTTP/status/203", "method": "POST", "expected_status": 203}}
]}
J
)
# c_saw: the n that c's recorded output says b gave it.
c_saw() { rcli HGET "$(qkey default steps rs-1)" c | py -c 'import json, sys; print(json.load(sys.stdin)["output"]["json"]["query"]["n"])'; }
counts() { echo "$(hits /status/201) $(hits /orders) $(hits /echo) $(hits /status/202) $(hits /status/203)"; }

push_job default "$(wf_job rs-1 "{\"definition\":$DEF}")"
wait_for "rs-1 ends" 30 is_final rs-1
check_eq "rs-1 succeeded" "$(jstate rs-1)" succeeded
check_eq "every step ran once (a b c d e)" "$(counts)" "1 1 1 1 1"
check_eq "c saw b's first n" "$(c_saw)" 1
check_eq "each record names the steps it depends on (c: a, b)" \
	"$(rcli HGET "$(qkey default steps rs-1)" c | py -c 'import json, sys; print(",".join(sorted(json.load(sys.stdin)["after"])))')" "a,b"

out=$(ctl --json workflow restart rs-1 --from b 2>"$T/err")
check_eq "restart --from b exits 0" "$?" 0
check_eq "the reply: queued again, b and c re-run" \
	"$(py -c 'import json, sys; r = json.load(sys.stdin); print(r["state"], r["from"], ",".join(r["rerun"]))' <<<"$out")" \
	"queued b b,c"
wait_for "rs-1 ends again" 30 is_final rs-1
check_eq "rs-1 succeeded again" "$(jstate rs-1)" succeeded
check_eq "b and c ran again; a, d and e did not" "$(counts)" "1 2 2 1 1"
check_eq "c saw b's new output" "$(c_saw)" 2
check_eq "the result says three steps were kept" "$(jresult rs-1 'r["resumed_steps"]')" 3
check_eq "the execution log: b and c have two rows each, a one" \
	"$(sql n1 "SELECT group_concat(step_id || '=' || n, ' ') FROM (SELECT step_id, count(*) AS n FROM workflow_steps WHERE job_id='rs-1' GROUP BY step_id ORDER BY step_id)")" \
	"a=1 b=2 c=2 d=1 e=1"
check_match "the daemon logged the restart" "$(cat "$T/n1.log")" 'restarted workflow run rs-1 from step b \(2 step record'

# --- a failed run, restarted from the step that failed ---
FAIL=$(cat <<J
{"steps": [
  {"id": "p", "type": "http", "params": {"url": "$HTTP/status/204", "method": "POST", "expected_status": 204}},
  {"id": "q", "type": "http", "depends_on": ["p"], "params": {"url": "$HTTP/flaky?fail=1&key=rq"}}
]}
J
)
push_job default "$(wf_job rs-2 "{\"definition\":$FAIL}")"
wait_for "rs-2 ends" 30 is_final rs-2
check_eq "rs-2 failed (q answered 503)" "$(jstate rs-2)" failed
check_match "rs-2's error names q" "$(jfield rs-2 error)" 'step q'
# q failed for good: its record is not taken over by a retry, but restart needs a record of the step
check_match "q has a record (abandoned)" "$(rcli HGET "$(qkey default steps rs-2)" q)" '"abandoned"'
ctl workflow restart rs-2 --from q >"$T/rs2.out" 2>"$T/err"
check_eq "restart --from q exits 0" "$?" 0
wait_for "rs-2 ends again" 30 is_final rs-2
check_eq "rs-2 succeeded on restart" "$(jstate rs-2)" succeeded
check_eq "p did not run again" "$(hits /status/204)" 1

# --- refusals ---
out=$(ctl workflow restart rs-1 --from zz 2>&1)
check "a step without a record: non-zero exit" test "$(ctl workflow restart rs-1 --from zz >/dev/null 2>&1; echo $?)" != 0
check_match "... and the error names the steps that have records" "$out" 'no record of step zz.*a,b,c,d,e'
push_job default "$(job_json rs-noop noop '{}')"
wait_for "rs-noop ends" 20 is_final rs-noop
check_match "a noop job is not a workflow run" "$(ctl workflow restart rs-noop --from a 2>&1)" 'not a workflow.run'
SLOW='{"steps": [{"id": "w", "type": "delay", "params": {"ms": 1500}}]}'
push_job default "$(wf_job rs-slow "{\"definition\":$SLOW}")"
wait_for "rs-slow runs" 20 state_is rs-slow running
check_match "a running run is not restarted" "$(ctl workflow restart rs-slow --from w 2>&1)" 'is running: only an ended run'
check_match "an unknown id" "$(ctl workflow restart rs-nope --from a 2>&1)" 'no job rs-nope'
ALICE=$(ctl token create alice --scopes submit,read --owner alice 2>/dev/null)
check_match "another owner's run answers like a missing one" \
	"$(ctl --token "$ALICE" workflow restart rs-1 --from b 2>&1)" 'no job rs-1|not_found'
check_eq "... and rs-1 was left alone" "$(jstate rs-1)/$(counts)" "succeeded/1 2 2 1 1"

# --- the same op from Python and over HTTP ---
py - "$HOPPER_ROOT/client" "$CTL_SOCK" <<'P' >"$T/py.out" 2>&1
import sys
sys.path.insert(0, sys.argv[1])
import hopper
c = hopper.Client(socket=sys.argv[2])
r = c.workflow_restart("rs-1", "c")
print(r["state"], ",".join(r["rerun"]))
P
check_eq "hopper.py: workflow_restart from c re-runs c only" "$(cat "$T/py.out")" "queued c"
wait_for "rs-1 ends a third time" 30 is_final rs-1
check_eq "c ran a third time, b did not" "$(counts)" "1 2 3 1 1"
start_web
code=$(curl -s -o "$T/web.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$T/web.token")" \
	-H 'Content-Type: application/json' -d '{"from": "e"}' "$WEB/v1/jobs/rs-1/restart")
check_eq "hopper-web: POST /v1/jobs/rs-1/restart of another owner's run is 404" "$code" 404
ADMINT=$(ctl token create web-admin --scopes admin 2>/dev/null)
code=$(curl -s -o "$T/web.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMINT" \
	-H 'Content-Type: application/json' -d '{"from": "e"}' "$WEB/v1/jobs/rs-1/restart")
check_eq "hopper-web: as admin it is 200" "$code" 200
check_eq "... re-running e only" "$(py -c 'import json, sys; print(",".join(json.load(sys.stdin)["rerun"]))' <"$T/web.json")" e
wait_for "rs-1 ends a fourth time" 30 is_final rs-1
check_eq "e ran again, nothing else" "$(counts)" "1 2 3 1 2"
# --- in bulk: every failed run from q (hopperctl --all, then hopper.py) ---
# bk_def KEY: p -> q, q failing once (the flaky key) so the run fails and a restart from q succeeds.
bk_def() {
	printf '{"steps": [{"id": "p", "type": "http", "params": {"url": "%s/status/207", "method": "POST", "expected_status": 207}}, {"id": "q", "type": "http", "depends_on": ["p"], "params": {"url": "%s/flaky?fail=1&key=%s"}}]}' "$HTTP" "$HTTP" "$1"
}
OTHER="{\"steps\": [{\"id\": \"x\", \"type\": \"http\", \"params\": {\"url\": \"$HTTP/flaky?fail=9&key=bkx\"}}]}"
for i in 1 2 3; do push_job default "$(wf_job bk-$i "{\"definition\":$(bk_def bk-$i)}")"; done
push_job default "$(wf_job bk-x "{\"definition\":$OTHER}")"
for i in 1 2 3 x; do wait_for "bk-$i ends" 30 is_final bk-$i; done
check_eq "four runs failed" "$(jstate bk-1) $(jstate bk-2) $(jstate bk-3) $(jstate bk-x)" "failed failed failed failed"
check_eq "--all without --state is a usage error (exit 2)" \
	"$(ctl workflow restart --all --from q >/dev/null 2>&1; echo $?)" 2
check_eq "a run id and --all together: exit 2" \
	"$(ctl workflow restart bk-1 --all --from q --state failed >/dev/null 2>&1; echo $?)" 2
check_eq "... and nothing was restarted" "$(jstate bk-1)" failed
check_eq "alice (another owner) restarts none of them" \
	"$(ctl --token "$ALICE" workflow restart --all --from q --state failed 2>&1)" \
	"restarted 0 runs from q; 0 without a record of it, 0 changed meanwhile"
ctl workflow restart --all --from q --state failed >"$T/bulk.out" 2>"$T/err"
check_eq "restart --all exits 0" "$?" 0
# (the order is the jobs index's, newest first; runs claimed in the same batch may share a score)
check_eq "it names the three runs that have q" "$(head -n -1 "$T/bulk.out" | sort | tr '\n' ' ')" \
	"bk-1 restarted bk-2 restarted bk-3 restarted "
check_eq "... and counts the one without" "$(tail -n 1 "$T/bulk.out")" \
	"restarted 3 runs from q; 1 without a record of it, 0 changed meanwhile"
for i in 1 2 3; do wait_for "bk-$i ends again" 30 is_final bk-$i; done
check_eq "the three succeeded; bk-x is still failed" "$(jstate bk-1) $(jstate bk-2) $(jstate bk-3) $(jstate bk-x)" \
	"succeeded succeeded succeeded failed"
check_eq "p ran once per run (not again)" "$(hits /status/207)" 3
check_eq "a second --all finds nothing more to restart" \
	"$(ctl --json workflow restart --all --from q --state failed 2>&1)" '{"restarted":0,"no_step":1,"changed":0}'
push_job default "$(wf_job bk-4 "{\"definition\":$(bk_def bk-4)}")"
wait_for "bk-4 ends" 30 is_final bk-4
py - "$HOPPER_ROOT/client" "$CTL_SOCK" <<'P' >"$T/pybulk.out" 2>&1
import sys
sys.path.insert(0, sys.argv[1])
import hopper
c = hopper.Client(socket=sys.argv[2])
r = c.workflow_restart_all("q", "failed")
print(",".join(r["restarted"]), r["no_step"], r["changed"])
try:
    c.workflow_restart_all("q", "queued")
except ValueError as e:
    print("refused:", e)
P
check_eq "hopper.py: workflow_restart_all restarts bk-4 and counts bk-x" "$(cat "$T/pybulk.out")" \
	"bk-4 1 0
refused: state must be succeeded, failed or dead"
wait_for "bk-4 ends again" 30 is_final bk-4
check_eq "bk-4 succeeded" "$(jstate bk-4)" succeeded
end_scenario

#!/usr/bin/env bash
# sched_owner: schedules' owner and scope rules (README "Schedules"), and a schedule of a stored workflow.
# - Two owners' tokens and a read-only one: a read token cannot put; bob cannot see, show, pause, rm or
#   replace alice's schedule (not_found, except put of her name: conflict), and his list does not show it;
#   put for another owner needs admin; admin sees both.
# - alice's fires make jobs in her id space: she sees sched-NAME-<ms>, stored under her owner prefix.
# - A schedule of a stored workflow runs it with the given input (the definition resolved at put).
# - The Python client's schedule_* calls, each reply checked against schema/control/schedule.*.schema.json.
. "$(dirname "$0")/../lib.sh"

start_redis
HD_CTL=1
start_hopperd n1 --workers=2 --poll-ms=50 || exit 1
ALICE=$(ctl token create alice --scopes submit,read --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read --owner bob 2>/dev/null)
READER=$(ctl token create reader --scopes read --owner alice 2>/dev/null)
as() { local tok=$1; shift; HOPPER_TOKEN=$tok ctl "$@" 2>"$T/err"; }
code() { as "$@" >/dev/null; echo $?; }

J='{"type":"noop"}'
check_eq "a read-only token cannot put (forbidden, 9)" "$(code "$READER" schedule put r1 --cron @hourly --job "$J")" 9
check_eq "put for another owner needs admin (9)" "$(code "$ALICE" schedule put a1 --cron @hourly --job "$J" --owner bob)" 9
check_eq "alice puts a1" "$(code "$ALICE" schedule put a1 --cron '@every 1s' --job "$J")" 0
check_eq "bob cannot replace it (conflict, 11)" "$(code "$BOB" schedule put a1 --cron @hourly --job "$J")" 11
check_match "... told it belongs to another owner" "$(cat "$T/err")" 'belongs to another owner'
check_eq "bob's show: not found (10)" "$(code "$BOB" schedule show a1)" 10
check_eq "bob's pause: not found (10)" "$(code "$BOB" schedule pause a1)" 10
check_eq "bob's rm: not found (10)" "$(code "$BOB" schedule rm a1)" 10
check_eq "bob's list is empty" "$(as "$BOB" --json schedule list | py -c 'import json,sys; print(len(json.load(sys.stdin)["schedules"]))')" 0
check_eq "the reader (owner alice) sees it" "$(as "$READER" --json schedule list | py -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)["schedules"]])')" "['a1']"
check_eq "bob puts his own b1" "$(code "$BOB" schedule put b1 --cron @daily --job "$J")" 0
check_eq "admin sees both" "$(ctl --json schedule list | py -c 'import json,sys; print(sorted(s["name"] + ":" + s["owner"] for s in json.load(sys.stdin)["schedules"]))')" "['a1:alice', 'b1:bob']"

a1_jobs() { rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep -c ":sched-a1-" ; }
a1_fired() { [ "$(a1_jobs)" -ge 2 ]; }
wait_for "a1 fires" 10 a1_fired
last=$(as "$ALICE" --json schedule show a1 | py -c 'import json,sys; print(json.load(sys.stdin)["last_job"])')
check_match "alice sees her fire's job id without a prefix" "$last" '^sched-a1-[0-9]+$'
check_eq "... stored in her id space" "$(jfield "$(nsid alice "$last")" owner)" alice
check_eq "... and she can read its status" "$(code "$ALICE" status "$last")" 0
check_eq "alice pauses a1" "$(code "$ALICE" schedule pause a1)" 0

# A stored workflow on a schedule, with input.
cat >"$T/wf.json" <<'W'
{"name": "tick", "steps": [{"id": "d", "type": "delay", "params": {"ms": 1}}]}
W
as "$ALICE" workflow put "$T/wf.json" >/dev/null
check_eq "alice schedules her workflow" "$(code "$ALICE" schedule put wf1 --cron '@every 1s' --workflow tick --input '{"x":1}')" 0
check_eq "bob cannot schedule alice's workflow (not found, 10)" "$(code "$BOB" schedule put wf2 --cron @hourly --workflow tick)" 10
wf_done() { local id; id=$(rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep ":sched-wf1-" | head -1); [ -n "$id" ] && [ "$(jstate "$id")" = succeeded ]; }
wait_for "a workflow run made by the schedule succeeds" 15 wf_done
wid=$(rcli ZRANGE "$(qkey default jobs)" 0 -1 | grep ":sched-wf1-" | head -1)
check_eq "it is a workflow.run of tick with the input" \
	"$(jfield "$wid" payload | py -c 'import json,sys; j=json.load(sys.stdin); print(j["type"], j["args"]["workflow"], j["args"]["input"], j["schedule"]["name"])')" \
	"workflow.run tick {'x': 1} wf1"
as "$ALICE" schedule rm wf1 >/dev/null

py - "$HOPPER_ROOT" "$CTL_SOCK" "$ALICE" "$BOB" <<'PY'
import os, sys
root, sock, alice, bob = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "client"))
sys.path.insert(0, os.path.join(root, "tests", "ctl"))
os.environ["SCENARIO"] = "sched_owner"
from ctltest import check, check_eq, schema_errors, done
import hopper

def valid(op, result, label):
    errs = schema_errors("urn:hopper:schema:control:%s#/$defs/result" % op, result)
    check(label + " (schema)", not errs, errs)

a = hopper.Client(socket=sock, token=alice)
b = hopper.Client(socket=sock, token=bob)
r = a.schedule_put("py1", "0 9 * * 1-5", job={"type": "noop", "args": {"n": 1}}, queue="reports", misfire="skip")
valid("schedule.put", r, "python: schedule_put")
check_eq("python: created in queue reports", (r["created"], r["queue"], len(r["upcoming"])), (True, "reports", 5))
ls = a.schedule_list()
valid("schedule.list", {"schedules": ls}, "python: schedule_list")
check("python: list has py1 in reports", any(s["name"] == "py1" and s["queue"] == "reports" for s in ls), ls)
s = a.schedule_show("py1", queue="reports", count=3)
valid("schedule.show", s, "python: schedule_show")
check_eq("python: show gives the definition and 3 upcoming", (s["definition"]["misfire"], len(s["upcoming"])), ("skip", 3))
valid("schedule.pause", a.schedule_pause("py1", queue="reports"), "python: schedule_pause")
check_eq("python: paused", a.schedule_show("py1", queue="reports")["paused"], True)
valid("schedule.resume", a.schedule_resume("py1", queue="reports"), "python: schedule_resume")
try:
    b.schedule_rm("py1", queue="reports")
    check("python: bob's schedule_rm is not_found", False, "no error")
except hopper.HopperError as e:
    check_eq("python: bob's schedule_rm is not_found", e.code, "not_found")
valid("schedule.rm", a.schedule_rm("py1", queue="reports"), "python: schedule_rm")
try:
    a.schedule_put("bad", "* * *", job={"type": "noop"})
    check("python: a bad cron is refused", False, "no error")
except hopper.HopperError as e:
    check("python: a bad cron is refused (bad_request, names the field)", e.code == "bad_request" and "cron" in str(e), str(e))
done()
PY
finish_hopperd n1
end_scenario

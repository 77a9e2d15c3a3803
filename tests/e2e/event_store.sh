#!/usr/bin/env bash
# event_store: the events that wake waiting workflow runs (README "Durable waits"; daemon/ctl/ctl_event.c,
# daemon/lua/20_events.lua), at the level of the control ops and the Redis functions.
# - event.send keeps an event per key (count cap, expiry) and event.list reads them, oldest first.
# - Keys are the owner's: alice's key is not bob's, and only admin names another owner.
# - event_wait looks back first (an event sent before the wait began is found), registers the run as a
#   waiter otherwise, in one atomic step; event.send hands the waiters back and removes them; expired
#   waiters are dropped; a key's waiters are capped.
# - Bad requests: data too large, a key with other characters, a missing key.
. "$(dirname "$0")/../lib.sh"

start_redis
HD_CTL=1
start_hopperd n1 --workers=1 --poll-ms=50 --event-max-per-key=5 --event-keep-s=600 --event-max-waiters=3 || exit 1
ALICE=$(ctl token create alice --scopes submit,read --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read --owner bob 2>/dev/null)
as() { local tok=$1; shift; HOPPER_TOKEN=$tok ctl "$@" 2>"$T/err"; }
code() { as "$@" >/dev/null; echo $?; }
jq1() { py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

r=$(ctl --json event send order-1.paid --data '{"amount":12}')
check_eq "event.send answers the key" "$(echo "$r" | jq1 'd["key"]')" order-1.paid
check_match "... and the event's id (Redis stream id)" "$(echo "$r" | jq1 'd["event"]')" '^[0-9]+-[0-9]+$'
check_eq "... no run was waiting" "$(echo "$r" | jq1 'd["woken"]')" 0
at=$(echo "$r" | jq1 'd["at"]')
check "... at Redis's time (within 5 s of now)" near "$at" "$(now)" 5
for i in 2 3 4 5 6 7; do ctl event send order-1.paid --data "{\"n\":$i}" >/dev/null; done
l=$(ctl --json event list order-1.paid)
check_eq "a key keeps event_max_per_key events, the newest" "$(echo "$l" | jq1 '[e["data"].get("n") for e in d["events"]]')" \
	"[3, 4, 5, 6, 7]"
check_eq "... oldest first, ids increasing" "$(echo "$l" | jq1 'int(all(a["id"] < b["id"] or len(a["id"]) < len(b["id"]) for a, b in zip(d["events"], d["events"][1:])))')" 1
check_eq "--count limits the listing" "$(ctl --json event list order-1.paid --count 2 | jq1 'len(d["events"])')" 2
ttl=$(rcli PTTL "$(gkey evt order-1.paid)")
check "the key's stream expires after event_keep_s (600 s)" test "$ttl" -gt 590000 -a "$ttl" -le 600000
check_eq "a key nobody sent to lists nothing" "$(ctl --json event list nothing.here | jq1 'len(d["events"])')" 0

check_eq "alice sends on her key" "$(code "$ALICE" event send shared.key --data '{"who":"alice"}')" 0
check_eq "bob does not see alice's events" "$(as "$BOB" --json event list shared.key | jq1 'len(d["events"])')" 0
check_eq "alice sees hers" "$(as "$ALICE" --json event list shared.key | jq1 'd["events"][0]["data"]["who"]')" alice
check "... stored under her owner's key" key_exists "$(gkey evt @5:alice:shared.key)"
check_eq "admin's key of the same name is another key" "$(ctl --json event list shared.key | jq1 'len(d["events"])')" 0
check_eq "admin names alice with --owner" "$(ctl --json event list shared.key --owner alice | jq1 'len(d["events"])')" 1
check_eq "bob may not name another owner (forbidden, 9)" "$(code "$BOB" event send shared.key --owner alice)" 9

big=$(py -c 'import json; print(json.dumps({"x": "a" * 70000}))')
check_eq "data over 64 KiB: bad request (2)" "$(code "$ALICE" event send k.big --data "$big")" 2
check_eq "a key with a space: bad request (2)" "$(code "$ALICE" event send 'a b')" 2
check_eq "... nothing stored for it" "$(rcli EXISTS "$(gkey evt @5:alice:k.big)")" 0

# The run side, as a wait_event step drives it (hopper_event_wait KEYS evt evw, ARGV since member deadline max).
ev=$(gkey evt k.w); evw=$(gkey evw k.w)
nowms() { rcli TIME | py -c 'import sys; t=sys.stdin.read().split(); print(int(t[0])*1000 + int(t[1])//1000)'; }
t0=$(nowms)
ctl event send k.w --data '{"early":true}' >/dev/null
w=$(rcli --no-raw FCALL hopper_event_wait 2 "$ev" "$evw" $((t0 - 1000)) $'default\trun1' $((t0 + 60000)) 3 | head -1)
check_match "a wait that looks back past an earlier event gets it at once" "$w" 'event'
check_eq "... and is not left waiting" "$(rcli ZCARD "$evw")" 0
t1=$(nowms)
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'default\trun2' $((t1 + 60000)) 3 | head -1)
check_eq "a wait after the last event registers the run" "$w" waiting
rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'default\trun3' $((t1 + 60000)) 3 >/dev/null
rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'other\trun4' $((t1 + 60000)) 3 >/dev/null
check_eq "... three waiters" "$(rcli ZCARD "$evw")" 3
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'default\trun5' $((t1 + 60000)) 3 | head -1)
check_eq "a fourth is refused (event_max_waiters 3)" "$w" full
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'default\trun2' $((t1 + 90000)) 3 | head -1)
check_eq "... but a waiter re-registering is not" "$w" waiting
check "the waiters' key lives past the last deadline" test "$(rcli PTTL "$evw")" -gt 90000
check_eq "event.list counts the waiters" "$(ctl --json event list k.w | jq1 'd["waiters"]')" 3
r=$(rcli FCALL hopper_event_send 2 "$ev" "$evw" '{"late":1}' 600000 5)
check_eq "event_send hands back every waiter" "$(echo "$r" | tail -n +3 | sort | tr '\t\n' ':,')" \
	"default:run2,default:run3,other:run4,"
check_eq "... and removes them" "$(rcli EXISTS "$evw")" 0
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t1 + 1)) $'default\trun2' $((t1 + 60000)) 3)
check_eq "a woken run's next wait finds the event" "$(echo "$w" | head -1):$(echo "$w" | tail -1)" 'event:{"late":1}'
t2=$(nowms)
rcli FCALL hopper_event_wait 2 "$ev" "$evw" $((t2 + 1)) $'default\tshort' $((t2 + 300)) 3 >/dev/null
sleep 0.5
r=$(rcli FCALL hopper_event_send 2 "$ev" "$evw" '{}' 600000 5)
check_eq "a waiter past its deadline is not handed back" "$(echo "$r" | tail -n +3 | grep -c short)" 0
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" 99999999999999 $'default\tlate' $((t2 - 1)) 3 | head -1)
check_eq "a wait past its deadline with no event: timeout" "$w" timeout
check_eq "... not registered" "$(rcli EXISTS "$evw")" 0
t3=$(nowms)
rcli FCALL hopper_event_send 2 "$ev" "$evw" '{"after":1}' 600000 5 >/dev/null
w=$(rcli FCALL hopper_event_wait 2 "$ev" "$evw" "$t3" $'default\tpast' $((t3 - 1)) 3 | head -1)
check_eq "an event sent after the wait's deadline is not that wait's (timeout)" "$w" timeout

# A sender that leaves before the answer: the waiters it took out of the key are still woken. (A fake
# waiter of a job that is running: the wake marks it, as for a park on the way.)
rcli HSET "$(qkey default job gone1)" state running owner '' >/dev/null
t4=$(nowms)
rcli FCALL hopper_event_wait 2 "$(gkey evt k.gone)" "$(gkey evw k.gone)" "$t4" $'default\tgone1' $((t4 + 60000)) 3 >/dev/null
py - "$HOPPER_ROOT" "$CTL_SOCK" <<'PY'
import os, sys
root, sock = sys.argv[1:3]
sys.path.insert(0, os.path.join(root, "tests", "ctl"))
import ctlclient
c = ctlclient.connect(sock=sock, peercred=True)
c.request("event.send", key="k.gone")
c.close()
PY
gone_woken() { [ "$(rcli HGET "$(qkey default job gone1)" woken)" = evt:k.gone ]; }
wait_for "the wake of a send whose client left" 5 gone_woken
check "a send whose client left before the answer still wakes its waiters" gone_woken

py - "$HOPPER_ROOT" "$CTL_SOCK" "$ALICE" "$BOB" <<'PY'
import os, sys
root, sock, alice, bob = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "client"))
sys.path.insert(0, os.path.join(root, "tests", "ctl"))
os.environ["SCENARIO"] = "event_store"
from ctltest import check, check_eq, schema_errors, done
import hopper

def valid(op, result, label):
    errs = schema_errors("urn:hopper:schema:control:%s#/$defs/result" % op, result)
    check(label + " (schema)", not errs, errs)

a = hopper.Client(socket=sock, token=alice)
b = hopper.Client(socket=sock, token=bob)
r = a.send_event("py.key", {"x": 1})
valid("event.send", r, "python: send_event")
check_eq("python: nothing waited", r["woken"], 0)
l = a.list_events("py.key")
valid("event.list", l, "python: list_events")
check_eq("python: alice lists her event", [e["data"] for e in l["events"]], [{"x": 1}])
check_eq("python: bob's key of that name is empty", b.list_events("py.key")["events"], [])
try:
    b.send_event("py.key", owner="alice")
    check("python: bob naming alice is forbidden", False, "no error")
except hopper.HopperError as e:
    check_eq("python: bob naming alice is forbidden", e.code, "forbidden")
done()
PY
finish_hopperd n1
end_scenario

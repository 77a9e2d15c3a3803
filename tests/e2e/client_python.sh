#!/usr/bin/env bash
# client_python: client/hopper.py (standard library only) against a real daemon with /usr/bin/python3, over
# the Unix socket (token and peer credentials) and over encrypted TCP: submit one and a batch, status,
# watch (every event in order, ending in the terminal state; the final job view), wait, cancel of a queued
# and of a running job, retry, list, ping, and errors carrying the protocol's code (not_found, forbidden,
# conflict, auth_failed, bad_request) and hopperctl's exit code.
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" || exit 1
ADMIN=$(ctl token create py-admin --scopes admin 2>/dev/null)
READER=$(ctl token create py-reader --scopes read 2>/dev/null)

# The script prints one "NAME<TAB>GOT<TAB>WANT" line per check; the loop below turns each into check_eq.
cat >"$T/client_test.py" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1])
import hopper
from hopper import Client, HopperError

sock, port, admin, reader, scale = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
WAIT = 60 * scale
import os
KH = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "known_hosts")  # TCP: pinned on first use


def check(name, got, want):
    print("%s\t%s\t%s" % (name, got, want), flush=True)


def code_of(fn):
    try:
        fn()
        return "no error"
    except HopperError as e:
        return "%s/%d" % (e.code, e.exit_code)


def progress_in_order(events):
    """(attempt, progress) never goes back while running; the states follow queued -> running -> end."""
    last = (-1, -1)
    for e in events:
        if e["event"] == "progress":
            cur = (e["attempt"], e["progress"])
            if cur < last:
                return "went back at %s" % (cur,)
            last = cur
    return "ok"


for tr in ("unix", "tcp"):
    c = Client(socket=sock, token=admin) if tr == "unix" else Client(host="127.0.0.1", port=port, known_hosts=KH, token=admin)
    with c:
        check(tr + ": identity", c.identity.get("name"), "py-admin")
        check(tr + ": ping", c.ping().get("pong"), True)
        r = c.submit("sleep", {"ms": 600})
        jid = r["id"]
        check(tr + ": submit state", r["state"], "queued")
        check(tr + ": status", c.status(jid)["id"], jid)
        gen = c.watch(jid, timeout=WAIT)
        events = []
        try:
            while True:
                events.append(next(gen))
        except StopIteration as stop:
            final = stop.value
        check(tr + ": watch final view", final["state"], "succeeded")
        check(tr + ": watch last event", events[-1]["state"] if events else None, "succeeded")
        check(tr + ": watch events are all of this job", all(e["job"] == jid for e in events), True)
        check(tr + ": watch saw progress events", sum(e["event"] == "progress" for e in events) >= 2, True)
        check(tr + ": watch saw it run", "running" in [e["state"] for e in events], True)
        check(tr + ": progress in order", progress_in_order(events), "ok")
        check(tr + ": stored events replayed identically",
              [(e["event"], e["state"], e["progress"]) for e in c.watch(jid)] ==
              [(e["event"], e["state"], e["progress"]) for e in events], True)
        ids = c.submit_batch([{"type": "noop", "id": "b%s%d" % (tr, i)} for i in range(3)])
        check(tr + ": batch ids in order", ids, ["b%s0" % tr, "b%s1" % tr, "b%s2" % tr])
        check(tr + ": wait", c.wait(ids[2], timeout=WAIT)["state"], "succeeded")
        # cancel: a queued job (a queue nobody consumes) and a running one
        q = c.submit("noop", queue="nobody-" + tr)["id"]
        check(tr + ": cancel queued", c.cancel(q)["was"], "queued")
        check(tr + ": cancelled status", c.status(q)["state"], "cancelled")
        check(tr + ": cancel again", code_of(lambda: c.cancel(q)), "conflict/11")
        run = c.submit("sleep", {"ms": 20000})["id"]
        deadline = time.time() + 30 * scale
        while c.status(run)["state"] != "running" and time.time() < deadline:
            time.sleep(0.05)
        check(tr + ": cancel running", c.cancel(run)["was"], "running")
        check(tr + ": the running job ends cancelled", c.wait(run, timeout=WAIT)["state"], "cancelled")
        # retry of a dead job
        f = c.submit("fail", {"message": "py"}, max_attempts=1)["id"]
        check(tr + ": failing job", c.wait(f, timeout=WAIT)["state"], "dead")
        check(tr + ": retry", c.retry(f)["state"], "queued")
        check(tr + ": list finds the batch", sorted(x["id"] for x in c.list(type="noop", limit=1000)["jobs"]
                                                   if x["id"].startswith("b" + tr)), ids)
        check(tr + ": not_found", code_of(lambda: c.status("no-such-job")), "not_found/10")
        check(tr + ": bad_request", code_of(lambda: c.call("list", limit=0)), "bad_request/2")
        check(tr + ": unknown type", code_of(lambda: c.submit("no-such-type")), "bad_request/2")
        check(tr + ": still usable after errors", c.ping().get("pong"), True)
    with (Client(socket=sock, token=reader) if tr == "unix" else
          Client(host="127.0.0.1", port=port, known_hosts=KH, token=reader)) as r:
        check(tr + ": read-only cannot submit", code_of(lambda: r.submit("noop")), "forbidden/9")
        check(tr + ": read-only cannot see admin's job", code_of(lambda: r.status(jid)), "not_found/10")

bad = "hop_000000000000_" + "A" * 43
check("unix: unknown token", code_of(lambda: Client(socket=sock, token=bad)), "auth_failed/7")
check("tcp: unknown token", code_of(lambda: Client(host="127.0.0.1", port=port, known_hosts=KH, token=bad)), "auth_failed/7")
check("malformed token", code_of(lambda: Client(socket=sock, token="nope")), "bad_request/2")
check("no daemon", code_of(lambda: Client(socket=sock + ".none")), "transport/15")
with Client(socket=sock) as pc:
    check("peer credentials (root)", pc.identity.get("method"), "peercred")
    t = pc.token_create("py-made", "submit,read", owner="carol")
    check("token_create returns the secret", t["token"].startswith("hop_"), True)
    check("token_list", "py-made" in [x["name"] for x in pc.token_list()], True)
    check("token_revoke", pc.token_revoke(name="py-made")["name"], "py-made")
print("done\tdone\tdone")
EOF

py "$T/client_test.py" "$HOPPER_ROOT/client" "$CTL_SOCK" "$PORT" "$ADMIN" "$READER" "$TIME_SCALE" \
	>"$T/py.out" 2>"$T/py.err"
st=$?
check_eq "the Python script exits 0" "$st" 0
[ "$st" = 0 ] || note "python: $(tail -n 5 "$T/py.err")"
while IFS=$'\t' read -r name got want; do
	check_eq "python: $name" "$got" "$want"
done <"$T/py.out"
check_eq "python: ran to its end" "$(tail -n 1 "$T/py.out" | cut -f1)" done

# The Python client's exit codes are the C table's (ctl_errors[] in common/ctl_proto.c).
check_eq "hopper.py EXIT_CODES match ctl_errors[]" "$(py - "$HOPPER_ROOT" <<'PY'
import re, sys
sys.path.insert(0, sys.argv[1] + "/client")
import hopper
src = open(sys.argv[1] + "/common/ctl_proto.c").read()
table = dict((name, int(code)) for name, code in
             re.findall(r'\{"([a-z_]+)",\s*"[^"]*"(?:\s*"[^"]*")*,\s*(\d+)\}', src, re.S) if name != "ok")
mine = dict((k, v) for k, v in hopper.EXIT_CODES.items() if k not in ("transport", "timeout"))
print("same" if table == mine and len(table) == 13 else "differ: %s vs %s" % (table, mine))
PY
)" same

finish_hopperd n1
end_scenario

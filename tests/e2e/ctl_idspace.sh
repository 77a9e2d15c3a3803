#!/usr/bin/env bash
# ctl_idspace: issue 11 item 7, the job-id existence oracle. Job ids are per owner (common/job_ns.h): owner B
# holds job "victim"; owner A's single submit, batch [victim, mine], idempotency key equal to B's, workflow
# enqueue step, and status/cancel/retry/logs/watch of "victim" all answer exactly as for a free or unknown
# id, and A's own "victim" is a separate job that runs. Over the unix socket and over TCP.
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis
start_hopperd n1 --workers=4 --ctl-tcp="127.0.0.1:$PORT" || exit 1

export SCENARIO HP SOCK T HOPPER_ROOT PORT
export CSOCK=$T/n1.sock
py - <<'PY'
import os, sys, json, subprocess
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *
from ctlclient import connect

SOCK, TCP, HP = os.environ["CSOCK"], "127.0.0.1:" + os.environ["PORT"], os.environ["HP"]
admin = connect(sock=SOCK, peercred=True)
tok = {}
for name in ("a", "b"):
    r = call_ok(admin, "token.create " + name, "token.create", name=name, scopes=["submit", "read", "cancel"],
                owner=name.upper())
    tok[name] = r["token"] if r else None

def err(r):
    return (r.get("error") or {}).get("code")

def msg(r, a, b):
    return (r.get("error") or {}).get("message", "").replace(a, "X").replace(b, "X")

def final(c, job, timeout=30):
    v = {}
    def end():
        nonlocal v
        v = c.call("status", job=job).get("result") or {}
        return v.get("state") in ("succeeded", "failed", "dead", "cancelled")
    wait_until(end, timeout)
    return v

for tr in ("unix", "tcp"):
    A = connect(sock=SOCK, token=tok["a"]) if tr == "unix" else connect(tcp=TCP, token=tok["a"])
    B = connect(sock=SOCK, token=tok["b"]) if tr == "unix" else connect(tcp=TCP, token=tok["b"])
    P = tr + ": "
    victim, free = "victim-" + tr, "free-" + tr
    r = call_ok(B, P + "B submits its job victim", "submit",
                job={"id": victim, "type": "sleep", "args": {"ms": 30000}, "idempotency_key": "k-" + tr})
    check_eq(P + "B's reply shows B its own id", (r or {}).get("id"), victim)
    # reads of B's victim answer as for an unknown id
    for op in ("status", "logs", "cancel", "retry", "watch"):
        rv, rf = A.call(op, job=victim), A.call(op, job=free)
        check_eq(P + "A's %s of B's victim answers like an unknown id (code)" % op, err(rv), err(rf))
        check_eq(P + "... and message", msg(rv, victim, free), msg(rf, victim, free))
    check_eq(P + "... status is not_found", err(A.call("status", job=victim)), "not_found")
    # batch [victim, mine]: accepted like a batch of free ids
    rb = A.call("submit", jobs=[{"id": victim, "type": "noop"}, {"id": "mine-" + tr, "type": "noop"}])
    check(P + "A's batch [victim, mine] is accepted (no 'exists already')", rb.get("ok"), rb)
    check_eq(P + "... its ids are A's own names", (rb.get("result") or {}).get("ids"), [victim, "mine-" + tr])
    check_eq(P + "A's victim is a separate job that runs", final(A, victim).get("state"), "succeeded")
    check_eq(P + "A's victim belongs to A", (A.call("status", job=victim).get("result") or {}).get("owner"), "A")
    bv = B.call("status", job=victim).get("result") or {}
    check_eq(P + "B's victim is untouched (B's, running)", (bv.get("owner"), bv.get("state")), ("B", "running"))
    # single submit of victim again: A's own conflict now (its own id), never B's
    r1 = A.call("submit", job={"id": victim, "type": "noop"})
    check_eq(P + "A's second submit of its own victim: conflict (its own job)", err(r1), "conflict")
    r2 = A.call("submit", job={"id": "single-" + tr, "type": "noop"})
    check(P + "A's single submit of a free id: ok", r2.get("ok"), r2)
    rs = A.call("submit", job={"id": "x" + victim, "type": "noop"})
    check(P + "A's submit of xvictim (a prefix-neighbour id): ok", rs.get("ok"), rs)
    # idempotency key equal to B's, with B's id
    ri = A.call("submit", job={"id": "idem-" + tr, "type": "noop", "idempotency_key": "k-" + tr})
    check(P + "A's idempotency key equal to B's: a job of A's own, no duplicate", ri.get("ok") and
          (ri.get("result") or {}).get("id") == "idem-" + tr and not (ri.get("result") or {}).get("duplicate"), ri)
    # enqueue step whose derived child id is B's job id
    B.call("submit", job={"id": "par-%s.kid" % tr, "type": "sleep", "args": {"ms": 13}})
    check_eq(P + "B's job par.kid ran", final(B, "par-%s.kid" % tr).get("state"), "succeeded")
    wf = {"steps": [{"id": "kid", "type": "enqueue", "params": {"type": "noop", "wait": True}}]}
    call_ok(A, P + "A's workflow par whose enqueue child is par.kid", "submit",
            job={"id": "par-" + tr, "type": "workflow.run", "max_attempts": 1, "args": {"definition": wf}})
    v = final(A, "par-" + tr)
    check_eq(P + "it succeeds with a child of its own", v.get("state"), "succeeded")
    check(P + "... learned nothing of B's job", "slept" not in json.dumps(v), v)
    check(P + "... its output names the child by A's own id", "par-%s.kid" % tr in json.dumps(v) and
          "_" + ns_id("A", "")[1:25] not in json.dumps(v), v)
    kv = A.call("status", job="par-%s.kid" % tr).get("result") or {}
    check_eq(P + "A's child par.kid is A's noop", (kv.get("owner"), kv.get("type")), ("A", "noop"))
    bk = B.call("status", job="par-%s.kid" % tr).get("result") or {}
    check_eq(P + "B's par.kid is untouched", (bk.get("type"), bk.get("state")), ("sleep", "succeeded"))
    # admin sees the stored ids
    ad = admin.call("status", job=ns_id("B", victim)).get("result") or {}
    check_eq(P + "admin reads B's victim by its stored id", ad.get("id"), ns_id("B", victim))
    check_eq(P + "admin: the plain id is unknown", err(admin.call("status", job=victim)), "not_found")
    # ids in the reserved form and over the limit are refused
    rr = A.call("submit", job={"id": ns_id("B", victim), "type": "noop"})
    check_eq(P + "a client id in the reserved form _<24 hex>: is refused", err(rr), "bad_request")
    check_eq(P + "... and B's stored id is unknown to A's status", err(A.call("status", job=ns_id("B", victim))),
             "bad_request")
    check(P + "a 102-character id is accepted", A.call("submit", job={"id": "m" * 101 + tr[0], "type": "noop"}).get("ok"))
    rl = A.call("submit", job={"id": "m" * 103, "type": "noop"})
    check(P + "a 103-character id is refused, naming 102", err(rl) == "bad_request" and "102" in json.dumps(rl), rl)
    # list: A's own ids, paged with a cursor
    seen, cur = [], None
    for _ in range(20):
        pg = A.call("list", limit=2, **({"cursor": cur} if cur else {})).get("result") or {}
        seen += [j.get("id") for j in pg.get("jobs", [])]
        cur = pg.get("cursor")
        if not cur:
            break
    check(P + "list pages through A's own ids (stripped), none of B's", victim in seen and "mine-" + tr in seen
          and not any(i.startswith("_") for i in seen) and len(seen) == len(set(seen)), seen)
    B.call("cancel", job=victim)
    A.close(); B.close()
done()
PY
end_scenario

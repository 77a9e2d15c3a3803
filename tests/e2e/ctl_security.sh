#!/usr/bin/env bash
# ctl_security: the owner and authentication holes of issue 11 (items 1, 3, 4, 7, 8, 9), each over the unix
# socket and over TCP where both apply:
#   1. a plain submit of workflow.run naming another owner's stored workflow answers exactly like a missing
#      one (not_found), as workflow run does; the owner's own plain submit runs;
#   3. an enqueue step's child belongs to the parent's owner (a step's "owner" is ignored), and a job of the
#      child's id that another owner holds tells the step nothing (no state, result or error);
#   4. logs of a reused id shows only the requesting owner's attempts (admin sees all);
#   7. another owner's idempotency key answers like a free key (a job of one's own);
#   8. a success does not wash failed guesses away (unix and TCP); a TCP guesser locks only (address, token
#      id), not every TCP client of its address; a 2,000-connection flood from one peer does not refuse a
#      different peer (unix: another uid; TCP: another address);
#   9. hopperctl refuses a FIFO token file at once instead of hanging.
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The other-uid checks connect as nobody: the socket sits in a directory anyone may enter.
SOCKDIR=$(mktemp -d /tmp/hopper-ctlsec.XXXXXX)
chmod 755 "$SOCKDIR"
export CSOCK=$SOCKDIR/n1.sock
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" --ctl-socket="$CSOCK" --ctl-socket-mode=0666 \
	--result-ttl-s=3 --ctl-auth-delay-ms=20 --ctl-auth-max-failures=3 --ctl-lockout-s=30 \
	--ctl-max-conns=256 --ctl-max-conns-per-peer=32 || exit 1

# --- 9: a FIFO token file ---
mkfifo -m 600 "$T/token.fifo"
timeout 10 "$HOPPER_BUILD/hopperctl" --socket="$CSOCK" --token-file="$T/token.fifo" ping >/dev/null 2>"$T/fifo.err"
st=$?
check "hopperctl with a FIFO token file does not hang (exit $st)" test "$st" -ne 124
check_match "... and says why" "$(cat "$T/fifo.err")" 'not a regular file'

export SCENARIO HP SOCK T HOPPER_ROOT PORT
py - <<'PY'
import os, re, sys, time, json, socket, struct, subprocess, resource
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *
from ctlclient import Client, connect, Closed, ProtocolError

CS, TCP = os.environ["CSOCK"], "127.0.0.1:" + os.environ["PORT"]
admin = connect(sock=CS, peercred=True)
tok = {}
for name, owner in [("a", "A"), ("b", "B"), ("v", "V"), ("w", "W")]:
    r = call_ok(admin, "token.create " + name, "token.create", name=name, scopes=["submit", "read"], owner=owner)
    tok[name] = r["token"] if r else None

def conn(tr, t):
    return connect(sock=CS, token=t) if tr == "unix" else connect(tcp=TCP, token=t)

def final(c, job, timeout=30):
    v = {}
    def end():
        nonlocal v
        r = c.call("status", job=job)
        v = r.get("result") or {}
        return v.get("state") in ("succeeded", "failed", "dead", "cancelled")
    wait_until(end, timeout)
    return v

def err(r):
    return (r.get("error") or {}).get("code")

for tr in ("unix", "tcp"):
    A, B = conn(tr, tok["a"]), conn(tr, tok["b"])
    P = tr + ": "
    # --- 1: stored workflows through a plain submit ---
    wf = "b-private-" + tr
    r = B.call("workflow.put", name=wf, definition={"steps": [{"id": "d", "type": "delay", "params": {"ms": 1}}]})
    check(P + "B stores a private workflow", r.get("ok"), r)
    theirs = A.call("submit", job={"type": "workflow.run", "args": {"workflow": wf}})
    missing = A.call("submit", job={"type": "workflow.run", "args": {"workflow": "nosuch-" + tr}})
    check_eq(P + "A's plain submit of B's stored workflow: not_found", err(theirs), "not_found")
    check_eq(P + "... exactly like a missing one (code)", err(theirs), err(missing))
    check_eq(P + "... and message", (theirs.get("error") or {}).get("message", "").replace(wf, "N"),
             (missing.get("error") or {}).get("message", "").replace("nosuch-" + tr, "N"))
    check_eq(P + "... the same as workflow.run answers", err(A.call("workflow.run", name=wf)), "not_found")
    r = call_ok(B, P + "B's own plain submit of it", "submit", job={"type": "workflow.run", "args": {"workflow": wf}})
    if r:
        check_eq(P + "... runs", final(B, r["id"]).get("state"), "succeeded")

    # --- 3: enqueue steps: the child's owner, another owner's job of the child's id ---
    parent = "par-" + tr
    call_ok(B, P + "B holds the id a workflow of A will derive", "submit",
            job={"id": parent + ".kid", "type": "sleep", "args": {"ms": 13}})
    check_eq(P + "B's job ran", final(B, parent + ".kid").get("state"), "succeeded")
    steal = {"steps": [{"id": "kid", "type": "enqueue", "timeout_s": 1.5,
                        "params": {"type": "noop", "wait": True}}]}
    call_ok(A, P + "A's workflow whose enqueue step names it", "submit",
            job={"id": parent, "type": "workflow.run", "max_attempts": 1, "args": {"definition": steal}})
    v = final(A, parent)
    text = json.dumps(v)
    check(P + "the step learned nothing of B's job (no slept/succeeded result)",
          "slept" not in text and "13" not in json.dumps(v.get("result")), v)
    # Ids are per owner (item 7, common/job_ns.h): A's child par.kid is a job of A's own, not B's.
    check_eq(P + "... its child is a job of A's own, which ran", v.get("state"), "succeeded")
    bv = (admin.call("status", job=ns_id("B", parent + ".kid")).get("result") or {})
    check_eq(P + "B's job is untouched", (bv.get("owner"), bv.get("state")), ("B", "succeeded"))
    mine = {"steps": [{"id": "kid", "type": "enqueue",
                       "params": {"type": "noop", "wait": True, "owner": "B"}}]}
    call_ok(A, P + "A's workflow with a free child id (and a step that names owner B)", "submit",
            job={"id": "own-" + tr, "type": "workflow.run", "args": {"definition": mine}})
    check_eq(P + "it succeeds", final(A, "own-" + tr).get("state"), "succeeded")
    kv = (A.call("status", job="own-%s.kid" % tr).get("result") or {})
    check_eq(P + "the child belongs to A (the parent's owner, not the step's)", kv.get("owner"), "A")

    # --- 7: idempotency keys are per owner ---
    key = "idem-" + tr
    rb = call_ok(B, P + "B submits with a key", "submit", job={"type": "noop", "idempotency_key": key})
    ra = A.call("submit", job={"type": "noop", "idempotency_key": key})
    rf = A.call("submit", job={"type": "noop", "idempotency_key": "free-" + key})
    check(P + "A's use of B's key: ok, a job of A's own", ra.get("ok") and rb and ra["result"]["id"] != rb["id"], ra)
    check_eq(P + "... answered like a free key (same fields)", sorted((ra.get("result") or {}).keys()),
             sorted((rf.get("result") or {}).keys()))
    check_eq(P + "... not a duplicate", (ra.get("result") or {}).get("duplicate"), None)
    ra2 = A.call("submit", job={"type": "noop", "idempotency_key": key})
    check_eq(P + "A's second use of its key is a duplicate of A's job", (ra2.get("result") or {}).get("id"),
             (ra.get("result") or {}).get("id"))

    # --- 4: logs of a reused id ---
    rid = "reuse-" + tr
    call_ok(B, P + "B's job that fails with a secret", "submit",
            job={"id": rid, "type": "fail", "max_attempts": 1, "args": {"message": "B-SECRET-" + tr}})
    check(P + "it failed", final(B, rid).get("state") in ("failed", "dead"))
    check(P + "its hash expires (result_ttl_s 3)",
          wait_until(lambda: err(admin.call("status", job=ns_id("B", rid))) == "not_found", 20))
    call_ok(A, P + "A reuses the id", "submit", job={"id": rid, "type": "noop"})
    check_eq(P + "A's job ran", final(A, rid).get("state"), "succeeded")
    la = A.call("logs", job=rid).get("result") or {}
    check_eq(P + "A's logs show only A's attempt", len(la.get("attempts", [])), 1)
    check(P + "... nothing of B's", "B-SECRET" not in json.dumps(la), la)
    # Ids are per owner now: A's and B's rid are two stored ids, admin reads each.
    la_a = admin.call("logs", job=ns_id("A", rid)).get("result") or {}
    la_b = admin.call("logs", job=ns_id("B", rid)).get("result") or {}
    check_eq(P + "admin sees each owner's attempt under its stored id",
             (len(la_a.get("attempts", [])), len(la_b.get("attempts", []))), (1, 1))
    A.close(); B.close()

# --- 8a: a success does not reset the failures (unix: per uid; run as nobody so root is not locked) ---
code = r'''
import sys, json
sys.path.insert(0, sys.argv[2])
from ctlclient import Client
good, tid = sys.argv[3], sys.argv[3][4:16]
bad = "hop_" + tid + "_" + "A" * 43
out = []
for t in [bad, good, bad, good, bad, good]:
    c = Client.unix(sys.argv[1]); c.hello()
    r = c.auth(token=t); c.close()
    out.append((r.get("error") or {}).get("code") or "ok")
print(json.dumps(out))
'''
p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-B", "-c",
                    code, CS, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"), tok["w"]],
                   capture_output=True, text=True, timeout=60)
seq = json.loads(p.stdout) if p.stdout.strip() else p.stderr[-300:]
check_eq("unix: bad, good, bad, good, bad: locked out at the third failure despite the successes",
         seq, ["auth_failed", "ok", "auth_failed", "ok", "auth_failed", "locked_out"])
call_ok(admin, "unix: another uid (root) is not locked out by nobody's guesses", "ping")
c = connect(sock=CS, token=tok["w"])
check("unix: ... even with the same token", c is not None)

# --- 8a/8b over TCP: (address, token id) ---
def tcp_auth(t):
    """the outcome of one TCP connect + handshake + auth: ok or the error code (through connect(), whatever
    the handshake's version)"""
    try:
        c = connect(tcp=TCP, token=t)
    except ProtocolError as e:
        m = re.search(r"'code': '(\w+)'", str(e))
        return m.group(1) if m else str(e)
    except Closed:
        return "closed"
    c.close()
    return "ok"
good = tok["v"]
bad = good[:17] + ("A" if good[17] != "A" else "B") + good[18:]
seq = [tcp_auth(t) for t in [bad, good, bad, good, bad, good]]
check_eq("tcp: bad, good, bad, good, bad: the token id is locked out at the third failure",
         seq, ["auth_failed", "ok", "auth_failed", "ok", "auth_failed", "locked_out"])
check_eq("tcp: another token from the same address is not locked out", tcp_auth(tok["a"]), "ok")
junk = ["hop_%012x_%s" % (i, "A" * 43) for i in range(5)]
seq = [tcp_auth(t) for t in junk]
check_eq("tcp: guesses at many token ids are refused (slowed, never a lockout of the address)",
         seq, ["auth_failed"] * 5)
check_eq("tcp: ... and the address's other clients still get in", tcp_auth(tok["b"]), "ok")

# --- 8c: a flood of 2,000 connections from one peer ---
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 8192), max(hard, 8192)))
def flood(make):
    socks = []
    for i in range(2000):
        try:
            socks.append(make())
        except OSError:
            pass
    return socks
def unix_sock():
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(CS); return s
def tcp_sock(src="127.0.0.1"):
    s = socket.socket(); s.settimeout(5); s.bind((src, 0)); s.connect(("127.0.0.1", int(os.environ["PORT"]))); return s
socks = flood(unix_sock)
check("unix: the flood (2,000 attempts) connected more than ctl_max_conns (%d)" % len(socks), len(socks) > 256)
p = subprocess.run(["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "/usr/bin/python3", "-B", "-c",
                    "import sys; sys.path.insert(0, sys.argv[2]); from ctlclient import connect\n"
                    "c = connect(sock=sys.argv[1], token=sys.argv[3]); print(c.call('ping').get('ok'))",
                    CS, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"), tok["b"]],
                   capture_output=True, text=True, timeout=60)
check("unix: during a 2,000-connection flood from root, uid 4242 gets in", p.stdout.strip() == "True",
      p.stdout + p.stderr[-500:])
for s in socks: s.close()
socks = flood(tcp_sock)
check("tcp: the flood (2,000 attempts) connected more than ctl_max_conns (%d)" % len(socks), len(socks) > 256)
# Any first frame: the answer must not be the connection cap's "limit" (whatever the hello's version wants).
o = tcp_sock("127.0.0.2")
hello = b'{"id":0,"op":"hello","version":1}'
o.sendall(struct.pack(">I", len(hello)) + hello)
try:
    n = struct.unpack(">I", o.recv(4, socket.MSG_WAITALL))[0]
    first = json.loads(o.recv(n, socket.MSG_WAITALL))
except (OSError, ValueError, struct.error) as e:
    first = {"exception": str(e)}
o.close()
check("tcp: during a 2,000-connection flood from 127.0.0.1, 127.0.0.2 is served (not refused)",
      "exception" not in first and (first.get("error") or {}).get("code") != "limit", first)
for s in socks: s.close()
done()
PY
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
check "the per-peer cap is logged" grep -q 'ctl_max_conns_per_peer' "$T/n1.log"
finish_hopperd n1
rm -rf "$SOCKDIR"
end_scenario

#!/usr/bin/env bash
# ctl_auth: who may do what on the control socket. Peer-credential bootstrap (root yes, another uid no),
# hello and auth before anything, wrong and malformed tokens, the growing delay of failed auths and the
# lockout (also for a correct token, until it expires), scopes (read-only cannot submit, no token admin
# without admin), owners (B cannot see, watch, list, cancel, retry or read the logs of A's jobs: not_found;
# only admin submits for another owner), revocation cutting open unix and TCP connections at once, and TCP:
# (Noise XK) wrong secret, unknown token id, no token id in the clear hello, a recorded session replayed, a
# tampered and a reordered frame, peercred refused, the lockout answered at the hello. ctl_noise.sh has the
# rest of the handshake's properties (pinning, a stolen database, the secret never on the wire, protocol 1).
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The peer-credential check below connects as nobody: the socket sits in a directory anyone may enter.
SOCKDIR=$(mktemp -d /tmp/hopper-ctlsock.XXXXXX)
chmod 755 "$SOCKDIR"
export CSOCK=$SOCKDIR/n1.sock
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" --ctl-socket="$CSOCK" --ctl-socket-mode=0666 \
	--ctl-auth-delay-ms=100 --ctl-auth-max-failures=3 --ctl-lockout-s=2 || exit 1
export SCENARIO HP SOCK TIME_SCALE T HOPPER_ROOT PORT
py - <<'PY'
import os, sys, time, json, socket, struct, subprocess
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *
from ctlclient import Client, connect, Closed, ProtocolError
import ctlclient as cc

CS, TCP = os.environ["CSOCK"], "127.0.0.1:" + os.environ["PORT"]
SOCK, HP = os.environ["SOCK"], os.environ["HP"]
def rcli(*a):
    return subprocess.run(["redis-cli", "-s", SOCK, "--raw"] + list(a), capture_output=True, text=True).stdout.strip()

def closed_soon(c, timeout=5):
    c.sock.settimeout(timeout)
    try:
        while True:
            c.recv_obj()
    except Closed:
        return True
    except (socket.timeout, OSError):
        return False
    except ProtocolError:
        return closed_soon(c, timeout)

# --- bootstrap by peer credentials (the tests run as root) ---
c = Client.unix(CS)
r = c.hello()
check("hello lists the auth methods", r.get("ok") and r["result"]["auth"] == ["token", "peercred"], r)
r = c.call("status", job="x")
check_eq("an op before auth: unauthenticated", r["error"]["code"], "unauthenticated")
a = call_ok(c, "peercred as root", "auth", peercred=True)
check(a is not None and a["owner"] == "uid:0" and a["scopes"] == ["admin"] and a["method"] == "peercred", "peercred gives admin, owner uid:0")
admin = c
tok = {}
for name, scopes, owner in [("admin", ["admin"], None), ("ro", ["read"], "A"), ("subA", ["submit", "read"], "A"),
                            ("subB", ["submit", "read"], "B"), ("cancA", ["cancel", "read"], "A"),
                            ("cancB", ["cancel", "read"], "B"), ("rv", ["read"], "R"), ("bystander", ["read"], "X")]:
    r = call_ok(admin, "token.create " + name, "token.create", name=name, scopes=scopes, owner=owner)
    tok[name] = r["token"] if r else None

# another uid may connect (mode 0666 here) but not use peercred
code = r'''
import socket, struct, json, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
def send(o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv():
    h = b""
    while len(h) < 4: h += s.recv(4 - len(h))
    n = struct.unpack(">I", h)[0]; b = b""
    while len(b) < n: b += s.recv(n - len(b))
    return json.loads(b)
send({"op": "hello", "version": 1}); recv()
send({"id": 1, "op": "auth", "peercred": True}); print(json.dumps(recv()))
'''
out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code, CS],
                     capture_output=True, text=True, timeout=30)
r = json.loads(out.stdout) if out.stdout.strip() else {"stderr": out.stderr[-300:]}
check("peercred from uid 65534 fails", (r.get("error") or {}).get("code") == "auth_failed", r)

# --- hello first ---
c = Client.unix(CS)
c.send_obj({"id": 1, "op": "auth", "peercred": True})
r = c.recv_obj()
check_eq("anything before hello: version error", r["error"]["code"], "version")
check("... and the connection closes", closed_soon(c))
c = Client.unix(CS)
c.hello()
r = c.hello()
check_eq("a second hello: version error", r["error"]["code"], "version")
c = Client.unix(CS)
r = c.call("hello", version=0)
check_eq("hello version 0: no common version", r["error"]["code"], "version")

# --- scopes and owners ---
ro = connect(sock=CS, token=tok["ro"])
subA = connect(sock=CS, token=tok["subA"])
subB = connect(sock=CS, token=tok["subB"])
cancA = connect(sock=CS, token=tok["cancA"])
cancB = connect(sock=CS, token=tok["cancB"])
call_err(ro, "read-only cannot submit", "submit", "forbidden", job={"type": "noop"})
call_err(ro, "read-only cannot create tokens", "token.create", "forbidden", name="x", scopes=["admin"])
call_err(ro, "read-only cannot pause", "pause", "forbidden", queue="default")
call_err(subA, "submit scope cannot cancel", "cancel", "forbidden", job="whatever")
r = call_ok(subA, "A submits", "submit", job={"id": "jA", "type": "noop", "queue": "idleq"})
st = call_ok(ro, "a read token of owner A sees A's job", "status", job="jA")
check_eq("the job records its submitter's owner", (st or {}).get("owner"), "A")
call_err(subB, "B cannot see A's job (not_found, not forbidden)", "status", "not_found", job="jA")
r = subB.call("watch", job="jA")
check_eq("B cannot watch A's job", (r.get("error") or {}).get("code"), "not_found")
call_err(subB, "B cannot read A's job's logs", "logs", "not_found", job="jA")
call_err(subB, "B cannot retry A's job", "retry", "not_found", job="jA")
call_err(cancB, "B cannot cancel A's job", "cancel", "not_found", job="jA")
r = call_ok(subB, "B lists", "list")
check("B's list has none of A's jobs", r is not None and all(j.get("owner") == "B" for j in r["jobs"]), r)
r = call_ok(subB, "B lists with owner A", "list", owner="A")
check_eq("... an empty page", r and r["jobs"], [])
r = call_ok(subA, "A lists", "list")
check("A's list has jA", r is not None and "jA" in [j["id"] for j in r["jobs"]], r)
call_err(subA, "A cannot submit for owner B", "submit", "forbidden", job={"type": "noop", "owner": "B"})
r = call_ok(admin, "admin submits for owner B", "submit", job={"id": "jB", "type": "noop", "owner": "B", "queue": "idleq"})
check_eq("admin's job on behalf of B is B's", (call_ok(subB, "B sees jB", "status", job="jB") or {}).get("owner"), "B")
call_ok(admin, "admin sees A's job (by its stored id)", "status", job=ns_id("A", "jA"))
r = call_ok(cancA, "A cancels its own job", "cancel", job="jA")
check_eq("... it was queued", (r or {}).get("was"), "queued")

# --- revocation cuts open connections, unix and TCP ---
rv_unix = connect(sock=CS, token=tok["rv"])
rv_tcp = connect(tcp=TCP, token=tok["rv"])  # no key given: asks the daemon first
by = connect(sock=CS, token=tok["bystander"])
r = call_ok(admin, "revoke rv", "token.revoke", name="rv")
check_eq("revoke closed both of its connections", (r or {}).get("closed"), 2)
check("the unix connection is cut", closed_soon(rv_unix, 3))
check("the TCP connection is cut", closed_soon(rv_tcp, 3))
call_ok(by, "another token's connection is untouched", "ping")
c = Client.unix(CS); c.hello()
r = c.auth(token=tok["rv"])
check_eq("a revoked token no longer authenticates", (r.get("error") or {}).get("code"), "auth_failed")
r = call_ok(admin, "token.list", "token.list")
rvrow = [t for t in (r or {}).get("tokens", []) if t["name"] == "rv"]
check("token.list shows when it was revoked and last used", rvrow and rvrow[0]["revoked_at"] and rvrow[0]["last_used_at"], rvrow)
time.sleep(2.2)  # that failure's window passes (lockout_s = 3)

# --- TCP: the Noise handshake against the daemon's key; the token's key proves the token ---
KEY = cc.probe_key("127.0.0.1", int(os.environ["PORT"]))
check("TCP: the daemon says its key (first use)", isinstance(KEY, bytes) and len(KEY) == 32, KEY)
def tcp_try(token, **kw):
    c = Client.tcp_connect("127.0.0.1", int(os.environ["PORT"]))
    try:
        return c, c.handshake(token, KEY, **kw)
    except Closed:
        return c, {"closed": True}
good = tok["bystander"]
tid = good[4:16]
wrong_secret = good[:17] + ("A" if good[17] != "A" else "B") + good[18:]
c, r = tcp_try(wrong_secret)
check_eq("TCP: wrong secret: auth_failed", (r.get("error") or {}).get("code"), "auth_failed")
check("TCP: ... and closed", closed_soon(c))
time.sleep(0.3)
c, r = tcp_try("hop_0123456789ab_" + good[17:])
check_eq("TCP: unknown token id: auth_failed the same way", (r.get("error") or {}).get("code"), "auth_failed")
time.sleep(2.2)  # clear the failures

# the hello goes in clear but names no token: the id travels in message 3, encrypted
c, r = tcp_try(good)
check("TCP: the right token authenticates", r.get("ok"), r)
check("TCP: the clear hello names no token id", tid.encode() not in c.sent[0] and b"token" not in c.sent[0], c.sent[0][:200])
c.close()

# replay: record a whole good session, undo its effect, play it again
c = connect(tcp=TCP, token=tok["admin"], server_key=KEY)
r = c.call("submit", job={"id": "rp-1", "type": "noop", "queue": "nobodyq"})
check("TCP: the recorded session submits rp-1", r.get("ok"), r)
recorded = b"".join(c.sent)
c.close()
rcli("DEL", HP + "job:rp-1", HP + "job:rp-1:events", HP + "queue:nobodyq")
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
s.sendall(recorded)
s.settimeout(5)
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except socket.timeout:
    pass
check_eq("TCP: a replayed session does not submit again", rcli("EXISTS", HP + "job:rp-1"), "0")
check("TCP: the replay gets only the hello and an auth_failed, then EOF", b"auth_failed" in got and b"rp-1" not in got, got[:300])
time.sleep(2.2)

# a tampered frame mid-session closes that connection only
c = connect(tcp=TCP, token=tok["bystander"], server_key=KEY)
frame = bytearray(c.session.seal(json.dumps({"id": 9, "op": "ping"}).encode()))
frame[10] ^= 1
c.sock.sendall(bytes(frame))
check("TCP: a tampered frame closes the connection", closed_soon(c))
call_ok(by, "others keep being served", "ping")
# two frames swapped (reordered) close it too
c = connect(tcp=TCP, token=tok["bystander"], server_key=KEY)
f1 = c.session.seal(json.dumps({"id": 10, "op": "ping"}).encode())
f2 = c.session.seal(json.dumps({"id": 11, "op": "ping"}).encode())
c.sock.sendall(f2 + f1)
check("TCP: reordered frames close the connection", closed_soon(c))
c = connect(tcp=TCP, token=tok["bystander"], server_key=KEY)
r = c.call("auth", peercred=True)
check_eq("TCP: a second auth is refused", (r.get("error") or {}).get("code"), "bad_request")
c, r = tcp_try(tok["bystander"], auth={"peercred": True})
check_eq("TCP: peercred is refused", (r.get("error") or {}).get("code"), "auth_failed")
time.sleep(2.2)

# --- failed auth: growing delay, then lockout (unix: per uid) ---
def unix_auth(token):
    c = Client.unix(CS)
    c.hello()
    t0 = time.time()
    r = c.auth(token=token)
    return (r.get("error") or {}).get("code") or "ok", time.time() - t0
bad = "hop_" + tid + "_" + "A" * 43
codes, times = [], []
for i in range(3):
    code, dt = unix_auth(bad)
    codes.append(code); times.append(dt)
check_eq("three wrong tokens: auth_failed each", codes, ["auth_failed"] * 3)
check("the delay grows (100 ms, 200 ms, 400 ms)", times[0] >= 0.08 and times[2] >= 0.3 and times[2] > times[0], times)
code, dt = unix_auth(tok["bystander"])
check_eq("locked out: even the right token is refused", code, "locked_out")
check("... at once", dt < 0.3, dt)
code, _ = unix_auth("not-a-token")
check_eq("a malformed token while locked out: locked_out", code, "locked_out")
time.sleep(2.3)
code, _ = unix_auth(tok["bystander"])
check_eq("after the lockout the right token works", code, "ok")
code, _ = unix_auth("hop_bad")
check_eq("a malformed token: auth_failed", code, "auth_failed")
time.sleep(2.2)

# TCP lockout is answered at the hello
for i in range(3):
    tcp_try(wrong_secret)[0].close()
    time.sleep(0.05)
time.sleep(1.2)  # the third failure's delay (400 ms) and its lockout entry
c, r = tcp_try(good)
check_eq("TCP: a locked-out address is told so at the hello", (r.get("error") or {}).get("code"), "locked_out")
done()
PY
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
check "failures are logged with the peer" grep -q 'uid 65534 .*authentication failed\|authentication failed.*peercred' "$T/n1.log"
check "the lockout is logged" grep -q 'locked out for' "$T/n1.log"
finish_hopperd n1
rm -rf "$SOCKDIR"
end_scenario

#!/usr/bin/env bash
# ctl_noise: the TCP handshake's promises (protocol 2, Noise XK; schema/control-protocol.md "Threat model").
# The tests' own Noise (tests/ctl/ctlclient.py) reproduces cacophony's vector; the daemon's key file is 0600
# and --print-pubkey prints the key the daemon uses; a protocol-1 client gets "version" on TCP (the unix socket
# still speaks 1); hopperctl records the key on first use and then refuses a daemon without it (a changed key,
# or a second daemon holding a copy of the database: the stolen database logs in nowhere and impersonates
# nobody); a wrong token fails; the secret, its id and the stored verifier never cross the wire (bytes captured
# by a proxy on loopback); a token stored before protocol 2 works on the unix socket, which upgrades it for TCP;
# a key file others may read is refused.
. "$(dirname "$0")/../lib.sh"

freeport() { py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P1=$(freeport)
P2=$(freeport)
start_redis
start_hopperd n1 --workers=1 --ctl-tcp="127.0.0.1:$P1" || exit 1
ADMIN=$(ctl token create admin --scopes admin 2>/dev/null)
READER=$(ctl token create reader --scopes read --owner r 2>/dev/null)
check_match "tokens made" "$ADMIN $READER" '^hop_.* hop_'
check "the key file is created beside the database, mode 0600" test "$(stat -c %a "$T/n1.key")" = 600
K1=$("$HOPPERD" --print-pubkey --db-path="$T/n1.db" 2>/dev/null)
check_match "--print-pubkey prints a base64url key" "$K1" '^[A-Za-z0-9_-]{43}$'
check "the daemon logs the same key" grep -q "public key $K1" "$T/n1.log"

# The stolen database: a consistent copy, served by a second daemon with a key of its own.
py -c 'import sqlite3, sys; a = sqlite3.connect(sys.argv[1]); b = sqlite3.connect(sys.argv[2]); a.backup(b)' \
	"$T/n1.db" "$T/n2.db"
start_hopperd n2 --workers=1 --ctl-tcp="127.0.0.1:$P2" || exit 1
K2=$("$HOPPERD" --print-pubkey --db-path="$T/n2.db" 2>/dev/null)
check "the second daemon has another key" test -n "$K2" -a "$K2" != "$K1"

KH=$T/known_hosts
hc() { "$HOPPERCTL" --known-hosts "$KH" "$@"; }
out=$(hc --host "127.0.0.1:$P1" --token "$READER" ping 2>"$T/err")
check_eq "hopperctl over TCP on first use: ok" "$?" 0
check "... says it recorded the key" grep -q "recorded its key $K1" "$T/err"
check_eq "... in known_hosts" "$(cat "$KH")" "127.0.0.1:$P1 $K1"
hc --host "127.0.0.1:$P1" --token "$READER" ping >/dev/null 2>"$T/err"
check_eq "the second connection uses the pinned key" "$?:$(grep -c recorded "$T/err")" 0:0
# the daemon at P2 now claims to be the one at P1 (its key changed, or a MITM, or the stolen database)
printf '127.0.0.1:%s %s\n' "$P2" "$K1" >>"$KH"
hc --host "127.0.0.1:$P2" --token "$READER" ping >/dev/null 2>"$T/err"
check_eq "a daemon without the pinned key is refused (exit 7)" "$?" 7
check "... saying the key does not match and where it was pinned" grep -q "does not hold the key pinned for it ($K1, from $KH:2)" "$T/err"
"$HOPPERCTL" --server-key "$K1" --host "127.0.0.1:$P2" --token "$ADMIN" ping >/dev/null 2>"$T/err"
check_eq "--server-key pins too: the stolen database's daemon is refused" "$?" 7
printf '%s\n' "$K2" >"$T/k2.pub"
"$HOPPERCTL" --server-key "$T/k2.pub" --host "127.0.0.1:$P2" --token "$READER" ping >/dev/null 2>&1
check_eq "--server-key FILE: whoever pins n2's key reaches n2 (the copy is a working daemon)" "$?" 0
check "n2 logs the handshake for another key" grep -q "does not open with this daemon's key" "$T/n2.log"

export T SCENARIO P1 P2 K1 K2 ADMIN READER HOPPER_ROOT HOPPERCTL KH TIME_SCALE HP SOCK
py - <<'PY' 2>&1
import os, sys, json, socket, struct, subprocess, threading, sqlite3, time
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "client"))
from ctltest import *
import ctlclient as cc
import hopper

T = os.environ["T"]
P1, P2 = int(os.environ["P1"]), int(os.environ["P2"])
K1, K2 = cc.unb64(os.environ["K1"]), cc.unb64(os.environ["K2"])
ADMIN, READER = os.environ["ADMIN"], os.environ["READER"]
check_eq("the tests' own Noise XK reproduces cacophony's vector", cc.vector_selftest(), None)
check_eq("the daemon's key probe answers the key --print-pubkey printed", cc.probe_key("127.0.0.1", P1), K1)

# --- protocol 1 ---
c = cc.Client.tcp_connect("127.0.0.1", P1)
pk = os.urandom(32)
c.send_obj({"id": 0, "op": "hello", "version": 1, "token_id": ADMIN[4:16], "pk": cc.b64(pk)})
r = json.loads(c.recv_payload())
check_eq("TCP: a protocol-1 client gets a version error", (r.get("error") or {}).get("code"), "version")
check("... that tells it to upgrade", "upgrade" in (r.get("error") or {}).get("message", ""), r)
try:
    c.recv_payload()
    check("... and the connection closes", False, "got another frame")
except cc.Closed:
    ok("... and the connection closes")
u = cc.Client.unix(T + "/n1.sock")
r = u.hello(version=1)
check("unix: protocol 1 still spoken (nothing changed there)", r.get("ok") and r["result"]["version"] == 1, r)
check_eq("unix: ... and its token auth works", (u.auth(token=READER).get("result") or {}).get("owner"), "r")

# --- wrong token, stolen verifiers ---
c = cc.Client.tcp_connect("127.0.0.1", P1)
wrong = READER[:17] + ("A" if READER[17] != "A" else "B") + READER[18:]
r = c.handshake(wrong, K1)
check_eq("TCP: a wrong secret fails", (r.get("error") or {}).get("code"), "auth_failed")
db = sqlite3.connect(T + "/n1.db", timeout=30)
rows = db.execute("SELECT id, hash FROM tokens").fetchall()
check("the database holds the verifiers of the tokens, not their secrets",
      all(h == cc.token_verifier(cc.parse_token(t)[1]) for t in (ADMIN, READER) for i, h in rows if i == t[4:16]), rows)
for tid, h in rows:
    fake = "hop_%s_%s" % (tid, cc.b64(h))
    u = cc.Client.unix(T + "/n1.sock"); u.hello()
    r1 = u.auth(token=fake)
    c = cc.Client.tcp_connect("127.0.0.1", P1)
    r2 = c.handshake(fake, K1)
    check("a stored value used as a secret logs in nowhere (%s: unix, TCP)" % tid,
          (r1.get("error") or {}).get("code") == "auth_failed" and (r2.get("error") or {}).get("code") == "auth_failed",
          (r1, r2))
    time.sleep(1.5)  # keep under the lockout
# --- the secret never on the wire: a proxy on loopback records both directions ---
captured = []
lsock = socket.socket(); lsock.bind(("127.0.0.1", 0)); lsock.listen(8)
PX = lsock.getsockname()[1]
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            captured.append(d)
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve():
    while True:
        try:
            cl, _ = lsock.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", P1))
        threading.Thread(target=pump, args=(cl, up), daemon=True).start()
        threading.Thread(target=pump, args=(up, cl), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
hc = [os.environ["HOPPERCTL"], "--server-key", os.environ["K1"], "--host", "127.0.0.1:%d" % PX]
p = subprocess.run(hc + ["--token", ADMIN, "--json", "submit", "noop", "--queue", "parkedq"], capture_output=True,
                   text=True, timeout=30)
check_eq("hopperctl through the recording proxy: submit works", p.returncode, 0)
with hopper.Client(host="127.0.0.1", port=PX, token=READER, server_key=os.environ["K1"]) as hc2:
    check_eq("hopper.py through the proxy: ping works", hc2.ping().get("pong"), True)
c = cc.connect(tcp="127.0.0.1:%d" % PX, token=READER, server_key=K1)
check("the tests' client through the proxy: ping works", c.call("ping").get("ok"))
c.close()
time.sleep(0.3)
wire = b"".join(captured)
check("the proxy saw traffic", len(wire) > 500, len(wire))
leaks = []
for t in (ADMIN, READER):
    tid, sec = cc.parse_token(t)
    for what, b in (("token", t.encode()), ("secret b64", t[17:].encode()), ("secret bytes", sec),
                    ("token id", tid.encode()), ("verifier", cc.token_verifier(sec)), ("v1 hash", cc.token_hash(sec))):
        if b in wire:
            leaks.append("%s of %s" % (what, t[4:16]))
check_eq("no token, secret, token id or verifier on the wire (hopperctl, hopper.py, the tests' client)", leaks, [])

# --- hopper.py pins too ---
try:
    hopper.Client(host="127.0.0.1", port=P2, token=READER, server_key=os.environ["K1"])
    check("hopper.py refuses a daemon without the pinned key", False, "connected")
except hopper.HopperError as e:
    check("hopper.py refuses a daemon without the pinned key", e.code == "auth_failed" and "pinned" in e.message, e)

# --- a token stored before protocol 2 (its entry holds BLAKE2b(secret)), as --migrate-shared copies one
# from an old SQLite into the shared set in Redis; the daemon's cache gets it from the change notice ---
sec = os.urandom(32)
tid = os.urandom(6).hex()
old = "hop_%s_%s" % (tid, cc.b64(sec))
HP, SOCK = os.environ["HP"], os.environ["SOCK"]
def rcli(*a):
    return subprocess.run(["redis-cli", "-s", SOCK, "--raw"] + list(a), capture_output=True, text=True).stdout.strip()
entry = {"id": tid, "name": "old", "owner": "o", "scopes": "read", "verifier": cc.token_hash(sec).hex(),
         "created_at": time.time()}
rcli("HSET", HP + "{@}:tokens", tid, json.dumps(entry))
rcli("HSET", HP + "{@}:token_names", "old", tid)
ver = rcli("INCR", HP + "{@}:shared_ver")
rcli("PUBLISH", HP + "{@}:shared", json.dumps({"kind": "tokens", "ver": int(ver)}))
for _ in range(50):
    if db.execute("SELECT count(*) FROM tokens WHERE id = ? AND shared = 1", (tid,)).fetchone()[0] == 1:
        break
    time.sleep(0.1)
c = cc.Client.tcp_connect("127.0.0.1", P1)
r = c.handshake(old, K1)
check_eq("a protocol-1 token fails over TCP (no verifier yet)", (r.get("error") or {}).get("code"), "auth_failed")
time.sleep(1.5)
u = cc.Client.unix(T + "/n1.sock"); u.hello()
check_eq("... works on the unix socket", (u.auth(token=old).get("result") or {}).get("owner"), "o")
check_eq("... which replaced its stored hash with the verifier",
         db.execute("SELECT hash FROM tokens WHERE id = ?", (tid,)).fetchone()[0], cc.token_verifier(sec))
check_eq("... here and in the shared set", json.loads(rcli("HGET", HP + "{@}:tokens", tid)).get("verifier"),
         cc.token_verifier(sec).hex())
c = cc.Client.tcp_connect("127.0.0.1", P1)
check_eq("... so that it now works over TCP", (c.handshake(old, K1).get("result") or {}).get("owner"), "o")
done()
PY
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"

chmod 644 "$T/n2.key"
"$HOPPERD" --print-pubkey --db-path="$T/n2.db" >/dev/null 2>"$T/err"
check_eq "a key file others may read is refused" "$?" 1
check "... saying chmod 600" grep -q "chmod 600" "$T/err"
finish_hopperd n1
finish_hopperd n2
end_scenario

#!/usr/bin/env bash
# ctl_clock (issue 11, item D): the control socket's idle timeout and the failed-auth lockout run on
# CLOCK_MONOTONIC, so a stepped wall clock (tests/chaos/clockshim.c, LD_PRELOAD: moves CLOCK_REALTIME,
# gettimeofday and time of the running hopperd) neither closes an idle connection early nor lifts a lockout:
#   +1 h while an authenticated connection idles (timeout 4 s): still open 2 s later, closed after 4 s;
#   +1 h while a token id is locked out over TCP (lockout 60 s): still locked_out; the same over the unix
#   socket (the lockout of a uid: run as nobody, so root is not locked).
. "$(dirname "$0")/../lib.sh"

SHIM=$HOPPER_BUILD/chaos/clockshim.so
if [ ! -f "$SHIM" ]; then
	not_ok "the clock shim is built" "$SHIM missing (make $SHIM)"
	end_scenario
fi
OFFSET=$T/clock-offset
printf '%-63s\n' 0 >"$OFFSET"
cat >"$T/hopperd-shifted" <<EOS
#!/bin/sh
HOPPER_CLOCK_FILE='$OFFSET' LD_PRELOAD='$SHIM' ASAN_OPTIONS="\${ASAN_OPTIONS:-}:verify_asan_link_order=0" exec '$HOPPERD' "\$@"
EOS
chmod +x "$T/hopperd-shifted"
PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SOCKDIR=$(mktemp -d /tmp/hopper-ctlclock.XXXXXX)
chmod 755 "$SOCKDIR"
export CSOCK=$SOCKDIR/n1.sock
start_redis
HOPPERD=$T/hopperd-shifted start_hopperd n1 --workers=1 --ctl-tcp="127.0.0.1:$PORT" --ctl-socket="$CSOCK" \
	--ctl-socket-mode=0666 --ctl-idle-timeout-s=4 --ctl-auth-delay-ms=1 --ctl-auth-max-failures=2 \
	--ctl-lockout-s=60 || exit 1
check "hopperd runs with the shim" grep -q clockshim "/proc/${HD_PID[n1]}/maps"

export SCENARIO HOPPER_ROOT PORT OFFSET CSOCK
py - <<'PY'
import os, re, sys, time, json, subprocess
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *
from ctlclient import Client, connect, Closed, ProtocolError

CS, TCP = os.environ["CSOCK"], "127.0.0.1:" + os.environ["PORT"]
def set_offset(s):  # rewritten in place: the shim maps the file
    with open(os.environ["OFFSET"], "r+b") as f:
        f.write(("%-63s\n" % s).encode())

admin = connect(sock=CS, peercred=True)
tok = {}
for name in ("idle", "lock", "nob"):
    r = call_ok(admin, "token.create " + name, "token.create", name=name, scopes=["read"], owner=name)
    tok[name] = r["token"] if r else None

def tcp_auth(t):
    try:
        c = connect(tcp=TCP, token=t)
    except ProtocolError as e:
        m = re.search(r"'code': '(\w+)'", str(e))
        return m.group(1) if m else str(e)
    except Closed:
        return "closed"
    c.close()
    return "ok"

def alive(c):
    try:
        return c.call("ping").get("ok") is True
    except Exception:
        return False

# --- idle timeout ---
for tr in ("unix", "tcp"):
    c = connect(sock=CS, token=tok["idle"]) if tr == "unix" else connect(tcp=TCP, token=tok["idle"])
    check(tr + ": the connection is up", alive(c))
    set_offset(3600)
    time.sleep(2)
    check(tr + ": +1 h on the wall clock does not close an idle connection early (2 s of a 4 s timeout)", alive(c))
    set_offset(0)
    time.sleep(5.5)
    check(tr + ": ... it does close after the idle timeout itself", not alive(c))
    c.close()

# --- lockout over TCP, keyed by (address, token id) ---
good = tok["lock"]
bad = good[:17] + ("A" if good[17] != "A" else "B") + good[18:]
seq = [tcp_auth(t) for t in (bad, bad, good)]
check_eq("tcp: two failures lock the token id out", seq, ["auth_failed", "auth_failed", "locked_out"])
set_offset(3600)
time.sleep(1.2)
check_eq("tcp: +1 h on the wall clock does not lift the lockout (60 s)", tcp_auth(good), "locked_out")
set_offset(-3600)
time.sleep(1.2)
check_eq("tcp: nor does -1 h", tcp_auth(good), "locked_out")
set_offset(0)

# --- lockout over the unix socket, keyed by uid (as nobody) ---
code = r'''
import sys, json
sys.path.insert(0, sys.argv[2])
from ctlclient import Client
good = sys.argv[3]
bad = good[:17] + ("A" if good[17] != "A" else "B") + good[18:]
out = []
for t in sys.argv[4].split(","):
    c = Client.unix(sys.argv[1]); c.hello()
    r = c.auth(token=good if t == "good" else bad); c.close()
    out.append((r.get("error") or {}).get("code") or "ok")
print(json.dumps(out))
'''
def as_nobody(seq):
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-B", "-c",
                        code, CS, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"), tok["nob"], seq],
                       capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return p.stderr[-300:]
check_eq("unix: two failures lock nobody out", as_nobody("bad,bad,good"), ["auth_failed", "auth_failed", "locked_out"])
set_offset(3600)
time.sleep(1.2)
check_eq("unix: +1 h on the wall clock does not lift the lockout", as_nobody("good"), ["locked_out"])
set_offset(0)
admin = connect(sock=CS, peercred=True)  # the first one idled out (4 s)
call_ok(admin, "root (another uid) is not locked out", "ping")
done()
PY
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
rm -rf "$SOCKDIR"
end_scenario

#!/usr/bin/env bash
# shared_tokens: one set of control-socket tokens for every daemon on one Redis (issue #16 item 1). Three
# daemons a, b, c: a token made on a authenticates on b and c; revoked on b it is refused on a and c, and a's
# open connection with it is closed; a daemon started later knows every token; a change whose notice is
# never published reaches every cache through the periodic version check; with Redis down a daemon (even
# one restarted meanwhile) authenticates from its cache; a Redis that lost its data is reported, never
# refilled silently, and hopperd --migrate-shared copies an old SQLite's tokens (refusing to clobber a
# set that holds tokens unless --force).
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd a --workers=1 || exit 1
start_hopperd b --workers=1 || exit 1
start_hopperd c --workers=1 || exit 1

# auth_as NODE TOKEN: the owner the token authenticates as on NODE's socket, else the error code.
auth_as() {
	HOPPER_ROOT=$HOPPER_ROOT py - "$T/$1.sock" "$2" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
import ctlclient as cc
try:
    u = cc.Client.unix(sys.argv[1], timeout=10)
    u.hello()
    r = u.auth(token=sys.argv[2])
    print((r.get("result") or {}).get("owner") or (r.get("error") or {}).get("code"))
except Exception as e:
    print("error:%s" % e)
PY
}
auth_is() { [ "$(auth_as "$1" "$2")" = "$3" ]; }

T1=$(ctl token create t1 --scopes read --owner o1 2>/dev/null)
check_match "token t1 made on a" "$T1" '^hop_[0-9a-f]{12}_'
check_eq "a accepts t1" "$(auth_as a "$T1")" o1
wait_for "t1 on b" 5 auth_is b "$T1" o1
check_eq "t1 made on a authenticates on b" "$(auth_as b "$T1")" o1
wait_for "t1 on c" 5 auth_is c "$T1" o1
check_eq "... and on c" "$(auth_as c "$T1")" o1
ID1=${T1:4:12}
SECRET1=${T1:17}
entry=$(rcli HGET "$(gkey tokens)" "$ID1")
check_match "Redis holds t1's verifier, owner and scopes" "$entry" '"verifier":"[0-9a-f]{64}"'
check "... and not its secret" test "${entry#*"$SECRET1"}" = "$entry"
check_eq "b's cache row of t1 is shared" "$(sql b "SELECT shared FROM tokens WHERE id='$ID1'")" 1
T2=$(CTL_SOCK=$T/c.sock ctl token create t2 --scopes submit,read --owner o2 2>/dev/null)
check_match "token t2 made on c" "$T2" '^hop_'
CTL_SOCK=$T/b.sock ctl token create t1 --scopes read >/dev/null 2>"$T/dup.err"
check "a name taken on another node is refused" grep -qi "exists" "$T/dup.err"

# Revoked on b while a holds a connection authenticated with it.
export T T1 HOPPER_ROOT HOPPERCTL SOCK SCENARIO
py - <<'PY'
import os, sys, subprocess, time
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *
import ctlclient as cc
T = os.environ["T"]
u = cc.Client.unix(T + "/a.sock", timeout=10)
u.hello()
check_eq("a: a connection authenticated with t1", (u.auth(token=os.environ["T1"]).get("result") or {}).get("owner"), "o1")
r = subprocess.run([os.environ["HOPPERCTL"], "--socket", T + "/b.sock", "--redis-unix", os.environ["SOCK"], "token",
                    "revoke", "t1"], capture_output=True, text=True, env=dict(os.environ, HOME=T))
check_eq("t1 revoked on b", r.returncode, 0)
closed = False
deadline = time.time() + 5
while time.time() < deadline and not closed:
    try:
        u.call("ping")
        time.sleep(0.1)
    except (cc.Closed, OSError):
        closed = True
check("a closed its open connection of t1 (within 5 s)", closed, "still open")
done()
PY
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
check_eq "t1 refused on a" "$(auth_as a "$T1")" auth_failed
wait_for "t1 refused on c" 5 auth_is c "$T1" auth_failed
check_eq "t1 refused on c" "$(auth_as c "$T1")" auth_failed
check "a logs why it closed the connection" grep -q "token t1 ($ID1) was revoked in the shared set; 1 connections closed" "$T/a.log"

# A daemon started later sees all of them.
start_hopperd d --workers=1 || exit 1
wait_for "t2 on d" 5 auth_is d "$T2" o2
check_eq "d, started later, accepts t2" "$(auth_as d "$T2")" o2
check_eq "d refuses the revoked t1" "$(auth_as d "$T1")" auth_failed
finish_hopperd d

# A lost notice: a token written into Redis with no PUBLISH reaches the caches by the periodic check.
T3=$(HOPPER_ROOT=$HOPPER_ROOT py - "$(gkey tokens)" "$(gkey token_names)" "$(gkey shared_ver)" "$SOCK" <<'PY'
import os, sys, json, time, subprocess
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
import ctlclient as cc
tokens, names, ver, sock = sys.argv[1:5]
sec, tid = os.urandom(32), os.urandom(6).hex()
entry = {"id": tid, "name": "t3", "owner": "o3", "scopes": "read", "verifier": cc.token_verifier(sec).hex(),
         "created_at": time.time()}
def rcli(*a):
    subprocess.run(["redis-cli", "-s", sock] + list(a), capture_output=True, check=True)
rcli("HSET", tokens, tid, json.dumps(entry))
rcli("HSET", names, "t3", tid)
rcli("INCR", ver)
print("hop_%s_%s" % (tid, cc.b64(sec)))
PY
)
check_match "t3 written into Redis without a notice" "$T3" '^hop_'
wait_for "t3 on a" 8 auth_is a "$T3" o3
check_eq "a accepts t3 (periodic version check)" "$(auth_as a "$T3")" o3
wait_for "t3 on b" 8 auth_is b "$T3" o3
check_eq "b accepts t3" "$(auth_as b "$T3")" o3
check "a logs the lost notice" grep -q "a notice was lost" "$T/a.log"
rcli CLIENT KILL TYPE pubsub >/dev/null
T4=$(ctl token create t4 --scopes read --owner o4 2>/dev/null)
wait_for "t4 on c" 8 auth_is c "$T4" o4
check_eq "after CLIENT KILL of the pub/sub links, t4 made on a reaches c" "$(auth_as c "$T4")" o4

# Redis down: the caches authenticate; a daemon restarted meanwhile too.
stop_redis
check_eq "Redis down: b still accepts t2 from its cache" "$(auth_as b "$T2")" o2
check_eq "... and still refuses the revoked t1" "$(auth_as b "$T1")" auth_failed
CTL_SOCK=$T/b.sock ctl token create t5 --scopes read >/dev/null 2>"$T/t5.err"
check "... a token create is refused while Redis is down" grep -qi "unreachable" "$T/t5.err"
kill9_hopperd c
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/c.db" --node-id=c --worker-path="$WORKER" --workers=1 \
	--ctl-socket="$T/c.sock" </dev/null >>"$T/c2.log" 2>&1 &
C2=$!
echo "$C2" >"$T/pids/hopperd.c2.$C2"
wait_for "c's socket" 10 test -S "$T/c.sock"
wait_for "c answers" 10 auth_is c "$T2" o2
check_eq "c, restarted with Redis down, accepts t2 from its cache" "$(auth_as c "$T2")" o2
check "... and says so" grep -q "authenticate until Redis is read (and while it is unreachable)" "$T/c2.log"

# Redis comes back empty (no persistence): reported, not refilled silently; the caches keep serving.
_launch_redis
wait_for "b reports the empty set" 15 grep -q "Redis holds no shared tokens" "$T/b.log"
check "b says to run --migrate-shared" grep -q "hopperd --migrate-shared" "$T/b.log"
check_eq "nothing was copied by itself" "$(rcli HLEN "$(gkey tokens)")" 0
check_eq "b still accepts t2 from its cache" "$(auth_as b "$T2")" o2

# An old node's SQLite: its tokens as they were before shared tokens (shared = 0), plus one of its own.
py -c 'import sqlite3, sys; a = sqlite3.connect(sys.argv[1]); b = sqlite3.connect(sys.argv[2]); a.backup(b)' \
	"$T/a.db" "$T/old.db"
sql_old() { py -c 'import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); r = d.execute(sys.argv[2]).fetchall(); d.commit(); print("\n".join("|".join(map(str, x)) for x in r))' "$T/old.db" "$1"; }
sql_old "UPDATE tokens SET shared = 0" >/dev/null
n_old=$(sql_old "SELECT count(*) FROM tokens")
check_ge "the old SQLite holds tokens" "$n_old" 4
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --token-create=x >/dev/null 2>"$T/tc.err"
check_eq "--token-create on an old SQLite with tokens of its own refuses (exit 1)" "$?" 1
check "... saying to copy them first" grep -q "copy them first (hopperd --migrate-shared)" "$T/tc.err"
check_eq "... and writes nothing to Redis" "$(rcli HLEN "$(gkey tokens)")" 0
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared 2>"$T/mig.err"
check_eq "--migrate-shared copies them: exit 0" "$?" 0
check "... saying how many" grep -q "copied $n_old tokens" "$T/mig.err"
check_eq "Redis holds them" "$(rcli HLEN "$(gkey tokens)")" "$n_old"
check_eq "the old SQLite's rows are shared now" "$(sql_old "SELECT count(*) FROM tokens WHERE shared = 0")" 0
wait_for "t2 on b after the migration" 8 auth_is b "$T2" o2
check_eq "after the migration b accepts t2" "$(auth_as b "$T2")" o2
check_eq "... and refuses the revoked t1 (revocations are copied too)" "$(auth_as b "$T1")" auth_failed
check_match "... whose revocation time was kept" "$(rcli HGET "$(gkey tokens)" "$ID1")" '"revoked_at":[0-9]'
ver=$(rcli GET "$(gkey shared_ver)")
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared 2>"$T/mig2.err"
check_eq "a second --migrate-shared refuses (exit 1)" "$?" 1
check "... saying Redis holds tokens already" grep -q "already holds $n_old tokens" "$T/mig2.err"
check_eq "... and writes nothing" "$(rcli GET "$(gkey shared_ver)")" "$ver"
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared --force 2>"$T/mig3.err"
check_eq "--migrate-shared --force replaces them: exit 0" "$?" 0
check_eq "... still one entry per token" "$(rcli HLEN "$(gkey tokens)")" "$n_old"
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --force 2>/dev/null
check_eq "--force alone is a usage error" "$?" 2

finish_hopperd a
finish_hopperd b
kill "$C2" 2>/dev/null
end_scenario

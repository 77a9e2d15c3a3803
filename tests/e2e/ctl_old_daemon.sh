#!/usr/bin/env bash
# ctl_old_daemon: a protocol-2 client (hopperctl, libhopper, hopper.py) against a protocol-1 hopperd over TCP.
# The old daemon refuses the client's hello field "noise" ("op 'hello' takes no field 'noise'") and, on
# first use, a hello without its TCP fields ("hello needs token_id and pk"); each client must turn that into a
# clear "daemon speaks protocol v1, this client needs v2: upgrade hopperd" (code version, hopperctl exit 5).
# With HOPPER_OLD_BUILD (a build of commit f7a9ec9, the last protocol-1 hopperd) the real old daemon answers;
# otherwise tests/ctl/v1_daemon.py answers with the two replies captured byte for byte from that daemon.
. "$(dirname "$0")/../lib.sh"

OLD=${HOPPER_OLD_BUILD:-}
if [ -n "$OLD" ]; then
	PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	start_redis
	# Started by hand: the old build's heartbeat is not the one start_hopperd waits for. Cleanup ends it by pid.
	"$OLD/hopperd" --redis-unix="$SOCK" --db-path="$T/n1.db" --node-id=n1 --worker-path="$OLD/hopper-worker" \
		--log-level=debug --ctl-socket="$T/n1.sock" --workers=1 --ctl-tcp="127.0.0.1:$PORT" </dev/null >>"$T/n1.log" 2>&1 &
	OLDPID=$!
	echo "$OLDPID" >"$T/pids/hopperd.n1.$OLDPID"
	CTL_SOCK=$T/n1.sock
	wait_for "the old daemon listens on TCP" 20 grep -q 'listening on tcp' "$T/n1.log"
	TOKEN=$(ctl token create t --scopes submit,read 2>/dev/null)
	check_match "the old daemon made a token" "$TOKEN" '^hop_'
else
	/usr/bin/python3 "$HOPPER_ROOT/tests/ctl/v1_daemon.py" "$T/v1.port" </dev/null >>"$T/v1.log" 2>&1 &
	OLDPID=$!
	echo "$OLDPID" >"$T/pids/aux.v1.$OLDPID"
	wait_for "the protocol-1 replay listens" 10 test -s "$T/v1.port"
	PORT=$(cat "$T/v1.port")
	# Any well-formed token: the old daemon refuses the hello before looking at it.
	TOKEN=hop_66707b0f9248_43nWFeG1l1Y3XLV2hR-4LozddU5hR9ovoPe5_Mv72Os
fi
# A key that no daemon holds: the old daemon refuses the hello's "noise" field before any handshake.
FAKEKEY=$(py -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
for how in known-hosts server-key; do
	if [ $how = known-hosts ]; then
		flag=(--known-hosts="$T/kh") # first use: the key-asking hello ("hello needs token_id and pk")
	else
		flag=(--server-key="$FAKEKEY") # the Noise hello ("unknown field noise")
	fi
	HOPPER_TOKEN=$TOKEN timeout 20 "$HOPPER_BUILD/hopperctl" --host="127.0.0.1:$PORT" "${flag[@]}" ping \
		>"$T/ctl.out" 2>"$T/ctl.err"
	st=$?
	check_eq "$how: hopperctl exits 5 (version), not 2 (bad_request)" "$st" 5
	check_match "$how: hopperctl says the daemon speaks protocol v1 and to upgrade hopperd" "$(cat "$T/ctl.err")" \
		'daemon speaks protocol v1, this client needs v2: upgrade hopperd'
	check_match "$how: hopperctl quotes the old daemon's own words once" "$(cat "$T/ctl.err")" \
		"\\(it said: (over TCP, hello needs token_id and pk|op 'hello' takes no field 'noise')"
	check_eq "$how: the message is said once, not nested" "$(grep -o 'it said' "$T/ctl.err" | wc -l)" 1
done
export SCENARIO HOPPER_ROOT PORT TOKEN T FAKEKEY
py - <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "client"))
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import check, done
import hopper
import base64
for how, kw in [("known_hosts", {"known_hosts": os.path.join(os.environ["T"], "kh.py")}),
                ("server_key", {"server_key": os.environ["FAKEKEY"]})]:
    try:
        c = hopper.Client(host="127.0.0.1", port=int(os.environ["PORT"]), token=os.environ["TOKEN"], **kw)
        c.ping()
        check(how + ": hopper.py fails against the old daemon", False, "connected")
    except hopper.HopperError as e:
        check(how + ": hopper.py: code version, says protocol v1 and to upgrade hopperd",
              e.code == "version" and "daemon speaks protocol v1, this client needs v2: upgrade hopperd" in str(e),
              repr(e))
done()
PY
kill "$OLDPID" 2>/dev/null
end_scenario

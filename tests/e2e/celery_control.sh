#!/usr/bin/env bash
# celery_control: Celery's remote control against two hopperd daemons, with a stock Celery client and the
# stock `celery inspect` / `celery control` commands (Debian's python3-celery): ping, inspect registered /
# stats / active / reserved / scheduled / revoked, revoke of a queued task, of a task not yet sent, and
# revoke(terminate=True) of a running one; the revoked set is shared and survives a restart.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
flags=(--workers=1 --queues=celery --celery-queues=celery --kill-grace-s=1 --prefetch=2
	--celery-tasks="t.noop=noop t.sleep=sleep:ms t.fail=fail:message")
start_hopperd n1 "${flags[@]}" || exit 1
start_hopperd n2 "${flags[@]}" || exit 1

export TIME_SCALE HOPPERCTL CTL_SOCK T HOPPERD_NAMES="hopperd@n1 hopperd@n2"
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" control

# The stock command-line tools (the app is named by a module that only sets broker and backend).
cat >"$T/ctlapp.py" <<PY
from celery import Celery
app = Celery('ctlapp', broker='redis+socket://$SOCK', backend='redis+socket://$SOCK')
PY
out=$(cd "$T" && py -m celery -A ctlapp inspect ping -t "$((2 * TIME_SCALE))" 2>&1)
check_match "celery inspect ping: hopperd@n1 answers" "$out" "hopperd@n1: OK"
check_match "celery inspect ping: both daemons" "$out" "2 nodes online"
out=$(cd "$T" && py -m celery -A ctlapp inspect registered -d hopperd@n2 -t "$((2 * TIME_SCALE))" 2>&1)
check_match "celery inspect registered -d hopperd@n2: only n2 answers" "$out" "hopperd@n2: OK"
check "celery inspect registered -d hopperd@n2: n1 stays silent" test "${out/hopperd@n1/}" = "$out"
out=$(cd "$T" && py -m celery -A ctlapp control revoke cli-revoked-0001 -t "$((2 * TIME_SCALE))" 2>&1)
check_match "celery control revoke: flagged" "$out" "tasks cli-revoked-0001 flagged as revoked"

stop_hopperd n1
stop_hopperd n2
start_hopperd n1 "${flags[@]}" || exit 1
start_hopperd n2 "${flags[@]}" || exit 1
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" revoked_kept

check "hopperd n1 survived" hopperd_alive n1
finish_hopperd n1
finish_hopperd n2
end_scenario

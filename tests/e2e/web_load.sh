#!/usr/bin/env bash
# web_load: hopper-web against slow clients and 1,000 concurrent event streams (200 under sanitizers)
# (tests/web/load_test.py); asserts behaviour only, never speed.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
ALICE=$(ctl token create alice --scopes submit,read,cancel --owner alice 2>/dev/null)
start_web --conn-timeout 3 --body-max 65536 || exit 1
streams=1000
[ "$HOPPER_SAN" = 1 ] && streams=200
ALICE=$ALICE WEB=$WEB STREAMS=$streams SCENARIO=$SCENARIO PYTHONPATH=$HOPPER_ROOT/tests/web \
	SLEEP_MS=${SLEEP_MS:-3000} /usr/bin/python3 "$HOPPER_ROOT/tests/web/load_test.py"
check_eq "the load checks passed" "$?" 0
check "hopperd still serves" ctl ping
stop_web
check_eq "hopper-web exits 0" "$?" 0
end_scenario

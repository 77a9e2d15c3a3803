#!/usr/bin/env bash
# web_load: hopper-web against slow clients and 1,000 concurrent event streams (200 under sanitizers)
# (tests/web/load_test.py); asserts behaviour only, never speed.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
# hopper-web holds up to its pool (32) plus one connection per 16 streams (63 for 1,000), all from one uid:
# more than the per-peer default of 64 (hopper-web.8 says to raise ctl_max_conns_per_peer for its user).
start_hopperd n1 --workers=2 --ctl-max-conns-per-peer=256 || exit 1
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

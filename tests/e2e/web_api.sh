#!/usr/bin/env bash
# web_api: hopper-web's HTTP API against a real hopperd and Redis: every /v1 endpoint and its errors, the
# owner and scope rules of the control socket, bodies over the limit, event streams with Last-Event-ID
# resume, and the OpenAPI document against the route table (tests/web/api_test.py).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
ADMIN=$(ctl token create root --scopes admin 2>/dev/null)
ALICE=$(ctl token create alice --scopes submit,read,cancel --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read,cancel --owner bob 2>/dev/null)
READER=$(ctl token create reader --scopes read --owner alice 2>/dev/null)
start_web --body-max 262144 || exit 1
ADMIN=$ADMIN ALICE=$ALICE BOB=$BOB READER=$READER WEB=$WEB T=$T HOPPER_ROOT=$HOPPER_ROOT HOPPER_WEB=$HOPPER_WEB \
	SCENARIO=$SCENARIO PYTHONPATH=$HOPPER_ROOT/tests/web /usr/bin/python3 "$HOPPER_ROOT/tests/web/api_test.py"
check_eq "the API checks passed" "$?" 0
check "hopperd still serves" ctl ping
stop_web
check_eq "hopper-web exits 0 on SIGTERM" "$?" 0
end_scenario

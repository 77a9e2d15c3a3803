#!/usr/bin/env bash
# web_browser: the dashboard in headless Chromium (tests/web/browser_test.py): login, live progress over SSE,
# cancel and retry buttons, a stored workflow run and its webhook, tokens, and the cookie/CSRF/CSP rules.
# WEB_SCREENSHOTS=DIR also keeps the screenshots there (client/web/screenshots/ holds the README's).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
ADMIN=$(ctl token create root --scopes admin 2>/dev/null)
ALICE=$(ctl token create alice --scopes submit,read,cancel --owner alice 2>/dev/null)
start_web || exit 1
ADMIN=$ADMIN ALICE=$ALICE WEB=$WEB SHOTS=${WEB_SCREENSHOTS:-$T/shots} SCENARIO=$SCENARIO \
	PYTHONPATH=$HOPPER_ROOT/tests/web /usr/bin/python3 "$HOPPER_ROOT/tests/web/browser_test.py"
check_eq "the browser checks passed" "$?" 0
stop_web
check_eq "hopper-web exits 0" "$?" 0
end_scenario

#!/usr/bin/env bash
# web_webhook: webhook ingress through hopper-web into hopperd (tests/web/webhook_test.py), then what the runs
# carry: AutomateOS's trigger shape {method, headers, url, timestamp, payload} as the workflow's input, with
# secret headers masked before the job was stored, and the webhook table in the daemon's SQLite.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 || exit 1
ALICE=$(ctl token create alice --scopes submit,read,cancel --owner alice 2>/dev/null)
BOB=$(ctl token create bob --scopes submit,read --owner bob 2>/dev/null)
start_web --webhook-body-max 65536 --webhook-burst 14 --webhook-rate 6 || exit 1
ALICE=$ALICE BOB=$BOB WEB=$WEB T=$T SCENARIO=$SCENARIO PYTHONPATH=$HOPPER_ROOT/tests/web \
	HOPPERCTL_CMD="$HOPPERCTL --socket $CTL_SOCK" /usr/bin/python3 "$HOPPER_ROOT/tests/web/webhook_test.py"
check_eq "the webhook checks passed" "$?" 0

read -r json_job form_job raw_job <"$T/hook.ids"
input() { # input JOB_ID PYTHON-EXPR over t (the trigger) (the runs are alice's: stored ids per owner)
	jfield "$(nsid alice "$1")" payload | py -c 'import json, sys
t = json.load(sys.stdin)["args"]["input"]
print(eval(sys.argv[1]))' "$2"
}
check_eq "the run's input has the trigger shape" "$(input "$json_job" 'sorted(t)')" \
	"['headers', 'method', 'payload', 'timestamp', 'url']"
check_eq "... method POST" "$(input "$json_job" 't["method"]')" POST
check_match "... the url of the webhook" "$(input "$json_job" 't["url"]')" '^http://127\.0\.0\.1:[0-9]+/webhook/'
check_match "... an ISO-8601 UTC timestamp" "$(input "$json_job" 't["timestamp"]')" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$'
check_eq "... the JSON body as payload" "$(input "$json_job" 't["payload"]["who"]')" ada
check_eq "Authorization masked" "$(input "$json_job" 't["headers"]["authorization"]')" 'Bea***42'
check_eq "X-Api-Key masked" "$(input "$json_job" 't["headers"]["x-api-key"]')" 'key***89'
check_eq "other headers kept" "$(input "$json_job" 't["headers"]["x-custom"]')" visible
if jfield "$(nsid alice "$json_job")" payload | grep -q supersecretvalue42; then
	not_ok "the secret is stored nowhere in the job" "found in the payload"
else
	ok "the secret is stored nowhere in the job"
fi
check_eq "a form body becomes an object" "$(input "$form_job" 't["payload"]["who"]')" "form user"
check_eq "a raw body is kept as text" "$(input "$raw_job" 't["payload"]["raw"]')" "plain text body"
read -r signed_job signature <"$T/hook.signed"
check_eq "the signature header is masked in the signed run" \
	"$(input "$signed_job" 't["headers"]["x-hub-signature-256"]')" "sha***${signature: -2}"
check_eq "the webhook table is in the daemon's SQLite (migration 006)" \
	"$(sql "$T/n1.db" "SELECT count(*) FROM sqlite_master WHERE name = 'webhooks'")" 1
check_eq "... empty after the revoke" "$(sql "$T/n1.db" "SELECT count(*) FROM webhooks")" 0
stop_web
check_eq "hopper-web exits 0" "$?" 0
end_scenario

#!/usr/bin/env bash
# workflow_http_limits: http steps stay within workflow_http_schemes and workflow_http_hosts, also across
# redirects (each Location is checked before it is requested), and responses over
# workflow_max_response_bytes fail the step. Steps with on_failure=continue let the run go on; it ends
# succeeded with result.status "completed_with_errors".
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_http
start_hopperd n1 --workers=1 --workflow-http-hosts=127.0.0.1 --workflow-max-response-bytes=1024 || exit 1
PORT=${HTTP##*:}
BIG=$(py -c 'print("x" * 2000)')

DEF=$(cat <<J
{"steps": [
  {"id": "same", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=/json"}},
  {"id": "otherhost", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=http://localhost:$PORT/json"}},
  {"id": "file", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=file:///etc/passwd"}},
  {"id": "big", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/echo", "body": "$BIG"}},
  {"id": "after", "type": "delay", "depends_on": ["otherhost"], "params": {"ms": 1}},
  {"id": "last", "type": "delay", "depends_on": ["same"], "params": {"ms": 1}}
]}
J
)
push_job default "$(wf_job wl-run "{\"definition\":$DEF}" '"max_attempts":1')"
DIRECT=$(cat <<J
{"steps": [{"id": "direct", "type": "http", "params": {"url": "http://localhost:$PORT/json"}}]}
J
)
push_job default "$(wf_job wl-direct "{\"definition\":$DIRECT}")"
wait_for "wl-run ends" 30 is_final wl-run
wait_for "wl-direct ends" 30 is_final wl-direct

check_eq "the run ended succeeded" "$(jstate wl-run)" succeeded
check_eq "with status completed_with_errors" "$(jresult wl-run 'r["status"]')" completed_with_errors
check_eq "step states" "$(jresult wl-run '[r["steps"][k] for k in ("same", "otherhost", "file", "big", "after", "last")]')" \
	'["succeeded", "failed", "failed", "failed", "skipped", "succeeded"]'
check_eq "a redirect within the limits was followed" "$(hits /json)" 1
err() { sql n1 "SELECT error FROM workflow_steps WHERE job_id='wl-run' AND step_id='$1'"; }
check_match "a redirect to another host was refused before it was requested" "$(err otherhost)" 'host localhost is not allowed'
check_match "a redirect to file:// was refused" "$(err file)" 'scheme file is not allowed'
check_match "a response over the cap failed the step" "$(err big)" 'larger than the size limit'
check_eq "a host outside the list is refused at validation" "$(jstate wl-direct)|$(jfield wl-direct attempt)" "failed|1"
check_match "saying why" "$(jfield wl-direct error)" 'step direct: http: host localhost is not allowed'

end_scenario

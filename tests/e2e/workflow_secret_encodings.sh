#!/usr/bin/env bash
# workflow_secret_encodings (issue 11, item 6): a {{env.API_TOKEN}} full of special characters is masked in
# every encoding a step applies to it - %-encoded in a query string, JSON-escaped in a JSON body, base64 in
# HTTP Basic credentials - while the test server echoes each form back (raw_query, body, basic). Every Redis
# value, every SQLite cell, the daemon's log and the status and logs replies are then searched for each
# encoding (raw, %XX either case, form '+', JSON-escaped, base64 at each alignment), decoding nested JSON.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

export API_TOKEN='Zq9/x@y&k=v w"é+%#1'
start_redis
start_http
start_hopperd n1 --workers=1 --workflow-env-allow=API_TOKEN || exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "query", "type": "http", "params": {"url": "$HTTP/echo", "query": {"key": "{{env.API_TOKEN}}", "n": "1"}}},
  {"id": "json", "type": "http", "params": {"url": "$HTTP/echo", "json": {"t": "{{env.API_TOKEN}}"}}},
  {"id": "basic", "type": "http", "params": {"url": "$HTTP/echo",
    "basic_auth": {"user": "u", "password": "{{env.API_TOKEN}}"}}},
  {"id": "deny", "type": "http", "depends_on": ["query", "json", "basic"],
   "params": {"url": "$HTTP/status/401", "query": {"t": "{{env.API_TOKEN}}"}}}
]}
J
)
push_job default "$(wf_job se-run "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "se-run ends" 30 is_final se-run
wait_for "its rows" 10 sql_is n1 "SELECT count(*) FROM workflow_steps WHERE job_id='se-run'" 4
check_eq "the run failed at the 401 step" "$(jstate se-run)" failed
check_eq "the server got the three requests" "$(hits /echo)" 3
q() { sql n1 "SELECT json_extract(output, '$.json.$2') FROM workflow_steps WHERE job_id='se-run' AND step_id='$1'"; }
check_eq "the query's echo is masked" "$(q query raw_query)" 'key=***&n=1'
check_eq "the JSON body's echo is masked" "$(q json body)" '{"t":"***"}'
check_eq "the Basic credentials' echo is masked" "$(q basic basic)" '***'
ctl --json status se-run >"$T/status.json" 2>&1
ctl --json logs se-run >"$T/logs.json" 2>&1
check_match "status reply read" "$(cat "$T/status.json")" 'se-run'
check_match "logs reply read" "$(cat "$T/logs.json")" 'query'

export SCENARIO HOPPER_ROOT
py "$HOPPER_ROOT/tests/workflow/secret_scan.py" "$SOCK" "$T/n1.db" "$T/n1.log" "$T/status.json" "$T/logs.json"
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
end_scenario

#!/usr/bin/env bash
# workflow_secrets: Authorization, Cookie and configured header names are masked in everything a run stores
# or publishes. The secrets come from the worker's environment ({{env.NAME}}, allowed by workflow_env_allow),
# the test server echoes them back in its response, and then every Redis key, the SQLite file and the daemon's
# log are searched for them.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
start_http
WF_TOKEN=tok-s3cr3t-1234 WF_COOKIE=cookie-s3cr3t-5678 REGION=eu-west \
	start_hopperd n1 --workers=1 --workflow-env-allow=WF_TOKEN,WF_COOKIE,REGION --workflow-mask-names=X-Api-Secret ||
	exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "call", "type": "http", "params": {"url": "$HTTP/echo?region={{env.REGION}}&key={{env.WF_TOKEN}}", "method": "POST",
    "headers": {"Authorization": "Bearer {{env.WF_TOKEN}}", "Cookie": "session={{env.WF_COOKIE}}",
                "X-Api-Secret": "x-{{env.WF_TOKEN}}", "X-Plain": "visible"},
    "json": {"note": "token is {{env.WF_TOKEN}}"}}},
  {"id": "deny", "type": "http", "depends_on": ["call"], "params": {"url": "$HTTP/status/401?t={{env.WF_TOKEN}}",
    "headers": {"Authorization": "Bearer {{env.WF_TOKEN}}"}}}
]}
J
)
push_job default "$(wf_job ws-run "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "ws-run ends" 30 is_final ws-run
wait_for "its rows" 10 sql_is n1 "SELECT count(*) FROM workflow_steps WHERE job_id='ws-run'" 2

check_eq "the run failed at the 401 step" "$(jstate ws-run)" failed
check_eq "the server received the real token" "$(hits /echo)" 1
out="SELECT output FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'"
check_eq "masked: the echoed Authorization header" "$(sql n1 "SELECT json_extract(output, '$.json.headers.Authorization') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" '***'
check_eq "masked: the echoed Cookie header" "$(sql n1 "SELECT json_extract(output, '$.json.headers.Cookie') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" '***'
check_eq "masked: the configured header name" "$(sql n1 "SELECT json_extract(output, '$.json.headers.X-Api-Secret') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" '***'
check_eq "kept: a plain header" "$(sql n1 "SELECT json_extract(output, '$.json.headers.X-Plain') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" visible
check_eq "kept: a plain environment value" "$(sql n1 "SELECT json_extract(output, '$.json.query.region') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" eu-west
check_eq "scrubbed: the token inside a body text" "$(sql n1 "SELECT json_extract(output, '$.json.json.note') FROM workflow_steps WHERE job_id='ws-run' AND step_id='call'")" 'token is ***'

# Every value of every key in Redis (hashes, lists, sorted sets, strings, the events list).
rcli --scan --pattern '*' >"$T/keys"
check_ge "redis: keys to search" "$(wc -l <"$T/keys")" 3
py - "$SOCK" >"$T/redis.dump" <<'P'
import sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1])
for k in r.scan_iter("*"):
    t = r.type(k).decode()
    v = {"hash": lambda: r.hgetall(k), "list": lambda: r.lrange(k, 0, -1), "zset": lambda: r.zrange(k, 0, -1),
         "set": lambda: r.smembers(k), "string": lambda: r.get(k)}.get(t, lambda: None)()
    print(k, t, v)
P
check_match "redis: the dump holds the run's step records" "$(cat "$T/redis.dump")" '\{default\}:steps:ws-run'
check "redis: no secret anywhere" bash -c '! grep -Eq "s3cr3t" "$1"' _ "$T/redis.dump"
sqlite3 "$T/n1.db" .dump >"$T/sqlite.dump"
check_match "sqlite: the dump holds the step rows" "$(cat "$T/sqlite.dump")" 'workflow_steps'
check "sqlite: no secret anywhere" bash -c '! grep -Eq "s3cr3t" "$1"' _ "$T/sqlite.dump"
check "daemon log (its log lines and progress): no secret" bash -c '! grep -Eq "s3cr3t" "$1"' _ "$T/n1.log"
check_match "the job error is there, masked" "$(jfield ws-run error)" 'status/401\?t=\*\*\* answered 401'

end_scenario

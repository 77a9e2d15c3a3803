#!/usr/bin/env bash
# workflow_http_limits: http steps stay within workflow_http_schemes and workflow_http_hosts, also across
# redirects (each Location is checked before it is requested), and responses over
# workflow_max_response_bytes fail the step. Steps with on_failure=continue let the run go on; it ends
# succeeded with result.status "completed_with_errors".
# SSRF (issue 11, item 5): hosts match with their port (a bare name: the scheme's default port), after DNS
# resolution, against the address connected: with `localhost` allowed, a Redis on a private port of
# 127.0.0.1 is refused before any byte reaches it, and a listed port succeeds; a daemon with any host allowed
# still never reaches its own Redis (over TCP here) or its control listener, unless listed with the port.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

freeport() { py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RPORT=$(freeport)
OTHER=$(freeport)
CPORT=$(freeport)
start_redis --port "$RPORT" --bind 127.0.0.1
# A second Redis on a private port, which no daemon uses: the step must not reach it either.
redis-server --port "$OTHER" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile "$T/other.pid" \
	--logfile "$T/other.log" >/dev/null
wait_for "the other redis" 10 test -s "$T/other.pid" && echo "$(cat "$T/other.pid")" >"$T/pids/aux.redis2"
start_http
PORT=${HTTP##*:}
start_hopperd n1 --workers=1 --workflow-http-hosts="127.0.0.1:$PORT,localhost,localhost:$PORT" \
	--workflow-max-response-bytes=1024 || exit 1
# n2: any host; Redis over TCP and a TCP control listener, both of which its steps must not reach.
start_hopperd n2 --workers=1 --queues=open --redis-unix= --redis-host=127.0.0.1 --redis-port="$RPORT" \
	--ctl-tcp="127.0.0.1:$CPORT" || exit 1
BIG=$(py -c 'print("x" * 2000)')

DEF=$(cat <<J
{"steps": [
  {"id": "same", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=/json"}},
  {"id": "otherhost", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=http://localhost:$OTHER/json"}},
  {"id": "file", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/redirect?to=file:///etc/passwd"}},
  {"id": "big", "type": "http", "on_failure": "continue", "params": {"url": "$HTTP/echo", "body": "$BIG"}},
  {"id": "after", "type": "delay", "depends_on": ["otherhost"], "params": {"ms": 1}},
  {"id": "last", "type": "delay", "depends_on": ["same"], "params": {"ms": 1}}
]}
J
)
push_job default "$(wf_job wl-run "{\"definition\":$DEF}" '"max_attempts":1')"
DIRECT=$(cat <<J
{"steps": [{"id": "direct", "type": "http", "params": {"url": "http://localhost:$OTHER/json"}}]}
J
)
push_job default "$(wf_job wl-direct "{\"definition\":$DIRECT}")"
REDIS_BEFORE=$(redis-cli -p "$OTHER" INFO stats | tr -d '\r' | sed -n 's/^total_connections_received://p')
one() { # one ID URL [QUEUE]: a one-step http run
	push_job "${3:-default}" "$(wf_job "$1" "{\"definition\":{\"steps\":[{\"id\":\"s\",\"type\":\"http\",\"params\":{\"url\":\"$2\"}}]}}" '"max_attempts":1')"
}
one wl-redis "http://localhost:$OTHER/"
one wl-port "http://localhost:$PORT/count?path=x"
one wl-own-redis "http://127.0.0.1:$RPORT/" open
one wl-own-redis-name "http://localhost:$RPORT/" open
one wl-own-ctl "http://127.0.0.1:$CPORT/" open
one wl-open-ok "$HTTP/count?path=x" open
one wl-redirect-redis "$HTTP/redirect?to=http://127.0.0.1:$RPORT/" open
wait_for "wl-run ends" 30 is_final wl-run
wait_for "wl-direct ends" 30 is_final wl-direct
for j in wl-redis wl-port wl-own-redis wl-own-redis-name wl-own-ctl wl-open-ok wl-redirect-redis; do
	wait_for "$j ends" 30 is_final $j
done

check_eq "the run ended succeeded" "$(jstate wl-run)" succeeded
check_eq "with status completed_with_errors" "$(jresult wl-run 'r["status"]')" completed_with_errors
check_eq "step states" "$(jresult wl-run '[r["steps"][k] for k in ("same", "otherhost", "file", "big", "after", "last")]')" \
	'["succeeded", "failed", "failed", "failed", "skipped", "succeeded"]'
check_eq "a redirect within the limits was followed" "$(hits /json)" 1
err() { sql n1 "SELECT error FROM workflow_steps WHERE job_id='wl-run' AND step_id='$1'"; }
check_match "a redirect to another port was refused before it was requested" "$(err otherhost)" 'host localhost port [0-9]+ is not allowed'
check_match "a redirect to file:// was refused" "$(err file)" 'scheme file is not allowed'
check_match "a response over the cap failed the step" "$(err big)" 'larger than the size limit'
check_eq "a host outside the list is refused at validation" "$(jstate wl-direct)|$(jfield wl-direct attempt)" "failed|1"
check_match "saying why" "$(jfield wl-direct error)" 'step direct: http: host localhost port [0-9]+ is not allowed'

check_eq "localhost allowed: a Redis on a private port is refused" "$(jstate wl-redis)" failed
check_match "... by the port rule" "$(jfield wl-redis error)" "host localhost port $OTHER is not allowed"
REDIS_AFTER=$(redis-cli -p "$OTHER" INFO stats | tr -d '\r' | sed -n 's/^total_connections_received://p')
check_eq "... and it saw no connection from the step (only this check's own)" "$REDIS_AFTER" "$((REDIS_BEFORE + 1))"
check_eq "a listed host:port succeeds" "$(jstate wl-port)" succeeded
check_eq "any host allowed: the daemon's own Redis (IP) is refused" "$(jstate wl-own-redis)" failed
check_match "... saying so" "$(jfield wl-own-redis error)" "hopperd's own Redis or control address"
check_match "... also by a name resolving to it" "$(jfield wl-own-redis-name error)" "hopperd's own Redis or control address"
check_match "... and its control listener" "$(jfield wl-own-ctl error)" "hopperd's own Redis or control address"
check_eq "... while other addresses work" "$(jstate wl-open-ok)" succeeded
check_match "... and a redirect to its Redis is refused too" "$(jfield wl-redirect-redis error)" "hopperd's own Redis or control address"

end_scenario

#!/usr/bin/env bash
# web_metrics: hopper-web's /metrics after real jobs (tests/web/metrics_test.py): the text exposition parsed
# strictly (and by promtool when installed), the daemon's per-queue/type/state counters, duration
# histogram, queue depth, dead sets, workers and heartbeats; metrics-token-file (401 without the bearer
# token); and /metrics while the daemon is down.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 --queues=q,held || exit 1
start_web || exit 1
ctl pause held >/dev/null
for i in 1 2 3; do ctl submit noop --queue q >/dev/null; done
fail=$(ctl submit fail '{"message":"x"}' --queue q --max-attempts 1)
ctl submit fail '{"message":"y"}' --queue q --max-attempts 1 >/dev/null
ctl submit noop --queue held >/dev/null
ctl submit noop --queue held >/dev/null
wait_for "the 5 jobs on q to end" 30 sh -c "[ \$(HOME=$T $HOPPERCTL --socket $CTL_SOCK list --queue q --state succeeded | grep -c noop) -ge 3 ] && [ \$(HOME=$T $HOPPERCTL --socket $CTL_SOCK list --queue q --state dead | grep -c fail) -ge 2 ]"
check_eq "the failing job is dead" "$(jstate "$fail")" dead
WEB=$WEB SCENARIO=$SCENARIO PYTHONPATH=$HOPPER_ROOT/tests/web /usr/bin/python3 "$HOPPER_ROOT/tests/web/metrics_test.py"
check_eq "the metrics checks passed" "$?" 0
# hopper_dead_jobs is the dead set's size now, not a counter: a retried dead job (held by pausing q) leaves it.
ctl pause q >/dev/null
check "retry one dead job" ctl retry "$fail"
out=$(curl -s "$WEB/metrics")
check_match "after the retry hopper_dead_jobs{queue=\"q\"} is 1" "$out" '^hopper_dead_jobs\{queue="q"\} 1$'
check_match "... while the dead counter stays 2" "$out" 'hopper_jobs_total\{[^}]*queue="q",type="fail",state="dead"\} 2'
out=$(ctl queues)
check_match "hopperctl queues shows the dead column" "$out" 'dead'
check_match "... with q's 1 dead entry (and the retried job waiting)" "$out" '^q +1 +0 +0 +yes +1 +0 +0$'
stop_web
check_eq "hopper-web exits 0" "$?" 0

# metrics-token-file: /metrics then wants that bearer token (401 otherwise); without it, it stayed open above.
head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$T/metrics.token"
chmod 600 "$T/metrics.token"
MT=$(cat "$T/metrics.token")
mkfifo "$T/metrics.fifo"
timeout 10 "$HOPPER_WEB" -n --token-file "$T/web.token" --metrics-token-file "$T/metrics.fifo" >"$T/fifo.out" 2>&1
st=$?
check "a FIFO as metrics-token-file is refused without blocking (exit $st)" test "$st" -ne 0 -a "$st" -ne 124
check_match "... as not a regular file" "$(cat "$T/fifo.out")" 'not a regular file'
# (the config file may spell it with underscores, as hopperd.conf does)
printf 'metrics_token_file = %s\n' "$T/metrics.token" >"$T/web.conf"
start_web --config "$T/web.conf" || exit 1
check_eq "no Authorization: 401" "$(curl -s -o /dev/null -w '%{http_code}' "$WEB/metrics")" 401
check_match "... with WWW-Authenticate: Bearer" "$(curl -s -D - -o /dev/null "$WEB/metrics")" '^WWW-Authenticate: Bearer'
check_eq "a wrong token: 401" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$MT" "$WEB/metrics")" 401
check_eq "a token one byte short: 401" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${MT%?}" "$WEB/metrics")" 401
check_eq "hopper-web's own hopper token is not it: 401" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/web.token")" "$WEB/metrics")" 401
out=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $MT" "$WEB/metrics")
check_match "the right token: 200" "$out" '^200$'
check_match "... with the metrics" "$out" '^hopper_dead_jobs\{queue="q"\} 1$'
if command -v promtool >/dev/null; then
	check "... which promtool accepts" sh -c "curl -s -H 'Authorization: Bearer $MT' '$WEB/metrics' | promtool check metrics"
fi
check_eq "the API is not affected (GET /v1/ping needs its own bearer token)" \
	"$(curl -s -o /dev/null -w '%{http_code}' "$WEB/v1/ping")" 401
stop_hopperd n1
out=$(curl -s -H "Authorization: Bearer $MT" "$WEB/metrics")
check_match "with the daemon down /metrics still answers, hopper_up 0" "$out" $'hopper_up 0'
check_eq "... and still wants the token" "$(curl -s -o /dev/null -w '%{http_code}' "$WEB/metrics")" 401
stop_web
check_eq "hopper-web exits 0" "$?" 0
end_scenario

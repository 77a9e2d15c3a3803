#!/usr/bin/env bash
# workflow_exec: exec steps run only configured programs, without a shell, with a scrubbed environment,
# stdin and captured output (JSON parsed); a step timeout and a job stop (the daemon's SIGTERM at the job's
# timeout, the path cancellation takes) kill the step's whole process group: the children it started are
# gone (checked by pid), at once and not only after kill_grace_s.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

start_redis
# An allowlisted bash script (issue 11, item 2): its env may set only the names workflow_exec_env_allow lists.
printf '#!/bin/bash\necho hello\n' >"$T/hello.sh"
chmod 755 "$T/hello.sh"
HOPPER_WF_LEAK=leaked start_hopperd n1 --workers=2 --workflow-exec-enabled=1 \
	--workflow-exec-programs="/bin/sh,/bin/echo,/usr/bin/env,$T/hello.sh" --workflow-exec-env-allow='FOO,APP_*' \
	--kill-grace-s=30 || exit 1

OUT=$(cat <<J
{"steps": [
  {"id": "echo", "type": "exec", "params": {"argv": ["/bin/echo", "{\"x\": {{input.x}}}"]}},
  {"id": "env", "type": "exec", "depends_on": ["echo"], "params": {"argv": ["/usr/bin/env"], "env": {"FOO": "{{steps.echo.output.json.x}}"}}},
  {"id": "stdin", "type": "exec", "params": {"argv": ["/bin/sh", "-c", "tr a-z A-Z"], "stdin": "hello"}}
]}
J
)
push_job default "$(wf_job we-out "{\"definition\":$OUT,\"input\":{\"x\":7}}")"
EXIT=$(cat <<J
{"steps": [{"id": "nonzero", "type": "exec", "params": {"argv": ["/bin/sh", "-c", "echo oops >&2; exit 3"]}}]}
J
)
push_job default "$(wf_job we-exit "{\"definition\":$EXIT}" '"max_attempts":1')"
DENY=$(cat <<J
{"steps": [{"id": "rm", "type": "exec", "params": {"argv": ["/bin/rm", "-rf", "/tmp/nothing"]}}]}
J
)
push_job default "$(wf_job we-deny "{\"definition\":$DENY}")"

# A step timeout: the program and the child it put in the background both go.
TMO=$(cat <<J
{"steps": [{"id": "hang", "type": "exec", "timeout_s": 1,
  "params": {"argv": ["/bin/sh", "-c", "sleep 60 & echo \$! > $T/tmo.child; echo \$\$ > $T/tmo.sh; wait"]}}]}
J
)
push_job default "$(wf_job we-timeout "{\"definition\":$TMO}" '"max_attempts":1')"

# The job's own timeout: hopperd sends SIGTERM (as a cancel does); the worker kills the step's group.
STOP=$(cat <<J
{"steps": [{"id": "hang", "type": "exec",
  "params": {"argv": ["/bin/sh", "-c", "sleep 60 & echo \$! > $T/stop.child; echo \$\$ > $T/stop.sh; wait"]}}]}
J
)
push_job default "$(wf_job we-stop "{\"definition\":$STOP}" '"max_attempts":1,"timeout_s":1.5')"

# The env route around the allowlist: an exported bash function shadowing echo, the loader, PATH, an
# unlisted name, and a dangerous one that only matches an APP_* style pattern. Each is refused before running.
n=0
for var in 'BASH_FUNC_echo%%' LD_PRELOAD PATH UNLISTED LD_APP_X BASH_ENV; do
	n=$((n + 1))
	val='() { /usr/bin/id > '"$T"'/pwned.'"$n"'; }'
	[ "$var" = PATH ] && val="$T"
	[ "$var" = LD_PRELOAD ] && val="$T/nosuch.so"
	ENVJ=$(py -c 'import json,sys; print(json.dumps({"steps": [{"id": "s", "type": "exec",
  "params": {"argv": [sys.argv[3]], "env": {sys.argv[1]: sys.argv[2]}}}]}))' "$var" "$val" "$T/hello.sh")
	push_job default "$(wf_job "we-env-$n" "{\"definition\":$ENVJ}" '"max_attempts":1')"
done
ENVOK=$(py -c 'import json,sys; print(json.dumps({"steps": [{"id": "s", "type": "exec",
  "params": {"argv": ["/usr/bin/env"], "env": {"APP_MODE": "x1", "FOO": "y2"}}}]}))')
push_job default "$(wf_job we-env-ok "{\"definition\":$ENVOK}")"

for j in we-out we-exit we-deny we-timeout we-stop we-env-1 we-env-2 we-env-3 we-env-4 we-env-5 we-env-6 we-env-ok; do
	wait_for "$j ends" 40 is_final $j
done
n=0
for var in 'BASH_FUNC_echo%%' LD_PRELOAD PATH UNLISTED LD_APP_X BASH_ENV; do
	n=$((n + 1))
	check_eq "exec env $var: refused before running" "$(jstate "we-env-$n")" failed
	check_match "exec env $var: says why" "$(jfield "we-env-$n" error)" 'is not allowed \(workflow_exec_env_allow\)'
done
check "exec env: no exported function ran (no pwned file)" bash -c '! ls "$1"/pwned.* >/dev/null 2>&1' _ "$T"
okout=$(sql n1 "SELECT json_extract(output, '$.stdout') FROM workflow_steps WHERE job_id='we-env-ok' AND step_id='s'")
check_match "exec env: listed names (exact and APP_*) are set" "$okout" 'APP_MODE=x1'
check_match "exec env: ... FOO too" "$okout" 'FOO=y2'

check_eq "output: succeeded" "$(jstate we-out)" succeeded
check_eq "output: stdout parsed as JSON, templates in argv" \
	"$(sql n1 "SELECT json_extract(output, '$.json.x') FROM workflow_steps WHERE job_id='we-out' AND step_id='echo'")" 7
envout=$(sql n1 "SELECT json_extract(output, '$.stdout') FROM workflow_steps WHERE job_id='we-out' AND step_id='env'")
check_match "env: the step's variable is set" "$envout" '(^|[[:space:]])FOO=7($|[[:space:]])'
check_match "env: PATH is set" "$envout" 'PATH=/usr/local/bin:/usr/bin:/bin'
check "env: nothing of the daemon's environment leaks (HOME, HOPPER_WF_*, the test's variable)" \
	bash -c '! grep -Eq "HOME=|HOPPER_WF|leaked" <<<"$1"' _ "$envout"
check_eq "stdin: fed to the program" \
	"$(sql n1 "SELECT json_extract(output, '$.stdout') FROM workflow_steps WHERE job_id='we-out' AND step_id='stdin'")" HELLO

check_eq "exit status: failed" "$(jstate we-exit)" failed
check_match "exit status: the error has the status and stderr" "$(jfield we-exit error)" 'exited with status 3: oops'
check_eq "not allowed: refused before running" "$(jstate we-deny)|$(jfield we-deny attempt)" "failed|1"
check_match "not allowed: says why" "$(jfield we-deny error)" 'program /bin/rm is not in workflow_exec_programs'

# gone PID: not running (a killed process may linger a moment as a zombie until init reaps it).
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]; }
took() { awk -v a="$(jfield "$1" started_at)" -v b="$(jfield "$1" finished_at)" -v m="$2" 'BEGIN { exit !(b - a < m) }'; }
check_eq "step timeout: the run failed" "$(jstate we-timeout)" failed
check_match "step timeout: the error says so" "$(jfield we-timeout error)" 'step hang \(exec\) failed: exec: step timed out; killed process group'
for f in tmo.sh tmo.child; do
	pid=$(cat "$T/$f" 2>/dev/null)
	wait_for "$f gone" 5 gone "${pid:-1}"
	check "step timeout: $f (pid $pid) is gone" gone "${pid:-1}"
done
check "step timeout: ended within a few seconds" took we-timeout 5

check_match "job stop: the run ended" "$(jstate we-stop)" '^(dead|failed)$'
check_match "job stop: timed out and the step stopped" "$(jfield we-stop error)" 'timed out after 1.5 s: step hang \(exec\) stopped'
for f in stop.sh stop.child; do
	pid=$(cat "$T/$f" 2>/dev/null)
	wait_for "$f gone" 5 gone "${pid:-1}"
	check "job stop: $f (pid $pid) is gone" gone "${pid:-1}"
done
check "job stop: well before kill_grace_s (30 s)" took we-stop 10
check_eq "job stop: a 'stopped' step row" "$(sql n1 "SELECT state FROM workflow_steps WHERE job_id='we-stop'")" stopped

end_scenario

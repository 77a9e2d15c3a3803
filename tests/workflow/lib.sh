# shellcheck shell=bash
# Helpers for the workflow scenarios (tests/e2e/workflow_*.sh), sourced after tests/lib.sh.

# start_http: the counting HTTP server (tests/workflow/server.py) on 127.0.0.1; sets HTTP (its base URL).
start_http() {
	/usr/bin/python3 "$HOPPER_ROOT/tests/workflow/server.py" "$T/http.port" >>"$T/http.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$T/pids/aux.http.$pid"
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/http.port" ] && break
		sleep 0.1
	done
	HTTP="http://127.0.0.1:$(cat "$T/http.port")"
}

# hits PATH: how many requests the server saw for PATH.
hits() {
	py -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1] + "/count?path=" + sys.argv[2]))["count"])' "$HTTP" "$1"
}

# wf_job ID ARGS-JSON [EXTRA-FIELDS]: a workflow.run job's JSON.
wf_job() {
	printf '{"id":"%s","type":"workflow.run","args":%s%s}' "$1" "$2" "${3:+,$3}"
}

# jresult ID EXPR: a field of the job's result, by a Python expression over r (the parsed result).
jresult() {
	jfield "$1" result | py -c 'import json, sys
r = json.loads(sys.stdin.read() or "null")
v = eval(sys.argv[1])
print(json.dumps(v) if not isinstance(v, str) else v)' "$2"
}

# is_final ID: the job reached a terminal state.
is_final() {
	case $(jstate "$1") in succeeded | failed | dead | cancelled) return 0 ;; *) return 1 ;; esac
}

# shellcheck shell=bash
# Helpers for the hopper-web scenarios (tests/e2e/web_*.sh), sourced after tests/lib.sh.

HOPPER_WEB=$HOPPER_BUILD/hopper-web

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_web [flags]: hopper-web on a free port of 127.0.0.1 with its own token (scopes submit,read; in
# $T/web.token), talking to $CTL_SOCK; sets WEB (its base URL) and WEB_PID, waits until it answers.
start_web() {
	if [ ! -s "$T/web.token" ]; then
		ctl token create hopper-web --scopes submit,read --owner hopper-web >"$T/web.token" 2>>"$T/web.err" || return 1
	fi
	local port
	port=$(free_port)
	"$HOPPER_WEB" --socket "$CTL_SOCK" --token-file "$T/web.token" --listen "127.0.0.1:$port" "$@" \
		</dev/null >>"$T/web.log" 2>&1 &
	WEB_PID=$!
	echo "$WEB_PID" >"$T/pids/aux.hopper-web.$WEB_PID"
	WEB="http://127.0.0.1:$port"
	local i
	for ((i = 0; i < 100 * TIME_SCALE; i++)); do
		curl -s -o /dev/null "$WEB/metrics" && return 0
		sleep 0.1
	done
	not_ok "start hopper-web" "no answer on $WEB (see web.log)"
	return 1
}

# stop_web: SIGTERM, and its exit status (0 for a clean exit).
stop_web() {
	[ -n "${WEB_PID:-}" ] || return 0
	kill -s TERM "$WEB_PID" 2>/dev/null
	wait "$WEB_PID"
	local st=$?
	rm -f "$T/pids/aux.hopper-web.$WEB_PID"
	WEB_PID=
	return "$st"
}

# shellcheck shell=bash
#
# lib.sh: helpers for the end-to-end scenarios in tests/e2e/. A scenario sources this file, then drives a
# private redis-server and real hopperd daemons through redis-cli, hopperctl and sqlite3, and reports each
# check as "ok - NAME" or "not ok - NAME: why" (tests/run.sh counts those lines).
#
# Environment (tests/run.sh sets it; a scenario run by hand gets defaults):
#   HOPPER_BUILD  the build directory holding hopperd, hopper-worker, hopperctl (default: build)
#   HOPPER_SAN    1 when the binaries carry ASan+UBSan: scenarios scale their job counts down
#   HOPPER_T      the scenario's scratch directory (default: a new temp dir, removed at exit unless KEEP=1)
#   KEEP=1        keep the scratch directory
#
# Every process a scenario starts is recorded by PID under $T/pids, and the exit trap kills exactly those
# (never by name), so a failing or timed-out scenario leaves nothing behind.

set -u

HOPPER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOPPER_BUILD=${HOPPER_BUILD:-build}
case $HOPPER_BUILD in
/*) ;;
*) HOPPER_BUILD=$HOPPER_ROOT/$HOPPER_BUILD ;;
esac
HOPPER_SAN=${HOPPER_SAN:-0}
if [ "$HOPPER_SAN" = 1 ]; then
	# Sanitized binaries run about 3x slower: stretch every wait the same way.
	TIME_SCALE=${TIME_SCALE:-3}
else
	TIME_SCALE=${TIME_SCALE:-1}
fi

HOPPERD=$HOPPER_BUILD/hopperd
WORKER=$HOPPER_BUILD/hopper-worker
HOPPERCTL=$HOPPER_BUILD/hopperctl
HP=hopper: # the key prefix (hopperd's default)
SCENARIO=$(basename "$0" .sh)

if [ -n "${HOPPER_T:-}" ]; then
	T=$HOPPER_T
	T_OWNED=0
	mkdir -p "$T"
else
	T=$(mktemp -d "${TMPDIR:-/tmp}/hopper-$SCENARIO.XXXXXX")
	T_OWNED=1
fi
mkdir -p "$T/pids"
SOCK=$T/redis.sock
REDIS_PID=
REDIS_ARGS=()
declare -A HD_PID=() # node name -> hopperd PID
CTL_SOCK=            # the control socket `ctl` talks to: the first hopperd's, unless a scenario sets it
HD_CTL=              # 1 when this hopperd has a control socket (the ctl_socket option)
if "$HOPPERD" --help 2>&1 | grep -q -- '--ctl-socket'; then HD_CTL=1; fi
T_FAILS=0
T_PASSES=0
T_DONE=0

# --- reporting ---

ok() {
	T_PASSES=$((T_PASSES + 1))
	echo "ok - $SCENARIO: $1"
}

not_ok() {
	T_FAILS=$((T_FAILS + 1))
	echo "not ok - $SCENARIO: $1: $2"
}

# A diagnostic line: not counted by the runner.
note() {
	echo "# $*"
}

# check NAME CMD...: ok when CMD succeeds.
check() {
	local name=$1
	shift
	if "$@" >/dev/null 2>&1; then
		ok "$name"
	else
		not_ok "$name" "command failed: $*"
	fi
}

# check_eq NAME GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "got '$2', want '$3'"
	fi
}

# check_match NAME GOT EXTENDED-REGEX (case-insensitive)
check_match() {
	if printf '%s' "$2" | grep -Eqi -- "$3"; then
		ok "$1"
	else
		not_ok "$1" "'$2' does not match /$3/"
	fi
}

# check_ge NAME GOT MIN (integers)
check_ge() {
	if [ -n "$2" ] && [ "$2" -ge "$3" ] 2>/dev/null; then
		ok "$1"
	else
		not_ok "$1" "got '$2', want >= $3"
	fi
}

# check_le NAME GOT MAX (integers)
check_le() {
	if [ -n "$2" ] && [ "$2" -le "$3" ] 2>/dev/null; then
		ok "$1"
	else
		not_ok "$1" "got '$2', want <= $3"
	fi
}

# --- time ---

now() {
	printf '%s\n' "${EPOCHREALTIME/,/.}"
}

# fcmp A OP B: floating-point comparison (OP one of < <= > >= ==), for timestamps.
fcmp() {
	awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
		if (a == "" || b == "") exit 1
		a += 0; b += 0
		if (op == "<") r = a < b; else if (op == "<=") r = a <= b
		else if (op == ">") r = a > b; else if (op == ">=") r = a >= b
		else r = a == b
		exit !r }'
}

# near A B EPS: |A - B| <= EPS.
near() {
	awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { if (a == "" || b == "") exit 1; d = a - b; if (d < 0) d = -d; exit !(d <= e) }'
}

# wait_for DESC TIMEOUT_S CMD...: polls CMD every 0.1 s until it succeeds (returns 0) or TIMEOUT_S (scaled by
# TIME_SCALE under sanitizers) passes (prints a note, returns 1). It asserts nothing: the checks that follow
# report what state was reached.
wait_for() {
	local desc=$1 limit=$2
	shift 2
	local deadline
	deadline=$(awk -v n="$(now)" -v l="$limit" -v s="$TIME_SCALE" 'BEGIN { printf "%.3f", n + l * s }')
	while :; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if fcmp "$(now)" '>' "$deadline"; then
			note "timed out after ${limit}s (x$TIME_SCALE) waiting for: $desc"
			return 1
		fi
		sleep 0.1
	done
}

# --- redis ---

rcli() {
	redis-cli -s "$SOCK" --raw "$@"
}

redis_up() {
	[ "$(redis-cli -s "$SOCK" PING 2>/dev/null)" = PONG ]
}

# start_redis [extra redis-server args]: a private redis-server on a unix socket in $T.
start_redis() {
	REDIS_ARGS=("$@")
	_launch_redis
}

_launch_redis() {
	rm -f "$T/redis.pid"
	redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$T" --save '' --appendonly no \
		--daemonize yes --pidfile "$T/redis.pid" --logfile "$T/redis.log" "${REDIS_ARGS[@]}" >/dev/null ||
		{ not_ok "start redis" "redis-server failed (see $T/redis.log)"; exit 1; }
	if ! wait_for "redis pidfile" 10 test -s "$T/redis.pid" || ! wait_for "redis PING" 10 redis_up; then
		not_ok "start redis" "redis-server did not come up (see $T/redis.log)"
		exit 1
	fi
	REDIS_PID=$(cat "$T/redis.pid")
	echo "$REDIS_PID" >"$T/pids/redis"
}

_wait_gone() { # PID TIMEOUT_S
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# stop_redis [SIGNAL]: stops the private redis-server by its PID (SIGTERM by default) and waits for it.
stop_redis() {
	local sig=${1:-TERM}
	[ -n "$REDIS_PID" ] || return 0
	kill -s "$sig" "$REDIS_PID" 2>/dev/null
	_wait_gone "$REDIS_PID" 20 || kill -s KILL "$REDIS_PID" 2>/dev/null
	_wait_gone "$REDIS_PID" 5
	REDIS_PID=
	rm -f "$T/pids/redis"
}

kill9_redis() {
	stop_redis KILL
}

# restart_redis: a new redis-server on the same socket with the same arguments.
restart_redis() {
	stop_redis
	_launch_redis
}

# --- key names (schema/redis-keys.md): scenarios never spell them ---

# qkey QUEUE KIND [REST]: a per-queue key, e.g. `qkey default queue`, `qkey default inflight n1`,
# `qkey default job ID` -> hopper:{default}:inflight:n1
qkey() {
	printf '%s{%s}:%s%s' "$HP" "$1" "$2" "${3:+:$3}"
}

# gkey KIND [REST]: a deployment-wide key or channel, e.g. `gkey events`, `gkey celery:inflight n1`.
gkey() {
	printf '%s{@}:%s%s' "$HP" "$1" "${2:+:$2}"
}

# The Lua that finds a job's hash: its queue is one of the known queues (P{@}:queues) or "default".
_JFIND="
local function jfind(p, id)
  local qs = redis.call('SMEMBERS', p .. '{@}:queues')
  qs[#qs + 1] = 'default'
  for _, q in ipairs(qs) do
    local k = p .. '{' .. q .. '}:job:' .. id
    if redis.call('EXISTS', k) == 1 then return k end
  end
  return p .. '{default}:job:' .. id
end"

# jkey ID: the key of job ID's hash (found among the known queues).
jkey() {
	rcli EVAL "$_JFIND return jfind(ARGV[1], ARGV[2])" 0 "$HP" "$1" 2>/dev/null
}

# nsid OWNER ID: the stored id of a non-admin owner's job ID (common/job_ns.h: "_" + 24 hex of SHA-256(owner)
# + ":" + ID), for the checks that read Redis keys or SQLite rows by id.
nsid() {
	printf '_%s:%s' "$(printf '%s' "$1" | sha256sum | cut -c1-24)" "$2"
}

# push_job QUEUE JSON: what any client does to submit a job.
push_job() {
	rcli LPUSH "$(qkey "$1" queue)" "$2" >/dev/null
}

# push_many QUEUE FILE: LPUSHes every line of FILE (one job JSON per line) in one pipelined stream.
push_many() {
	local out
	out=$(awk -v key="$(qkey "$1" queue)" 'BEGIN { ORS = "" }
		{ printf "*3\r\n$5\r\nLPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length($0), $0 }' "$2" |
		LC_ALL=C redis-cli -s "$SOCK" --pipe 2>&1)
	if ! printf '%s' "$out" | grep -q 'errors: 0'; then
		note "redis-cli --pipe: $out"
		return 1
	fi
}

# job_json ID TYPE [ARGS-JSON] [EXTRA-FIELDS]: e.g. job_json j1 sleep '{"ms":300}' '"max_attempts":2'
job_json() {
	local args=${3:-{\}} extra=${4:-}
	printf '{"id":"%s","type":"%s","args":%s,"created_at":%s%s}' "$1" "$2" "$args" "$(now)" "${extra:+,$extra}"
}

# jstate ID: the state field of the job hash (empty if there is none).
jstate() {
	jfield "$1" state
}

jfield() { # ID FIELD
	rcli EVAL "$_JFIND return redis.call('HGET', jfind(ARGV[1], ARGV[2]), ARGV[3])" 0 "$HP" "$1" "$2" 2>/dev/null
}

# job_starts PREFIX N: "started_at run_at" of jobs PREFIX1..PREFIXN, one per line (run_at: when the job's
# reserved rate-limit token was due, for a job that waited for one; 0 otherwise), in one Lua call.
job_starts() {
	rcli EVAL "$_JFIND
		local out = {}
		for i = 1, tonumber(ARGV[3]) do
			local h = redis.call('HMGET', jfind(ARGV[1], ARGV[2] .. i), 'started_at', 'run_at')
			if h[1] then out[#out + 1] = h[1] .. ' ' .. (h[2] or '0') end
		end
		return out" 0 "$HP" "$1" "$2"
}

state_is() { # ID STATE
	[ "$(jstate "$1")" = "$2" ]
}

# job_hist FIELD PREFIX FIRST LAST [NODE]: "value=count" lines (sorted) of FIELD over the hashes of jobs
# PREFIX<i>, FIRST <= i <= LAST, in one Lua call; "missing" counts absent values. With NODE, only jobs whose
# hash names that node count.
job_hist() {
	rcli EVAL "$_JFIND
		local c = {}
		for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
			local k = jfind(ARGV[1], ARGV[2] .. i)
			if ARGV[6] == '' or redis.call('HGET', k, 'node') == ARGV[6] then
				local v = redis.call('HGET', k, ARGV[5]) or 'missing'
				c[v] = (c[v] or 0) + 1
			end
		end
		local r = {}
		for k, v in pairs(c) do r[#r + 1] = k .. '=' .. v end
		return r" 0 "$HP" "$2" "$3" "$4" "$1" "${5:-}" 2>/dev/null | sort | paste -sd' ' -
}

# job_states PREFIX FIRST LAST [NODE]: e.g. "running=2 succeeded=8" (see job_hist).
job_states() {
	job_hist state "$@"
}

# count_state PREFIX FIRST LAST STATE [NODE]: how many of those jobs are in STATE.
count_state() {
	local n
	n=$(job_states "$1" "$2" "$3" "${5:-}" | tr ' ' '\n' | sed -n "s/^$4=//p")
	echo "${n:-0}"
}

# all_in_state PREFIX FIRST LAST STATE: true when every one of those jobs is in STATE.
all_in_state() {
	[ "$(count_state "$1" "$2" "$3" "$4")" = "$(($3 - $2 + 1))" ]
}

# ids_in_state PREFIX FIRST LAST STATE: the ids (one a line) of those jobs in STATE.
ids_in_state() {
	rcli EVAL "$_JFIND
		local r = {}
		for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
			if redis.call('HGET', jfind(ARGV[5], ARGV[1] .. i), 'state') == ARGV[4] then
				r[#r + 1] = ARGV[1] .. i
			end
		end
		return r" 0 "$1" "$2" "$3" "$4" "$HP" 2>/dev/null
}

key_exists() {
	[ "$(rcli EXISTS "$1" 2>/dev/null)" = 1 ]
}

key_gone() {
	[ "$(rcli EXISTS "$1" 2>/dev/null)" = 0 ]
}

llen() {
	local n
	n=$(rcli LLEN "$1" 2>/dev/null)
	echo "${n:-?}"
}

# dead_entries [QUEUE]: the dead entries (JSON, one a line) of QUEUE, or of every known queue, oldest first.
dead_entries() {
	rcli EVAL "
		local qs = {ARGV[2]}
		if ARGV[2] == '' then qs = redis.call('SMEMBERS', ARGV[1] .. '{@}:queues'); qs[#qs + 1] = 'default' end
		local out, seen = {}, {}
		for _, q in ipairs(qs) do
			if not seen[q] then
				seen[q] = true
				local ids = redis.call('ZRANGE', ARGV[1] .. '{' .. q .. '}:dead', 0, -1)
				for _, id in ipairs(ids) do
					out[#out + 1] = redis.call('HGET', ARGV[1] .. '{' .. q .. '}:deadmsg', id) or ''
				end
			end
		end
		return out" 0 "$HP" "${1:-}" 2>/dev/null
}

# dead_count [QUEUE]: how many dead entries (of QUEUE, or of every known queue).
dead_count() {
	local n
	n=$(dead_entries "${1:-}" | grep -c .)
	echo "${n:-0}"
}

# dead_entries_with NEEDLE: how many dead entries contain NEEDLE (a fixed string).
dead_entries_with() {
	dead_entries | grep -cF -- "$1"
}

# stat_count NAME [QUEUE]: a counter of P{Q}:stats (QUEUE default "default").
stat_count() {
	rcli HGET "$(qkey "${2:-default}" stats)" "$1" 2>/dev/null
}

# node_known NAME / node_gone NAME: NAME is registered (not reaped) / was reaped or never registered.
node_known() {
	[ "$(rcli HEXISTS "$(gkey seen)" "$1" 2>/dev/null)" = 1 ]
}

node_gone() {
	! node_known "$1"
}

# node_pid NAME: the pid in node NAME's heartbeat (empty if it has none).
node_pid() {
	rcli HGET "$(gkey hb)" "$1" 2>/dev/null | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$'
}

# --- sqlite (the execution log) ---

# sql DB QUERY: runs QUERY on $T/DB (a node name or a file name) and prints rows, '|'-separated.
sql() {
	local db=$1
	case $db in
	*/*) ;;
	*.db) db=$T/$db ;;
	*) db=$T/$db.db ;;
	esac
	[ -f "$db" ] || return 1
	sqlite3 -batch -noheader -cmd '.timeout 10000' "$db" "$2" 2>>"$T/sql.err"
}

# sql_is DB QUERY WANT: true when QUERY's output is WANT (for wait_for).
sql_is() {
	[ "$(sql "$1" "$2")" = "$3" ]
}

# mount_tmpfs DIR SIZE: a private tmpfs of SIZE (e.g. 3m) on DIR, unmounted at exit (needs root, as CI has).
mount_tmpfs() {
	mkdir -p "$1" && mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || return 1
	echo "$1" >>"$T/mounts"
}

# --- hopperd ---

# start_hopperd NAME [extra flags]: starts hopperd as node NAME with its log in $T/NAME.log, its
# execution log in $T/NAME.db and its control socket at $T/NAME.sock (the first one started becomes
# $CTL_SOCK, the one `ctl` uses), and waits until its heartbeat names its PID.
start_hopperd() {
	local name=$1
	shift
	local ctlflag=()
	if [ "$HD_CTL" = 1 ]; then
		ctlflag=(--ctl-socket="$T/$name.sock")
		[ -n "$CTL_SOCK" ] || CTL_SOCK=$T/$name.sock
	fi
	"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/$name.db" --node-id="$name" --worker-path="$WORKER" \
		--log-level=debug "${ctlflag[@]}" "$@" </dev/null >>"$T/$name.log" 2>&1 &
	local pid=$!
	HD_PID[$name]=$pid
	echo "$pid" >"$T/pids/hopperd.$name.$pid"
	echo "--- started pid $pid: $* ---" >>"$T/$name.start"
	local i st
	for ((i = 0; i < 200 * TIME_SCALE; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			st=$?
			unset "HD_PID[$name]"
			not_ok "start hopperd $name" "it exited with status $st before its heartbeat (see $name.log)"
			return 1
		fi
		[ "$(node_pid "$name")" = "$pid" ] && return 0
		sleep 0.1
	done
	not_ok "start hopperd $name" "no heartbeat of node $name naming pid $pid after $((20 * TIME_SCALE))s"
	return 1
}

hopperd_alive() {
	local pid=${HD_PID[$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# _record_workers NAME: notes the PIDs of hopperd NAME's children (its workers), so cleanup can end them
# even after hopperd itself was killed.
_record_workers() {
	local pid=${HD_PID[$1]:-} c
	[ -n "$pid" ] || return 0
	for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
		echo "$c" >"$T/pids/worker.$c"
	done
}

# stop_hopperd NAME [SIGNAL] [TIMEOUT_S]: sends SIGTERM (or SIGNAL), waits for the exit and returns its
# status (124 if it did not exit within TIMEOUT_S, default 60 s scaled; it is then killed).
stop_hopperd() {
	local name=$1 sig=${2:-TERM} limit=${3:-60}
	local pid=${HD_PID[$name]:-}
	[ -n "$pid" ] || return 0
	_record_workers "$name"
	kill -s "$sig" "$pid" 2>/dev/null
	local i status
	for ((i = 0; i < limit * TIME_SCALE * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		note "hopperd $name (pid $pid) still running ${limit}s after SIG$sig: killing it"
		kill -s KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		status=124
	else
		wait "$pid" 2>/dev/null
		status=$?
	fi
	unset "HD_PID[$name]"
	rm -f "$T/pids/hopperd.$name.$pid"
	return "$status"
}

# kill9_hopperd NAME: SIGKILL, as a power cut would.
kill9_hopperd() {
	stop_hopperd "$1" KILL
	return 0
}

# finish_hopperd NAME: stops it with SIGTERM and checks that it exits 0.
finish_hopperd() {
	local st=0
	stop_hopperd "$1" || st=$?
	check_eq "hopperd $1 exits 0 on SIGTERM" "$st" 0
}

# ctl ARGS: hopperctl against the control socket of the first hopperd started ($CTL_SOCK), authenticated
# by peer credentials (tests run as root: the bootstrap path) unless ARGS or the environment give a token.
# --redis-unix is there for the commands that write to a broker's Redis directly. HOME points into $T so
# no token file of the user running the tests is picked up.
ctl() {
	HOME=$T "$HOPPERCTL" --socket "$CTL_SOCK" --redis-unix "$SOCK" "$@"
}

# --- python ---

# py ARGS: /usr/bin/python3, with the key helpers above handed over for Python checks that read hopper's
# Redis data (tests/celery/cases.py): HOPPER_QKEY_FMT / HOPPER_GKEY_FMT are `qkey %s %s` / `gkey %s` (fill
# in queue and kind, or kind), HOPPER_JFIND the Lua of jkey (call jfind(ARGV[1], ARGV[2]) with HOPPER_HP
# and an id), so no Python file spells the layout.
py() {
	HOPPER_HP=$HP HOPPER_QKEY_FMT=$(qkey %s %s) HOPPER_GKEY_FMT=$(gkey %s) HOPPER_JFIND=$_JFIND \
		/usr/bin/python3 "$@"
}

# --- cleanup ---

_sanitizer_check() {
	local f
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
			not_ok "no sanitizer reports" "$(basename "$f") has one: $(grep -Em1 'ERROR: |runtime error:' "$f")"
		fi
	done
}

_cleanup() {
	local st=$? f pid
	trap - EXIT INT TERM
	for f in "$T"/pids/hopperd.*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do echo "$c" >"$T/pids/worker.$c"; done
		kill -s KILL "$pid" 2>/dev/null
		rm -f "$f"
	done
	for f in "$T"/pids/worker.* "$T"/pids/aux.*; do
		[ -f "$f" ] || continue
		kill -s KILL "$(cat "$f")" 2>/dev/null
		rm -f "$f"
	done
	[ -n "$REDIS_PID" ] && kill -s KILL "$REDIS_PID" 2>/dev/null
	rm -f "$T/pids/redis"
	wait 2>/dev/null
	if [ -f "$T/mounts" ]; then # mount_tmpfs's, once nothing runs in them
		while read -r f; do umount "$f" 2>/dev/null; done <"$T/mounts"
	fi
	_sanitizer_check
	if [ "$T_OWNED" = 1 ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "# kept $T"
		else
			rm -rf "$T"
		fi
	fi
	if [ "$T_DONE" != 1 ]; then
		not_ok "ran to its end" "stopped early with status $st"
	fi
	[ "$T_OWNED" = 1 ] && echo "# $SCENARIO: $T_PASSES passed, $T_FAILS failed"
	[ "$T_FAILS" -eq 0 ] && exit 0
	exit 1
}

# end_scenario: the last line of every scenario (a scenario that stops before it is counted as failed).
end_scenario() {
	T_DONE=1
	exit 0
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# require_binaries: every scenario needs the three programs.
require_binaries() {
	local b
	for b in "$HOPPERD" "$WORKER" "$HOPPERCTL"; do
		if [ ! -x "$b" ]; then
			not_ok "binaries built" "$b is missing"
			exit 1
		fi
	done
}
require_binaries

#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR: what `make demo` runs.
#
# Uses the Redis named by HOPPER_REDIS_UNIX or HOPPER_REDIS_HOST (+ HOPPER_REDIS_PORT) if one is set, otherwise
# starts a private redis-server on a unix socket in a temp dir. Starts hopperd with 2 workers and a temp SQLite
# log, submits four `sleep` jobs and watches their progress bars fill (JSON lines when stdout is not a
# terminal), shows their status and their execution-log rows, then a `fail` job going through retry to dead.
# Everything it started is stopped by PID when it ends or is interrupted. DEMO_STAY=1 keeps the daemon running
# at the end until Ctrl-C, so the suggested commands can be tried against it.
set -u

B=${1:?usage: tools/demo.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
for f in hopperd hopper-worker hopperctl hopper-web; do
	[ -x "$B/$f" ] || { echo "demo: $B/$f is missing: run 'make' first" >&2; exit 2; }
done

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	BOLD=$(printf '\033[1m') DIM=$(printf '\033[2m') OFF=$(printf '\033[0m')
else
	BOLD='' DIM='' OFF=''
fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
note() { printf '%s    %s%s\n' "$DIM" "$*" "$OFF"; }
show() { printf '    $ %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-demo.XXXXXX") || exit 1
REDIS_PID=
HOPPERD_PID=
WATCH_PID=

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
stop_pid() { # PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL
	local pid=$1 i=0
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	while alive "$pid" && [ "$i" -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
cleanup() {
	trap - EXIT INT TERM
	stop_pid "$WATCH_PID" 2
	stop_pid "${HTTP_PID:-}" 2
	stop_pid "${WEB_PID:-}" 5
	if [ -n "$HOPPERD_PID" ]; then
		note "stopping hopperd (PID $HOPPERD_PID) with SIGTERM: it drains running jobs and exits"
		stop_pid "$HOPPERD_PID" 20 # shutdown_grace_s=10, plus room to write back
	fi
	[ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID" 5
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM

# --- Redis ---
PREFIX=${HOPPER_PREFIX:-hopper:}
if [ -n "${HOPPER_REDIS_UNIX:-}" ]; then
	REDIS_ARGS=(--redis-unix="$HOPPER_REDIS_UNIX")
	RCLI=(redis-cli -s "$HOPPER_REDIS_UNIX")
	PYCONN="unix_socket_path='$HOPPER_REDIS_UNIX'"
	say "Using your Redis at $HOPPER_REDIS_UNIX (HOPPER_REDIS_UNIX)"
elif [ -n "${HOPPER_REDIS_HOST:-}" ]; then
	port=${HOPPER_REDIS_PORT:-6379}
	REDIS_ARGS=(--redis-host="$HOPPER_REDIS_HOST" --redis-port="$port")
	RCLI=(redis-cli -h "$HOPPER_REDIS_HOST" -p "$port")
	PYCONN="host='$HOPPER_REDIS_HOST', port=$port"
	say "Using your Redis at $HOPPER_REDIS_HOST:$port (HOPPER_REDIS_HOST)"
else
	command -v redis-server >/dev/null || die "redis-server is not installed (tools/install-deps.sh installs it)"
	SOCK=$TMP/redis.sock
	# In its own session, so that a Ctrl-C at the terminal does not kill Redis under the draining daemon
	# (setsid does not fork here: a background job of a script is no process-group leader, so $! is Redis).
	setsid redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' --appendonly no \
		--dir "$TMP" --logfile "$TMP/redis.log" &
	REDIS_PID=$!
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && redis-cli -s "$SOCK" PING >/dev/null 2>&1 && break
		sleep 0.05
	done
	redis-cli -s "$SOCK" PING >/dev/null 2>&1 || die "redis-server did not start: $(tail -3 "$TMP/redis.log")"
	export HOPPER_REDIS_UNIX=$SOCK
	REDIS_ARGS=(--redis-unix="$SOCK")
	RCLI=(redis-cli -s "$SOCK")
	PYCONN="unix_socket_path='$SOCK'"
	say "Started a private redis-server (PID $REDIS_PID) on $SOCK"
	note "No persistence, nothing on TCP; it goes away when the demo ends."
fi
"${RCLI[@]}" PING >/dev/null 2>&1 || die "cannot reach Redis with: ${RCLI[*]} PING"
CTL=("$B/hopperctl" --socket "$TMP/demo.sock")

# --- hopperd ---
DB=$TMP/demo.db
NODE=demo-$$
# audio.analyze: a generated 2-minute drum track, and the file named by DEMO_AUDIO (make demo AUDIO=FILE) if any
AUDIO_DIR=$TMP/audio
mkdir -p "$AUDIO_DIR"
AUDIO_ROOTS=$AUDIO_DIR
AUDIO_FILES=("$AUDIO_DIR/drums-126bpm.wav")
/usr/bin/python3 "$(dirname "$0")/../tests/audio/gen.py" drums "${AUDIO_FILES[0]}" bpm=126 ch=2 dur=120 ||
	die "could not generate the demo audio file"
if [ -n "${DEMO_AUDIO:-}" ]; then
	[ -f "$DEMO_AUDIO" ] || die "DEMO_AUDIO=$DEMO_AUDIO is not a file"
	real=$(realpath "$DEMO_AUDIO")
	AUDIO_FILES+=("$real")
	AUDIO_ROOTS=$AUDIO_ROOTS:$(dirname "$real")
fi

say "Starting hopperd with 2 worker processes"
note "Jobs are taken from Redis list ${PREFIX}{default}:queue; every attempt is logged to SQLite in $DB."
"$B/hopperd" -c /dev/null "${REDIS_ARGS[@]}" --key-prefix="$PREFIX" --node-id="$NODE" --workers=2 \
	--worker-path="$B/hopper-worker" --db-path="$DB" --ctl-socket="$TMP/demo.sock" --log-level=info \
	--backoff-base-s=1 --shutdown-grace-s=10 --workflow-exec-enabled=1 --workflow-exec-programs=/bin/echo \
	--audio-roots="$AUDIO_ROOTS" 2>"$TMP/hopperd.log" &
HOPPERD_PID=$!
for _ in $(seq 100); do
	[ "$("${RCLI[@]}" HEXISTS "${PREFIX}{@}:hb" "$NODE" 2>/dev/null)" = 1 ] && break
	alive "$HOPPERD_PID" || break
	sleep 0.1
done
if ! alive "$HOPPERD_PID" || [ "$("${RCLI[@]}" HEXISTS "${PREFIX}{@}:hb" "$NODE")" != 1 ]; then
	echo "demo: hopperd did not come up; its log:" >&2
	tail -20 "$TMP/hopperd.log" >&2
	exit 1
fi
note "hopperd is up (PID $HOPPERD_PID, node $NODE); workers: $(pgrep -P "$HOPPERD_PID" | tr '\n' ' ')"
note "Its control socket: $TMP/demo.sock. hopperctl talks to it; with no token it authenticates by peer"
note "credentials, which the daemon accepts from root and from its own user (the bootstrap path)."
note "Its heartbeat: $("${RCLI[@]}" HGET "${PREFIX}{@}:hb" "$NODE")"

# --- four sleep jobs ---
say "Submitting four 'sleep' jobs (2 to 5 seconds; each reports progress as it goes)"
IDS=()
for ms in 2000 3500 5000 3000; do
	show "hopperctl submit sleep --args '{\"ms\":$ms}'"
	id=$("${CTL[@]}" submit sleep --args "{\"ms\":$ms}") || die "hopperctl submit failed"
	[ -n "$id" ] || die "hopperctl submit printed no job id"
	note "job id: $id"
	IDS+=("$id")
done

say "Watching them: 2 workers, so two run at once and the others wait in the queue"
show "hopperctl watch ${IDS[*]}"
[ -t 1 ] || note "(stdout is not a terminal, so watch prints one JSON line per event instead of progress bars)"
timeout --foreground 60 "${CTL[@]}" watch "${IDS[@]}" &
WATCH_PID=$!
wait "$WATCH_PID"
rc=$?
WATCH_PID=
case $rc in
0) note "watch: all four succeeded (exit 0)" ;;
124) note "watch did not finish within 60 s" ;;
*) note "watch exited with $rc (see hopperctl(1): 1 a job failed, 10 not found, 15 no connection, 16 timeout)" ;;
esac

say "Their status (hopperctl status asks the daemon over its control socket)"
show "hopperctl status ${IDS[0]}"
"${CTL[@]}" status "${IDS[0]}"
for id in "${IDS[@]:1}"; do
	printf '    %s: %s\n' "$id" "$("${RCLI[@]}" HGET "${PREFIX}{default}:job:$id" state)"
done

say "One more, submitted and followed in one command: the progress bar fills as the worker reports"
show "hopperctl submit sleep --args '{\"ms\":2500}' --wait"
[ -t 1 ] || note "(stdout is not a terminal: no bar, just the id and the final status)"
timeout --foreground 60 "${CTL[@]}" submit sleep --args '{"ms":2500}' --wait
note "exit status $? (0: the job succeeded; 1: it ended otherwise)"

# --- a failing job ---
say "Now a 'fail' job with max_attempts 3, pushed with plain redis-cli (no hopper client needed)"
FID=demo-fail-$$
FJOB="{\"id\":\"$FID\",\"type\":\"fail\",\"args\":{\"message\":\"demo failure\"},\"max_attempts\":3,\"created_at\":$(date +%s.%3N)}"
show "redis-cli LPUSH ${PREFIX}{default}:queue '$FJOB'"
"${RCLI[@]}" LPUSH "${PREFIX}{default}:queue" "$FJOB" >/dev/null
note "Each failed attempt waits in ${PREFIX}{default}:scheduled (exponential backoff with jitter), then runs again;"
note "after the third it goes to the dead list ${PREFIX}{default}:dead."
last=
state=
for _ in $(seq 300); do
	state=$("${RCLI[@]}" HGET "${PREFIX}{default}:job:$FID" state)
	attempt=$("${RCLI[@]}" HGET "${PREFIX}{default}:job:$FID" attempt)
	if [ "$state/$attempt" != "$last" ] && [ -n "$state" ]; then
		printf '    %s: state %-9s attempt %s\n' "$(date +%T)" "$state" "$attempt"
		last="$state/$attempt"
	fi
	case $state in succeeded | failed | dead | cancelled) break ;; esac
	sleep 0.1
done
case $state in dead | failed) ;; *) note "the fail job did not end within 30 s (state: ${state:-none})" ;; esac
show "hopperctl dead"
"${CTL[@]}" dead | head -5

# --- audio analysis ---
say "audio.analyze: loudness, true peak, tempo, key... of ${#AUDIO_FILES[@]} file(s), in a worker, one pass"
note "hopperd only admits paths under audio_roots ($AUDIO_ROOTS); the worker reports progress with stage names."
for f in "${AUDIO_FILES[@]}"; do
	AID=demo-audio-$$-$RANDOM
	AJOB=$(/usr/bin/python3 -c 'import json,sys,time; print(json.dumps({"id": sys.argv[1], "type": "audio.analyze", "args": {"path": sys.argv[2], "waveform": 64}, "created_at": time.time()}))' "$AID" "$f")
	show "redis-cli LPUSH ${PREFIX}{default}:queue '$AJOB'"
	"${RCLI[@]}" LPUSH "${PREFIX}{default}:queue" "$AJOB" >/dev/null
	state=
	for _ in $(seq 1200); do
		IFS=$'\t' read -r state pct stage < <("${RCLI[@]}" HMGET "${PREFIX}{default}:job:$AID" state progress stage | paste -sd $'\t')
		pct=${pct:-0}
		bar=$(printf '%*s' $((pct * 40 / 100)) '' | tr ' ' '#')
		printf '\r    [%-40s] %3s%% %-12s' "$bar" "$pct" "${stage:-queued}"
		case $state in succeeded | failed | dead | cancelled) break ;; esac
		sleep 0.05
	done
	echo
	if [ "$state" = succeeded ]; then
		"${RCLI[@]}" HGET "${PREFIX}{default}:job:$AID" result | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
f = lambda k, u="", p=1: "n/a (%s)" % d["reasons"].get(k, "") if d.get(k) is None else ("%.*f%s" % (p, d[k], u))
print("    %s, %s, %d Hz, %d ch, %.1f s" % (d["format"], d["subtype"], d["sample_rate"], d["channels"], d["duration_s"]))
print("    loudness %s (range %s), true peak %s, sample peak %s, RMS %s" % (f("integrated_lufs", " LUFS"),
      f("loudness_range_lu", " LU"), f("true_peak_dbtp", " dBTP"), f("peak_dbfs", " dBFS"), f("rms_dbfs", " dBFS")))
c = d.get("tempo_candidates") or []
print("    tempo %s (confidence %s; candidates %s), %d beats, %d onsets" % (f("tempo_bpm", " BPM"),
      f("tempo_confidence", "", 2), ", ".join("%.1f BPM %.2f" % (x["bpm"], x["score"]) for x in c) or "none",
      d.get("beats", 0), d.get("onsets", 0)))
k = d.get("key_notation") or {}
print("    key %s / %s, Camelot %s, Open Key %s (confidence %s; then %s)" % (k.get("key", "n/a"), k.get("flat", "n/a"),
      k.get("camelot", "-"), k.get("open_key", "-"), f("key_confidence", "", 2),
      ", ".join(a["flat"] for a in (d.get("key_alternatives") or [])[1:]) or "none"))
print("    spectral centroid %s, silence %s lead / %s tail, clipped samples %d" % (f("spectral_centroid_hz", " Hz", 0),
      f("leading_silence_s", " s", 2), f("trailing_silence_s", " s", 2), d.get("clipped_samples", 0)))
w = d.get("waveform")
if w:
    rows = 4  # half-height rows above and below zero, per channel
    for ci, ch in enumerate(w["channels"][:2]):
        lines = []
        for r in range(rows, 0, -1):
            lines.append("".join("#" if mx * rows >= r - 0.5 else " " for mx in ch["max"]))
        lines.append("-" * len(ch["max"]))
        for r in range(1, rows + 1):
            lines.append("".join("#" if -mn * rows >= r - 0.5 else " " for mn in ch["min"]))
        print("    waveform, channel %d (%d min/max pairs):" % (ci + 1, w["points"]))
        for ln in lines:
            print("      |" + ln + "|")'
	else
		note "$f: $state: $("${RCLI[@]}" HGET "${PREFIX}{default}:job:$AID" error)"
	fi
done
note "The whole result is JSON (schema/audio-result.schema.json); hopper-analyze FILE prints the same (-w N: waveform)."

# --- the execution log ---
say "The execution log: one row per attempt, in SQLite"
sleep 0.3 # rows are group-committed once per event-loop turn
QUERY="select job_id, type, attempt, state, round(duration_ms) as ms, coalesce(error, '') as error from attempts order by id"
show "sqlite3 $DB \"$QUERY\""
if command -v sqlite3 >/dev/null; then
	sqlite3 -header -column "$DB" "$QUERY" | sed 's/^/    /'
	note "progress events and log lines of each attempt are in table attempt_events:"
	sqlite3 "$DB" "select count(*) || ' events for ' || count(distinct attempt_id) || ' attempts' from attempt_events" | sed 's/^/    /'
else
	note "(sqlite3 is not installed; tools/install-deps.sh installs it)"
fi

# --- a stored workflow ---
say "A stored workflow: fetch JSON from a local HTTP endpoint, filter on it, analyse audio, run a program"
/usr/bin/python3 "$(dirname "$0")/../tests/workflow/server.py" "$TMP/http.port" 2>/dev/null &
HTTP_PID=$!
for _ in $(seq 50); do [ -s "$TMP/http.port" ] && break; sleep 0.1; done
HTTP="http://127.0.0.1:$(cat "$TMP/http.port" 2>/dev/null)"
WF=$(cat <<J
{"name": "demo-fetch", "steps": [
  {"id": "fetch", "type": "http", "params": {"url": "$HTTP/json"}},
  {"id": "adult", "type": "filter", "depends_on": ["fetch"], "params": {"condition": "steps.fetch.output.json.user.age >= 18"}},
  {"id": "listen", "type": "audio.analyze", "depends_on": ["adult"], "params": {"path": "${AUDIO_FILES[0]}", "features": ["loudness", "tempo"]}},
  {"id": "greet", "type": "exec", "depends_on": ["listen"], "params": {"argv": ["/bin/echo", "hello {{steps.fetch.output.json.user.name}}, {{input.payload.note}}: your track is {{steps.listen.output.tempo_bpm}} BPM"]}}
]}
J
)
printf '%s\n' "$WF" >"$TMP/demo-fetch.json"
note "The definition is a JSON file; hopperctl stores it in the daemon's SQLite (table workflows)."
show "hopperctl workflow put $TMP/demo-fetch.json --description 'make demo'"
"${CTL[@]}" workflow put "$TMP/demo-fetch.json" --description "make demo" | sed 's/^/    /'
note "Run it by name: the daemon resolves the definition and submits a workflow.run job that carries it."
note "(Its input has the shape a webhook trigger gives it, {payload: ...}: hopper-web runs it that way below.)"
show "hopperctl workflow run demo-fetch --input '{\"payload\":{\"note\":\"from make demo\"}}' --wait"
"${CTL[@]}" workflow run demo-fetch --input '{"payload":{"note":"from make demo"}}' --id "demo-wf-$$" --wait --wait-timeout 30
note "(exit status $?: 0 when the run succeeded)"
note "Each step execution is a row in SQLite (table workflow_steps); hopperctl logs shows them as a table:"
show "hopperctl logs demo-wf-$$"
"${CTL[@]}" logs "demo-wf-$$" | sed -n '/^steps:$/,$p' | sed 's/^/    /'

# --- hopper-web: the dashboard, the HTTP API and a webhook ---
say "Starting hopper-web: the dashboard, the HTTP API (/v1), webhooks and /metrics, over the control socket"
WEB_PORT=${DEMO_WEB_PORT:-8080}
if ! /usr/bin/python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$WEB_PORT" 2>/dev/null; then
	WEB_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
WEB="http://127.0.0.1:$WEB_PORT"
"${CTL[@]}" token create demo-web --scopes submit,read >"$TMP/web.token" 2>/dev/null || die "could not make hopper-web's token"
LOGIN=$("${CTL[@]}" token create demo-admin --scopes admin 2>/dev/null) || die "could not make the login token"
"$B/hopper-web" --socket "$TMP/demo.sock" --token-file "$TMP/web.token" --listen "127.0.0.1:$WEB_PORT" \
	2>"$TMP/hopper-web.log" &
WEB_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "$WEB/metrics" && break; sleep 0.1; done
note "hopper-web (PID $WEB_PID) is a separate, restartable process with a token of its own (scopes submit,read)."
note "Dashboard: $WEB/   log in with the demo's admin token:"
note "    $LOGIN"
note "Give the stored workflow a webhook (a random URL token), then trigger it the way an automation platform would:"
show "hopperctl workflow webhook demo-fetch --create --base-url $WEB"
HOOK=$(HOPPER_WEB_URL=$WEB "${CTL[@]}" workflow webhook demo-fetch --create) || die "could not create the webhook"
note "    $HOOK"
show "curl -s -X POST -H 'Content-Type: application/json' -d '{\"note\":\"from a webhook\"}' $HOOK"
REPLY=$(curl -s -X POST -H 'Content-Type: application/json' -d '{"note":"from a webhook"}' "$HOOK")
note "    $REPLY"
RUN=$(printf '%s' "$REPLY" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("job_id", ""))' 2>/dev/null)
if [ -n "$RUN" ]; then
	note "The run's input is the trigger {method, headers, url, timestamp, payload}; follow it over HTTP (SSE):"
	show "curl -N -H 'Authorization: Bearer \$TOKEN' $WEB/v1/jobs/$RUN/events"
	"${CTL[@]}" watch "$RUN" --timeout 30 >/dev/null 2>&1
	note "    it ended $("${CTL[@]}" --json status "$RUN" 2>/dev/null | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])' 2>/dev/null) (see it at $WEB/jobs/$RUN)"
fi
note "Prometheus metrics: curl $WEB/metrics"

# --- what to try next ---
say "Try it yourself"
note "Any program can submit a job with one LPUSH of its JSON (schema/job.schema.json):"
show "${RCLI[*]} LPUSH ${PREFIX}{default}:queue '{\"id\":\"try-1\",\"type\":\"sleep\",\"args\":{\"ms\":1500}}'"
note "From Python (python3-redis):"
show "python3 -c \"import json, time, uuid, redis; r = redis.Redis($PYCONN); i = str(uuid.uuid4()); r.lpush('${PREFIX}{default}:queue', json.dumps({'id': i, 'type': 'sleep', 'args': {'ms': 1500}, 'created_at': time.time()})); print(i)\""
note "Then follow it:"
show "hopperctl --socket $TMP/demo.sock watch try-1      # or: status try-1, logs try-1"
note "Or submit through the daemon, with live progress (peer credentials as root, or a token):"
show "hopperctl --socket $TMP/demo.sock submit sleep '{\"ms\":2000}' --wait"
show "hopperctl --socket $TMP/demo.sock token create me --scopes submit,read > ~/.config/hopper/token"
note "Built-in job types: noop, sleep (args.ms), fail (args.message), crash (the worker dies with SIGSEGV), audio.analyze (args.path under audio_roots), workflow.run (args.definition or args.workflow, args.input)."
note "hopperd's own log for this run (stderr, log_level=info):"
sed -e 's/^<[0-7]>//' -e 's/^/    /' "$TMP/hopperd.log" | tail -n 8

if [ "${DEMO_STAY:-0}" = 1 ]; then
	say "DEMO_STAY=1: hopperd and hopper-web keep running; Ctrl-C stops them and the demo's Redis"
	note "export HOPPER_SOCKET=$TMP/demo.sock   # in another shell, for hopperctl"
	note "Dashboard: $WEB/   login token: $LOGIN"
	wait "$HOPPERD_PID"
	HOPPERD_PID=
else
	note "Everything started here stops now. DEMO_STAY=1 make demo keeps the daemon running to try the commands."
fi

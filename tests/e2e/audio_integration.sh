#!/usr/bin/env bash
# audio_integration: audio.analyze through the other issues' front doors, in one daemon.
# - Cancel through the control socket: running analyses of a 10-minute file cancelled with `hopperctl cancel`
#   end cancelled and the worker stops at once (latencies printed); a queued audio job cancelled never runs.
# - workflow.run with an audio.analyze step: its result feeds a later filter (tempo), and the step's progress
#   events rise within the step's share of the job with the audio stage names in their messages.
# - Celery: the README's mapping samplemind.analyze_audio=audio.analyze:path; a stock Celery app reads PROGRESS
#   {progress, stage} while the analysis runs, then get() returns it.
# - hopperctl submit audio.analyze --wait: a live progress bar on a terminal, JSON lines when piped.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"

GEN=$HOPPER_ROOT/tests/audio/gen.py
IT=$HOPPER_ROOT/tests/audio/integration.py
ROOT=$T/audio
mkdir -p "$ROOT"
py "$GEN" drums "$ROOT/beat.wav" bpm=128 ch=2 dur=8
py "$GEN" drums "$ROOT/slow.wav" bpm=90 ch=2 dur=8
py "$GEN" drums "$ROOT/mid.wav" bpm=120 ch=2 dur=30 repeat=4 # 2 minutes: a few bar redraws
py "$GEN" drums "$ROOT/long.wav" bpm=120 ch=2 dur=30 repeat=20 # 10 minutes, ~1 s of analysis: cancelled

start_redis
start_hopperd n1 --workers=1 --audio-roots="$ROOT" --kill-grace-s=5 --queues=default,celery \
	--celery-queues=celery --celery-tasks="samplemind.analyze_audio=audio.analyze:path" || exit 1

# --- cancel a running analysis through the control socket ---
relay py "$IT" cancel hopperctl="$HOPPERCTL" socket="$CTL_SOCK" redis="$SOCK" db="$T/n1.db" \
	file="$ROOT/long.wav" n=5
check_eq "no SIGKILL was needed: every analysis stopped on its SIGTERM" \
	"$(grep -cE 'job cx[0-9]+: still running after the grace period; SIGKILL' "$T/n1.log")" 0
# (a signalled worker retires after its job; it must leave by itself, status 0, not by a signal)
for pid in $(sql n1 "SELECT worker_pid FROM attempts WHERE job_id LIKE 'cx%'"); do
	check "worker $pid of a cancelled analysis exited by itself (status 0)" grep -q "worker $pid gone (status 0)" "$T/n1.log"
done
check_eq "cancelled jobs are not retried" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'cx%'")" 5

# --- a queued audio job cancelled never runs (one worker, busy with the long file) ---
ctl submit audio.analyze "{\"path\":\"$ROOT/long.wav\"}" --id busy >/dev/null
ctl submit audio.analyze "{\"path\":\"$ROOT/beat.wav\"}" --id waits >/dev/null
wait_for "busy runs" 30 state_is busy running
check_eq "waits is not running (one worker)" "$(jstate waits)" queued
check_match "cancel the queued audio job" "$(ctl --json cancel waits)" '"was": *"queued"'
wait_for "busy succeeds" 60 state_is busy succeeded
sleep 0.3
check_eq "the cancelled audio job never ran (no attempt row)" \
	"$(sql n1 "SELECT count(*) FROM attempts WHERE job_id='waits'")" 0
check_eq "it stays cancelled" "$(jstate waits)" cancelled
full=$(sql n1 "SELECT CAST(duration_ms AS INTEGER) FROM attempts WHERE job_id='busy'")
cut=$(sql n1 "SELECT CAST(max(duration_ms) AS INTEGER) FROM attempts WHERE job_id LIKE 'cx%'")
note "the full analysis of long.wav took $full ms; the cancelled ones ran at most $cut ms"
check "the cancelled analyses stopped long before the end (under half the full analysis)" test "$cut" -lt $((full / 2))
# progress cadence of the full analysis (event times are the daemon's, as the reports arrive)
cad=$(rcli LRANGE "$(qkey default events busy)" 0 -1 | py -c '
import json, statistics, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
a = [e for e in ev if e.get("stage") == "analysing"]
t = [float(e["at"]) for e in a]
p = [e["progress"] for e in a]
gaps = [(y - x) * 1000 for x, y in zip(t, t[1:])]
print(len(a), max(y - x for x, y in zip(p, p[1:])), "%.0f" % max(gaps), "%.1f" % statistics.median(gaps))
')
note "busy (10 min of audio): analysing events, largest progress step %, largest and median gap ms: $cad"
check_le "progress at least every 2%" "$(echo "$cad" | cut -d' ' -f2)" 2
check_le "and at least once a second (x$TIME_SCALE)" "$(echo "$cad" | cut -d' ' -f3)" $((1000 * TIME_SCALE))

# --- workflow.run: delay -> audio.analyze -> filter on the tempo ---
wf() { # ID FILE: the workflow job's JSON
	cat <<J
{"id": "$1", "type": "workflow.run", "args": {"definition": {"name": "tempo-gate", "steps": [
  {"id": "wait", "type": "delay", "params": {"ms": 50}},
  {"id": "a", "type": "audio.analyze", "depends_on": ["wait"], "params": {"path": "$2", "features": ["loudness", "tempo"]}},
  {"id": "fast", "type": "filter", "depends_on": ["a"],
   "params": {"condition": "{{steps.a.output.tempo_bpm}} > 100 and {{steps.a.output.integrated_lufs}} < 0"}}
 ]}, "input": {}}}
J
}
push_job default "$(wf wf-fast "$ROOT/beat.wav" | tr -d '\n')"
push_job default "$(wf wf-slow "$ROOT/slow.wav" | tr -d '\n')"
wait_for "wf-fast succeeds" 60 state_is wf-fast succeeded
wait_for "wf-slow succeeds" 60 state_is wf-slow succeeded
res=$(jfield wf-fast result)
check_eq "wf-fast: the filter passed on the analysed tempo (128 BPM > 100)" \
	"$(printf '%s' "$res" | py -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["steps"])')" \
	"succeeded {'wait': 'succeeded', 'a': 'succeeded', 'fast': 'succeeded'}"
check_eq "wf-slow: the filter said no on the analysed tempo (90 BPM)" \
	"$(jfield wf-slow result | py -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["steps"]["fast"])')" \
	"filtered filtered"
check_match "the audio step's output is the analysis (tempo_bpm of the 128 BPM file)" \
	"$(sql n1 "SELECT output FROM workflow_steps WHERE step_id='a' AND state='succeeded' LIMIT 1" |
		py -c 'import json,sys; t=sys.stdin.read(); d=json.loads(t); print(round(d["tempo_bpm"]), d["sample_rate"])' 2>&1)" \
	'^(128|90) 44100$'
prog=$(rcli LRANGE "$(qkey default events wf-fast)" 0 -1 | py -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
a = [e for e in ev if e.get("stage") == "a"]
p = [e["progress"] for e in a]
print(len(a), min(p), max(p), "monotonic" if p == sorted(p) else "not-monotonic:%s" % p)
print(" ".join(dict.fromkeys(e.get("message", "") for e in a)))
')
note "wf-fast audio-step events: $prog"
check_match "audio step progress rises monotonically within its share (33..66%) of the 3-step job" \
	"$(printf '%s' "$prog" | head -1)" '^[0-9]+ 3[34] 6[67] monotonic$'
check_ge "the audio step reports many progress events" "$(printf '%s' "$prog" | head -1 | cut -d' ' -f1)" 20
check_eq "the audio stage names show in the step's events" "$(printf '%s' "$prog" | tail -1)" \
	"running opening analysing summarising done"

# --- a workflow cancelled during its audio step: the analysis stops, the step is recorded stopped ---
push_job default "$(wf wf-cx "$ROOT/long.wav" | tr -d '\n')"
in_audio() { [ "$(jfield wf-cx stage)" = a ] && [ "$(jfield wf-cx progress)" -gt 34 ]; }
wait_for "wf-cx is analysing" 60 in_audio
check_match "cancel the workflow mid-analysis" "$(ctl --json cancel wf-cx)" '"was": *"running"'
wait_for "wf-cx's attempt ends" 20 sql_is n1 "SELECT state FROM attempts WHERE job_id='wf-cx' AND finished_at IS NOT NULL" cancelled
check_eq "wf-cx is cancelled" "$(jstate wf-cx)" cancelled
check_le "its attempt stopped well before the full analysis ($full ms) would end" \
	"$(sql n1 "SELECT CAST(duration_ms AS INTEGER) FROM attempts WHERE job_id='wf-cx'")" $((full / 2 + 100))
wait_for "the audio step is recorded" 10 sql_is n1 "SELECT count(*) FROM workflow_steps WHERE job_id='wf-cx' AND step_id='a'" 1
check_eq "the audio step is recorded stopped; the filter never ran" \
	"$(sql n1 "SELECT group_concat(step_id || ':' || state, ' ') FROM workflow_steps WHERE job_id='wf-cx'")" "wait:succeeded a:stopped"

# --- Celery: the README's mapping ---
export TIME_SCALE
relay py "$IT" celery redis="$SOCK" file="$ROOT/long.wav" duration=600 bpm=120

# --- hopperctl submit --wait: bar on a terminal, JSON lines when piped ---
# (an 80-column pty: the stage must still show beside a 36-character UUID)
script -qfec "stty cols 80 rows 24; env HOME=$T TERM=xterm $HOPPERCTL --socket $CTL_SOCK submit audio.analyze \
'{\"path\":\"$ROOT/mid.wav\"}' --wait --wait-timeout 60" "$T/tty.raw" >/dev/null 2>&1 </dev/null
check_eq "submit --wait on a terminal exits 0" "$?" 0
tr '\r' '\n' <"$T/tty.raw" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' >"$T/tty.out"
bars=$(grep -cE '\] +[0-9]+% running' "$T/tty.out")
note "terminal: $bars bar redraws while running, e.g. '$(grep -E '% running +analysing' "$T/tty.out" | sed -n 10p)'"
check_ge "the bar is redrawn in place while the analysis runs" "$bars" 20
check_eq "the bar shows the audio stages in order" \
	"$(grep -oE '% running +[a-z]+' "$T/tty.out" | awk '{print $3}' | uniq | tr '\n' ' ')" "opening analysing summarising done "
check "no bar line is wider than the 80-column terminal" awk '/\[[#.]+\] +[0-9]+%/ && length > 80 { exit 1 }' "$T/tty.out"
check "it ends with the succeeded state" grep -qE '100% +succeeded' "$T/tty.out"
ctl submit audio.analyze "{\"path\":\"$ROOT/mid.wav\"}" --wait --wait-timeout 60 >"$T/pipe.out" 2>&1
check_eq "submit --wait piped exits 0" "$?" 0
stream=$(py -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = []
for l in lines[1:]:
    try:
        ev.append(json.loads(l))
    except ValueError:
        break
print(len(ev), " ".join(dict.fromkeys(e.get("stage") or "-" for e in ev if e.get("stage"))), ev[-1].get("state") if ev else "")
' "$T/pipe.out")
note "piped: $stream"
check_match "piped: the id, then one JSON event per line with the stage names, ending succeeded" "$stream" \
	'^[0-9]+ opening analysing summarising done succeeded$'
check_match "piped: then the final status" "$(cat "$T/pipe.out")" 'state +succeeded'

check "daemon alive" hopperd_alive n1
finish_hopperd n1
end_scenario

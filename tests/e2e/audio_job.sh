#!/usr/bin/env bash
# audio_job: the audio.analyze job type in a real daemon. A file under audio_roots is analysed: the result
# lands in the job hash, and progress events with stage names (opening, analysing, summarising, done) in its
# events list. Refused before opening and not retried: a path outside the roots, a symlink out of them, a file
# over audio_max_bytes, a missing file, a text file. A job whose timeout_s passes mid-analysis of a long file
# stops by itself on the SIGTERM (no SIGKILL needed), promptly.
. "$(dirname "$0")/../lib.sh"

GEN=$HOPPER_ROOT/tests/audio/gen.py
ROOT=$T/audio
mkdir -p "$ROOT" "$T/outside"
py "$GEN" sine "$ROOT/tone.wav" f=1000 db=-23 ch=2 sr=48000 dur=30
py "$GEN" sine "$T/outside/tone.wav" f=1000 db=-23 ch=2 dur=2
ln -s "$T/outside/tone.wav" "$ROOT/escape.wav"
py "$GEN" sine "$ROOT/big.wav" dur=130 # 11.5 MB, over the 10 MB limit below
echo "not audio" >"$ROOT/notes.wav"
# 10 minutes of 44.1 kHz stereo for the timeout case (written as 20 copies of 30 s)
py "$GEN" drums "$ROOT/long.wav" bpm=120 ch=2 dur=30 repeat=20

start_redis
start_hopperd n1 --workers=2 --audio-roots="/nonexistent:$ROOT" --audio-max-bytes=10000000 --kill-grace-s=5 || exit 1

push_job default "$(job_json au-ok audio.analyze "{\"path\":\"$ROOT/tone.wav\"}")"
push_job default "$(job_json au-sub audio.analyze "{\"path\":\"$ROOT/tone.wav\",\"features\":[\"loudness\"]}")"
wait_for "au-ok succeeded" 60 state_is au-ok succeeded
wait_for "au-sub succeeded" 60 state_is au-sub succeeded
check_eq "au-ok succeeded" "$(jstate au-ok)" succeeded
res=$(jfield au-ok result)
check_eq "result: format, channels, rate, frames" \
	"$(printf '%s' "$res" | py -c 'import json,sys; d=json.load(sys.stdin); print(d["format"], d["channels"], d["sample_rate"], d["frames"])')" \
	"WAV (Microsoft) 2 48000 1440000"
check_eq "result: integrated loudness of a -23 dBFS 1 kHz stereo sine is -23.0 LUFS (0.1 LU)" \
	"$(printf '%s' "$res" | py -c 'import json,sys; d=json.load(sys.stdin); print(abs(d["integrated_lufs"] + 23) <= 0.1)')" True
check_eq "result: the same JSON as hopper-analyze prints" \
	"$(printf '%s' "$res" | py -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')" \
	"$("$HOPPER_BUILD/hopper-analyze" "$ROOT/tone.wav" | py -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')"
check_eq "a features subset gives only those keys (plus the format block)" \
	"$(jfield au-sub result | py -c 'import json,sys; d=json.load(sys.stdin); print(sorted(k for k in d if k not in ("format","subtype","sample_rate","channels","frames","duration_s","reasons","decoder","channel_layout","channel_layout_source","loudness_channel_weights")))')" \
	"['integrated_lufs', 'loudness_range_lu', 'momentary_max_lufs', 'short_term_max_lufs']"
stages=$(rcli LRANGE "$(qkey default events au-ok)" 0 -1 | py -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
ev = [e for e in ev if e.get("stage")]
print(len([e for e in ev if e["stage"] == "analysing"]), " ".join(dict.fromkeys(e["stage"] for e in ev)))
prog = [e["progress"] for e in ev if e["stage"] == "analysing"]
print("monotonic" if prog == sorted(prog) else "not monotonic", "max gap", max(b - a for a, b in zip(prog, prog[1:])) if len(prog) > 1 else None)
')
note "progress events: $stages"
check_match "progress events carry the stages in order" "$(printf '%s' "$stages" | head -1)" \
	'^[0-9]+ opening analysing summarising done$'
check_ge "at least 40 analysing progress events (one every 2%)" \
	"$(printf '%s' "$stages" | head -1 | cut -d' ' -f1)" 40
check_match "analysing progress never goes down and never jumps more than 2%" "$(printf '%s' "$stages" | tail -1)" \
	'^monotonic max gap [0-2]$'

# --- refused before opening, not retried ---
i=0
for c in "$T/outside/tone.wav|outside the allowed audio roots" "$ROOT/escape.wav|outside the allowed audio roots" \
	"$ROOT/../outside/tone.wav|outside the allowed audio roots" "$ROOT/big.wav|over the limit of 10000000 bytes" \
	"$ROOT/missing.wav|No such file" "$ROOT/notes.wav|libsndfile: Format not recognised"; do
	i=$((i + 1))
	push_job default "$(job_json "au-bad$i" audio.analyze "{\"path\":\"${c%%|*}\"}" '"max_attempts":3')"
done
push_job default "$(job_json au-badfeat audio.analyze "{\"path\":\"$ROOT/tone.wav\",\"features\":[\"colour\"]}")"
ended() { case $(jstate "$1") in dead | failed) return 0 ;; esac; return 1; }
i=0
for c in "$T/outside/tone.wav|outside the allowed audio roots" "$ROOT/escape.wav|outside the allowed audio roots" \
	"$ROOT/../outside/tone.wav|outside the allowed audio roots" "$ROOT/big.wav|over the limit of 10000000 bytes" \
	"$ROOT/missing.wav|No such file" "$ROOT/notes.wav|libsndfile: Format not recognised" "|unknown feature"; do
	i=$((i + 1))
	id=au-bad$i
	[ -z "${c%%|*}" ] && id=au-badfeat
	wait_for "$id ended" 30 ended "$id"
	check_match "$id (${c%%|*}) ends dead, no retry" "$(jstate "$id") attempt $(jfield "$id" attempt)" '^(dead|failed) attempt 1$'
	check_match "$id: error names the problem" "$(jfield "$id" error)" "${c##*|}"
done

# --- timeout mid-analysis: the SIGTERM stops the analysis; no SIGKILL after the 5 s grace is needed ---
# (a second daemon with the default size limit: the 10-minute file is 106 MB)
check "daemon alive" hopperd_alive n1
finish_hopperd n1
start_hopperd n2 --workers=1 --audio-roots="$ROOT" --kill-grace-s=5 || exit 1
push_job default "$(job_json au-long audio.analyze "{\"path\":\"$ROOT/long.wav\"}" '"timeout_s":0.3,"max_attempts":1')"
wait_for "au-long ended" 60 ended au-long
check_match "au-long ended on its timeout" "$(jstate au-long): $(jfield au-long error)" '^(dead|failed): .*(timed out|cancel|stop)'
dur=$(sql n2 "SELECT CAST(duration_ms AS INTEGER) FROM attempts WHERE job_id='au-long'")
note "au-long attempt lasted $(sql n2 "SELECT round(duration_ms, 1) FROM attempts WHERE job_id='au-long'") ms with timeout_s 0.3 (SIGTERM at 300 ms)"
check_le "it ended within 1.5 s of starting, long before the analysis would finish (x$TIME_SCALE)" "$dur" \
	$((1500 * TIME_SCALE))
check_eq "no SIGKILL was needed" "$(grep -F 'job au-long:' "$T/n2.log" | grep -c SIGKILL)" 0
rm -f "$ROOT/long.wav"

check "daemon alive" hopperd_alive n2
finish_hopperd n2
end_scenario

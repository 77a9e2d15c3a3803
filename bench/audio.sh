#!/usr/bin/env bash
# bench/audio.sh BUILD_DIR: audio.analyze speed (make bench-audio; make bench runs it too). Figures are reported,
# not asserted.
#
# Generates a 10-minute 44.1 kHz stereo 16-bit WAV (drum-like pulses at 128 BPM) and times, AUDIO_ROUNDS times
# each (default 3; the median is reported, as x real time = 600 s / wall seconds):
#   hopper-analyze (full analysis), hopper-analyze -f loudness,true_peak, libsndfile's bare decode (the floor),
#   libebur128 with integrated+LRA+true peak and with true peak only, ffmpeg ebur128 with peak=true and without,
#   sox stats, aubio tempo.
# Then (AUDIO_BENCH_LONG=1, the default) the 2-hour check: a 2-hour file of the same kind analysed by
# hopper-analyze, its max RSS from getrusage (issue #4: under 64 MB).
set -u

B=${1:?usage: bench/audio.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${AUDIO_ROUNDS:-3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hopper-bench-audio.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
F=$TMP/ten.wav
/usr/bin/python3 "$ROOT/tests/audio/gen.py" drums "$F" bpm=128 ch=2 dur=60 repeat=10 || exit 1

/usr/bin/python3 - "$B" "$F" "$ROUNDS" <<'PY'
import os, statistics, subprocess, sys, time
B, F, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
DUR = 600.0
tools = [
    ("hopper-analyze (full analysis)", [B + "/hopper-analyze", F]),
    ("hopper-analyze -f loudness,true_peak", [B + "/hopper-analyze", "-f", "loudness,true_peak", F]),
    ("libsndfile bare decode (floor)", [B + "/bench/decode", F]),
    ("libebur128 I+LRA+true peak", [B + "/bench/ebur128_ref", F]),
    ("libebur128 true peak only", [B + "/bench/ebur128_ref", F, "--tp-only"]),
    ("ffmpeg ebur128 peak=true", ["ffmpeg", "-nostats", "-hide_banner", "-i", F, "-af", "ebur128=peak=true", "-f", "null", "-"]),
    ("ffmpeg ebur128 (no true peak)", ["ffmpeg", "-nostats", "-hide_banner", "-i", F, "-af", "ebur128", "-f", "null", "-"]),
    ("sox stats", ["sox", F, "-n", "stats"]),
    ("aubio tempo", ["aubio", "tempo", F]),
]
times = {name: [] for name, _ in tools}
for r in range(rounds):
    for name, cmd in tools:
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.monotonic() - t0
        times[name].append(dt if p.returncode == 0 else float("nan"))
print("audio bench: 10-minute 44.1 kHz stereo 16-bit WAV, medians of %d runs, one core each" % rounds)
print("%-40s %10s %12s" % ("tool", "wall s", "x real time"))
for name, _ in tools:
    m = statistics.median(times[name])
    print("%-40s %10.3f %12.0f" % (name, m, DUR / m))
PY

if [ "${AUDIO_BENCH_LONG:-1}" = 1 ]; then
	L=$TMP/two-hours.wav
	/usr/bin/python3 "$ROOT/tests/audio/gen.py" drums "$L" bpm=128 ch=2 dur=60 repeat=120 || exit 1
	/usr/bin/python3 - "$B" "$L" <<'PY'
import os, subprocess, sys, time
B, L = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
p = subprocess.Popen([B + "/hopper-analyze", L], stdout=subprocess.DEVNULL)
_, st, ru = os.wait4(p.pid, 0)
dt = time.monotonic() - t0
print("2-hour 44.1 kHz stereo WAV (%d MB): %.1f s (%.0fx real time), max RSS %.1f MB, status %d"
      % (os.path.getsize(L) >> 20, dt, 7200 / dt, ru.ru_maxrss / 1024.0, st))
PY
fi

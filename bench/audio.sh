#!/usr/bin/env bash
# bench/audio.sh BUILD_DIR: audio.analyze speed (make bench-audio; make bench runs it too). Figures are reported,
# not asserted.
#
# Generates a 10-minute 44.1 kHz stereo 16-bit WAV (drum-like pulses at 128 BPM) and times, AUDIO_ROUNDS times
# each (default 3; medians of wall and CPU seconds, x real time = 600 s / CPU seconds, since the machine may be
# shared; the load average is printed with them):
#   hopper-analyze (full analysis), hopper-analyze -f loudness,true_peak, libsndfile's bare decode (the floor),
#   libebur128 with integrated+LRA+true peak and with true peak only, ffmpeg ebur128 with peak=true and without,
#   sox stats, aubio tempo.
# Then (AUDIO_BENCH_LONG=1, the default) the 2-hour check: a 2-hour file of the same kind analysed by
# hopper-analyze, its max RSS from getrusage (issue #4: under 64 MB), and the 10-minute file's max RSS beside it
# (memory constant in file length).
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
cpu = {name: [] for name, _ in tools}
rss = {}
for r in range(rounds):
    for name, cmd in tools:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, st, ru = os.wait4(p.pid, 0)
        dt = time.monotonic() - t0
        good = os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
        times[name].append(dt if good else float("nan"))
        cpu[name].append(ru.ru_utime + ru.ru_stime if good else float("nan"))
        rss[name] = ru.ru_maxrss / 1024.0
load = open("/proc/loadavg").read().split()[:3]
print("audio bench: 10-minute 44.1 kHz stereo 16-bit WAV, medians of %d runs, one core each; load average %s on %d cores"
      % (rounds, " ".join(load), os.cpu_count()))
print("(the machine is shared: CPU seconds, user+sys of the process, are the stable figure; wall seconds include waiting)")
print("%-40s %8s %8s %14s" % ("tool", "wall s", "CPU s", "x real (CPU)"))
med = {}
for name, _ in tools:
    m, c = statistics.median(times[name]), statistics.median(cpu[name])
    med[name] = c
    print("%-40s %8.3f %8.3f %14.0f" % (name, m, c, DUR / c))
full = med["hopper-analyze (full analysis)"]
peer = min(med["libebur128 I+LRA+true peak"], med["ffmpeg ebur128 peak=true"])
print("hopper full analysis: %.0fx real time (goal >= 500x); %.2fx faster than the faster of libebur128 and "
      "ffmpeg ebur128 peak=true (goal >= 2x)" % (DUR / full, peer / full))
print("hopper full analysis of the 10-minute file: max RSS %.1f MB" % rss["hopper-analyze (full analysis)"])
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

#!/usr/bin/python3
"""rhythm_key.py BUILD_DIR: tempo and key on a generated corpus, with aubio tempo run on the same files.
Tempo: click tracks, drum loops and mixed material (drums plus chords) from 60 to 200 BPM at 8-96 kHz, in
WAV, FLAC and Ogg Vorbis, and one 10-minute 128 BPM drum track. Each file must read within 4% of its tempo
(Acc1) with no octave error; the tempo must lead tempo_candidates; beats must be one period apart. Key: the
I-IV-V-I / i-iv-V-i progression in all 24 keys, each read right (notation checked: flat spelling, Camelot,
Open Key). Prints the accuracy tables as comment lines, ok / not ok per file; exit 1 on any failure."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen as gen_mod  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen.py")
ANALYZE = os.path.join(BUILD, "hopper-analyze")
T = tempfile.mkdtemp(prefix="hopper-audio-rk.")
FAILS = 0
LONG = os.environ.get("AUDIO_LONG", "1") == "1"


def ok(name):
    print("ok - audio_rhythm_key: " + name, flush=True)


def not_ok(name, why):
    global FAILS
    FAILS += 1
    print("not ok - audio_rhythm_key: %s: %s" % (name, why), flush=True)


def gen(kind, name, **p):
    path = os.path.join(T, name)
    gen_mod.generate(path, kind, **p)  # in this process: no interpreter start-up per file
    return path


def convert(path, ext):
    out = path[:-4] + "." + ext
    codec = {"flac": "flac", "ogg": "libvorbis"}[ext]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", path, "-c:a", codec, out], check=True)
    os.unlink(path)
    return out


def analyze(path, feats):
    r = subprocess.run([ANALYZE, "-f", feats, path], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"_error": r.stderr.strip()}


def aubio_tempo(path):
    try:
        r = subprocess.run(["aubio", "tempo", path], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.findall(r"([\d.]+) bpm", r.stdout)
    return float(m[-1]) if m else None


def verdict(got, want):
    if not isinstance(got, (int, float)):
        return "none"
    if abs(got - want) <= 0.04 * want:
        return "acc1"
    for f in (2.0, 0.5, 3.0, 1 / 3.0):
        if abs(got - want * f) <= 0.04 * want * f:
            return "octave"
    return "wrong"


def tempo_corpus():
    rates = [44100, 48000, 22050, 96000, 8000]
    files = []
    for i, bpm in enumerate((60, 75, 90, 105, 128, 140, 174, 200)):
        files.append(("clicks", bpm, rates[i % 5], "wav", {}))
    for i, bpm in enumerate((60, 72, 84, 96, 110, 128, 140, 150, 160, 174, 186, 200)):
        files.append(("drums", bpm, rates[(i + 1) % 5], ("wav", "flac", "ogg")[i % 3], {}))
    files.append(("drums", 128, 48000, "flac", {}))  # issue #12: the 48 kHz FLAC loop that read 63.9
    files.append(("drums", 174, 44100, "ogg", {}))   # issue #12: the Ogg loop that read 43.5
    for i, (bpm, key) in enumerate(((70, "A"), (100, "F"), (124, "D#"), (128, "G"), (135, "C#"), (170, "E"))):
        files.append(("mixed", bpm, rates[i % 4], ("wav", "flac")[i % 2], {"key": key}))
    rows = []
    for kind, bpm, sr, ext, extra in files:
        name = "%s%d_%d_%d" % (kind, bpm, sr, len(rows))
        path = gen(kind, name + ".wav", bpm=bpm, sr=sr, dur=10, ch=2, **extra)
        if ext != "wav":
            path = convert(path, ext)
        rows.append((kind, bpm, sr, ext, path))
    if LONG:
        path = gen("drums", "long128.wav", bpm=128, dur=60, repeat=10, ch=2)
        rows.append(("drums (10 min)", 128, 44100, "wav", path))
    table = {}
    for kind, bpm, sr, ext, path in rows:
        r = analyze(path, "tempo,onsets")
        got = r.get("tempo_bpm")
        a = aubio_tempo(path)
        v, va = verdict(got, bpm), verdict(a, bpm)
        key = kind.split()[0]
        t = table.setdefault(key, {"n": 0, "acc1": 0, "octave": 0, "aubio_acc1": 0, "aubio_octave": 0})
        t["n"] += 1
        t["acc1"] += v == "acc1"
        t["octave"] += v == "octave"
        t["aubio_acc1"] += va == "acc1"
        t["aubio_octave"] += va == "octave"
        cands = r.get("tempo_candidates") or []
        beats = r.get("beat_times_s") or []
        gaps = [b - a_ for a_, b in zip(beats, beats[1:])]
        gaps.sort()
        med = gaps[len(gaps) // 2] if gaps else None
        desc = "%s %d BPM %d Hz %s: %s (aubio %s), candidates %s" % (
            kind, bpm, sr, ext, got, a, [(c["bpm"], c["score"]) for c in cands])
        if v != "acc1":
            not_ok(desc, "tempo %r is %s" % (got, v))
        elif not cands or cands[0]["bpm"] != got or not 0 <= r.get("tempo_confidence", -1) <= 1:
            not_ok(desc, "the tempo does not lead its candidates")
        elif med is None or abs(med - 60.0 / bpm) > 0.04 * 60.0 / bpm:
            not_ok(desc, "median beat spacing %r, want %.3f" % (med, 60.0 / bpm))
        else:
            ok(desc + ", beats every %.3f s" % med)
    print("# tempo accuracy (Acc1: within 4%; octave: 2x, 1/2x, 3x or 1/3x), hopper vs aubio tempo, same files:")
    print("# %-8s %5s %12s %12s %12s %12s" % ("set", "files", "hopper Acc1", "hopper oct", "aubio Acc1", "aubio oct"))
    for k, t in table.items():
        print("# %-8s %5d %12.2f %12d %12.2f %12d" % (k, t["n"], t["acc1"] / t["n"], t["octave"],
                                                      t["aubio_acc1"] / t["n"], t["aubio_octave"]))


CAMELOT_MAJOR = {"C": "8B", "G": "9B", "D": "10B", "A": "11B", "E": "12B", "B": "1B", "F#": "2B", "C#": "3B",
                 "G#": "4B", "D#": "5B", "A#": "6B", "F": "7B"}
FLAT = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}
REL_MINOR = {"C": "A", "G": "E", "D": "B", "A": "F#", "E": "C#", "B": "G#", "F#": "D#", "C#": "A#", "G#": "F",
             "D#": "C", "A#": "G", "F": "D"}


def key_corpus():
    right = 0
    n = 0
    rates = [44100, 48000, 22050, 96000]
    for i, root in enumerate(("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")):
        for mode in ("major", "minor"):
            n += 1
            path = gen("chords", "key_%s_%s.wav" % (root, mode), key=root, mode=mode, dur=4, sr=rates[i % 4])
            r = analyze(path, "key")
            want = "%s %s" % (root, mode)
            if mode == "major":
                cam = CAMELOT_MAJOR[root]
            else:
                cam = [CAMELOT_MAJOR[k][:-1] + "A" for k, m in REL_MINOR.items() if m == root][0]
            names = r.get("key_notation") or {}
            flat = "%s %s" % (FLAT.get(root, root), mode)
            if r.get("key") == want and names.get("flat") == flat and names.get("camelot") == cam:
                right += 1
                ok("%s: %s / %s / %s / %s, confidence %s, then %s" % (
                    want, names["key"], names["flat"], names["camelot"], names["open_key"], r.get("key_confidence"),
                    [a["key"] for a in (r.get("key_alternatives") or [])[1:]]))
            else:
                not_ok(want, "got %r %r" % (r.get("key"), names))
    print("# key accuracy (edma profiles, I-IV-V-I / i-iv-V-i in 24 keys): %d/%d = %.2f" % (right, n, right / n))


def main():
    tempo_corpus()
    key_corpus()
    subprocess.run(["rm", "-rf", T])
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""definitions.py BUILD_DIR: every figure against its stated reference on generated signals (issue #12).
  - spectral centroid/bandwidth/rolloff/flatness, zero-crossing rate, MFCC, chroma, onset strength against the
    numpy re-implementations of librosa's definitions in librosa_ref.py, 8 kHz to 192 kHz, 1-6 channels;
  - loudness with channel maps (WAVEFORMATEXTENSIBLE masks) and default maps, 1-8 channels, against libebur128
    (bench/ebur128_ref, which sets the file's map) and ffmpeg's ebur128 (which reads the mask itself);
  - LRA 0 where libebur128 and ffmpeg say 0 (silence, a -80 dBFS sine, a 2 s file);
  - degenerate rates (1, 7, 50, 99 Hz: the crash of issue #12) and tiny files: a result, every null with a reason;
  - every container/subtype libsndfile writes (through python3-soundfile): decoded, sample peak right;
  - numbers printed at their precision (no -23.678999999999998).
Prints ok / not ok lines; exit 1 on any failure."""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen as gen_mod  # noqa: E402
import librosa_ref  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen.py")
ANALYZE = os.path.join(BUILD, "hopper-analyze")
REF = os.path.join(BUILD, "bench", "ebur128_ref")
T = tempfile.mkdtemp(prefix="hopper-audio-def.")
FAILS = 0


def ok(name):
    print("ok - audio_definitions: " + name, flush=True)


def not_ok(name, why):
    global FAILS
    FAILS += 1
    print("not ok - audio_definitions: %s: %s" % (name, why), flush=True)


def close(name, got, want, rel, ab=0.0):
    tol = abs(want) * rel + ab
    if isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - want) <= tol:
        ok("%s (%s vs %.6g)" % (name, got, want))
    else:
        not_ok(name, "got %r, want %.6g +- %.3g" % (got, want, tol))


def gen(kind, name, **p):
    path = os.path.join(T, name)
    gen_mod.generate(path, kind, **p)  # in this process: no interpreter start-up per file
    return path


def run(path, *args):
    r = subprocess.run([ANALYZE] + list(args) + [path], capture_output=True, text=True)
    return r


def analyze(path, *args):
    r = run(path, *args)
    if r.returncode != 0:
        return {"_error": r.stderr.strip()}
    return json.loads(r.stdout)


def ffmpeg_ebur128(path):
    r = subprocess.run(["ffmpeg", "-nostats", "-hide_banner", "-i", path, "-af", "ebur128=peak=true", "-f", "null", "-"],
                       capture_output=True, text=True)
    summary = r.stderr[r.stderr.rfind("Summary:"):]
    num = lambda label: float(re.search(label + r":\s+(-?[\d.]+|-inf)", summary).group(1))
    return {"I": num("I"), "LRA": num("LRA")}


def librosa_checks():
    cases = [("sine", dict(f=1000, db=-6, sr=44100, dur=3)),
             ("twotone", dict(f=500, f2=4000, db=-6, sr=48000, dur=3, ch=2)),
             ("noise", dict(db=-20, sr=22050, dur=3)),
             ("padsine", dict(lead=1.0, tail=0.5, f=440, db=-12, sr=44100, dur=1, bits="f")),
             ("drums", dict(bpm=120, sr=44100, dur=4, ch=2)),
             ("chords", dict(key="A", mode="minor", sr=96000, dur=4)),
             ("sine", dict(f=300, db=-10, sr=8000, dur=3)),
             ("noise", dict(db=-25, sr=192000, dur=1, bits="f")),
             ("sine", dict(f=997, db=-20, sr=44100, dur=2, ch=6))]
    for i, (kind, p) in enumerate(cases):
        name = "%s_%d_%dch_%d" % (kind, p["sr"], p.get("ch", 1), i)
        path = gen(kind, name + ".wav", **p)
        x, sr = soundfile.read(path, dtype="float32", always_2d=True)
        ref = librosa_ref.all_features(x.astype(np.float64), sr)
        r = analyze(path)
        if "_error" in r:
            not_ok(name, r["_error"])
            continue
        if r["spectral_frames"]["frames"] != ref["frames"]:
            not_ok(name + " frame count", "%r vs librosa %d" % (r["spectral_frames"], ref["frames"]))
        for k in ("spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_rolloff_hz"):
            # single-precision FFT: on a float file's noiseless tone its rounding noise, weighted by (f - c)^2,
            # lifts the bandwidth by up to 1%; any real noise floor (16-bit dither) is far above it
            rel = 0.01 if k == "spectral_bandwidth_hz" and p.get("bits") == "f" else 0.002
            close("%s %s = librosa.feature.%s mean" % (name, k, k[:-3]), r[k], ref[k], rel, 0.1)
        close(name + " spectral_flatness = librosa mean", r["spectral_flatness"], ref["spectral_flatness"], 0.01,
              2e-4)
        close(name + " zero_crossing_rate = librosa per channel, averaged", r["zero_crossing_rate"],
              ref["zero_crossing_rate"], 0.0005, 1e-6)
        bad = [k for k in range(13) if abs(r["mfcc_mean"][k] - ref["mfcc_mean"][k]) > 0.05 + 0.002 * abs(ref["mfcc_mean"][k])
               or abs(r["mfcc_std"][k] - ref["mfcc_std"][k]) > 0.05 + 0.005 * abs(ref["mfcc_std"][k])]
        if not bad:
            ok("%s mfcc_mean/std (13) = librosa.feature.mfcc (c0 %s vs %.3f)" % (name, r["mfcc_mean"][0], ref["mfcc_mean"][0]))
        else:
            not_ok(name + " mfcc", "coefficients %s: %s vs %s" % (bad, [r["mfcc_mean"][k] for k in bad],
                                                                  [round(ref["mfcc_mean"][k], 3) for k in bad]))
        cd = max(abs(a - b) for a, b in zip(r["chroma_mean"], ref["chroma_mean"]))
        if cd <= 0.003:
            ok("%s chroma_mean = librosa chroma_stft(tuning=0) mean (max diff %.4f)" % (name, cd))
        else:
            not_ok(name + " chroma_mean", "max diff %.4f: %s vs %s" % (cd, r["chroma_mean"],
                                                                   [round(v, 3) for v in ref["chroma_mean"]]))
        close(name + " onset_strength.mean = librosa onset_strength mean", r["onset_strength"]["mean"],
              ref["onset_strength_mean"], 0.01, 0.002)
        close(name + " onset_strength.max", r["onset_strength"]["max"], ref["onset_strength_max"], 0.01, 0.002)


def contrast_checks():
    """spectral_contrast_db against librosa_ref.contrast (librosa.feature.spectral_contrast line for line, top_db
    over the whole file) at 16-192 kHz. Signals carry a noise floor: on a noiseless tone the upper bands' valleys
    are single-precision FFT rounding (see the schema). The fades go through every level down to silence, so the
    80 dB floor clamps: a running-maximum floor or none would miss by ~0.6 dB; rise=1 puts the loudest part last."""
    cases = [("fade", dict(db=-6, range=140, sr=44100, dur=3, bits="f")),
             ("fade", dict(db=-6, range=140, sr=44100, dur=3, bits="f", rise=1)),
             ("fade", dict(db=0, range=200, sr=22050, dur=2, bits="f", hold=0.1)),
             ("sine", dict(f=1000, db=-6, sr=48000, dur=2, noise=-70, ch=2)),
             ("sine", dict(f=5000, db=-6, sr=192000, dur=1, noise=-70, bits="f")),
             ("twotone", dict(f=440, f2=3000, db=-6, sr=32000, dur=2, noise=-60)),
             ("sine", dict(f=300, db=-10, sr=16000, dur=1, noise=-70)),
             ("noise", dict(db=-20, sr=96000, dur=1)),
             ("mixed", dict(bpm=128, sr=44100, dur=4)),
             ("silence", dict(sr=44100, dur=1))]
    worst = 0.0
    for i, (kind, p) in enumerate(cases):
        name = "contrast %s_%d_%d" % (kind, p["sr"], i)
        path = gen(kind, "contrast_%d.wav" % i, **p)
        x, sr = soundfile.read(path, dtype="float32", always_2d=True)
        S = librosa_ref.stft_mag(librosa_ref.mono(x.astype(np.float64)), librosa_ref.fft_size(sr))
        ref = librosa_ref.contrast(S, sr).mean(axis=1)
        got = analyze(path, "-f", "contrast").get("spectral_contrast_db")
        if not isinstance(got, list) or len(got) != 7:
            not_ok(name, "spectral_contrast_db %r" % (got,))
            continue
        d = float(np.max(np.abs(np.array(got) - ref)))
        worst = max(worst, d)
        if d <= 0.01:
            ok("%s: spectral_contrast_db = librosa spectral_contrast mean (max diff %.4f dB)" % (name, d))
        else:
            not_ok(name, "max diff %.4f dB: %s vs %s" % (d, got, np.round(ref, 3).tolist()))
    print("# spectral_contrast_db: worst difference from librosa_ref.contrast %.4f dB" % worst)
    r = analyze(gen("sine", "contrast_8k.wav", f=300, db=-10, sr=8000, dur=1, noise=-70), "-f", "contrast")
    if r.get("spectral_contrast_db", 0) is None and "Nyquist" in r.get("reasons", {}).get("spectral_contrast_db", ""):
        ok("contrast at 8 kHz: null with a reason (librosa raises: band edge above Nyquist)")
    else:
        not_ok("contrast at 8 kHz", "%r" % (r,))
    r = analyze(os.path.join(T, "contrast_0.wav"), "-f", "spectral")
    if "spectral_contrast_db" not in r and "spectral_centroid_hz" in r:
        ok("contrast is not computed or reported when args.features leaves it out")
    else:
        not_ok("contrast subset", "%r" % sorted(r))


MASKS = {1: 0x4, 2: 0x3, 3: 0x7, 4: 0x33, 5: 0x37, 6: 0x3F, 7: 0x13F, 8: 0x63F}


def loudness_checks():
    for ch in range(1, 9):
        levels = ",".join(str(-20 - 2 * c) for c in range(ch))
        for mask in (None, MASKS[ch]):
            p = dict(f=1000, db=0, chdb=levels, sr=48000, dur=4)
            if mask is not None:
                p["mask"] = hex(mask)
            name = "%dch_%s.wav" % (ch, "mask%x" % mask if mask else "nomap")
            path = gen("sine", name, **p)
            r = analyze(path, "-f", "loudness")
            e = json.loads(subprocess.run([REF, path], capture_output=True, text=True, check=True).stdout)
            src = r.get("channel_layout_source")
            close("%s integrated_lufs vs libebur128 (%s map %s)" % (name, src, r.get("channel_layout")),
                  r.get("integrated_lufs"), e["integrated_lufs"], 0, 0.01)
            if mask is not None:
                f = ffmpeg_ebur128(path)
                close("%s integrated_lufs vs ffmpeg ebur128 (reads the mask)" % name, r.get("integrated_lufs"),
                      f["I"], 0, 0.1)
    # the 5.1 LFE counts nothing: 5.1 and the same file without its LFE read the same
    a = analyze(gen("sine", "lfe_on.wav", f=60, db=0, chdb="-30,-30,-30,-6,-32,-32", sr=48000, dur=5, mask="0x3F"), "-f", "loudness")
    b = analyze(gen("sine", "lfe_off.wav", f=60, db=0, chdb="-30,-30,-30,-200,-32,-32", sr=48000, dur=5, mask="0x3F"), "-f", "loudness")
    close("5.1: a loud LFE channel does not change integrated loudness", a.get("integrated_lufs"),
          b.get("integrated_lufs"), 0, 0.001)
    for name, kind, p in (("silence8.wav", "silence", dict(dur=8)), ("quiet.wav", "sine", dict(db=-80, dur=8)),
                          ("two_s.wav", "noise", dict(db=-20, dur=2))):
        path = gen(kind, name, **p)
        r = analyze(path, "-f", "loudness")
        e = json.loads(subprocess.run([REF, path], capture_output=True, text=True, check=True).stdout)
        f = ffmpeg_ebur128(path)
        if r.get("loudness_range_lu") == 0 and e["loudness_range_lu"] == 0 and f["LRA"] == 0:
            ok("%s loudness_range_lu 0, as libebur128 and ffmpeg" % name)
        else:
            not_ok(name + " LRA", "hopper %r, libebur128 %r, ffmpeg %r" % (r.get("loudness_range_lu"),
                                                                         e["loudness_range_lu"], f["LRA"]))
    path = gen("sine", "r4000.wav", f=300, db=-12, sr=4000, dur=6)
    e = json.loads(subprocess.run([REF, path], capture_output=True, text=True, check=True).stdout)
    close("4 kHz file: integrated_lufs vs libebur128", analyze(path).get("integrated_lufs"), e["integrated_lufs"], 0, 0.01)


def degenerate_checks():
    for sr, f in ((1, 0.1), (7, 1), (50, 5), (99, 10), (100, 10), (3000, 300)):
        path = gen("sine", "rate%d.wav" % sr, sr=sr, f=f, dur=max(20, 2000.0 / sr))
        r = run(path)
        if r.returncode != 0:
            not_ok("%d Hz file analysed" % sr, "exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
            continue
        d = json.loads(r.stdout)
        nulls = [k for k, v in d.items() if v is None]
        missing = [k for k in nulls if k not in d["reasons"]]
        if not missing and "nan" not in r.stdout.lower() and isinstance(d.get("true_peak_dbtp"), float):
            ok("%d Hz file: analysed, %d nulls each with a reason (integrated_lufs: %s)" %
               (sr, len(nulls), d["reasons"].get("integrated_lufs", d.get("integrated_lufs"))))
        else:
            not_ok("%d Hz file" % sr, "nulls without reason %r" % missing)
    for frames in (1, 2, 100, 1500):
        path = gen("sine", "tiny%d.wav" % frames, dur=frames / 44100.0)
        r = run(path)
        d = json.loads(r.stdout) if r.returncode == 0 else {}
        if d.get("frames") == frames and all(k in d["reasons"] for k, v in d.items() if v is None):
            ok("a %d-frame file: analysed, nulls with reasons" % frames)
        else:
            not_ok("%d-frame file" % frames, r.stderr.strip() or r.stdout[:200])


def format_checks():
    x = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100.0)
    x = np.stack([x, x], axis=1)
    n = 0
    for fmt in sorted(soundfile.available_formats()):
        for sub in soundfile.available_subtypes(fmt):
            # SD2 keeps its header in a resource fork: libsndfile reads it by name only, never from a descriptor
            if not soundfile.check_format(fmt, sub) or fmt in ("RAW", "MPEG", "SD2") or sub in ("ALAC_16", "ALAC_20", "ALAC_24", "ALAC_32"):
                continue
            path = os.path.join(T, "fmt_%s_%s.%s" % (fmt, sub, fmt.lower()))
            try:
                soundfile.write(path, x if fmt not in ("VOC", "AVR", "SD2") else x[:, :1], 44100 if fmt != "MAT4" else 44100,
                                format=fmt, subtype=sub)
            except Exception:  # a combination this libsndfile build cannot write: not hopper's to test
                continue
            r = analyze(path, "-f", "levels")
            n += 1
            lossy = sub in ("VORBIS", "OPUS", "G721_32", "G723_24", "G723_40", "GSM610", "IMA_ADPCM", "MS_ADPCM",
                            "VOX_ADPCM", "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32", "DWVW_12", "DWVW_16",
                            "DWVW_24", "ULAW", "ALAW", "PCM_S8", "PCM_U8", "DPCM_8", "MPEG_LAYER_III")
            tol = 1.0 if lossy else 0.01
            pk = r.get("peak_dbfs")
            sox = None
            if isinstance(pk, float) and abs(pk - 20 * math.log10(0.5)) > tol:
                st = subprocess.run(["sox", path, "-n", "stats"], capture_output=True, text=True).stderr
                m = re.search(r"Pk lev dB\s+(-?[\d.]+)", st)
                sox = float(m.group(1)) if m else None
            if isinstance(pk, float) and abs(pk - 20 * math.log10(0.5)) <= tol:
                ok("%s/%s: %s, peak %s dBFS" % (fmt, sub, r["format"], pk))
            elif isinstance(pk, float) and sox is not None and abs(pk - sox) <= 0.01:
                ok("%s/%s: peak %s dBFS as sox reads it (libsndfile's writer is off, not the reader)" % (fmt, sub, pk))
            elif "_error" in r:
                not_ok("%s/%s" % (fmt, sub), r["_error"])
            else:
                not_ok("%s/%s" % (fmt, sub), "peak %r" % pk)
    if n < 20:
        not_ok("libsndfile formats", "only %d written" % n)
    # what libsndfile cannot read is refused by name (no second decoder: README says why)
    src = os.path.join(T, "src.wav")
    soundfile.write(src, x, 44100)
    for ext, args, name in (("m4a", ["-c:a", "aac"], "M4A/MP4"), ("aac", ["-c:a", "aac", "-f", "adts"], "AAC (ADTS)"),
                            ("wma", ["-c:a", "wmav2"], "ASF (WMA)")):
        path = os.path.join(T, "foreign." + ext)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", src] + args + [path], check=True)
        r = run(path)
        if r.returncode == 1 and name in r.stderr and "not supported" in r.stderr:
            ok("%s refused naming its format: %s" % (ext, r.stderr.strip()[-90:]))
        else:
            not_ok("%s refused by name" % ext, "exit %d: %s" % (r.returncode, r.stderr.strip()))


def rounding_checks():
    path = gen("mixed", "round.wav", bpm=123, dur=8, ch=2)
    r = run(path, "-w", "8")
    long_nums = re.findall(r"-?\d+\.\d{9,}", r.stdout)
    if r.returncode == 0 and not long_nums:
        ok("no figure printed with 9 or more decimals (e.g. -23.678999999999998)")
    else:
        not_ok("rounding", "found %r" % long_nums[:5])
    d = json.loads(r.stdout)
    w = d.get("waveform", {})
    x, _ = soundfile.read(path, dtype="float32", always_2d=True)
    seg = np.array_split(x[:, 0], 8)
    want_max = [float(s.max()) for s in seg]
    got = w.get("channels", [{}])[0].get("max", [])
    if len(w.get("channels", [])) == 2 and len(got) == 8 and max(abs(a - b) for a, b in zip(got, want_max)) < 1e-3:
        ok("waveform: 8 min/max pairs per channel, the bucket maxima")
    else:
        not_ok("waveform", "%r vs %r" % (got, want_max))
    s = analyze(path, "-s", "centroid,onset_strength")
    ser = s.get("series", {})
    ref = librosa_ref.all_features(x.astype(np.float64), 44100)
    if ser.get("hop_length") == 512 and len(ser.get("spectral_centroid_hz", [])) == ref["frames"] and \
            len(ser.get("onset_strength", [])) == ref["frames"]:
        ok("series: one centroid and onset strength value per frame, hop 512 stated")
    else:
        not_ok("series", "%r" % {k: (len(v) if isinstance(v, list) else v) for k, v in ser.items()})


def main():
    librosa_checks()
    contrast_checks()
    loudness_checks()
    degenerate_checks()
    format_checks()
    rounding_checks()
    subprocess.run(["rm", "-rf", T])
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

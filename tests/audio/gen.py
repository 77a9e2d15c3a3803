#!/usr/bin/python3
"""gen.py KIND OUT [key=value...]: writes a generated test signal as a WAV file (PCM 8/16/24/32-bit or 32-bit
float), for hopper's audio tests and benchmarks; nothing is downloaded. Other containers (FLAC, AIFF) are made
from these with sox. Common keys: sr (44100), ch (1), bits (16; 'f' for float), dur (seconds), db (level, dBFS),
repeat (write the signal this many times over: long files in little memory), chdb (per-channel levels in dB,
comma-separated, applied as gains relative to db: sets the channel count), mask (a WAVEFORMATEXTENSIBLE
dwChannelMask, e.g. 0x37 for 5.0: writes the extensible header so the channel map is in the file).

KINDS
  sine      f=1000 db=-6 phase=0 (radians)          a sine on every channel
  silence                                           digital silence
  padsine   lead=1.0 tail=0.5 f=440 db=-12          silence, sine, silence
  clipped   n=37 db=-6                              sine with n samples set to full scale (+1 / -1 alternately)
  dc        off=0.1 db=-20                          sine plus a constant offset
  steps     levels=-20,-30 seg=20                   1 kHz sine, one segment per level (EBU Tech 3341/3342 style)
  clicks    bpm=120 db=-6                           a 10 ms 2 kHz click per beat
  drums     bpm=120                                 kick on every beat, snare on 2 and 4, hats on eighths
  chords    key=C mode=major                        I-IV-V-I (major) or i-iv-V-i (minor), 1 s per chord, repeated
  noise     db=-20 seed=1                           white noise
  mixed     bpm=120 key=C mode=major                drums plus the chord progression (music-like material)
  twotone   f=1000 f2=3000                          two sines of equal level
  tp        db=-6.02                                sine at sr/4, phase 45 deg: samples at -3.01 dB below its true peak
  fade      db=-6 range=140 hold=0.5                white noise held hold s, falling range dB over dur, hold s silence
                                                    (rise=1: reversed, silence first, loudest last)

Any kind: noise=DB adds white noise at DB dBFS (RMS) on top (a noise floor above float32 FFT rounding).
"""
import struct
import sys
import wave

import numpy as np

NOTE = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}


def lin(db):
    return 10.0 ** (float(db) / 20.0)


def sine(sr, n, f, amp, phase=0.0):
    t = np.arange(n) / sr
    return amp * np.sin(2 * np.pi * f * t + phase)


def tone(sr, n, midi, amp):
    f = 440.0 * 2 ** ((midi - 69) / 12.0)
    env = np.minimum(1.0, np.minimum(np.arange(n), n - np.arange(n)) / (0.01 * sr))
    return amp * env * (np.sin(2 * np.pi * f * np.arange(n) / sr) + 0.3 * np.sin(4 * np.pi * f * np.arange(n) / sr))


def make(kind, p):
    sr = int(p.get("sr", 44100))
    dur = float(p.get("dur", 5))
    n = int(round(sr * dur))
    db = p.get("db", -6)
    if kind == "sine":
        return sr, sine(sr, n, float(p.get("f", 1000)), lin(db), float(p.get("phase", 0)))
    if kind == "silence":
        return sr, np.zeros(n)
    if kind == "padsine":
        lead, tail = int(round(float(p.get("lead", 1)) * sr)), int(round(float(p.get("tail", 0.5)) * sr))
        x = sine(sr, n, float(p.get("f", 440)), lin(p.get("db", -12)), np.pi / 2)
        return sr, np.concatenate([np.zeros(lead), x, np.zeros(tail)])
    if kind == "clipped":
        x = sine(sr, n, 440, lin(db))
        k = int(p.get("n", 37))
        idx = np.linspace(100, n - 100, k).astype(int)
        x[idx] = np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
        return sr, x
    if kind == "dc":
        return sr, sine(sr, n, 1000, lin(db)) + float(p.get("off", 0.1))
    if kind == "steps":
        seg = int(round(float(p.get("seg", 20)) * sr))
        parts = [sine(sr, seg, 1000, lin(l)) for l in str(p.get("levels", "-20,-30")).split(",")]
        return sr, np.concatenate(parts)
    if kind in ("clicks", "drums"):
        bpm = float(p.get("bpm", 120))
        x = np.zeros(n)
        beat = 60.0 / bpm
        rng = np.random.default_rng(7)

        def put(t, sig):
            i = int(round(t * sr))
            m = min(len(sig), n - i)
            if m > 0:
                x[i:i + m] += sig[:m]

        k = 0
        while k * beat / 2 < dur:
            t = k * beat / 2
            if kind == "clicks":
                if k % 2 == 0:
                    m = int(0.01 * sr)
                    put(t, lin(db) * np.sin(2 * np.pi * 2000 * np.arange(m) / sr) * np.exp(-np.arange(m) / (0.002 * sr)))
            else:
                m = int(0.15 * sr)
                tt = np.arange(m) / sr
                # a half-cosine fade over the last 50 ms: cut off at 150 ms, the kick (still -16 dB there) made a
                # click that librosa-style onset detection rightly counted (one extra onset every other beat)
                fade = np.minimum(1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip((tt - 0.1) / 0.05, 0, 1)))
                if k % 2 == 0:
                    f = 50 + 100 * np.exp(-tt / 0.03)
                    put(t, 0.6 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt / 0.08) * fade)
                    if (k // 2) % 2 == 1:
                        put(t, 0.3 * rng.standard_normal(m) * np.exp(-tt / 0.05) * fade)
                mh = int(0.03 * sr)
                put(t, 0.05 * rng.standard_normal(mh) * np.exp(-np.arange(mh) / (0.005 * sr)))
            k += 1
        return sr, x
    if kind == "chords":
        root = NOTE[p.get("key", "C")] + 60
        minor = p.get("mode", "major") == "minor"
        third = 3 if minor else 4
        prog = [(0, third), (5, third), (7, 4), (0, third)]  # the V is major in minor too (harmonic minor)
        seg = sr
        out = []
        for _ in range(max(1, int(dur // 4))):
            for deg, th in prog:
                r = root + deg - (12 if deg >= 7 else 0)
                c = sum(tone(sr, seg, m, 0.15) for m in (r, r + th, r + 7, r - 12))
                out.append(c)
        return sr, np.concatenate(out)
    if kind == "mixed":
        _, d = make("drums", p)
        _, c = make("chords", dict(p, dur=max(4, dur)))
        m = min(len(d), len(c))
        return sr, 0.7 * d[:m] + 0.7 * c[:m]
    if kind == "twotone":
        return sr, sine(sr, n, float(p.get("f", 1000)), lin(db) / 2) + sine(sr, n, float(p.get("f2", 3000)), lin(db) / 2)
    if kind == "noise":
        return sr, lin(db) * np.random.default_rng(int(p.get("seed", 1))).uniform(-1, 1, n) * np.sqrt(3)
    if kind == "tp":
        return sr, sine(sr, n, sr / 4.0, lin(db), np.pi / 4)
    if kind == "fade":  # white noise falling linearly in dB: every level down to db - range, then silence
        rng, hold = float(p.get("range", 140)), int(round(float(p.get("hold", 0.5)) * sr))
        env = np.concatenate([np.full(hold, lin(db)), 10.0 ** ((float(db) - rng * np.arange(n) / n) / 20.0), np.zeros(hold)])
        x = env * np.random.default_rng(int(p.get("seed", 1))).uniform(-1, 1, len(env)) * np.sqrt(3)
        return sr, x[::-1] if p.get("rise") == "1" else x
    raise SystemExit("gen.py: unknown kind " + kind)


def write_wav(path, sr, x, bits, repeat=1, mask=None):
    if bits == "f":
        data = x.astype("<f4").tobytes()
        fmt, bps = 3, 32
    else:
        b = int(bits)
        full = 2 ** (b - 1)
        q = np.clip(np.round(x * full), -full, full - 1).astype(np.int64)
        if b == 8:
            data = (q + 128).astype(np.uint8).tobytes()
        elif b == 16:
            data = q.astype("<i2").tobytes()
        elif b == 24:
            v = q.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            data = v.tobytes()
        else:
            data = q.astype("<i4").tobytes()
        fmt, bps = 1, b
    ch = x.shape[1]
    with open(path, "wb") as fh:
        ba = ch * bps // 8
        total = len(data) * repeat
        if mask is not None:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes are the format tag
            guid = struct.pack("<H", fmt) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
            fmtc = struct.pack("<HHIIHHHHI", 0xFFFE, ch, sr, sr * ba, ba, bps, 22, bps, mask) + guid
            fh.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmtc) + 8 + total) + b"WAVE")
            fh.write(b"fmt " + struct.pack("<I", len(fmtc)) + fmtc)
            fh.write(b"data" + struct.pack("<I", total))
            for _ in range(repeat):
                fh.write(data)
            return
        fh.write(b"RIFF" + struct.pack("<I", 36 + total) + b"WAVE")
        fh.write(b"fmt " + struct.pack("<IHHIIHH", 16, fmt, ch, sr, sr * ba, ba, bps))
        fh.write(b"data" + struct.pack("<I", total))
        for _ in range(repeat):  # long files without holding them in memory
            fh.write(data)


def generate(out, kind, **kw):
    """Writes KIND to out, keys as on the command line (values converted with str): the tests call this in their
    own process, which saves a Python and numpy start-up per file."""
    p = {k: str(v) for k, v in kw.items()}
    sr, x = make(kind, p)
    if "noise" in p and kind != "noise":
        x = x + lin(p["noise"]) * np.random.default_rng(7).uniform(-1, 1, len(x)) * np.sqrt(3)
    if "chdb" in p:
        gains = [lin(g) for g in p["chdb"].split(",")]
        x = np.stack([x * g for g in gains], axis=1)
    else:
        x = np.repeat(x[:, None], int(p.get("ch", 1)), axis=1)
    mask = int(p["mask"], 0) if "mask" in p else None
    write_wav(out, sr, x, p.get("bits", "16"), int(p.get("repeat", 1)), mask)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    kind, out = sys.argv[1], sys.argv[2]
    generate(out, kind, **dict(a.split("=", 1) for a in sys.argv[3:]))


if __name__ == "__main__":
    main()

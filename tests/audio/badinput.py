#!/usr/bin/python3
"""badinput.py BUILD_DIR: every bad input of issue #4 makes hopper-analyze fail promptly (under 5 s) with an error
naming the problem, never a crash or a hang; the path policy (roots, symlinks, size) refuses before opening; and
a long file is analysed in bounded memory. Prints "ok - audio_badinput: ..." / "not ok - ..." lines."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen as gen_mod  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen.py")
ANALYZE = os.path.join(BUILD, "hopper-analyze")
T = tempfile.mkdtemp(prefix="hopper-audio-bad.")
os.chmod(T, 0o755)
FAILS = 0
SAN = "build-san" in BUILD


def ok(name):
    print("ok - audio_badinput: " + name, flush=True)


def not_ok(name, why):
    global FAILS
    FAILS += 1
    print("not ok - audio_badinput: %s: %s" % (name, why), flush=True)


def gen(kind, name, **p):
    path = os.path.join(T, name)
    gen_mod.generate(path, kind, **p)  # in this process: no interpreter start-up per file
    return path


def run(args, prefix=()):
    t0 = time.monotonic()
    r = subprocess.run(list(prefix) + [ANALYZE] + args, capture_output=True, text=True, timeout=60)
    return r, time.monotonic() - t0


def expect_fail(name, args, pattern, prefix=(), status=1):
    r, dt = run(args, prefix)
    err = r.stderr.strip()
    if r.returncode == status and re.search(pattern, err, re.I) and dt < 5 and r.stdout == "" and "Sanitizer" not in err:
        ok("%s: fails in %.2f s: %s" % (name, dt, err[:150]))
    else:
        not_ok(name, "status %d after %.2f s, stderr %r (want /%s/)" % (r.returncode, dt, err[:300], pattern))


def write(name, data, mode=0o644):
    path = os.path.join(T, name)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)
    return path


def main():
    good = gen("sine", "good.wav", dur=2)
    with open(good, "rb") as fh:
        wav = fh.read()
    expect_fail("empty file", [write("empty.wav", b"")], r"libsndfile: .*(empty|malformed|not recogni|format)")
    expect_fail("truncated header", [write("trunc.wav", wav[:30])], r"libsndfile: ")
    expect_fail("random bytes named .wav", [write("random.wav", os.urandom(65536))], r"libsndfile: ")
    expect_fail("a text file", [write("notes.wav", b"these are not the samples you are looking for\n" * 50)],
                r"libsndfile: ")
    os.mkdir(os.path.join(T, "adir.wav"))
    expect_fail("a directory", [os.path.join(T, "adir.wav")], r"not a regular file")
    expect_fail("a missing file", [os.path.join(T, "missing.wav")], r"No such file")
    noperm = write("noperm.wav", wav, 0o000)
    expect_fail("no permission (run as nobody)", [noperm], r"Permission denied",
                prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    # a data chunk declaring 100x the bytes present: libsndfile trusts the file length, so the declared length
    # is checked against what decodes
    big = bytearray(wav)
    i = big.find(b"data")
    big[i + 4:i + 8] = (len(wav) * 100).to_bytes(4, "little")
    expect_fail("header declaring 100x the data present", [write("liar.wav", bytes(big))],
                r"truncated: the header declares 17644400 bytes of data, the file holds 176400")
    zero = bytearray(wav[:i + 8])
    zero[i + 4:i + 8] = (0).to_bytes(4, "little")
    zero[4:8] = (len(zero) - 8).to_bytes(4, "little")
    expect_fail("zero frames", [write("zero.wav", bytes(zero))], r"no audio frames|libsndfile")
    # a file that changes while read: stop the analyser at its first progress line, append, let it go on
    changing = gen("sine", "changing.wav", dur=30)
    p = subprocess.Popen([ANALYZE, "--progress", changing], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stderr.readline()
    os.kill(p.pid, signal.SIGSTOP)
    with open(changing, "ab") as fh:
        fh.write(b"\0" * 4096)
    os.kill(p.pid, signal.SIGCONT)
    out, err = p.communicate(timeout=60)
    if p.returncode == 1 and "changed while it was being read" in err:
        ok("a file that changes while read: " + err.strip().splitlines()[-1][:150])
    else:
        not_ok("a file that changes while read", "status %d %r" % (p.returncode, err[-300:]))

    # a float file holding NaN, +inf, -inf and 3e30: analysed, the three non-finite samples counted, no NaN out
    import struct
    data = bytearray()
    for i in range(44100):
        v = {100: float("nan"), 200: float("inf"), 300: float("-inf"), 400: 3e30}.get(i, 0.5 * __import__("math").sin(i / 10.0))
        data += struct.pack("<f", v)
    hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, 44100, 176400, 4, 32)
    r, dt = run([write("nan.wav", hdr + b"data" + struct.pack("<I", len(data)) + bytes(data))])
    if r.returncode == 0 and "NaN" not in r.stdout and "Infinity" not in r.stdout and \
            json.loads(r.stdout)["non_finite_samples"] == 3:
        ok("a float file with NaN and infinities: analysed, non_finite_samples 3, no NaN in the result")
    else:
        not_ok("a float file with NaN and infinities", "status %d %r %r" % (r.returncode, r.stdout[:300], r.stderr))

    # --- path policy ---
    root = os.path.join(T, "root")
    os.mkdir(root)
    inside = os.path.join(root, "in.wav")
    os.link(good, inside)
    r, _ = run(["--roots", root, inside])
    if r.returncode == 0:
        ok("a file under the root is analysed")
    else:
        not_ok("a file under the root is analysed", r.stderr)
    expect_fail("a file outside the roots", ["--roots", root, good], r"outside the allowed audio roots")
    expect_fail("a .. path escaping the root", ["--roots", root, os.path.join(root, "..", "good.wav")],
                r"outside the allowed audio roots")
    os.symlink(good, os.path.join(root, "link.wav"))
    expect_fail("a symlink in the root pointing out of it", ["--roots", root, os.path.join(root, "link.wav")],
                r"outside the allowed audio roots")
    os.symlink(root, os.path.join(T, "rootlink"))
    r, _ = run(["--roots", os.path.join(T, "rootlink"), inside])
    if r.returncode == 0:
        ok("a root given through a symlink still admits its files")
    else:
        not_ok("a root given through a symlink", r.stderr)
    expect_fail("a prefix-sibling of the root (root2/) is outside", ["--roots", root, write("../" + os.path.basename(T) +
                "/root2.wav", wav)], r"outside the allowed audio roots")
    expect_fail("a file over the size limit", ["--max-bytes", str(len(wav) - 1), good], r"over the limit")
    r, _ = run(["--max-bytes", str(len(wav)), good])
    if r.returncode == 0:
        ok("a file exactly at the size limit is analysed")
    else:
        not_ok("a file exactly at the size limit", r.stderr)
    expect_fail("an unknown feature name (usage error)", ["-f", "levels,colour", good], r"unknown feature", status=2)

    # --- memory: a long file is analysed in the same memory as a short one ---
    short = gen("drums", "short.wav", bpm=120, dur=30, ch=2)
    long_ = gen("drums", "long.wav", bpm=120, dur=30, ch=2, repeat=40)  # 20 minutes, 211 MB
    rss = []
    for path in (short, long_):
        # through /usr/bin/time: a child forked from this (numpy-sized) process would report the fork's RSS
        p = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", ANALYZE, path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        m = re.search(r"maxrss (\d+)", p.stderr)
        rss.append(int(m.group(1)) // 1024 if m else 1 << 20)  # MB
        if p.returncode != 0:
            not_ok("analyse " + path, p.stderr)
    os.unlink(long_)
    limit = 64 if not SAN else 512
    if rss[1] <= limit and rss[1] - rss[0] <= 4:
        ok("20-minute stereo file: max RSS %d MB (30 s file: %d MB), under %d MB and within 4 MB of the short one" %
           (rss[1], rss[0], limit))
    else:
        not_ok("20-minute file in bounded memory", "max RSS %d MB vs %d MB for 30 s" % (rss[1], rss[0]))
    subprocess.run(["rm", "-rf", T])
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

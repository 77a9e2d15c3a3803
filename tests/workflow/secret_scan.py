#!/usr/bin/python3
"""secret_scan.py REDIS_SOCK DB LOG STATUS_JSON LOGS_JSON: searches everything a workflow run left behind (every
Redis value, every SQLite cell, the daemon log, the status and logs replies; JSON decoded, nested JSON too) for
the secret in $API_TOKEN in every encoding a step may apply (raw, URL both cases, form, JSON, Basic auth, base64
and base64url at all three alignments). One check per place (tests/ctl/ctltest.py); used by the workflow secret
scenarios."""
import base64, json, os, sqlite3, sys, urllib.parse
import redis
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import check, done
s = os.environ["API_TOKEN"]
def core(v, align, alt):
    b = base64.b64encode(b"\0" * align + v.encode())
    if alt: b = b.replace(b"+", b"-").replace(b"/", b"_")
    n = len(v.encode())
    return b[(8 * align + 5) // 6:(8 * (align + n)) // 6].decode()
enc = {"raw": s, "url": urllib.parse.quote(s, safe="-._~"), "url-lower": urllib.parse.quote(s, safe="-._~").lower(),
       "form": urllib.parse.quote_plus(s, safe="-._~"), "json": json.dumps(s)[1:-1],
       "json-utf8": json.dumps(s, ensure_ascii=False)[1:-1], "basic": base64.b64encode(("u:" + s).encode()).decode()}
for a in range(3):
    enc["b64-%d" % a] = core(s, a, False)
    enc["b64url-%d" % a] = core(s, a, True)
def strings(text, depth=0):
    """the text and every string inside it when it is JSON (nested JSON decoded too)"""
    out = [text]
    if depth > 4: return out
    try: v = json.loads(text)
    except (ValueError, TypeError): return out
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str): out += strings(x, depth + 1)
        elif isinstance(x, dict): stack += list(x.keys()) + list(x.values())
        elif isinstance(x, list): stack += x
    return out
def scan(where, texts):
    found = {}
    n = 0
    for t in texts:
        for piece in strings(t):
            n += 1
            for name, e in enc.items():
                if e in piece: found.setdefault(name, piece[:120])
    check("%s: %d texts searched, no encoding of the secret (%s)" % (where, n, ", ".join(sorted(enc))), n > 0 and not found, found)
r = redis.Redis(unix_socket_path=sys.argv[1])
vals = []
for k in r.scan_iter("*"):
    t = r.type(k).decode()
    v = {"hash": lambda: list(r.hgetall(k).values()), "list": lambda: r.lrange(k, 0, -1),
         "zset": lambda: r.zrange(k, 0, -1), "set": lambda: list(r.smembers(k)), "string": lambda: [r.get(k)]}.get(t, lambda: [])()
    vals += [x.decode("utf-8", "replace") for x in v]
# a job's payload holds the definition with the template, not the value
scan("redis (events, job hash, step records, results)", vals)
db = sqlite3.connect(sys.argv[2])
cells = []
for (tab,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
    for row in db.execute("SELECT * FROM %s" % tab):
        cells += [str(c) for c in row if c is not None]
scan("sqlite (attempts, log lines, step rows)", cells)
scan("daemon log", open(sys.argv[3], encoding="utf-8", errors="replace").read().splitlines())
scan("status reply", [open(sys.argv[4]).read()])
scan("logs reply", [open(sys.argv[5]).read()])
done()

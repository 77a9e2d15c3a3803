"""webtest: the small HTTP client and reporting of the hopper-web tests (Python's standard library only)."""
import http.client
import json
import os
import sys
import time
import urllib.parse

WEB = os.environ.get("WEB", "http://127.0.0.1:8080")
NAME = os.environ.get("SCENARIO", "web")
FAILS = 0


def ok(name):
    print("ok - %s: %s" % (NAME, name), flush=True)


def not_ok(name, why):
    global FAILS
    FAILS += 1
    print("not ok - %s: %s: %s" % (NAME, name, why), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        not_ok(name, why or "condition false")
    return cond


def host_port():
    u = urllib.parse.urlparse(WEB)
    return u.hostname, u.port


def request(method, path, body=None, token=None, headers=None, raw=None, cookie=None):
    """One request on a new connection: (status, headers dict lower-cased, parsed JSON or text)."""
    h, p = host_port()
    c = http.client.HTTPConnection(h, p, timeout=60)
    hd = dict(headers or {})
    if token:
        hd["Authorization"] = "Bearer " + token
    if cookie:
        hd["Cookie"] = cookie
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hd.setdefault("Content-Type", "application/json")
    c.request(method, path, body=data, headers=hd)
    r = c.getresponse()
    text = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode(errors="replace")
    return r.status, hdrs, parsed


def err_code(res):
    b = res[2]
    return b.get("error", {}).get("code") if isinstance(b, dict) else None


def sse(path, token, headers=None, limit_s=60):
    """Reads an event stream to its end: a list of (id, event, data)."""
    h, p = host_port()
    c = http.client.HTTPConnection(h, p, timeout=limit_s)
    hd = dict(headers or {})
    hd["Authorization"] = "Bearer " + token
    c.request("GET", path, headers=hd)
    r = c.getresponse()
    if r.status != 200:
        return r.status, r.read()
    events, cur = [], {}
    deadline = time.time() + limit_s
    while time.time() < deadline:
        line = r.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if "event" in cur:
                events.append((cur.get("id"), cur["event"], json.loads(cur.get("data", "null"))))
                if cur["event"] in ("end", "error"):
                    break
            cur = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(": ")
        cur[k] = v
    c.close()
    return 200, events


def wait_state(token, job, states, limit_s=30):
    deadline = time.time() + limit_s
    st = None
    while time.time() < deadline:
        s, _, b = request("GET", "/v1/jobs/" + job, token=token)
        st = b.get("state") if s == 200 else None
        if st in states:
            return st
        time.sleep(0.1)
    return st


def done():
    sys.exit(1 if FAILS else 0)

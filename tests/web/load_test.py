"""hopper-web under load and abuse: a client that stops mid-request is closed after --conn-timeout while
others are served; a body trickled past the limit is refused; N concurrent event streams (1,000; 200 under
sanitizers) of one job all receive every event and the end, multiplexed on few control connections."""
import os
import resource
import selectors
import socket
import time

from webtest import check, done, host_port, request

ALICE = os.environ["ALICE"]
N = int(os.environ.get("STREAMS", "1000"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * N + 100)), hard))
H, P = host_port()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- slow clients ---
slow = socket.create_connection((H, P))
slow.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bear")
t0 = time.time()
s, _, b = request("GET", "/v1/ping", token=ALICE)
check("a client stalled mid-headers does not hold up others", s == 200, (s, b))
slow.settimeout(30)
try:
    closed = slow.recv(100) == b""
except (ConnectionResetError, socket.timeout) as e:
    closed = not isinstance(e, socket.timeout)
check("... and is closed by hopper-web after its timeout", closed and time.time() - t0 < 25, time.time() - t0)
slow.close()
trickle = socket.create_connection((H, P))
trickle.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() +
                b"\r\nContent-Length: 5000000\r\n\r\n")
trickle.settimeout(10)
resp = trickle.recv(200)
check("a declared body over the limit is refused before it is sent", b" 413 " in resp.split(b"\r\n")[0], resp[:60])
trickle.close()

# --- N concurrent event streams ---
s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": int(os.environ.get("SLEEP_MS", "3000"))}}, token=ALICE)
job = b["id"]
sel = selectors.DefaultSelector()
req = ("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (job, ALICE)).encode()
streams = []
for i in range(N):
    c = socket.create_connection((H, P))
    c.sendall(req)
    c.setblocking(False)
    st = {"sock": c, "buf": b"", "done": False}
    streams.append(st)
    sel.register(c, selectors.EVENT_READ, st)
peak_events_conns = 0
deadline = time.time() + 120
last_probe = 0
while time.time() < deadline and not all(x["done"] for x in streams):
    for key, _ in sel.select(timeout=0.5):
        st = key.data
        try:
            chunk = st["sock"].recv(65536)
        except BlockingIOError:
            continue
        except ConnectionError:
            chunk = b""
        st["buf"] += chunk
        tail = st["buf"].split(b"event: end\n", 1)
        if not chunk or (len(tail) == 2 and b"\n\n" in tail[1]):
            st["done"] = True
            sel.unregister(st["sock"])
    if time.time() - last_probe > 1:
        last_probe = time.time()
        m = request("GET", "/metrics")[2]
        v = metric(m, 'hopper_web_control_connections{kind="events"}')
        peak_events_conns = max(peak_events_conns, v or 0)
for x in streams:
    x["sock"].close()
bad = [x["buf"][-300:] for x in streams if b'"state":"succeeded"' not in x["buf"].split(b"event: end")[-1]]
if bad:
    print("# %d streams without the end, e.g." % len(bad), bad[0][-120:], "closed:", bad[0].endswith(b"0\r\n\r\n"))
ok200 = sum(1 for x in streams if x["buf"].startswith(b"HTTP/1.1 200"))
ended = sum(1 for x in streams if b"event: end" in x["buf"] and b'"state":"succeeded"' in x["buf"].split(b"event: end")[1])
counts = {x["buf"].count(b"\nid: ") for x in streams if b"event: end" in x["buf"]}
check("%d concurrent streams all open with 200" % N, ok200 == N, ok200)
check("... all end with the job's succeeded view", ended == N, ended)
check("... each received the same, complete series of events", len(counts) == 1 and min(counts) > 3, counts)
check("... multiplexed on at most N/16 + 2 control connections (%d seen)" % peak_events_conns,
      0 < peak_events_conns <= N // 16 + 2, peak_events_conns)
time.sleep(1)
m = request("GET", "/metrics")[2]
check("the streams are all released afterwards", metric(m, "hopper_web_event_streams") == 0,
      metric(m, "hopper_web_event_streams"))
s, _, b = request("GET", "/v1/ping", token=ALICE)
check("hopper-web still serves after the load", s == 200)
done()

"""The HTTP API end to end against a live hopper-web + hopperd: every /v1 endpoint, its errors and status
codes, owner and scope rules, bodies over the limit, event streams with resume, the route table against the
OpenAPI document."""
import json
import re
import os
import socket
import subprocess
import time

from webtest import check, done, err_code, request, sse, wait_state, host_port

ADMIN, ALICE, BOB, READER = (os.environ[k] for k in ("ADMIN", "ALICE", "BOB", "READER"))
ROOT = os.environ["HOPPER_ROOT"]

# --- ping, whoami, authentication ---
s, h, b = request("GET", "/v1/ping", token=ALICE)
check("GET /v1/ping answers pong", s == 200 and b.get("pong") is True, (s, b))
check("... with a strict CSP and no-store", "script-src 'self'" in h.get("content-security-policy", "")
      and h.get("cache-control") == "no-store", h)
s, _, b = request("GET", "/v1/whoami", token=ALICE)
check("whoami names the token's owner and scopes", s == 200 and b["owner"] == "alice" and "submit" in b["scopes"], b)
s, h, b = request("GET", "/v1/ping")
check("no credential: 401 unauthenticated with WWW-Authenticate", s == 401 and err_code((s, h, b)) == "unauthenticated"
      and "Bearer" in h.get("www-authenticate", ""), (s, b))
s, _, b = request("GET", "/v1/ping", token="hop_0123456789ab_" + "A" * 43)
check("a wrong token: 401 auth_failed", s == 401 and b["error"]["code"] == "auth_failed", (s, b))
s, _, b = request("GET", "/v1/ping", token="not-a-token")
check("a malformed token: 401 without asking the daemon", s == 401, (s, b))
s, _, b = request("GET", "/v1/ping", headers={"Authorization": "Basic abc"})
check("a non-bearer Authorization: 401", s == 401, (s, b))

# --- submit: one, batch, validation ---
s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, token=ALICE)
check("POST /v1/jobs with a job object submits it", s == 200 and b.get("state") == "queued" and b.get("id"), (s, b))
one = b.get("id")
s, _, b = request("POST", "/v1/jobs", [{"type": "noop"}, {"type": "noop", "queue": "other"}], token=ALICE)
check("POST /v1/jobs with an array submits a batch", s == 200 and len(b.get("ids", [])) == 2, (s, b))
s, _, b = request("POST", "/v1/jobs", {"jobs": [{"type": "noop"}, {"type": "bogus!"}]}, token=ALICE)
check("a batch with one bad job: 400 bad_request naming it", s == 400 and "jobs[1]" in b["error"]["message"], (s, b))
s, _, b = request("POST", "/v1/jobs", {"type": "noop", "max_attempts": "three"}, token=ALICE)
check("a job with a field of the wrong type: 400", s == 400, (s, b))
s, _, b = request("POST", "/v1/jobs", raw=b'{"job": {"type": "noop"}, "job": {}}', token=ALICE,
                  headers={"Content-Type": "application/json"})
check("duplicate keys refused: 400", s == 400, (s, b))
s, _, b = request("POST", "/v1/jobs", raw=b'{"type": ', token=ALICE)
check("a body that is not JSON: 400 saying so", s == 400 and "not JSON" in b["error"]["message"], (s, b))
s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, token=READER)
check("a read-only token cannot submit: 403 forbidden", s == 403 and b["error"]["code"] == "forbidden", (s, b))
s, _, b = request("POST", "/v1/jobs", {"type": "noop", "id": one}, token=ALICE)
check("an id that exists: 409 conflict", s == 409, (s, b))
s, _, b = request("POST", "/v1/jobs", {"type": "noop", "idempotency_key": "k1"}, token=ALICE)
s2, _, b2 = request("POST", "/v1/jobs", {"type": "noop", "idempotency_key": "k1"}, token=ALICE)
check("a repeated idempotency key returns the same run", s2 == 200 and b2.get("id") == b.get("id")
      and b2.get("duplicate") is True, (b, b2))

# --- status, owners, list ---
check("the job runs to succeeded", wait_state(ALICE, one, ("succeeded",)) == "succeeded")
s, _, b = request("GET", "/v1/jobs/" + one, token=ALICE)
check("GET /v1/jobs/ID: the job view", s == 200 and b["id"] == one and b["owner"] == "alice", (s, b))
s, _, b = request("GET", "/v1/jobs/" + one, token=BOB)
check("another owner's job: 404 not_found, like a missing one", s == 404 and b["error"]["code"] == "not_found", (s, b))
# Job ids are per owner (schema/control-protocol.md): admin names alice's job by its stored id.
import hashlib
s, _, b = request("GET", "/v1/jobs/_%s:%s" % (hashlib.sha256(b"alice").hexdigest()[:24], one), token=ADMIN)
check("admin sees every job (by its stored id)", s == 200 and b.get("owner") == "alice", (s, b))
s, _, b = request("GET", "/v1/jobs/nope", token=ALICE)
check("a missing job: 404", s == 404, (s, b))
s, _, b = request("GET", "/v1/jobs?limit=2", token=ALICE)
check("GET /v1/jobs?limit=2: a page of 2 with a cursor", s == 200 and len(b["jobs"]) == 2 and b["cursor"], (s, b))
s2, _, b2 = request("GET", "/v1/jobs?limit=2&cursor=" + b["cursor"], token=ALICE)
check("... the next page holds other jobs", s2 == 200 and not {j["id"] for j in b["jobs"]} & {j["id"] for j in b2["jobs"]},
      (b, b2))
s, _, b = request("GET", "/v1/jobs?queue=other", token=ALICE)
check("filter by queue", s == 200 and b["jobs"] and all(j["queue"] == "other" for j in b["jobs"]), (s, b))
s, _, b = request("GET", "/v1/jobs", token=BOB)
check("bob's list shows none of alice's jobs", s == 200 and all(j["owner"] == "bob" for j in b["jobs"]), (s, b))
s, _, b = request("GET", "/v1/jobs?limit=abc", token=ALICE)
check("a limit that is not a number: 400", s == 400, (s, b))
s, _, b = request("GET", "/v1/jobs?colour=red", token=ALICE)
check("an unknown query parameter: 400", s == 400 and "colour" in b["error"]["message"], (s, b))
s, _, b = request("DELETE", "/v1/jobs", token=ALICE)
check("a method the path does not take: 405", s == 405, (s, b))
s, _, b = request("GET", "/v1/nothing", token=ALICE)
check("an unknown API path: 404", s == 404, (s, b))

# --- cancel, retry, dead ---
s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": 20000}}, token=ALICE)
long_job = b["id"]
wait_state(ALICE, long_job, ("running",))
s, _, b = request("POST", "/v1/jobs/%s/cancel" % long_job, token=READER)
check("cancel needs the cancel scope: 403", s == 403, (s, b))
s, _, b = request("POST", "/v1/jobs/%s/cancel" % long_job, token=ALICE)
check("POST /v1/jobs/ID/cancel cancels a running job", s == 200 and b["state"] == "cancelled" and b["was"] == "running",
      (s, b))
s, _, b = request("POST", "/v1/jobs/%s/cancel" % long_job, token=ALICE)
check("cancelling it again: 409 conflict", s == 409, (s, b))
s, _, b = request("POST", "/v1/jobs", {"type": "fail", "args": {"message": "boom"},
                                       "max_attempts": 1}, token=ALICE)
dead = b["id"]
check("a job failing its last attempt ends dead", wait_state(ALICE, dead, ("dead", "failed")) == "dead")
s, _, b = request("GET", "/v1/dead", token=ALICE)
check("GET /v1/dead lists it with its error", s == 200 and any(j["id"] == dead and "boom" in j.get("error", "")
                                                             for j in b["jobs"]), (s, b))
s, _, b = request("GET", "/v1/dead?state=queued", token=ALICE)
check("/v1/dead's state is fixed: 400", s == 400, (s, b))
s, _, b = request("POST", "/v1/jobs/%s/retry" % dead, token=ALICE)
check("POST /v1/jobs/ID/retry sends it back", s == 200 and b["state"] == "queued", (s, b))
s, _, b = request("POST", "/v1/jobs/%s/retry" % one, token=ALICE)
check("retrying a succeeded job: 409", s == 409, (s, b))
s, _, b = request("GET", "/v1/jobs/%s/logs" % dead, token=ALICE)
check("GET /v1/jobs/ID/logs: attempts with the error", s == 200 and b["attempts"] and "boom" in
      json.dumps(b["attempts"]), (s, b))

# --- queues, stats, pause ---
s, _, b = request("GET", "/v1/queues", token=ALICE)
check("GET /v1/queues lists the queues", s == 200 and any(q["name"] == "default" for q in b["queues"]), (s, b))
s, _, b = request("GET", "/v1/stats", token=ALICE)
check("GET /v1/stats: counters, pool, nodes", s == 200 and "counters" in b and b["nodes"], (s, b))
s, _, b = request("POST", "/v1/queues/other/pause", token=ALICE)
check("pause needs admin: 403", s == 403, (s, b))
s, _, b = request("POST", "/v1/queues/other/pause", token=ADMIN)
check("admin pauses a queue", s == 200 and b["paused"] is True, (s, b))
s, _, b = request("POST", "/v1/queues/other/resume", token=ADMIN)
check("... and resumes it", s == 200 and b["paused"] is False, (s, b))

# --- workflows ---
wf = {"name": "two", "steps": [{"id": "wait", "type": "delay", "params": {"ms": 50}},
                               {"id": "again", "type": "delay", "depends_on": ["wait"], "params": {"ms": 10}}]}
s, _, b = request("PUT", "/v1/workflows/two", {"definition": wf, "description": "two delays"}, token=ALICE)
check("PUT /v1/workflows/NAME stores it", s == 200 and b["name"] == "two" and b["owner"] == "alice", (s, b))
s, _, b = request("PUT", "/v1/workflows/two", {"definition": wf}, token=BOB)
check("bob cannot replace alice's: 409", s == 409, (s, b))
s, _, b = request("GET", "/v1/workflows", token=ALICE)
check("GET /v1/workflows lists it", s == 200 and [w["name"] for w in b["workflows"]] == ["two"], (s, b))
s, _, b = request("GET", "/v1/workflows/two", token=ALICE)
check("GET /v1/workflows/NAME shows the definition", s == 200 and b["definition"]["steps"][0]["id"] == "wait", (s, b))
s, _, b = request("GET", "/v1/workflows/two", token=BOB)
check("... another owner's: 404", s == 404, (s, b))
s, _, b = request("POST", "/v1/workflows/two/run", {"input": {"x": 1}}, token=ALICE,
                  headers={"Idempotency-Key": "run-1"})
run = b.get("id")
check("POST /v1/workflows/NAME/run submits a run", s == 200 and run, (s, b))
s, _, b = request("POST", "/v1/workflows/two/run", {"input": {"x": 1}}, token=ALICE,
                  headers={"Idempotency-Key": "run-1"})
check("... the Idempotency-Key header becomes the run's key", s == 200 and b.get("id") == run and b.get("duplicate"),
      (s, b))
check("the run succeeds", wait_state(ALICE, run, ("succeeded", "failed", "dead")) == "succeeded")
s, _, b = request("GET", "/v1/jobs/%s/logs" % run, token=ALICE)
check("its logs carry the step table", s == 200 and [x["step"] for x in b.get("steps", [])] == ["wait", "again"], (s, b))
s, _, b = request("PUT", "/v1/workflows/off", {"definition": dict(wf, name="off"), "active": False}, token=ALICE)
s, _, b = request("POST", "/v1/workflows/off/run", token=ALICE)
check("running an inactive workflow: 409", s == 409, (s, b))
s, _, b = request("DELETE", "/v1/workflows/off", token=ALICE)
check("DELETE /v1/workflows/NAME removes it", s == 200 and b["removed"] is True, (s, b))
s, _, b = request("DELETE", "/v1/workflows/off", token=ALICE)
check("... again: 404", s == 404, (s, b))

# --- tokens ---
s, _, b = request("POST", "/v1/tokens", {"name": "temp", "scopes": ["read"]}, token=ALICE)
check("token create needs admin: 403", s == 403, (s, b))
s, _, b = request("POST", "/v1/tokens", {"name": "temp", "scopes": ["read"]}, token=ADMIN)
temp = b.get("token", "")
check("POST /v1/tokens makes one, its secret shown once", s == 200 and temp.startswith("hop_"), (s, b))
s, _, b = request("GET", "/v1/tokens", token=ADMIN)
check("GET /v1/tokens lists it without secrets", s == 200 and any(t["name"] == "temp" for t in b["tokens"])
      and temp not in json.dumps(b), (s, b))
check("the new token works", request("GET", "/v1/ping", token=temp)[0] == 200)
s, _, b = request("DELETE", "/v1/tokens/temp", token=ADMIN)
check("DELETE /v1/tokens/NAME revokes it", s == 200 and b["name"] == "temp", (s, b))
check("the revoked token is refused at once (its pooled connection was cut)",
      request("GET", "/v1/ping", token=temp)[0] == 401)

# --- celery.send, HEAD ---
s, _, b = request("POST", "/v1/celery/send", {"task": "proj.add", "args": [1, 2]}, token=ALICE)
check("POST /v1/celery/send publishes a task in Celery's format", s == 200 and b.get("task_id") and
      b.get("queue") == "celery", (s, b))
s, _, b = request("POST", "/v1/celery/send", {"task": "proj.add", "countdown_s": 5, "eta": 2000000000}, token=ALICE)
check("... with both countdown_s and eta: 400 (the catalogue's rule)", s == 400, (s, b))
s, _, b = request("POST", "/v1/celery/send", {"task": "proj.add"}, token=READER)
check("... needs the submit scope: 403", s == 403, (s, b))
s, h, b = request("HEAD", "/v1/ping", token=ALICE)
check("HEAD of a GET route answers 200 without a body", s == 200 and b is None, (s, b))

# --- bodies over the limit ---
big = b'{"type":"noop","args":{"x":"' + b"a" * (300 * 1024) + b'"}}'
s, _, b = request("POST", "/v1/jobs", raw=big, token=ALICE, headers={"Content-Type": "application/json"})
check("a body over --body-max (Content-Length): 413", s == 413 and b["error"]["code"] == "too_large", (s, b))
h, p = host_port()
sock = socket.create_connection((h, p))
sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() +
             b"\r\nTransfer-Encoding: chunked\r\n\r\n")
for _ in range(40):
    sock.sendall(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
sock.sendall(b"0\r\n\r\n")
resp = sock.recv(4096)
sock.close()
check("a chunked body that passes the limit: 413", b" 413 " in resp.split(b"\r\n")[0], resp[:80])

# --- event streams ---
s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": 600}}, token=ALICE)
ev_job = b["id"]
st, events = sse("/v1/jobs/%s/events" % ev_job, ALICE)
check("GET /v1/jobs/ID/events streams events", st == 200 and len(events) > 3, (st, events[:3]))
kinds = [e[1] for e in events]
check("... ending with one end event carrying the job view", kinds[-1] == "end" and events[-1][2]["state"] == "succeeded"
      and kinds.count("end") == 1, kinds[-3:])
ids = [e[0] for e in events if e[0]]
check("... each with its own id <at_ms>-<hash>, unique", len(ids) == len(events) - 1 and len(set(ids)) == len(ids)
      and all(re.match(r"^[0-9]+-[0-9a-f]{8}$", i) for i in ids), ids[:10])
progress = [e[2]["progress"] for e in events if e[1] == "progress"]
check("... with progress that never goes down", progress and progress == sorted(progress), progress)
st, again = sse("/v1/jobs/%s/events" % ev_job, ALICE, headers={"Last-Event-ID": ids[2]})
check("Last-Event-ID of the 3rd event resumes after it", st == 200 and again and again[0][0] == ids[3]
      and [e[2] for e in again[:-1]] == [e[2] for e in events[3:-1]], again[:2])
st, again = sse("/v1/jobs/%s/events?last_event_id=%s" % (ev_job, ids[-1]), ALICE)
check("... a resume after the last event gets just the end", st == 200 and [e[1] for e in again] == ["end"], again)
st, body = sse("/v1/jobs/%s/events" % ev_job, BOB)
check("another owner's stream: 404 before any event", st == 404, st)

# --- the OpenAPI document matches the route table ---
routes = json.loads(subprocess.check_output([os.environ["HOPPER_WEB"], "--routes"]))
doc = json.load(open(os.path.join(ROOT, "schema/http-api.openapi.json")))
check("the OpenAPI document is 3.1", doc.get("openapi") == "3.1.0")
missing = [(r["method"], r["path"]) for r in routes if r["method"].lower() not in doc["paths"].get(r["path"], {})]
check("every route is in the OpenAPI document", not missing, missing)
table = {(r["method"].lower(), r["path"]) for r in routes}
extra = [(m, p) for p, ops in doc["paths"].items() if p.startswith("/v1/") for m in ops if (m, p) not in table]
check("every /v1 operation of the document is a route", not extra, extra)
mism = [(r["path"], r["op"]) for r in routes if r["op"] and
        doc["paths"][r["path"]][r["method"].lower()].get("x-hopper-op") != r["op"]]
check("each documented operation names the route's op", not mism, mism)
with open(os.path.join(os.environ["T"], "routes.json"), "w") as f:
    json.dump(routes, f)
regen = subprocess.check_output(["/usr/bin/python3", os.path.join(ROOT, "tools/gen-openapi.py"),
                                 os.path.join(os.environ["T"], "routes.json")])
check("the committed document is what tools/gen-openapi.py makes from the routes now", json.loads(regen) == doc)
for path, ops in doc["paths"].items():
    for m, o in ops.items():
        for code, r in o["responses"].items():
            for ct in r.get("content", {}).values():
                ref = ct["schema"].get("$ref", "")
                if ref.startswith("control/"):
                    f = os.path.join(ROOT, "schema", ref.split("#")[0])
                    if not os.path.exists(f):
                        check("schema %s exists" % ref, False)
done()

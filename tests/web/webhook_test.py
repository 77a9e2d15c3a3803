"""Webhook ingress end to end: hopperctl workflow webhook prints the URL; POST /webhook/TOKEN with JSON, form
and raw bodies answers 202 {job_id, workflow, status}; unknown, rotated and revoked tokens 404; an inactive
workflow 409; the size cap 413; the per-webhook rate limit 429; GitHub and Stripe signatures (valid, wrong,
missing, replayed); Idempotency-Key. Writes the ids the shell checks further into $T/hook.*."""
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.parse

from webtest import check, done, request, wait_state

ALICE = os.environ["ALICE"]
T = os.environ["T"]
CTL = os.environ["HOPPERCTL_CMD"].split()
WEB = os.environ["WEB"]


def hopperctl(*args, stdin=None):
    env = dict(os.environ, HOPPER_TOKEN=ALICE, HOPPER_WEB_URL=WEB)
    p = subprocess.run(CTL + list(args), capture_output=True, text=True, env=env, input=stdin, timeout=20)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def hook_path(url):
    return urllib.parse.urlparse(url).path


wf = {"name": "hooked", "steps": [{"id": "check", "type": "filter",
                                   "params": {"condition": "{{input.payload.amount}} > 10"}}]}
s, _, b = request("PUT", "/v1/workflows/hooked", {"definition": wf}, token=ALICE)
check("the workflow is stored", s == 200, (s, b))
rc, url, err = hopperctl("workflow", "webhook", "hooked", "--create")
check("hopperctl workflow webhook NAME --create prints the URL", rc == 0 and url.startswith(WEB + "/webhook/")
      and len(hook_path(url)) == len("/webhook/") + 43, (rc, url, err))
path = hook_path(url)
rc, again, err = hopperctl("workflow", "webhook", "hooked")
check("... without an action it shows the same URL", rc == 0 and again == url, (again, url))
rc, _, err = hopperctl("workflow", "webhook", "hooked", "--create")
check("creating a second one: conflict (exit 11)", rc == 11, (rc, err))
rc, _, err = hopperctl("workflow", "webhook", "nope", "--create")
check("a webhook for a missing workflow: not_found (exit 10)", rc == 10, (rc, err))
bob = os.environ["BOB"]
s, _, b = request("GET", "/v1/workflows/hooked/webhook", token=bob)
check("another owner cannot see it: 404", s == 404, (s, b))
s, _, b = request("GET", "/v1/workflows/hooked/webhook", token=ALICE)
check("GET /v1/workflows/NAME/webhook shows path and signature", s == 200 and b["path"] == path
      and b["signature"] == "none" and "secret" not in b, (s, b))

# --- bodies ---
hdrs = {"Content-Type": "application/json", "Authorization": "Bearer supersecretvalue42",
        "X-Api-Key": "key-0123456789", "X-Custom": "visible"}
s, _, b = request("POST", path, {"amount": 42, "who": "ada"}, headers=hdrs)
check("POST /webhook/TOKEN (JSON): 202 accepted", s == 202 and b.get("status") == "accepted"
      and b.get("workflow") == "hooked" and b.get("job_id"), (s, b))
json_job = b.get("job_id")
check("the run succeeds (the filter saw payload.amount = 42)", wait_state(ALICE, json_job, ("succeeded", "failed", "dead"))
      == "succeeded")
s, _, b = request("GET", "/v1/jobs/" + json_job, token=ALICE)
check("the run belongs to the workflow's owner", s == 200 and b.get("owner") == "alice", (s, b))
s, _, b = request("POST", path, {"amount": 3}, headers={"Content-Type": "application/json"})
small = b.get("job_id")
wait_state(ALICE, small, ("succeeded", "failed", "dead", "cancelled"))
s2, _, b2 = request("GET", "/v1/jobs/" + small, token=ALICE)
s3, _, b3 = request("GET", "/v1/jobs/" + json_job, token=ALICE)
check("a payload the filter refuses: accepted, and its run stops at the filter (the other's does not)",
      s == 202 and "filtered" in json.dumps(b2.get("result")) and "filtered" not in json.dumps(b3.get("result")),
      (b2.get("result"), b3.get("result")))
s, _, b = request("POST", path, raw=b"amount=99&who=form+user", headers={"Content-Type": "application/x-www-form-urlencoded"})
form_job = b.get("job_id")
check("a form body: 202", s == 202 and form_job, (s, b))
s, _, b = request("POST", path, raw=b"plain text body", headers={"Content-Type": "text/plain"})
raw_job = b.get("job_id")
check("a raw body: 202", s == 202 and raw_job, (s, b))
s, _, b = request("POST", path, raw=b"{not json", headers={"Content-Type": "application/json"})
check("a body that says JSON and is not: 400", s == 400, (s, b))
with open(os.path.join(T, "hook.ids"), "w") as f:
    f.write("%s %s %s\n" % (json_job, form_job, raw_job))

# --- errors ---
s, _, b = request("POST", "/webhook/" + "A" * 43, {"a": 1})
check("an unknown token: 404", s == 404, (s, b))
s, _, b = request("POST", "/webhook/short", {"a": 1})
check("a malformed token: 404", s == 404, (s, b))
s, _, b = request("GET", path)
check("GET on a webhook: 400", s == 400, (s, b))
s, _, b = request("POST", path, raw=b"x" * (70 * 1024), headers={"Content-Type": "text/plain"})
check("a body over --webhook-body-max: 413", s == 413, (s, b))
s, _, b = request("PUT", "/v1/workflows/hooked", {"definition": wf, "active": False}, token=ALICE)
s, _, b = request("POST", path, {"amount": 50}, headers={"Content-Type": "application/json"})
check("an inactive workflow: 409", s == 409 and b["error"]["code"] == "conflict", (s, b))
s, _, b = request("PUT", "/v1/workflows/hooked", {"definition": wf}, token=ALICE)

# --- Idempotency-Key ---
s1, _, b1 = request("POST", path, {"amount": 11}, headers={"Content-Type": "application/json", "Idempotency-Key": "evt-1"})
s2, _, b2 = request("POST", path, {"amount": 11}, headers={"Content-Type": "application/json", "Idempotency-Key": "evt-1"})
check("a repeated Idempotency-Key returns the same job", s1 == 202 and s2 == 202 and b1["job_id"] == b2["job_id"]
      and b2.get("duplicate") is True, (b1, b2))

# --- --secret-file: the secret off the command line (ps shows argv to everyone) ---
sf = os.path.join(T, "gh.secret")
with open(sf, "w") as f:
    f.write("gh-secret\n")
os.chmod(sf, 0o640)
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file", sf)
check("--secret-file refuses a file the group may read (exit 2), and nothing changes", rc == 2
      and "group or others" in err, (rc, out, err))
s, _, b = request("POST", path, {"amount": 9}, headers={"Content-Type": "application/json"})
check("... the webhook still has its URL and no signature", s == 202, (s, b))
fifo = os.path.join(T, "gh.fifo")
os.mkfifo(fifo, 0o600)
t0 = time.time()
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file", fifo)
check("... refuses a FIFO at once, without blocking on its open", rc == 2 and "not a regular file" in err
      and time.time() - t0 < 5, (rc, err, time.time() - t0))
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file",
                         os.path.join(T, "missing"))
check("... a missing file: exit 2", rc == 2 and "No such file" in err, (rc, err))
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file", sf,
                         "--secret", "x")
check("... --secret and --secret-file together: usage (exit 2)", rc == 2 and "not both" in err, (rc, err))
empty = os.path.join(T, "empty.secret")
open(empty, "w").close()
os.chmod(empty, 0o600)
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file", empty)
check("... an empty file: exit 2", rc == 2 and "empty" in err, (rc, err))
os.chmod(sf, 0o600)

# --- rotate, then signatures ---
rc, url2, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret-file", sf)
path2 = hook_path(url2)
check("--rotate --secret-file FILE (mode 600) prints a new URL", rc == 0 and path2 != path
      and path2.startswith("/webhook/"), (rc, url2, err))
s, _, b = request("POST", path, {"amount": 12}, headers={"Content-Type": "application/json"})
check("the old URL is dead after the rotation: 404", s == 404, (s, b))
body = json.dumps({"amount": 77}).encode()
good = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
s, _, b = request("POST", path2, raw=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": good})
check("GitHub style: a valid X-Hub-Signature-256 passes (the file's secret, its final newline dropped)", s == 202,
      (s, b))
with open(os.path.join(T, "hook.signed"), "w") as f:
    f.write("%s %s\n" % (b.get("job_id"), good))
bad = "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
s, _, b = request("POST", path2, raw=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": bad})
check("... a wrong one: 401", s == 401 and "signature" in b["error"]["message"], (s, b))
s, _, b = request("POST", path2, raw=body + b" ", headers={"Content-Type": "application/json", "X-Hub-Signature-256": good})
check("... a body changed after signing: 401", s == 401, (s, b))
s, _, b = request("POST", path2, raw=body, headers={"Content-Type": "application/json"})
check("... none at all: 401", s == 401, (s, b))
rc, url3, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "stripe", "--secret-file", "-",
                          stdin="whsec_x\n")
path3 = hook_path(url3)
check("--secret-file - reads the secret from standard input", rc == 0 and path3.startswith("/webhook/"),
      (rc, url3, err))


def stripe_sig(t, secret=b"whsec_x", payload=body):
    return "t=%d,v1=%s" % (t, hmac.new(secret, b"%d." % t + payload, hashlib.sha256).hexdigest())


now = int(time.time())
s, _, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json", "Stripe-Signature": stripe_sig(now)})
check("Stripe style: a valid Stripe-Signature passes", s == 202, (s, b))
s, _, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json",
                                                    "Stripe-Signature": stripe_sig(now - 1000)})
check("... a replay outside the tolerance: 401", s == 401 and "tolerance" in b["error"]["message"], (s, b))
s, _, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json",
                                                    "Stripe-Signature": stripe_sig(now, secret=b"other")})
check("... signed with another secret: 401", s == 401, (s, b))
s, _, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json",
                                                    "Stripe-Signature": "t=%d,v0=abc,%s" % (now, stripe_sig(now).split(",")[1])})
check("... among several schemes, the v1 one counts", s == 202, (s, b))

# --- rate limit (the scenario runs hopper-web with --webhook-burst 14) ---
codes = [request("POST", path3, raw=body, headers={"Content-Type": "application/json",
                                                   "Stripe-Signature": stripe_sig(int(time.time()))})[0] for _ in range(12)]
check("the per-webhook rate limit answers 429 past the burst", 429 in codes and codes[0] == 202, codes)
s, h, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json"})
check("... with Retry-After", s == 429 and int(h.get("retry-after", "0")) > 0, (s, h))

# --- --secret on the command line still works (documented as visible in ps) ---
rc, url4, err = hopperctl("workflow", "webhook", "hooked", "--rotate", "--signature", "github", "--secret", "gh-2")
path4 = hook_path(url4)
sig4 = "sha256=" + hmac.new(b"gh-2", body, hashlib.sha256).hexdigest()
s, _, b = request("POST", path4, raw=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig4})
check("--secret S still sets the secret", rc == 0 and s == 202, (rc, err, s, b))
rc, out, err = hopperctl("--redis-password-file", fifo, "ping")
check("--redis-password-file is read the same way (a FIFO refused, exit 2)", rc == 2 and "not a regular file" in err,
      (rc, err))
os.chmod(sf, 0o604)
rc, out, err = hopperctl("--redis-password-file", sf, "ping")
check("... and one others may read", rc == 2 and "group or others" in err, (rc, err))

# --- revoke ---
rc, out, err = hopperctl("workflow", "webhook", "hooked", "--revoke")
check("--revoke removes it", rc == 0 and "revoked" in out, (rc, out, err))
s, _, b = request("POST", path3, raw=body, headers={"Content-Type": "application/json"})
check("the revoked URL: 404 (or 429 while the bucket refills)", s in (404, 429), (s, b))
rc, _, err = hopperctl("workflow", "webhook", "hooked")
check("showing a revoked webhook: not_found (10)", rc == 10, (rc, err))
done()

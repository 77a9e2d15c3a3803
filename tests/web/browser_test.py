"""The dashboard in a real browser: headless Chromium driven by Selenium (Debian's chromium, chromium-driver,
python3-selenium). Logs in with a hopper token, watches a job's progress bar move over SSE, cancels a job
with its button, retries a dead job, runs a stored workflow, creates its webhook and triggers it with a valid
and an invalid signature; then the cookie, CSRF and CSP rules at the HTTP level. Screenshots of the main
pages go to $SHOTS (the README's come from here)."""
import hashlib
import hmac
import json
import os
import re
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from webtest import check, done, not_ok, request, wait_state

WEB, ADMIN, ALICE = os.environ["WEB"], os.environ["ADMIN"], os.environ["ALICE"]


def ns(owner, job_id):
    """The stored id of owner's job (job ids are per owner): what the admin session sees and names."""
    return "_%s:%s" % (hashlib.sha256(owner.encode()).hexdigest()[:24], job_id)
SHOTS = os.environ["SHOTS"]
os.makedirs(SHOTS, exist_ok=True)
profile = tempfile.mkdtemp(prefix="hopper-chromium-")
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for f in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1280,860", "--user-data-dir=" + profile]:
    opts.add_argument(f)
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(drv, 30)


def shot(name):
    drv.save_screenshot(os.path.join(SHOTS, name + ".png"))


def click(by, what, limit=20):
    """Clicks an element, finding it again if the page redrew it meanwhile."""
    deadline = time.time() + limit
    while True:
        try:
            WebDriverWait(drv, limit).until(EC.element_to_be_clickable((by, what))).click()
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def text_of(css):
    return drv.find_element(By.CSS_SELECTOR, css).text


def wait_text(css, pred, limit=30):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        try:
            last = text_of(css)
            if pred(last):
                return last
        except Exception:
            pass
        time.sleep(0.1)
    return last


try:
    # --- login ---
    drv.get(WEB + "/")
    wait.until(EC.presence_of_element_located((By.ID, "token")))
    check("without a session the dashboard shows the login form", drv.current_url.endswith("/login"), drv.current_url)
    drv.find_element(By.ID, "token").send_keys("hop_0123456789ab_" + "A" * 43)
    drv.find_element(By.ID, "login").click()
    check("a wrong token is refused with a message", "auth_failed" in (wait_text("#flash", bool) or ""))
    drv.find_element(By.ID, "token").clear()
    drv.find_element(By.ID, "token").send_keys(ADMIN)
    drv.find_element(By.ID, "login").click()
    wait.until(EC.presence_of_element_located((By.ID, "queues")))
    check("logging in with the admin token shows the overview", "Overview" in text_of("h1"))
    cookie = drv.get_cookie("hopper_session")
    check("the session cookie is HttpOnly and SameSite=Strict", cookie and cookie.get("httpOnly") is True
          and cookie.get("sameSite") == "Strict", cookie)
    check("the token is not readable by the page's script",
          drv.execute_script("return document.cookie") == "" and ADMIN not in drv.page_source)
    for i in range(3):
        request("POST", "/v1/jobs", {"type": "noop", "queue": "default"}, token=ALICE)
    request("POST", "/v1/jobs", {"type": "fail", "args": {"message": "disk full"}, "max_attempts": 1}, token=ALICE)
    time.sleep(1)
    drv.get(WEB + "/")
    wait.until(EC.presence_of_element_located((By.ID, "nodes")))
    check("the overview lists the node with its heartbeat", "n1" in text_of("#nodes"))
    heads = [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#queues th")]
    cells = [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#queues tr td")]
    dcol = heads.index("dead") if "dead" in heads else -1
    check("the queues table has a dead column holding the queue's 1 dead job",
          dcol >= 0 and len(cells) > dcol and cells[0] == "default" and cells[dcol] == "1", (heads, cells))
    shot("overview")

    # --- the progress bar moves ---
    s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": 5000}}, token=ALICE)
    job = b["id"]
    drv.get(WEB + "/jobs/" + ns("alice", job))
    wait.until(EC.presence_of_element_located((By.ID, "progress")))
    seen = []
    deadline = time.time() + 30
    shot_taken = False
    while time.time() < deadline:
        v = int(float(drv.find_element(By.ID, "progress").get_attribute("value") or 0))
        if not seen or seen[-1] != v:
            seen.append(v)
        if 40 <= v <= 80 and not shot_taken:
            shot("job-progress")
            shot_taken = True
        if text_of("#state") == "succeeded":
            break
        time.sleep(0.05)
    check("the job page's progress bar moved through several values over SSE", len(seen) >= 4 and seen == sorted(seen)
          and seen[-1] > seen[0], seen)
    check("... and the page shows succeeded without a reload", text_of("#state") == "succeeded")
    check("... the attempts table appears with its duration", "succeeded" in (wait_text("#attempts", lambda t: "succeeded" in t) or ""))

    # --- cancel with the button ---
    s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": 60000}}, token=ALICE)
    long_job = b["id"]
    wait_state(ALICE, long_job, ("running",))
    drv.get(WEB + "/jobs/" + ns("alice", long_job))
    click(By.ID, "cancel")
    check("the cancel button cancels the running job (the page follows)",
          wait_text("#state", lambda t: t == "cancelled") == "cancelled")
    check("... the daemon says cancelled", request("GET", "/v1/jobs/" + long_job, token=ALICE)[2]["state"] == "cancelled")

    # --- dead jobs: retry one ---
    s, _, b = request("POST", "/v1/jobs", {"type": "fail", "args": {"message": "boom"}, "max_attempts": 1}, token=ALICE)
    dead = b["id"]
    wait_state(ALICE, dead, ("dead",))
    drv.get(WEB + "/dead")
    wait.until(EC.presence_of_element_located((By.ID, "jobs")))
    shot("dead")
    click(By.CSS_SELECTOR, 'button.retry[data-job="%s"]' % ns("alice", dead))
    check("the retry button sends the dead job back", "sent back" in (wait_text("#flash", bool) or ""))
    deadline = time.time() + 20
    attempts = []
    while time.time() < deadline:
        attempts = request("GET", "/v1/jobs/%s/logs" % dead, token=ALICE)[2].get("attempts", [])
        if len(attempts) >= 2:
            break
        time.sleep(0.2)
    check("... and it ran again (a second attempt in the log)", len(attempts) >= 2, attempts)

    # --- a stored workflow: run it, give it a webhook ---
    wf = {"name": "greet", "steps": [{"id": "wait", "type": "delay", "params": {"ms": 300}},
                                     {"id": "check", "type": "filter", "depends_on": ["wait"],
                                      "params": {"condition": "{{input.n}} > 1"}}]}
    request("PUT", "/v1/workflows/greet", {"definition": wf, "description": "waits, then checks n"}, token=ADMIN)
    drv.get(WEB + "/workflows")
    wait.until(EC.presence_of_element_located((By.ID, "workflows")))
    check("the workflows page lists it", "greet" in text_of("#workflows"))
    drv.get(WEB + "/workflows/greet")
    wait.until(EC.presence_of_element_located((By.ID, "run")))
    check("the workflow page shows its definition", '"delay"' in text_of("#definition"))
    box = drv.find_element(By.ID, "input")
    box.clear()
    box.send_keys('{"n": 5}')
    click(By.ID, "hook-create")
    url = wait_text("#webhook-url", lambda t: "/webhook/" in t)
    check("the webhook button creates a webhook and shows its URL", url and re.search(r"/webhook/[A-Za-z0-9_-]{43}$", url), url)
    shot("workflow")
    click(By.ID, "run")
    wait.until(EC.url_contains("/jobs/"))
    run = drv.current_url.rsplit("/", 1)[1]
    check("the run button runs it and opens the run's page; it succeeds",
          wait_text("#state", lambda t: t == "succeeded", 30) == "succeeded")
    check("... its step table shows both steps", wait_text("#steps", lambda t: "check" in t) and "wait" in text_of("#steps"))
    shot("workflow-run")
    s, _, h = request("POST", "/v1/workflows/greet/webhook", {"action": "rotate", "signature": "github", "secret": "s3cret"},
                      token=ADMIN)
    path = h["path"]
    body = json.dumps({"n": 2}).encode()
    sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    s1, _, r1 = request("POST", path, raw=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig})
    check("the webhook with a valid signature: 202 accepted", s1 == 202 and r1["status"] == "accepted", (s1, r1))
    s2, _, r2 = request("POST", path, raw=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    check("... with an invalid one: 401", s2 == 401, (s2, r2))
    drv.get(WEB + "/jobs/" + ns("root", r1["job_id"]))  # a run for the workflow's owner
    check("the webhook's run shows in the dashboard and succeeds",
          wait_text("#state", lambda t: t == "succeeded", 30) == "succeeded")

    # --- schedules: listed with their next fire time; pause from the page ---
    request("PUT", "/v1/schedules/default/nightly", {"cron": "30 2 * * *", "tz": "Europe/Berlin",
                                                     "job": {"type": "noop"}}, token=ADMIN)
    drv.get(WEB + "/schedules")
    wait.until(EC.presence_of_element_located((By.ID, "schedules")))
    check("the schedules page lists it with its zone", "nightly" in text_of("#schedules") and "Europe/Berlin" in text_of("#schedules"))
    click(By.CSS_SELECTOR, "button.sched-pause")
    check("its pause button pauses it", "paused" in (wait_text("#schedules", lambda t: "paused" in t) or ""))
    s3, _, sh = request("GET", "/v1/schedules/default/nightly", token=ADMIN)
    check("... as the API shows", s3 == 200 and sh.get("paused") is True, (s3, sh))
    shot("schedules")

    # --- tokens (admin) ---
    drv.get(WEB + "/tokens")
    wait.until(EC.presence_of_element_located((By.ID, "tokens")))
    drv.find_element(By.ID, "new-name").send_keys("from-the-browser")
    drv.find_element(By.CSS_SELECTOR, "#token-form button").click()
    tok = wait_text("#new-token", lambda t: t.startswith("hop_"))
    check("the tokens page creates a token and shows it once", tok and tok.startswith("hop_"), tok)
    check("... the new token works", request("GET", "/v1/ping", token=tok)[0] == 200)
    shot("tokens")
    click(By.CSS_SELECTOR, 'button.revoke[data-name="from-the-browser"]')
    time.sleep(0.5)
    check("... and its revoke button revokes it", request("GET", "/v1/ping", token=tok)[0] == 401)
    drv.get(WEB + "/jobs")
    wait.until(EC.presence_of_element_located((By.ID, "jobs")))
    shot("jobs")

    # --- cookie, CSRF, CSP at the HTTP level ---
    sid = drv.get_cookie("hopper_session")["value"]
    ck = "hopper_session=" + sid
    s, _, sess = request("GET", "/session", cookie=ck)
    csrf = sess.get("csrf")
    check("GET /session gives the page its CSRF token", s == 200 and csrf and len(csrf) >= 40, (s, sess))
    check("a cookie GET needs no CSRF token", request("GET", "/v1/ping", cookie=ck)[0] == 200)
    s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, cookie=ck)
    check("a cookie POST without X-CSRF-Token: 403", s == 403 and "CSRF" in b["error"]["message"], (s, b))
    s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, cookie=ck, headers={"X-CSRF-Token": "x" * 43})
    check("... with a wrong one: 403", s == 403, (s, b))
    s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, cookie=ck,
                      headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    check("... with the right one from another Origin: 403", s == 403, (s, b))
    host = urllib.parse.urlparse(WEB).netloc
    s, _, b = request("POST", "/v1/jobs", {"type": "noop"}, cookie=ck, headers={"X-CSRF-Token": csrf, "Origin": "http://" + host})
    check("... with the right one from this origin: 200", s == 200, (s, b))
    s, _, b = request("POST", "/login", {"token": ADMIN}, headers={"Origin": "http://evil.example"})
    check("a cross-site login: 403", s == 403, (s, b))
    s, h, b = request("POST", "/login", {"token": ALICE})
    sc = h.get("set-cookie", "")
    check("login sets HttpOnly; SameSite=Strict; Path=/", s == 200 and "HttpOnly" in sc and "SameSite=Strict" in sc
          and "Path=/" in sc, sc)
    s, h, page = request("GET", "/")
    csp = h.get("content-security-policy", "")
    check("the page's CSP allows scripts only from itself, no inline, no eval",
          "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
          and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    check("index.html has no inline script", scripts and all("src=" in a and body.strip() == "" for a, body in scripts), scripts)
    check("... and no inline event handlers or style attributes", not re.search(r"\son[a-z]+=|\sstyle=", page))
    for asset in ("/app.js", "/app.css"):
        s, h, body = request("GET", asset)
        check("%s is served from the binary with the CSP" % asset, s == 200 and "script-src" in h.get("content-security-policy", ""))
    js = request("GET", "/app.js")[2]
    check("the script never parses API data as HTML", "innerHTML" not in js and "eval(" not in js and "document.write" not in js)
    logs = [e for e in drv.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    check("no CSP violation in the browser's console", not logs, logs)
    drv.get(WEB + "/")
    click(By.ID, "logout")
    wait.until(EC.presence_of_element_located((By.ID, "token")))
    check("after logout the old cookie is refused", request("GET", "/v1/ping", cookie=ck)[0] == 401)
except Exception as e:
    not_ok("the browser session ran to its end", repr(e))
    try:
        shot("failure")
    except Exception:
        pass
finally:
    drv.quit()
done()

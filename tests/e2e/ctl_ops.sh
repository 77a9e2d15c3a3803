#!/usr/bin/env bash
# ctl_ops: every control-socket op, over the unix socket and over encrypted TCP, through the tests' own
# client (tests/ctl/ctlclient.py), every request and reply checked against schema/control/*.schema.json:
# ping, submit (one and a batch), status, watch (every event in the order the job's event list holds it,
# then the terminal state; a second watcher joining mid-run gets the same), cancel (queued and running),
# retry, list (paged, filtered), logs, queues, stats, pause/resume, token create/list/revoke. Also: the
# offline bootstrap command, the socket's mode, and that the socket is removed at exit.
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" --kill-grace-s=2 || exit 1
CSOCK=$T/n1.sock
check "socket beside the database" test -S "$CSOCK"
check_eq "socket mode 0660" "$(stat -c %a "$CSOCK")" 660

# The offline bootstrap: writes a token into the shared set in Redis and the daemon's database, prints it once.
ADMIN=$("$HOPPERD" --redis-unix="$SOCK" --db-path="$T/n1.db" --worker-path="$WORKER" --token-create=admin --token-scopes=admin 2>"$T/boot.err")
check_match "hopperd --token-create prints a token" "$ADMIN" '^hop_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$'
check_eq "only its hash is stored" "$(sql n1 "SELECT count(*) FROM tokens WHERE name='admin' AND length(hash)=32 AND instr(hash, '$ADMIN')=0")" 1

export SCENARIO CSOCK PORT ADMIN HP SOCK TIME_SCALE T HOPPER_ROOT
py - <<'PY'
import os, sys, time, json, subprocess
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import *

SOCK, HP = os.environ["SOCK"], os.environ["HP"]
def rcli(*a):
    return subprocess.run(["redis-cli", "-s", SOCK, "--raw"] + list(a), capture_output=True, text=True).stdout.strip()

def events_list(jid):
    return [json.loads(x) for x in rcli("LRANGE", HP + "{default}:events:" + jid, "0", "-1").splitlines() if x]

def state(c, jid):
    r = c.call("status", job=jid)
    return r["result"]["state"] if r.get("ok") else None

for tr in ("unix", "tcp"):
    P = tr + ": "
    if tr == "unix":
        c = ctlclient.connect(sock=os.environ["CSOCK"], token=os.environ["ADMIN"])
    else:
        c = ctlclient.connect(tcp="127.0.0.1:" + os.environ["PORT"], token=os.environ["ADMIN"])
    r = call_ok(c, P + "ping", "ping")
    check(P + "ping pongs", r and r["pong"] is True and abs(r["time"] - time.time()) < 60)

    # submit one, watch it from the start and a second watcher from the middle
    r = call_ok(c, P + "submit one", "submit", job={"id": tr + "-sleep", "type": "sleep", "args": {"ms": 600}})
    check_eq(P + "submit answers the id and queued", (r or {}).get("id"), tr + "-sleep")
    w2 = ctlclient.connect(sock=os.environ["CSOCK"], token=os.environ["ADMIN"])
    frames = []
    late = []
    for m in c.stream("watch", job=tr + "-sleep"):
        frames.append(m)
        if len(frames) == 10:  # the job is mid-run: a second watcher joins now
            late_iter = w2.stream("watch", job=tr + "-sleep")
            late.append(next(late_iter))
    late += list(late_iter) if late else []
    evs = [m["event"] for m in frames if "event" in m]
    final = frames[-1]
    for m in frames[:3] + frames[-2:]:
        check_reply(P + "watch frame", "watch", m)
    check(P + "watch ends with done and the terminal state", final.get("done") is True and final["result"]["state"] == "succeeded", final)
    stored = events_list(tr + "-sleep")
    check_eq(P + "watch delivered every event, in order, exactly once", evs, stored)
    check(P + "progress events included", sum(1 for e in evs if e["event"] == "progress") >= 20, len(evs))
    pr = [e["progress"] for e in evs if e["event"] == "progress"]
    check(P + "progress never decreases", pr == sorted(pr), pr)
    late_evs = [m["event"] for m in late if "event" in m]
    check_eq(P + "a watcher joining mid-run gets the same events", late_evs, stored)
    check(P + "the late watcher ends done too", late and late[-1].get("done") is True, late[-1:] )
    w2.close()

    # a batch
    ids = [tr + "-b%d" % i for i in range(20)]
    r = call_ok(c, P + "submit a batch", "submit", jobs=[{"id": i, "type": "noop"} for i in ids])
    check_eq(P + "batch answers the ids in order", (r or {}).get("ids"), ids)
    check(P + "every batch job succeeds", wait_until(lambda: all(state(c, i) == "succeeded" for i in ids), 30))
    call_err(c, P + "a batch with one bad job", "submit", "bad_request", jobs=[{"type": "noop"}, {"type": "nope"}])
    call_err(c, P + "a batch reusing an existing id writes nothing", "submit", "conflict",
             jobs=[{"id": tr + "-new1", "type": "noop"}, {"id": ids[0], "type": "noop"}])
    check_eq(P + "... not even its first job", c.call("status", job=tr + "-new1")["error"]["code"], "not_found")
    call_err(c, P + "duplicate id inside a batch", "submit", "bad_request", jobs=[{"id": "d", "type": "noop"}, {"id": "d", "type": "noop"}])

    st = call_ok(c, P + "status", "status", job=ids[0])
    check(P + "status has the owner and state", st and st["owner"] == "admin" and st["state"] == "succeeded", st)
    call_err(c, P + "status of an unknown job", "status", "not_found", job="no-such-job")
    fr = list(c.stream("watch", job=ids[0]))
    check(P + "watch of an ended job: its stored events, then done at once",
          fr[-1].get("done") is True and fr[-1]["result"]["state"] == "succeeded" and
          [m["event"] for m in fr[:-1]] == events_list(ids[0]), fr)
    r = c.call("watch", job="no-such-job")
    check_eq(P + "watch of an unknown job: not_found", (r.get("error") or {}).get("code"), "not_found")

    # list: pages of 7 over our 20 batch jobs (filtered by type noop and state succeeded)
    seen, cursor, pages = [], None, 0
    while True:
        r = call_ok(c, P + "list page", "list", type="noop", state="succeeded", limit=7, cursor=cursor)
        if r is None:
            break
        seen += [j["id"] for j in r["jobs"]]
        pages += 1
        cursor = r["cursor"]
        if not cursor or pages > 50:
            break
    mine = [i for i in seen if i.startswith(tr + "-b")]
    check_eq(P + "list pages through every job once", sorted(mine), sorted(ids))
    check(P + "list pages hold at most limit", pages >= 3, pages)
    r = call_ok(c, P + "list filtered by state", "list", state="queued")
    check(P + "no succeeded job in a queued list", r is not None and all(j["state"] == "queued" for j in r["jobs"]), r)

    # cancel a queued job (on a queue nobody consumes): it never starts
    call_ok(c, P + "submit to an idle queue", "submit", job={"id": tr + "-idle", "type": "noop", "queue": "idleq"})
    r = call_ok(c, P + "cancel queued", "cancel", job=tr + "-idle")
    check_eq(P + "cancel says it was queued", (r or {}).get("was"), "queued")
    check_eq(P + "cancelled job left its queue", rcli("LLEN", HP + "{idleq}:queue"), "0")
    check_eq(P + "state cancelled", state(c, tr + "-idle"), "cancelled")
    call_err(c, P + "cancel twice is a conflict", "cancel", "conflict", job=tr + "-idle")

    # cancel a running job: it ends cancelled within a bounded time and the worker stops
    call_ok(c, P + "submit a long job", "submit", job={"id": tr + "-long", "type": "sleep", "args": {"ms": 60000}})
    check(P + "long job runs", wait_until(lambda: state(c, tr + "-long") == "running", 20))
    t0 = time.time()
    r = call_ok(c, P + "cancel running", "cancel", job=tr + "-long")
    check_eq(P + "cancel says it was running", (r or {}).get("was"), "running")
    check_eq(P + "state cancelled at once", state(c, tr + "-long"), "cancelled")
    def attempt_cancelled():
        out = subprocess.run(["sqlite3", os.environ["T"] + "/n1.db", "SELECT state FROM attempts WHERE job_id='%s'" % (tr + "-long")],
                             capture_output=True, text=True).stdout.strip()
        return out == "cancelled"
    check(P + "the attempt ends cancelled in the execution log within 15 s", wait_until(attempt_cancelled, 15))
    check(P + "... well before the job's 60 s", time.time() - t0 < 30, time.time() - t0)
    time.sleep(0.3)
    check_eq(P + "still cancelled after the worker stopped (not failed, not retrying)", state(c, tr + "-long"), "cancelled")

    # retry a dead job
    call_ok(c, P + "submit a failing job", "submit", job={"id": tr + "-fail", "type": "fail", "max_attempts": 1})
    check(P + "it dies", wait_until(lambda: state(c, tr + "-fail") in ("dead", "failed"), 20))
    call_err(c, P + "retry of a succeeded job is a conflict", "retry", "conflict", job=ids[0])
    r = call_ok(c, P + "retry", "retry", job=tr + "-fail")
    check_eq(P + "retry answers queued", (r or {}).get("state"), "queued")
    check(P + "the retried job runs again (a second attempt row) and dies again",
          wait_until(lambda: state(c, tr + "-fail") == "dead" and subprocess.run(["sqlite3", os.environ["T"] + "/n1.db",
              "SELECT count(*) FROM attempts WHERE job_id='%s'" % (tr + "-fail")], capture_output=True, text=True).stdout.strip() == "2", 20))
    dead = [json.loads(x) for x in rcli("HVALS", HP + "{default}:deadmsg").splitlines() if x]
    check_eq(P + "one dead-list entry, not two (retry removed the old one)", sum(1 for d in dead if d.get("id") == tr + "-fail"), 1)

    # logs
    r = call_ok(c, P + "logs", "logs", job=tr + "-sleep")
    check(P + "logs: one attempt, succeeded", r and len(r["attempts"]) == 1 and r["attempts"][0]["state"] == "succeeded", r and r["attempts"])
    check(P + "logs: progress lines in order", r and len(r["lines"]) >= 20 and [l["at"] for l in r["lines"]] == sorted(l["at"] for l in r["lines"]))
    r = call_ok(c, P + "logs limit", "logs", job=tr + "-sleep", limit=5)
    check_eq(P + "logs limit keeps the last lines", r and len(r["lines"]), 5)

    # queues, pause/resume, stats
    r = call_ok(c, P + "queues", "queues")
    q = {x["name"]: x for x in (r or {}).get("queues", [])}
    check(P + "queues lists default and idleq", "default" in q and "idleq" in q, q)
    r = call_ok(c, P + "pause", "pause", queue="default")
    check_eq(P + "pause answers paused", (r or {}).get("paused"), True)
    q = {x["name"]: x for x in c.result("queues")["queues"]}
    check_eq(P + "queues shows it paused", q["default"]["paused"], True)
    call_ok(c, P + "submit while paused", "submit", job={"id": tr + "-paused", "type": "noop"})
    time.sleep(1.5)
    check_eq(P + "a paused queue is not fetched", state(c, tr + "-paused"), "queued")
    check_eq(P + "queues counts it waiting", c.result("queues")["queues"][0]["length"] if c.result("queues")["queues"][0]["name"] == "default" else None, 1)
    q = {x["name"]: x for x in c.result("queues")["queues"]}
    check(P + "queues: the waiting job's age (oldest_age_s), none for the empty idleq",
          q["default"].get("oldest_age_s", -1) >= 0 and "oldest_age_s" not in q["idleq"], q)
    call_ok(c, P + "resume", "resume", queue="default")
    check(P + "resumed queue runs its job", wait_until(lambda: state(c, tr + "-paused") == "succeeded", 20))
    r = call_ok(c, P + "stats", "stats")
    check(P + "stats: counters and this node's heartbeat", r and r["counters"].get("succeeded", 0) >= 20 and any(n["node"] == "n1" for n in r["nodes"]), r)
    check(P + "stats: the pool", r and r["pool"]["workers"] == 2, r and r["pool"])

    # tokens
    r = call_ok(c, P + "token.create", "token.create", name="t-" + tr, scopes=["read"], owner="someone")
    check(P + "token.create shows the secret once", r and r["token"].startswith("hop_" + r["token_id"] + "_"), r)
    call_err(c, P + "token.create of an existing name", "token.create", "conflict", name="t-" + tr, scopes=["read"])
    r = call_ok(c, P + "token.list", "token.list")
    names = {t["name"]: t for t in (r or {}).get("tokens", [])}
    check(P + "token.list has it, without secret", "t-" + tr in names and "token" not in names["t-" + tr] and "hash" not in names["t-" + tr], names)
    r = call_ok(c, P + "token.revoke", "token.revoke", name="t-" + tr)
    check_eq(P + "token.revoke closes no connection (none used it)", (r or {}).get("closed"), 0)
    call_err(c, P + "token.revoke of an unknown token", "token.revoke", "not_found", name="nope")
    c.close()
done()
PY
[ "${PIPESTATUS[0]:-$?}" -eq 0 ] || not_ok "python checks" "the script exited non-zero"

finish_hopperd n1
check "the socket is removed at exit" test ! -e "$CSOCK"
end_scenario

"""Last-Event-ID resume of GET /v1/jobs/ID/events with hopperd's events_max = 10 and jobs of ~50 events: ids
are the events' own ("<at_ms>-<hash>"), the same on every stream; a resume after a recent id gives exactly
the events after it; after an id the daemon trimmed, "event: lost" (with the range that may be missing and
the job's view) and then every event still held, in order; also while the job runs, against an uninterrupted
stream of the same job."""
import http.client
import json
import os
import re
import threading
import time

from webtest import check, done, host_port, request, sse

ALICE, ADMIN = os.environ["ALICE"], os.environ["ADMIN"]
CAP = 10
IDRE = re.compile(r"^[0-9]{10,15}-[0-9a-f]{8}$")
JOBKINDS = ("state", "progress")


class Stream:
    """One event stream, read message by message."""

    def __init__(self, job, last=None, query=False, limit_s=60):
        h, p = host_port()
        self.c = http.client.HTTPConnection(h, p, timeout=limit_s)
        path = "/v1/jobs/%s/events" % job
        hd = {"Authorization": "Bearer " + ALICE}
        if last is not None and query:
            path += "?last_event_id=" + last
        elif last is not None:
            hd["Last-Event-ID"] = last
        self.c.request("GET", path, headers=hd)
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.ended = False

    def next(self):
        """The next message (id, event, data), or None at the end of the stream."""
        cur = {}
        while not self.ended:
            line = self.r.fp.readline()
            if not line:
                self.ended = True
                break
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in cur:
                    m = (cur.get("id"), cur["event"], json.loads(cur.get("data", "null")))
                    if m[1] in ("end", "error"):
                        self.ended = True
                    return m
                cur = {}
                continue
            if not line.startswith(":"):
                k, _, v = line.partition(": ")
                cur[k] = v
        return None

    def read(self, n=None):
        """Up to n job events (all when None), or to the end; the messages read."""
        out = []
        while n is None or sum(1 for m in out if m[1] in JOBKINDS) < n:
            m = self.next()
            if m is None:
                break
            out.append(m)
        return out

    def close(self):
        self.c.close()


def jobev(ms):
    return [m for m in ms if m[1] in JOBKINDS]


def submit(ms):
    s, _, b = request("POST", "/v1/jobs", {"type": "sleep", "args": {"ms": ms}, "queue": "q"}, token=ALICE)
    return b["id"]


# --- a whole job on one uninterrupted stream, opened before it ran ---
check("pause q", request("POST", "/v1/queues/q/pause", token=ADMIN)[0] == 200)
job = submit(2000)
a = Stream(job)
first = a.read(1)
check("the stream opens with the queued event", a.status == 200 and jobev(first) and
      jobev(first)[0][2]["state"] == "queued", first)
check("resume q", request("POST", "/v1/queues/q/resume", token=ADMIN)[0] == 200)
full = first + a.read()
a.close()
ev = jobev(full)
ids = [m[0] for m in ev]
check("the uninterrupted stream saw the whole job: %d events (more than events_max %d), then end" % (len(ev), CAP),
      len(ev) > 3 * CAP and full[-1][1] == "end" and full[-1][2]["state"] == "succeeded", (len(ev), full[-1:]))
check("every id is <at_ms>-<8 hex digits>", all(i and IDRE.match(i) for i in ids), ids[:5])
check("... unique", len(set(ids)) == len(ids))
check("... its time is the event's at", all(int(i.split("-")[0]) == round(m[2]["at"] * 1000) for i, m in
                                           zip(ids, ev)))
check("the end event has no id", full[-1][0] is None)
st, kept = sse("/v1/jobs/%s/events" % job, ALICE)
kept_ev = jobev(kept)
check("a fresh stream now gets the %d events the daemon kept" % CAP, st == 200 and len(kept_ev) == CAP, len(kept_ev))
check("... with the same ids as the first stream gave them (ids are stable)", [m[0] for m in kept_ev] == ids[-CAP:],
      ([m[0] for m in kept_ev[:2]], ids[-CAP:-CAP + 2]))

# --- resume after the job ended ---
st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": ids[-4]})
check("Last-Event-ID of a recent event: exactly the 3 events after it, then end, no lost",
      st == 200 and [m[0] for m in again[:-1]] == ids[-3:] and [m[2] for m in again[:-1]] == [m[2] for m in ev[-3:]]
      and again[-1][1] == "end", [m[:2] for m in again])
st, again = sse("/v1/jobs/%s/events?last_event_id=%s" % (job, ids[-4]), ALICE)
check("... the same as ?last_event_id=", [m[0] for m in again[:-1]] == ids[-3:], [m[:2] for m in again])
st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": ids[-1]})
check("after the last event: just the end", [m[1] for m in again] == ["end"], again)
st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": ids[-CAP]})
check("after the oldest event still kept: the other %d, no lost" % (CAP - 1),
      [m[0] for m in again[:-1]] == ids[-CAP + 1:], [m[:2] for m in again[:3]])

early = ids[2]
st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": early})
lost = again[0] if again else (None, None, {})
d = lost[2] or {}
check("Last-Event-ID of a trimmed event: event lost first", st == 200 and lost[1] == "lost" and lost[0] is None,
      again[:2])
check("... naming the id, reason trimmed", d.get("last_event_id") == early and d.get("reason") == "trimmed", d)
check("... and the range that may be missing: after that event's time, before the first event still kept",
      abs(d.get("missing_after", 0) - ev[2][2]["at"]) < 0.002 and abs(d.get("missing_before", 0) - ev[-CAP][2]["at"])
      < 0.002 and d.get("next_id") == ids[-CAP], d)
check("... with the job's current view", (d.get("job") or {}).get("state") == "succeeded", d.get("job"))
check("... then every event still kept, in order, then end", [m[0] for m in again[1:-1]] == ids[-CAP:] and
      again[-1][1] == "end", [m[:2] for m in again[:3]])

st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": "3"})
check("an id of another form (an old position number): lost, reason unknown_id, then all kept",
      again and again[0][1] == "lost" and again[0][2].get("reason") == "unknown_id" and
      [m[0] for m in again[1:-1]] == ids[-CAP:], [m[:2] for m in again[:2]])
st, again = sse("/v1/jobs/%s/events" % job, ALICE, headers={"Last-Event-ID": "%d-%s" % (int(ids[-1].split("-")[0]) +
                                                                                        5000, "0" * 8)})
check("an id later than every event of the job: lost (not_found) before the end, nothing skipped silently",
      [m[1] for m in again] == ["lost", "end"] and again[0][2].get("reason") == "not_found", again)

# --- resume while the job runs, against an uninterrupted stream ---
job = submit(5000)
u = Stream(job)
u_first = u.read(1)
out = {}


def uninterrupted():
    out["u"] = u_first + u.read()
    u.close()


def quick():
    """Reads 5 events, drops the connection, comes back at once with the last id."""
    s = Stream(job)
    a1 = s.read(5)
    s.close()
    s = Stream(job, last=jobev(a1)[-1][0])
    out["quick"] = (a1, s.read())
    s.close()


def slow():
    """Reads 3 events, drops the connection, comes back after more than events_max events went by."""
    s = Stream(job)
    a1 = s.read(3)
    s.close()
    time.sleep(2.5)
    s = Stream(job, last=jobev(a1)[-1][0])
    out["slow"] = (a1, s.read())
    s.close()


ts = [threading.Thread(target=f) for f in (uninterrupted, quick, slow)]
for t in ts:
    t.start()
for t in ts:
    t.join(60)
uids = [m[0] for m in jobev(out.get("u", []))]
check("the running job's uninterrupted stream ran to the end", out.get("u") and out["u"][-1][1] == "end"
      and len(uids) > 3 * CAP, len(uids))
a1, a2 = out.get("quick", ([], []))
got = [m[0] for m in jobev(a1) + jobev(a2)]
k = uids.index(got[0]) if got and got[0] in uids else -1
check("a quick reconnect with Last-Event-ID: no lost, and before + after = the uninterrupted stream exactly",
      k >= 0 and "lost" not in [m[1] for m in a2] and got == uids[k:] and a2[-1][1] == "end",
      (k, len(got), len(uids) - k))
a1, a2 = out.get("slow", ([], []))
names = [m[1] for m in a2]
check("a reconnect after more than events_max events: lost first", names[:1] == ["lost"], names[:3])
d = a2[0][2] if a2 else {}
after = [m[0] for m in jobev(a2)]
i_last = uids.index(jobev(a1)[-1][0]) if a1 and jobev(a1)[-1][0] in uids else -1
i_next = uids.index(after[0]) if after and after[0] in uids else -1
check("... and events really were missing between the two (%d)" % (i_next - i_last - 1),
      i_last >= 0 and i_next - i_last - 1 > 0, (i_last, i_next))
check("... lost names the next event it sends", d.get("next_id") == (after[0] if after else None), d)
check("... whose view is the running job's", (d.get("job") or {}).get("state") in ("running", "succeeded"), d.get("job"))
check("... then the rest of the uninterrupted stream, exactly", i_next >= 0 and after == uids[i_next:]
      and a2[-1][1] == "end", (len(after), len(uids) - i_next))
done()

"""verify: the invariants a chaos run must leave true, read back from Redis (every key) and from every
daemon's SQLite execution log once the daemons stopped. Each violation names its invariant, the job and
what was seen; report() charges them to the faults injected during the job's life (the faults x outcomes
table) and prints one ok / not ok line per invariant.
"""

import re
import sqlite3


from workload import QUEUE, TERMINAL

INVARIANTS = [
    ("ends", "every accepted message ends as a terminal job in an expected state, or a dead entry with its bytes"),
    ("no_idless_loop", "a message without an id makes exactly one job per push (README example dead after 3)"),
    ("attempts", "a dead job used exactly its max_attempts"),
    ("final", "no terminal state is overwritten (event lists and pub/sub capture)"),
    ("overlap", "never two live non-superseded attempts of one job at the same time (SQLite logs)"),
    ("rows", "one SQLite attempt row per attempt counted in Redis, none left running"),
    ("drained", "nothing left in queue, inflight or scheduled lists"),
    ("bounded", "every Redis key is declared in the layout and bounded (TTL or cap)"),
    ("indexed", "every job hash is in the jobs index"),
    ("cancel", "a cancelled running job's worker stopped (no succeeded attempt row)"),
    ("clock", "no attempt timed out that ran far less than its timeout (clock steps)"),
    ("daemons", "every daemon kept serving and exited 0 on SIGTERM, no sanitizer report"),
    ("schedule", "an @every 1s schedule made one job per fire time, no gap, each succeeded (misfire all)"),
]

TAG_RE = re.compile(rb'"tag":"(t\d+-\d+)"')


def s(b):
    return b.decode("utf-8", "surrogateescape") if isinstance(b, bytes) else b


class Facts:
    """Everything read back after the run."""

    def __init__(self, run):
        self.run = run
        L = run.layout
        r = run.redis.client(timeout=30)
        self.keys = {}  # key -> (type, ttl, length)
        for k in r.scan_iter(count=2000):
            self.keys[k] = None
        pipe = r.pipeline(transaction=False)
        ks = list(self.keys)
        for k in ks:
            pipe.type(k)
            pipe.ttl(k)
        res = pipe.execute()
        for i, k in enumerate(ks):
            self.keys[k] = (s(res[2 * i]), res[2 * i + 1])
        self.jobs = {}  # id -> {field: str}
        self.by_tag = {}
        hkeys = []
        for k, (t, _) in self.keys.items():
            jid = L.job_id_of(s(k), t)
            if jid is not None:
                hkeys.append((jid, k))
        pipe = r.pipeline(transaction=False)
        for _, k in hkeys:
            pipe.hgetall(k)
        for (jid, _), h in zip(hkeys, pipe.execute()):
            f = {s(a): b for a, b in h.items()}
            self.jobs[jid] = f
            m = TAG_RE.search(f.get("payload", b""))
            if m:
                self.by_tag.setdefault(s(m.group(1)), []).append(jid)
        self.events = {}
        pipe = r.pipeline(transaction=False)
        for jid in self.jobs:
            pipe.lrange(L.events(QUEUE, jid), 0, -1)
        for jid, ev in zip(self.jobs, pipe.execute(raise_on_error=False)):
            self.events[jid] = ev if isinstance(ev, list) else []
        self.dead = L.dead_entries(r, QUEUE)
        self.dead_payloads = {}
        for e in self.dead:
            p = e.get("payload")
            if isinstance(p, str):
                p = p.encode("utf-8", "surrogateescape")
            self.dead_payloads[p] = self.dead_payloads.get(p, 0) + 1
        self.index = {s(m) for m in r.zrange(L.jobs_index(QUEUE), 0, -1)}
        self.lens = {}
        for k in L.drained_keys([d.name for d in run.daemons], [QUEUE]):
            t = s(r.type(k))
            self.lens[k] = 0 if t == "none" else (r.zcard(k) if t == "zset" else r.llen(k))
        r.close()
        self.rows = {}  # job id -> [row dict]
        for d in run.daemons:
            for row in read_rows(d.db, d.name):
                self.rows.setdefault(row["job_id"], []).append(row)


def read_rows(path, node):
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    except sqlite3.Error:
        return []
    db.row_factory = sqlite3.Row
    cols = {c[1] for c in db.execute("PRAGMA table_info(attempts)")}
    fence = "fence" if "fence" in cols else "NULL AS fence"
    out = []
    for row in db.execute("SELECT job_id, attempt, state, node, worker_pid, started_at, finished_at, error, %s "
                          "FROM attempts" % fence):
        d = dict(row)
        d["db"] = node
        out.append(d)
    db.close()
    return out


class Verdict:
    def __init__(self, run, facts):
        self.run = run
        self.f = facts
        self.v = []  # (invariant, job id or '', detail)
        self.dropped_full = 0  # jobs whose rows a full filesystem dropped (allowed, counted by the store)
        self.killed_rows, self.killed_eg = 0, None  # --tolerate-killed-rows: F4's count and an example

    def bad(self, inv, jid, detail):
        self.v.append((inv, jid or "", detail))

    def check(self):
        self.check_schedule()
        self.check_subs()
        self.check_events()
        self.check_rows()
        self.check_keys()
        return self.v

    def job_ok(self, sub, jid, expect):
        h = self.f.jobs.get(jid)
        if h is None:
            return "no job hash"
        st = s(h.get("state", b""))
        if st not in TERMINAL:
            return "state %s (attempt %s, error %s)" % (st or "missing", s(h.get("attempt", b"?")),
                                                       s(h.get("error", b""))[:80])
        if st not in expect:
            return "ended %s, want %s (error: %s)" % (st, "/".join(sorted(expect)), s(h.get("error", b""))[:100])
        return None

    def check_subs(self):
        f = self.f
        readme = []
        for jid, h in f.jobs.items():
            if s(h.get("type", b"")) == "fail" and b'"tag"' not in h.get("payload", b"tag"):
                readme.append(jid)
        for sub in self.run.subs:
            if not sub.accepted:
                continue
            if sub.kind == "readme":
                if len(readme) != 1:
                    self.bad("no_idless_loop", "", "README example made %d job hashes, states %s" % (
                        len(readme), _hist(f.jobs[j].get("state", b"") for j in readme)))
                for j in readme[:1]:
                    why = self.job_ok(sub, j, sub.expect)
                    if why:
                        self.bad("no_idless_loop", j, "README example: " + why)
                    elif s(f.jobs[j].get("attempt", b"")) != "3":
                        self.bad("attempts", j, "README example dead after %s attempts, want 3" %
                                 s(f.jobs[j].get("attempt", b"")))
                continue
            if sub.malformed:
                if f.dead_payloads.get(sub.data, 0) < 1:
                    self.bad("ends", sub.id, "%s: no dead entry holds its %d bytes%s" % (
                        sub.kind, len(sub.data), _near_dead(f, sub)))
                if sub.id and sub.id in f.jobs and sub.kind != "malcopy-bad":
                    st = s(f.jobs[sub.id].get("state", b""))
                    if st not in TERMINAL:
                        self.bad("ends", sub.id, "%s: left a job hash in state %s" % (sub.kind, st))
                continue
            if sub.id is not None:
                why = self.job_ok(sub, sub.id, sub.expect)
                if why == "no job hash" and sub.extra == "or-dead-entry" and f.dead_payloads.get(sub.data):
                    why = None
                if why:
                    self.bad("ends", sub.id, "%s: %s" % (sub.kind, why))
                elif sub.attempts and s(f.jobs[sub.id].get("state", b"")) == "dead":
                    a = s(f.jobs[sub.id].get("attempt", b""))
                    if a != str(sub.attempts):
                        self.bad("attempts", sub.id, "%s: dead after %s attempts, want %d" % (sub.kind, a,
                                                                                        sub.attempts))
            if sub.tag is not None:
                got = f.by_tag.get(sub.tag, [])
                if sub.id is not None:
                    extra = [j for j in got if j != sub.id]
                    if extra:
                        self.bad("ends", sub.id, "%s: its message also made job(s) %s" % (sub.kind, extra[:3]))
                    continue
                inv = "no_idless_loop"
                if not (sub.copies <= len(got) <= sub.copies_max):
                    self.bad(inv, got[0] if got else "", "%s tag %s: %d push(es) made %d jobs, states %s" % (
                        sub.kind, sub.tag, sub.copies, len(got), _hist(f.jobs[j].get("state", b"") for j in got)))
                for j in got:
                    why = self.job_ok(sub, j, sub.expect)
                    if why:
                        self.bad(inv, j, "%s tag %s: %s" % (sub.kind, sub.tag, why))
                        break
                    if sub.attempts and s(f.jobs[j].get("state", b"")) == "dead" and \
                            s(f.jobs[j].get("attempt", b"")) != str(sub.attempts):
                        self.bad("attempts", j, "%s: dead after %s attempts, want %d" % (
                            sub.kind, s(f.jobs[j].get("attempt", b"")), sub.attempts))
            if sub.follow == "cancel" and sub.cancelled_ok:
                for row in self.f.rows.get(sub.id, []):
                    if row["state"] == "succeeded":
                        self.bad("cancel", sub.id, "cancelled while running, yet its attempt %s on %s ran to "
                                 "the end (succeeded): the cancel never reached it" % (row["attempt"], row["node"]))

    def check_schedule(self):
        """The chaos schedule (chaos.py SCHED): fire times from its first to its last job every 1000 ms, each
        one job (its id is the fire time, so two would be one hash: a duplicate shows as a gap-free count that
        exceeds the schedule's fires), each succeeded; the schedule's own counters agree; nothing missed."""
        run = self.run
        if not getattr(run, "sched_put", False):
            return
        pre = "sched-%s-" % run.SCHED
        fires = sorted(int(j[len(pre):]) for j in self.f.jobs if j.startswith(pre) and j[len(pre):].isdigit())
        if len(fires) < 3:
            self.bad("schedule", "", "only %d job(s) made by the schedule in %.0f s" % (
                len(fires), (run.sched_paused_at or run.now()) - run.sched_put_at))
            return
        run.out("# schedule %s: %d jobs, fire times %.1f s apart end to end" % (run.SCHED, len(fires),
                                                                          (fires[-1] - fires[0]) / 1000.0))
        gaps = [(a, b) for a, b in zip(fires, fires[1:]) if b - a != 1000]
        for a, b in gaps[:3]:
            self.bad("schedule", "", "fire times %d and %d are %d ms apart (want 1000)" % (a, b, b - a))
        for t in fires:
            jid = pre + str(t)
            why = self.job_ok(None, jid, ("succeeded",))
            if why:
                self.bad("schedule", jid, why)
        h = run.sched_hash or {}
        if h and s(h.get(b"fires", b"")) != str(len(fires)):
            self.bad("schedule", "", "the schedule counts %s fires, %d jobs exist" % (s(h.get(b"fires", b"?")),
                                                                                    len(fires)))
        if h and s(h.get(b"missed", b"0")) != "0":
            self.bad("schedule", "", "the schedule counted %s missed fires (grace 3600 s: none may miss)" %
                     s(h.get(b"missed", b"")))

    def check_events(self):
        """After a terminal state event, no other state event (but 'queued' from a retry op)."""
        retried = {sub.id for sub in self.run.subs if sub.retried}
        capt = {}
        for jid, e in self.run.captured:
            capt.setdefault(jid, []).append(e)
        for source, table in (("event list", self.f.events), ("pub/sub", capt)):
            for jid, evs in table.items():
                final = None
                for raw in evs:
                    st = _state_of(raw)
                    if st is None:
                        continue
                    if final is not None:
                        if st not in TERMINAL and jid in retried:
                            final = None  # the retry op (its 'queued' may be in a gap of the capture)
                            continue
                        self.bad("final", jid, "%s: state %s after terminal %s" % (source, st, final))
                        break
                    if st in TERMINAL:
                        final = st
                h = self.f.jobs.get(jid)
                if source == "event list" and final and h is not None and s(h.get("state", b"")) != final:
                    self.bad("final", jid, "hash says %s, its events ended %s" % (s(h.get("state", b"")), final))

    def check_rows(self):
        run, f = self.run, self.f
        unchecked = 0
        for jid, h in f.jobs.items():
            st = s(h.get("state", b""))
            if st not in TERMINAL:
                continue
            rows = [r for r in f.rows.get(jid, []) if (r["attempt"] or 0) > 0]
            try:
                n = int(s(h.get("attempt", b"0")))
            except ValueError:
                n = -1
            have = {r["attempt"] for r in rows}
            want = set(range(1, n + 1))
            try:
                end = float(s(h.get("updated_at", b"0")))
            except ValueError:
                end = None
            if have != want and st != "cancelled":
                node = s(h.get("node", b""))
                if run.during(jid, "disk_full", end):
                    # SQLITE_FULL: the store drops and counts the batch, jobs keep running (issue 10, item 9)
                    self.dropped_full += 1
                elif run.a.tolerate_killed_rows and have < want and run.during(jid, "kill9_daemon"):
                    # known gap (notes/chaos.md F4): an attempt lost with a kill -9'd daemon before its row
                    # reached the disk has no 'reaped' row yet
                    self.killed_rows += 1
                    self.killed_eg = self.killed_eg or jid
                else:
                    self.bad("rows", jid, "Redis counts %d attempt(s) (%s, last on %s), SQLite has rows for "
                             "attempts %s" % (n, st, node, sorted(have)))
            live = []
            for r in rows:
                if r["state"] == "running" or r["finished_at"] is None:
                    if r["db"] == run.fullfs_node and run.during(jid, "disk_full", end):
                        self.dropped_full += 1  # its finish was in a batch the full disk dropped:
                        continue  # its end is unknown (not checked for overlap)
                    elif r["state"] not in ("superseded", "reaped"):
                        self.bad("rows", jid, "attempt %s row on %s left '%s' (never finished)" % (
                            r["attempt"], r["db"], r["state"]))
                if r["state"] == "superseded":
                    continue
                iv = run.interval(r)
                if iv is None:
                    unchecked += 1
                    continue
                if r["state"] == "reaped" and run.was_stopped(r["db"], iv):
                    # its daemon was SIGSTOPped past its lease (its worker ran on), then killed before it
                    # could learn it was superseded: the attempt its node lost, as a superseded one is
                    continue
                live.append((iv, r))
                if r["error"] and "timed out" in r["error"]:
                    sub = run.sub_of(jid)
                    if sub is not None and sub.sleep_ms < 30000 and sub.kind != "crash":
                        self.bad("clock", jid, "attempt %s on %s: %s (it sleeps %d ms, timeout 60 s)" % (
                            r["attempt"], r["db"], r["error"][:80], sub.sleep_ms))
            final = {}
            for r in rows:
                if r["fence"] is not None and r["state"] in ("succeeded", "failed", "dead", "cancelled"):
                    final.setdefault(r["fence"], []).append(r)
            for fence, rs in final.items():
                if len(rs) > 1:
                    self.bad("overlap", jid, "%d rows of fence %s ended %s (on %s): one attempt ran twice" % (
                        len(rs), fence, "/".join(r["state"] for r in rs), "/".join(r["db"] for r in rs)))
            live.sort(key=lambda x: x[0][0])
            for i in range(len(live)):
                for j in range(i + 1, len(live)):
                    (a0, a1), ra = live[i]
                    (b0, b1), rb = live[j]
                    if b0 < a1 - 0.02:
                        self.bad("overlap", jid, "attempt %s on %s (%s) and attempt %s on %s (%s) ran together "
                                 "for %.2f s" % (ra["attempt"], ra["db"], ra["state"], rb["attempt"], rb["db"],
                                                 rb["state"], min(a1, b1) - b0))
        self.unchecked_rows = unchecked

    def check_keys(self):
        L, f = self.run.layout, self.f
        for k, n in f.lens.items():
            if n:
                self.bad("drained", "", "%s holds %d entries" % (s(k), n))
        unbounded = {}  # (kind, why) -> [keys]
        for k, (t, ttl) in f.keys.items():
            kind = L.classify(s(k))
            if kind is None:
                unbounded.setdefault(("undeclared", "not in the layout"), []).append(s(k))
                continue
            b = L.BOUNDS.get(kind)
            if b is None:
                unbounded.setdefault((kind, "no bound at all (never trimmed, no TTL)"), []).append(s(k))
            elif b == "ttl" and ttl == -1 and kind != "heartbeat":
                unbounded.setdefault((kind, "no TTL"), []).append(s(k))
        for (kind, why), ks in sorted(unbounded.items()):
            self.bad("bounded", "", "%d key(s) of kind %s: %s, e.g. %s" % (len(ks), kind, why, ks[0][:80]))
        for jid in f.jobs:
            if jid not in f.index:
                self.bad("indexed", jid, "job hash not in the jobs index (invisible to list/dead)")


def _state_of(raw):
    m = re.search(rb'"event":"state","state":"([a-z]+)"', raw)
    return s(m.group(1)) if m else None


def _hist(states):
    c = {}
    for x in states:
        c[s(x)] = c.get(s(x), 0) + 1
    return " ".join("%s=%d" % kv for kv in sorted(c.items()))


def _near_dead(f, sub):
    if sub.id:
        for e in f.dead:
            if e.get("id") == sub.id:
                return " (an entry with its id holds %d other bytes: %s)" % (
                    len(s(e.get("payload") or "")), s(e.get("error") or "")[:60])
        h = f.jobs.get(sub.id)
        if h is not None:
            return " (job hash state %s)" % s(h.get("state", b""))
    return ""


def report(run, violations, out):
    """Prints the faults x outcomes table (comment lines) and one ok/not ok line per invariant."""
    names = [n for n, _ in INVARIANTS]
    short = {n: n[:8] for n in names}
    kinds = sorted({flt.kind for flt in run.faults})
    table = {k: {n: set() for n in names} for k in kinds + ["(none)"]}
    for inv, jid, _ in violations:
        win = run.window(jid)
        hit = [flt.kind for flt in run.faults if win and flt.t0 <= win[1] and (flt.t1 or flt.t0) >= win[0]]
        for k in set(hit) or ["(none)"]:
            table[k][inv].add(jid or ("#%d" % len(table[k][inv])))
    counts = {k: sum(1 for flt in run.faults if flt.kind == k) for k in kinds}
    out("# faults x outcomes (jobs violating each invariant while the fault was active during their life)")
    out("# %-20s %8s " % ("fault", "injected") + " ".join("%8s" % short[n] for n in names))
    for k in kinds + ["(none)"]:
        out("# %-20s %8s " % (k, counts.get(k, "-")) + " ".join("%8d" % len(table[k][n]) for n in names))
    tot = {n: len({(jid, d) for i, jid, d in violations if i == n}) for n in names}
    out("# %-20s %8d " % ("total", len(run.faults)) + " ".join("%8d" % tot[n] for n in names))
    for n, desc in INVARIANTS:
        vs = [(jid, d) for i, jid, d in violations if i == n]
        if not vs:
            out("ok - chaos: %s" % desc)
        else:
            jid, d = vs[0]
            out("not ok - chaos: %s: %d violation(s); first: job %s: %s" % (desc, len(vs), jid or "-", d))
            for jid, d in vs[1:6]:
                out("#   also job %s: %s" % (jid or "-", d))

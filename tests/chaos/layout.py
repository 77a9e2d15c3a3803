"""layout: every Redis key name the chaos checker knows, in one place (schema/redis-keys.md is the truth).

Two layouts exist: "main" (hopper 1: P queue:Q, P job:ID, one P dead list) and "v2" (Core v2, issue 10:
per-queue hash tags, P{Q}:job:ID, P{Q}:dead zset + P{Q}:deadmsg hash, deployment-wide keys under {@}).
`detect()` picks the one the checked-out schema/redis-keys.md describes; the rest of the checker only calls
the methods below, so adapting to a new layout is this file.

BOUNDS maps each key kind to how it is bounded: 'ttl' (must carry an expiry once its job ended),
('cap', N) (length at most N), 'fixed' (a bounded set of fields/members), 'drained' (must be empty at the
end of a run) or None (no bound: reported as a failure).
"""

import base64
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def detect():
    """'v2' when schema/redis-keys.md describes per-queue hash tags, else 'main'."""
    try:
        with open(os.path.join(ROOT, "schema", "redis-keys.md"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return "main"
    return "v2" if "{Q}" in text or "{@}" in text else "main"


class MainLayout:
    name = "main"

    def __init__(self, prefix="hopper:", events_max=100):
        self.p = prefix
        self.events_max = events_max

    def queue(self, q):
        return self.p + "queue:" + q

    def scheduled(self, q):
        return self.p + "scheduled:" + q

    def inflight(self, node, q):
        return self.p + "inflight:" + node + ":" + q

    def job(self, q, jid):
        return self.p + "job:" + jid

    def events(self, q, jid):
        return self.p + "job:" + jid + ":events"

    def events_channel(self):
        return self.p + "events"

    def jobs_index(self, q):
        return self.p + "jobs"

    def registered(self, r, node):
        """True once node's heartbeat is in Redis."""
        return bool(r.exists(self.p + "node:" + node))

    def job_scan(self, q):
        """A SCAN pattern that matches every job hash of queue q (and maybe other keys: job_id_of filters)."""
        return self.p + "job:*"

    def job_id_of(self, key, ktype):
        """The job id if key (of Redis type ktype) is a job hash, else None."""
        if ktype != "hash" or not key.startswith(self.p + "job:"):
            return None
        rest = key[len(self.p) + 4:]
        if rest.endswith(":steps"):
            return None
        return rest

    def dead_entries(self, r, q):
        """Every dead entry (decoded dict, with 'raw' the stored JSON text) of queue q."""
        out = []
        for raw in r.lrange(self.p + "dead", 0, -1):
            out.append(_decode_entry(raw))
        return [e for e in out if e.get("queue") in (q, None)]

    def drained_keys(self, nodes, queues):
        """Keys that must be empty (or absent) once every job ended."""
        keys = []
        for q in queues:
            keys += [self.queue(q), self.scheduled(q)]
            keys += [self.inflight(n, q) for n in nodes]
        return keys

    def classify(self, key):
        """The kind of a key (one of BOUNDS), or None if the layout does not know it."""
        p = self.p
        if not key.startswith(p):
            return None
        rest = key[len(p):]
        for pat, kind in self._PATTERNS:
            if re.fullmatch(pat, rest):
                return kind
        return None

    _PATTERNS = [
        (r"queue:[^:]+", "queue"),
        (r"scheduled:[^:]+", "scheduled"),
        (r"inflight:[^:]+:[^:]+", "inflight"),
        (r"node:[^:]+", "heartbeat"),
        (r"node:[^:]+:queues", "node_queues"),
        (r"nodes", "nodes"),
        (r"dead", "dead"),
        (r"job:.+:events", "events"),
        (r"job:.+:steps", "steps"),
        (r"job:.+", "job"),
        (r"idem:.+", "idem"),
        (r"celery:inflight:[^:]+", "celery_inflight"),
        (r"celery:nodes", "nodes"),
        (r"stats", "fixed"),
        (r"jobs", "index"),
        (r"paused", "fixed"),
        (r"queues", "fixed"),
    ]

    BOUNDS = {
        "queue": "drained", "scheduled": "drained", "inflight": "drained", "celery_inflight": "drained",
        "heartbeat": "ttl", "node_queues": "fixed", "nodes": "fixed", "fixed": "fixed",
        "job": "ttl", "events": "ttl", "steps": "ttl", "idem": "ttl",
        "index": "trimmed",  # trimmed by age on every write (result_ttl_s)
        "dead": None,  # main: never trimmed (issue 10)
    }


class V2Layout(MainLayout):
    """Core v2 (branch core, notes/core.md): P{Q}:KIND[:REST] per queue, P{@}:KIND[:REST] deployment-wide."""

    name = "v2"

    def queue(self, q):
        return "%s{%s}:queue" % (self.p, q)

    def scheduled(self, q):
        return "%s{%s}:scheduled" % (self.p, q)

    def inflight(self, node, q):
        return "%s{%s}:inflight:%s" % (self.p, q, node)

    def job(self, q, jid):
        return "%s{%s}:job:%s" % (self.p, q, jid)

    def events(self, q, jid):
        return "%s{%s}:events:%s" % (self.p, q, jid)

    def events_channel(self):
        return self.p + "{@}:events"

    def jobs_index(self, q):
        return "%s{%s}:jobs" % (self.p, q)

    def registered(self, r, node):
        return bool(r.hexists(self.p + "{@}:seen", node))

    def job_scan(self, q):
        return "%s{%s}:job:*" % (self.p, q)

    def job_id_of(self, key, ktype):
        if ktype != "hash":
            return None
        m = re.fullmatch(re.escape(self.p) + r"\{[^{}]+\}:job:(.+)", key)
        return m.group(1) if m else None

    def dead_entries(self, r, q):
        raw = r.hgetall("%s{%s}:deadmsg" % (self.p, q))
        return [_decode_entry(v) for v in raw.values()]

    _PATTERNS = [
        (r"\{[^{}]+\}:queue", "queue"),
        (r"\{[^{}]+\}:scheduled", "scheduled"),
        (r"\{[^{}]+\}:inflight:.+", "inflight"),
        (r"\{[^{}]+\}:paused", "fixed"),
        (r"\{[^{}]+\}:job:.+", "job"),
        (r"\{[^{}]+\}:events:.+", "events"),
        (r"\{[^{}]+\}:steps:.+", "steps"),
        (r"\{[^{}]+\}:idem:.+", "idem"),
        (r"\{[^{}]+\}:dead", "dead"),
        (r"\{[^{}]+\}:deadmsg", "dead"),
        (r"\{[^{}]+\}:jobs", "index"),
        (r"\{[^{}]+\}:stats", "fixed"),
        (r"\{[^{}]+\}:reaped", "index"),
        # schedules (15_sched.lua): at most 1,000 per queue, each one hash, the due set their names
        (r"\{[^{}]+\}:scheds", "fixed"),
        (r"\{[^{}]+\}:sched:.+", "fixed"),
        (r"\{[^{}]+\}:sched_due", "fixed"),
        # per-node liveness hashes (field = node id; a reaped node's fields go): 10_nodes.lua
        (r"\{@\}:(seen|since|seq|inc|nodeq|hb|reaping)", "nodes"),
        (r"\{@\}:paused", "fixed"),
        (r"\{@\}:queues", "fixed"),
        (r"\{@\}:celery:inflight:.+", "celery_inflight"),
        (r"\{@\}:celery:nodes", "nodes"),
    ]

    BOUNDS = dict(MainLayout.BOUNDS, dead="capped")  # dead_max count and dead_max_age_days


def _decode_entry(raw):
    """A dead entry as a dict; its 'payload' as the original bytes (also from payload_b64 if it has one)."""
    try:
        e = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return {"raw": raw, "undecodable": True}
    if not isinstance(e, dict):
        return {"raw": raw, "undecodable": True}
    e["raw"] = raw
    if isinstance(e.get("payload_b64"), str):
        try:
            e["payload"] = base64.b64decode(e["payload_b64"])
        except ValueError:
            pass
    return e


def make(name=None, prefix="hopper:", events_max=100):
    name = name or detect()
    return (V2Layout if name == "v2" else MainLayout)(prefix, events_max)


def detect_live(r, node, prefix="hopper:"):
    """The layout a running hopperd uses, from where its heartbeat went (None while it has none)."""
    for cls in (V2Layout, MainLayout):
        lay = cls(prefix)
        if lay.registered(r, node):
            return lay
    return None

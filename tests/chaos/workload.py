"""workload: the seeded mix of messages a chaos run submits, and what each must end as.

plan(rng, n, seed) returns Subs in submission order. Each Sub says how it is sent (raw LPUSH or hopperctl
through a control socket), its bytes, and its expectation: the terminal states allowed for its job(s), how
many jobs its tag must make (a message without an id is found by the unique args.tag it carries), the
attempt count a dead job must show, or, for a malformed message, a dead entry holding exactly its bytes.
Some kinds need a follow-up (a duplicate push while it runs, a cancel, a retry once dead, a malformed copy
once it succeeded): chaos.py runs those.
"""

import json

QUEUE = "default"
TERMINAL = ("succeeded", "failed", "dead", "cancelled")


def enc(d):
    return json.dumps(d, separators=(",", ":")).encode()


class Sub:
    __slots__ = ("n", "kind", "via", "id", "tag", "data", "expect", "attempts", "copies", "copies_max",
                 "malformed", "follow", "t_submit", "accepted", "note", "sleep_ms", "cancelled_ok", "retried",
                 "extra")

    def __init__(self, n, kind, data, jid=None, tag=None, expect=("succeeded",), via="lpush", attempts=None,
                 copies=1, malformed=False, follow=None, sleep_ms=0):
        self.n = n
        self.kind = kind
        self.via = via  # 'lpush' or 'ctl'
        self.id = jid
        self.tag = tag
        self.data = data
        self.expect = set(expect)
        self.attempts = attempts  # a dead job must show exactly this attempt count
        self.copies = copies  # jobs the tag must make (pushes of identical bytes)
        self.copies_max = copies  # raised when a push's outcome is unknown (connection lost mid-command)
        self.malformed = malformed  # needs a dead entry whose payload is exactly data
        self.follow = follow  # 'dup', 'cancel', 'retry', 'malcopy', 'idem'
        self.t_submit = None
        self.accepted = False
        self.note = ""
        self.sleep_ms = sleep_ms
        self.cancelled_ok = False
        self.retried = False
        self.extra = None


# Malformed messages, each a template of bytes (%s is a unique id, so its dead entry can be found).
MALFORMED = {
    "nan": b'{"id":"%s","type":"noop","args":{"x":NaN}}',
    "infinity": b'{"id":"%s","type":"noop","args":{"x":Infinity}}',
    "neg-infinity": b'{"id":"%s","type":"noop","args":{"x":-Infinity}}',
    "1e400": b'{"id":"%s","type":"noop","args":{"x":1e400}}',
    "raw-nul": b'{"id":"%s","type":"noop","args":{"s":"a\x00b"}}',
    "bad-utf8": b'{"id":"%s","type":"noop","args":{"s":"\xff\xfe\xc3"}}',
    "int20": b'{"id":"%s","type":"noop","args":{"n":12345678901234567890}}',
    "not-json": b"this is not json %s",
    "truncated": b'{"id":"%s","type":"no',
    "array": b'["%s",1,2]',
    "string": b'"%s"',
    "no-type": b'{"id":"%s"}',
    "bad-id": b'{"id":"%s has spaces","type":"noop"}',
    "unknown-type": b'{"id":"%s","type":"no.such.type"}',
    "huge": None,  # built below: valid JSON over max_message_bytes
}
# Kinds that are still a job with a usable id (a dead job rather than only a dead entry).
MALFORMED_JOB = {"unknown-type"}


def malformed(kind, jid, max_bytes):
    if kind == "huge":
        return enc({"id": jid, "type": "noop", "args": {"s": "x" * (max_bytes + 1000)}})
    return MALFORMED[kind] % jid.encode()


# Weights of the random mix (the rest of the run's kinds are added a fixed number of times).
MIX = [
    ("noop", 62), ("noop-noid", 10), ("sleep", 4), ("fail", 3), ("fail-noid", 1), ("failed", 1), ("crash", 1),
    ("delayed", 2), ("delayed-noid", 1), ("ctl", 1), ("ctl-noid", 1), ("malformed", 2),
]


def plan(rng, n, seed, max_bytes, specials):
    """n submissions (plus `specials` of each rare kind), shuffled deterministically by rng."""
    subs = []
    seq = [0]

    def nid():
        seq[0] += 1
        return seq[0]

    def tagged(k):
        i = nid()
        return i, "c%d-%d" % (seed, i), "t%d-%d" % (seed, i)

    def add(kind, **kw):
        i, jid, tag = tagged(kind)
        subs.append(make(kind, i, jid, tag, rng, max_bytes, **kw))

    kinds = [k for k, w in MIX for _ in range(w)]
    for _ in range(n):
        add(rng.choice(kinds))
    for kind in ("dup", "cancel", "retry", "malcopy", "idem", "collide", "delayed-noid-x3"):
        for _ in range(specials):
            add(kind)
    for kind in MALFORMED:  # every malformed kind at least once
        add("malformed", mkind=kind)
    rng.shuffle(subs)
    i, jid, tag = tagged("readme")
    # The README's first example, byte for byte (no id, no args): it must end dead after 3 attempts.
    subs.insert(len(subs) // 3, Sub(i, "readme", b'{"type":"fail","max_attempts":3}', expect=("dead",),
                                     attempts=3))
    return subs


def make(kind, i, jid, tag, rng, max_bytes, mkind=None):
    a = {"tag": tag}
    if kind == "noop":
        return Sub(i, kind, enc({"id": jid, "type": "noop", "args": a, "max_attempts": 50}), jid, tag)
    if kind == "noop-noid":
        return Sub(i, kind, enc({"type": "noop", "args": a, "max_attempts": 50}), None, tag)
    if kind == "sleep":
        ms = rng.randint(20, 400)
        a["ms"] = ms
        return Sub(i, kind, enc({"id": jid, "type": "sleep", "args": a, "max_attempts": 50, "timeout_s": 60}),
                   jid, tag, sleep_ms=ms)
    if kind in ("fail", "fail-noid"):
        m = rng.randint(2, 3)
        a["message"] = "boom"
        d = {"type": "fail", "args": a, "max_attempts": m}
        if kind == "fail":
            d = dict(id=jid, **d)
        return Sub(i, kind, enc(d), jid if kind == "fail" else None, tag, expect=("dead",), attempts=m)
    if kind == "failed":
        a.update(message="permanent", retry=False)
        return Sub(i, kind, enc({"id": jid, "type": "fail", "args": a, "max_attempts": 3}), jid, tag,
                   expect=("failed",))
    if kind == "crash":
        return Sub(i, kind, enc({"id": jid, "type": "crash", "args": a, "max_attempts": 2}), jid, tag,
                   expect=("dead",), attempts=2)
    if kind in ("delayed", "delayed-noid", "delayed-noid-x3"):
        # run_at is filled in when it is sent (now + delay): see chaos.py
        d = {"type": "noop", "args": a, "max_attempts": 50}
        if kind == "delayed":
            d["id"] = jid
        s = Sub(i, kind, None, jid if kind == "delayed" else None, tag, copies=3 if kind.endswith("x3") else 1)
        s.extra = (d, rng.uniform(0.5, 4))
        return s
    if kind in ("ctl", "ctl-noid"):
        typ = rng.choice(["noop", "sleep"])
        if typ == "sleep":
            a["ms"] = rng.randint(20, 300)
        s = Sub(i, kind, None, jid if kind == "ctl" else None, tag, via="ctl")
        s.extra = (typ, json.dumps(a))
        return s
    if kind == "dup":
        # A running job's message pushed again 6 times: each copy must be acknowledged as a duplicate and
        # never touch the running attempt (main counted each as a stall: dead at max_stalls).
        a["ms"] = 2500
        return Sub(i, kind, enc({"id": jid, "type": "sleep", "args": a, "max_attempts": 50, "timeout_s": 60}),
                   jid, tag, follow="dup", sleep_ms=2500)
    if kind == "cancel":
        # A long job cancelled through the control socket while it runs: it must end cancelled, and its
        # worker must stop (no attempt row may say succeeded: the cancel reached the node running it).
        a["ms"] = 20000
        # (cancelled only once the cancel was accepted: chaos.py narrows the expectation then)
        s = Sub(i, kind, None, jid, tag, via="ctl", expect=("cancelled", "succeeded"), follow="cancel",
                sleep_ms=20000)
        s.extra = ("sleep", json.dumps(a))
        return s
    if kind == "retry":
        a["message"] = "boom"
        return Sub(i, kind, enc({"id": jid, "type": "fail", "args": a, "max_attempts": 2}), jid, tag,
                   expect=("dead",), attempts=2, follow="retry")
    if kind == "malcopy":
        # Once this job succeeded, a malformed message carrying its id: a dead entry, the job untouched.
        return Sub(i, kind, enc({"id": jid, "type": "noop", "args": a, "max_attempts": 50}), jid, tag,
                   follow="malcopy")
    if kind == "idem":
        # A malformed message with an idempotency key, then the corrected one: the correction must run.
        s = Sub(i, kind, b'{"id":"%s-bad","type":"noop","idempotency_key":"k-%s","args":{"x":NaN}}' %
                (jid.encode(), jid.encode()), jid + "-bad", None, expect=("dead",), malformed=True,
                follow="idem")
        s.extra = enc({"id": jid, "type": "noop", "args": a, "idempotency_key": "k-" + jid, "max_attempts": 50})
        return s
    if kind == "collide":
        # Job X, then a job whose id is "X:events" (main: that id named X's event list and stranded every
        # job of its fetch batch in the inflight list).
        s = Sub(i, kind, enc({"id": jid, "type": "noop", "args": a, "max_attempts": 50}), jid, tag,
                follow="collide")
        return s
    if kind == "malformed":
        mk = mkind or rng.choice(sorted(MALFORMED))
        s = Sub(i, "malformed:" + mk, malformed(mk, jid, max_bytes), jid, None, expect=("dead",),
                malformed=True)
        if mk == "bad-id":
            s.id = None  # never a job: only its dead entry
        return s
    raise ValueError(kind)

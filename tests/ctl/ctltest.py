"""ctltest: checks for the control-socket scenarios (tests/e2e/ctl_*.sh), in the runner's format.

Each check prints "ok - SCENARIO: NAME" or "not ok - SCENARIO: NAME: why"; tests/run.sh counts those lines.
Replies are validated against the JSON Schemas in schema/control/ (python3-jsonschema) as they are read,
so every scenario also checks real traffic against the documented protocol.
"""
import glob
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ctl"))
import ctlclient  # noqa: E402

SCENARIO = os.environ.get("SCENARIO", "ctl")
FAILS = 0


def ok(name):
    print("ok - %s: %s" % (SCENARIO, name), flush=True)


def not_ok(name, why):
    global FAILS
    FAILS += 1
    print("not ok - %s: %s: %s" % (SCENARIO, name, str(why).replace("\n", " ")[:500]), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        not_ok(name, why or "condition false")
    return cond


def check_eq(name, got, want):
    return check(name, got == want, "got %r, want %r" % (got, want))


def wait_until(fn, timeout=20.0, step=0.05):
    """Polls fn until it returns a true value (returned) or timeout passes (returns the last value)."""
    end = time.time() + timeout * float(os.environ.get("TIME_SCALE", "1"))
    v = fn()
    while not v and time.time() < end:
        time.sleep(step)
        v = fn()
    return v


def ns_id(owner, job_id):
    """The stored id of a non-admin owner's job id (common/job_ns.h), for reading Redis or SQLite by id."""
    import hashlib
    return "_%s:%s" % (hashlib.sha256(owner.encode()).hexdigest()[:24], job_id)


# --- schemas ---
_validators = {}


def _store():
    docs = {}
    for f in glob.glob(os.path.join(ROOT, "schema", "*.json")) + glob.glob(os.path.join(ROOT, "schema", "control",
                                                                                          "*.json")):
        with open(f) as fh:
            d = json.load(fh)
        if "$id" in d:  # JSON Schemas; not the OpenAPI document (http-api.openapi.json)
            docs[d["$id"]] = d
    return docs


def validator(ref):
    """A Draft 2020-12 validator for ref, resolving hopper's urn: ids (jsonschema 4.10, Debian 12)."""
    import jsonschema
    if ref not in _validators:
        if "store" not in _validators:
            _validators["store"] = _store()
        resolver = jsonschema.RefResolver("", {}, store=_validators["store"])
        _validators[ref] = jsonschema.Draft202012Validator({"$ref": ref}, resolver=resolver)
    return _validators[ref]


def schema_errors(ref, obj):
    return [e.message for e in validator(ref).iter_errors(obj)][:3]


def check_reply(name, op, reply):
    """Checks the envelope and, for a success, the op's result schema. Returns the reply."""
    errs = schema_errors("urn:hopper:schema:control:common#/$defs/reply", reply)
    if not errs and reply.get("ok") and "event" not in reply:
        errs = schema_errors("urn:hopper:schema:control:%s#/$defs/result" % op, reply["result"])
    if not errs and "event" in reply:
        errs = schema_errors("urn:hopper:schema:event", reply["event"])
    check(name + " (schema)", not errs, errs)
    return reply


def call_ok(c, label, op, **fields):
    """A request that must succeed; checked against the schemas. Returns the result (or None)."""
    fields = {k: v for k, v in fields.items() if v is not None}
    errs = schema_errors("urn:hopper:schema:control:%s#/$defs/request" % op, dict({"op": op}, **fields))
    if errs:
        not_ok(label + " (request schema)", errs)
    r = c.call(op, **fields)
    check_reply(label, op, r)
    if check(label, r.get("ok") is True, r.get("error")):
        return r["result"]
    return None


def call_err(c, label, op, code, **fields):
    r = c.call(op, **fields)
    check_reply(label, op, r)
    got = (r.get("error") or {}).get("code")
    check(label, r.get("ok") is False and got == code, "got %r, want error %s" % (r, code))
    return r


def done():
    sys.exit(1 if FAILS else 0)

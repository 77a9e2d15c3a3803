#!/usr/bin/env bash
# schemas: real traffic validated against the JSON Schemas in schema/: the jobs we push and the payload
# hopperctl writes (job.schema.json), job hashes in several states (job-hash.schema.json), every event in
# the per-job lists and every message PUBLISHed on the events channel (event.schema.json), dead entries of a
# failed job and of a malformed message (dead-entry.schema.json), and the heartbeat (heartbeat.schema.json).
. "$(dirname "$0")/../lib.sh"

SCHEMAS=(job event dead-entry job-hash heartbeat)
for s in "${SCHEMAS[@]}"; do
	check "schema/$s.schema.json exists" test -f "$HOPPER_ROOT/schema/$s.schema.json"
done

start_redis
# Everything published on the events channel, one JSON message a line.
py - "$SOCK" "$(gkey events)" "$T/published.jsonl" <<'PY' &
import sys, redis
sock, channel, out = sys.argv[1:4]
r = redis.Redis(unix_socket_path=sock)
p = r.pubsub(ignore_subscribe_messages=True)
p.subscribe(channel)
with open(out + ".ready", "w"):
    pass
with open(out, "a") as f:
    try:
        for m in p.listen():
            if m["type"] == "message":
                f.write(m["data"].decode() + "\n")
                f.flush()
    except redis.exceptions.ConnectionError:
        pass  # the scenario's Redis went away: its end
PY
echo $! >"$T/pids/aux.$!"
wait_for "subscriber ready" 10 test -f "$T/published.jsonl.ready"

start_hopperd n1 --workers=2 || exit 1
now_s=$(now)
: >"$T/pushed.jsonl"
push() { # the jobs we push are samples of job.schema.json too
	echo "$1" >>"$T/pushed.jsonl"
	push_job default "$1"
}
push "$(job_json sc-noop noop)"
push '{"type":"noop"}'
push "$(job_json sc-sleep sleep '{"ms":200}')"
push "$(job_json sc-fail fail '{"message":"boom"}' '"max_attempts":1')"
push "{\"id\":\"sc-full\",\"type\":\"noop\",\"queue\":\"default\",\"args\":{\"a\":[1,2]},\"max_attempts\":2,\"timeout_s\":30,\"created_at\":$now_s,\"run_at\":$now_s,\"backoff_s\":0.5,\"backoff_max_s\":10,\"owner\":\"tests\",\"idempotency_key\":\"sc-full-key\"}"
push_job default '{"id":"sc-malformed",'
ctl submit noop --queue nobody --id sc-queued >/dev/null 2>&1
check_eq "hopperctl submit made a queued job" "$(jstate sc-queued)" queued

wait_for "sc-noop succeeded" 30 state_is sc-noop succeeded
wait_for "sc-sleep succeeded" 30 state_is sc-sleep succeeded
wait_for "sc-full succeeded" 30 state_is sc-full succeeded
wait_for "sc-fail dead" 30 state_is sc-fail dead
dead2() { [ "$(dead_count)" = 2 ]; }
wait_for "2 dead entries" 30 dead2
check_eq "the job with every optional field succeeded" "$(jstate sc-full)" succeeded
published_final() { # the subscriber got each job's final event
	grep '"sc-noop"' "$T/published.jsonl" | grep -q succeeded &&
		grep '"sc-sleep"' "$T/published.jsonl" | grep -q succeeded &&
		grep '"sc-full"' "$T/published.jsonl" | grep -q succeeded &&
		grep '"sc-fail"' "$T/published.jsonl" | grep -q dead
}
wait_for "the final events published" 10 published_final
check "the final state of each job was published on the events channel" published_final

py - "$SOCK" "$HP" "$HOPPER_ROOT/schema" "$T/pushed.jsonl" "$T/published.jsonl" >"$T/verdicts" 2>&1 <<'PY'
import json, os, sys
import redis
import jsonschema

sock, prefix, schema_dir, pushed_path, published_path = sys.argv[1:6]
r = redis.Redis(unix_socket_path=sock, decode_responses=True)

def verdict(ok, name, why=""):
    print(("PASS\t%s" % name) if ok else ("FAIL\t%s\t%s" % (name, why)))

schemas, store = {}, {}
for name in ("job", "event", "dead-entry", "job-hash", "heartbeat"):
    path = os.path.join(schema_dir, name + ".schema.json")
    try:
        with open(path) as f:
            s = json.load(f)
        jsonschema.validators.validator_for(s).check_schema(s)
    except Exception as e:  # missing, not JSON, or not a valid schema
        verdict(False, "%s.schema.json is a valid JSON Schema" % name, str(e).splitlines()[0])
        continue
    verdict(True, "%s.schema.json is a valid JSON Schema" % name)
    schemas[name] = (s, "file://" + os.path.abspath(path))
    store["file://" + os.path.abspath(path)] = s
    if "$id" in s:
        store[s["$id"]] = s

def errors(name, doc):
    s, uri = schemas[name]
    cls = jsonschema.validators.validator_for(s)
    v = cls(s, resolver=jsonschema.RefResolver(uri, s, store=store))
    return [e.message for e in v.iter_errors(doc)]

def check(name, label, docs):
    if name not in schemas:
        verdict(False, "%s validate against %s.schema.json" % (label, name), "no usable schema")
        return
    if not docs:
        verdict(False, "%s validate against %s.schema.json" % (label, name), "no samples collected")
        return
    bad = []
    for d in docs:
        errs = errors(name, d)
        if errs:
            bad.append("%s: %s" % (json.dumps(d)[:160], errs[0]))
    verdict(not bad, "%d %s validate against %s.schema.json" % (len(docs), label, name), "; ".join(bad[:3]))

def must_reject(name, label, doc):
    if name in schemas:
        verdict(bool(errors(name, doc)), "%s.schema.json rejects %s" % (name, label), "it accepted " + json.dumps(doc))

def loads_all(lines, label):
    out = []
    for l in lines:
        try:
            out.append(json.loads(l))
        except ValueError:
            verdict(False, "%s are JSON" % label, l[:120])
    return out

pushed = loads_all([l for l in open(pushed_path).read().splitlines() if l], "pushed jobs")
check("job", "pushed jobs", pushed)
queued = r.hgetall(prefix + "{nobody}:job:sc-queued")
payloads = loads_all([queued["payload"]] if "payload" in queued else [], "hopperctl payloads")
check("job", "hopperctl-submitted payloads", payloads)
must_reject("job", "a job without a type", {"id": "x", "args": {}})
must_reject("job", "a job whose max_attempts is a string", {"type": "noop", "max_attempts": "x"})

ids = ["sc-noop", "sc-sleep", "sc-fail", "sc-full", "sc-queued"]
hashes = [r.hgetall(prefix + "{%s}:job:%s" % ("nobody" if i == "sc-queued" else "default", i)) for i in ids]
check("job-hash", "job hashes (succeeded, dead, queued)", [h for h in hashes if h])
verdict(all(hashes), "every job has a hash", ", ".join(i for i, h in zip(ids, hashes) if not h))
must_reject("job-hash", "a hash with an unknown state", dict(hashes[0], state="exploded") if hashes[0] else {"state": "exploded"})

events = []
for i in ids:
    events += loads_all(r.lrange(prefix + "{%s}:events:%s" % ("nobody" if i == "sc-queued" else "default", i), 0, -1), "events")
check("event", "events from the per-job lists", events)
must_reject("event", "an array", [1, 2])
published = loads_all([l for l in open(published_path).read().splitlines() if l], "published events")
check("event", "events published on %s{@}:events" % prefix, published)

dead = loads_all([r.hget(prefix + "{default}:deadmsg", i) for i in r.zrange(prefix + "{default}:dead", 0, -1)], "dead entries")
check("dead-entry", "dead entries (a failed job and a malformed message)", dead)
verdict(len(dead) == 2, "two dead entries collected", "got %d" % len(dead))
must_reject("dead-entry", "an entry without an error", {"payload": "{}"})

hb = r.hget(prefix + "{@}:hb", "n1")
check("heartbeat", "heartbeats", [json.loads(hb)] if hb else [])
must_reject("heartbeat", "an empty hash", {})
PY
rc=$?
while IFS=$'\t' read -r verdict name why; do
	case $verdict in
	PASS) ok "$name" ;;
	FAIL) not_ok "$name" "$why" ;;
	*) note "$verdict $name $why" ;;
	esac
done <"$T/verdicts"
check_eq "the validator ran to its end" "$rc" 0
check_ge "it gave verdicts" "$(grep -c '^PASS\|^FAIL' "$T/verdicts")" 10
finish_hopperd n1
end_scenario

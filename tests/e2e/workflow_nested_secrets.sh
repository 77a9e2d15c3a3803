#!/usr/bin/env bash
# workflow_nested_secrets (issue 11, item 6, nested handlers): a workflow's secret ({{env.API_TOKEN}}) reaches
# lines that nested code writes - an exec step's program prints it, an audio.analyze step (the audio handler
# run inside the workflow job) fails on a path derived from it, so its error, progress and log lines name it.
# Each line is checked to exist masked (***), then every Redis value, every SQLite cell, the daemon's log and
# the status and logs replies are searched for the secret in every encoding. (An enqueue step's child is a
# job of its own: values passed to it are its arguments by design, so it is not part of this check.)
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

export API_TOKEN='Zq9xK7nested-S3cr3t-v4lue'
mkdir -p "$T/audio"
start_redis
start_hopperd n1 --workers=1 --workflow-env-allow=API_TOKEN --workflow-exec-enabled=1 \
	--workflow-exec-programs=/bin/echo,/bin/sh --audio-roots="$T/audio" || exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "say", "type": "exec", "params": {"argv": ["/bin/echo", "token={{env.API_TOKEN}}"]}},
  {"id": "err", "type": "exec", "depends_on": ["say"], "params": {"argv": ["/bin/sh", "-c", "echo \"\$0\" >&2; exit 0", "e={{env.API_TOKEN}}"]}},
  {"id": "audio", "type": "audio.analyze", "depends_on": ["err"], "params": {"path": "$T/audio/{{env.API_TOKEN}}.wav"}}
]}
J
)
push_job default "$(wf_job ns-run "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "ns-run ends" 30 is_final ns-run
wait_for "its rows" 10 sql_is n1 "SELECT count(*) FROM workflow_steps WHERE job_id='ns-run'" 3
check_eq "the run failed at the audio step" "$(jstate ns-run)" failed
q() { sql n1 "SELECT $2 FROM workflow_steps WHERE job_id='ns-run' AND step_id='$1'"; }
check_match "the exec step's stdout line is masked" "$(q say "json_extract(output, '\$.stdout')")" 'token=\*\*\*'
check_match "the exec step's stderr line is masked" "$(q err "json_extract(output, '\$.stderr')")" 'e=\*\*\*'
check_match "the audio handler's error names the path, masked" "$(q audio error)" '/\*\*\*\.wav'
check_match "... and so does the job's error" "$(jfield ns-run error)" '\*\*\*\.wav'
ctl --json status ns-run >"$T/status.json" 2>&1
ctl --json logs ns-run >"$T/logs.json" 2>&1
check_match "status reply read" "$(cat "$T/status.json")" 'ns-run'
check_match "logs reply read" "$(cat "$T/logs.json")" 'audio'

export SCENARIO HOPPER_ROOT
py - "$SOCK" "$T/n1.db" "$T/n1.log" "$T/status.json" "$T/logs.json" <<'P'
import base64, json, os, sqlite3, sys, urllib.parse
import redis
sys.path.insert(0, os.path.join(os.environ["HOPPER_ROOT"], "tests", "ctl"))
from ctltest import check, done
s = os.environ["API_TOKEN"]
def core(v, align, alt):
    b = base64.b64encode(b"\0" * align + v.encode())
    if alt: b = b.replace(b"+", b"-").replace(b"/", b"_")
    n = len(v.encode())
    return b[(8 * align + 5) // 6:(8 * (align + n)) // 6].decode()
enc = {"raw": s, "url": urllib.parse.quote(s, safe="-._~"), "url-lower": urllib.parse.quote(s, safe="-._~").lower(),
       "form": urllib.parse.quote_plus(s, safe="-._~"), "json": json.dumps(s)[1:-1],
       "json-utf8": json.dumps(s, ensure_ascii=False)[1:-1], "basic": base64.b64encode(("u:" + s).encode()).decode()}
for a in range(3):
    enc["b64-%d" % a] = core(s, a, False)
    enc["b64url-%d" % a] = core(s, a, True)
def strings(text, depth=0):
    """the text and every string inside it when it is JSON (nested JSON decoded too)"""
    out = [text]
    if depth > 4: return out
    try: v = json.loads(text)
    except (ValueError, TypeError): return out
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str): out += strings(x, depth + 1)
        elif isinstance(x, dict): stack += list(x.keys()) + list(x.values())
        elif isinstance(x, list): stack += x
    return out
def scan(where, texts):
    found = {}
    n = 0
    for t in texts:
        for piece in strings(t):
            n += 1
            for name, e in enc.items():
                if e in piece: found.setdefault(name, piece[:120])
    check("%s: %d texts searched, no encoding of the secret (%s)" % (where, n, ", ".join(sorted(enc))), n > 0 and not found, found)
r = redis.Redis(unix_socket_path=sys.argv[1])
vals = []
for k in r.scan_iter("*"):
    t = r.type(k).decode()
    v = {"hash": lambda: list(r.hgetall(k).values()), "list": lambda: r.lrange(k, 0, -1),
         "zset": lambda: r.zrange(k, 0, -1), "set": lambda: list(r.smembers(k)), "string": lambda: [r.get(k)]}.get(t, lambda: [])()
    vals += [x.decode("utf-8", "replace") for x in v]
# the job's payload holds the definition with the template, not the value
scan("redis (events, job hash, step records, results)", vals)
db = sqlite3.connect(sys.argv[2])
cells = []
for (tab,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
    for row in db.execute("SELECT * FROM %s" % tab):
        cells += [str(c) for c in row if c is not None]
scan("sqlite (attempts, log lines, step rows)", cells)
scan("daemon log", open(sys.argv[3], encoding="utf-8", errors="replace").read().splitlines())
scan("status reply", [open(sys.argv[4]).read()])
scan("logs reply", [open(sys.argv[5]).read()])
done()
P
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
end_scenario

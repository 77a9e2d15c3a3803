#!/usr/bin/env bash
# bench/workflow.sh BUILD_DIR: workflow.run overhead (part of make bench). Figures are reported, not asserted.
#
# On a private redis-server, a test HTTP server on 127.0.0.1 and one hopperd with 2 workers, BENCH_ROUNDS
# rounds (default 3) of:
#   1. baseline: WF_RUNS noop jobs (the cost of a job with no steps);
#   2. WF_RUNS runs of a 10-step workflow of `delay 0` steps -> steps/s (each step is one STEP record, one
#      SQLite row and one Redis write acknowledged before the next step starts);
#   3. WF_RUNS runs of a 3-step workflow (delay 0 -> http GET of a local JSON endpoint -> filter) -> runs/s.
# Each figure is the time from pushing all jobs until the last one succeeded; the table shows medians.
set -u
B=${1:?usage: bench/workflow.sh BUILD_DIR}
export HOPPER_BUILD=$B
HOPPER_T=$(mktemp -d "${TMPDIR:-/tmp}/hopper-bench-wf.XXXXXX")
export HOPPER_T
SCENARIO=bench-workflow
. "$(dirname "$0")/../tests/lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}
RUNS=${WF_RUNS:-100}

start_redis
start_http
start_hopperd b1 --workers=2 --log-level=info || exit 1

STEPS10=$(py -c 'import json; print(json.dumps({"steps": [{"id": "s%d" % i, "type": "delay", "params": {"ms": 0},
  **({"depends_on": ["s%d" % (i - 1)]} if i else {})} for i in range(10)]}))')
HTTP3=$(cat <<J
{"steps": [{"id": "wait", "type": "delay", "params": {"ms": 0}},
  {"id": "get", "type": "http", "depends_on": ["wait"], "params": {"url": "$HTTP/json"}},
  {"id": "check", "type": "filter", "depends_on": ["get"], "params": {"condition": "steps.get.output.json.active"}}]}
J
)

# run_batch NAME TYPE ARGS: pushes RUNS jobs in one pipeline and prints the seconds until the last one ended
# (from the events channel); a job that does not succeed makes the figure "failed".
run_batch() {
	py - "$SOCK" "$1" "$2" "$3" "$RUNS" <<'P'
import json, sys, time, redis
sock, name, typ, args, runs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
r = redis.Redis(unix_socket_path=sock)
ps = r.pubsub()
ps.subscribe("hopper:events")
ps.get_message(timeout=1)
pipe = r.pipeline(transaction=False)
for i in range(runs):
    pipe.lpush("hopper:{default}:queue", json.dumps({"id": "%s-%d" % (name, i), "type": typ, "args": args}))
t0 = time.monotonic()
pipe.execute()
ended, bad, deadline = set(), 0, t0 + 300
while len(ended) < runs and time.monotonic() < deadline:
    m = ps.get_message(timeout=1)
    if not m or m["type"] != "message":
        continue
    e = json.loads(m["data"])
    if e.get("event") == "state" and e["job"].startswith(name + "-") and e["state"] in ("succeeded", "failed", "dead", "cancelled"):
        ended.add(e["job"])
        bad += e["state"] != "succeeded"
print("%.4f" % (time.monotonic() - t0) if len(ended) == runs and bad == 0 else "failed")
P
}

declare -a base steps http
for ((r = 1; r <= ROUNDS; r++)); do
	base[r]=$(run_batch "noop$r" noop '{}')
	steps[r]=$(run_batch "ten$r" workflow.run "{\"definition\":$STEPS10}")
	http[r]=$(run_batch "http$r" workflow.run "{\"definition\":$HTTP3}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mb=$(median "${base[@]}") ms=$(median "${steps[@]}") mh=$(median "${http[@]}")
echo
echo "workflow.run, $RUNS runs per figure, 2 workers, median of $ROUNDS rounds:"
awk -v n="$RUNS" -v b="$mb" -v s="$ms" -v h="$mh" 'BEGIN {
	printf "  %-44s %10.1f jobs/s  (%.3f s)\n", "baseline: noop jobs", n / b, b
	printf "  %-44s %10.1f steps/s (%.3f s; %.1f runs/s, %.2fx the noop time per run)\n", "10-step workflow of delay 0", n * 10 / s, s, n / s, s / b
	printf "  %-44s %10.1f runs/s  (%.3f s; %.2fx the noop time per run)\n", "3-step workflow with one local http step", n / h, h, h / b
}'
check_eq "bench: the SQLite log holds every step row" \
	"$(sql b1 "SELECT count(*) FROM workflow_steps")" "$((ROUNDS * RUNS * 13))"
end_scenario

"""GET /metrics after real work: the strict parser accepts it (tests/web/promparse.py) and the figures are
the daemon's: jobs by queue, type and final state, the duration histogram, queue depth, workers, nodes; the
parser itself refuses broken texts; promtool check metrics too when Debian's prometheus is installed."""
import os
import shutil
import subprocess

import promparse
from webtest import check, done, request

s, h, text = request("GET", "/metrics")
check("GET /metrics answers 200 text/plain version 0.0.4", s == 200 and h["content-type"].startswith("text/plain")
      and "version=0.0.4" in h["content-type"], (s, h))
try:
    fams = promparse.parse(text)
    check("the strict parser accepts the exposition", True)
except promparse.Error as e:
    fams = {}
    check("the strict parser accepts the exposition", False, str(e))


def val(fam, **labels):
    for name, lab, v in fams.get(fam, {}).get("samples", []):
        if name == fam and all(lab.get(k) == x for k, x in labels.items()):
            return v
    return None


check("hopper_up 1", val("hopper_up") == 1)
check("hopper_jobs_total counts the 3 noop jobs on queue q by type and state",
      val("hopper_jobs_total", queue="q", type="noop", state="succeeded", node="n1") == 3,
      fams.get("hopper_jobs_total"))
check("... and the two failed jobs as dead", val("hopper_jobs_total", queue="q", type="fail", state="dead") == 2)
check("... typed counter, with HELP", fams["hopper_jobs_total"]["type"] == "counter" and fams["hopper_jobs_total"]["help"])
hist = fams.get("hopper_job_duration_seconds", {})
count = [v for n, l, v in hist.get("samples", []) if n.endswith("_count")]
check("the duration histogram counted the 5 attempts", hist.get("type") == "histogram" and count == [5], count)
check("hopper_queue_depth of the paused queue holds its 2 waiting jobs", val("hopper_queue_depth", queue="held") == 2)
check("hopper_queue_paused says so", val("hopper_queue_paused", queue="held") == 1)
age = val("hopper_queue_oldest_age_seconds", queue="held")
check("hopper_queue_oldest_age_seconds of the paused queue is there, not negative", age is not None and age >= 0, age)
check("... and absent for the drained queue q", val("hopper_queue_oldest_age_seconds", queue="q") is None,
      fams.get("hopper_queue_oldest_age_seconds"))
check("hopper_dead_jobs holds the 2 dead jobs of q, a gauge", val("hopper_dead_jobs", queue="q") == 2
      and fams["hopper_dead_jobs"]["type"] == "gauge", fams.get("hopper_dead_jobs"))
check("... and 0 for the queue without dead jobs", val("hopper_dead_jobs", queue="held") == 0)
check("workers busy + idle = 2", (val("hopper_workers", state="busy") or 0) + (val("hopper_workers", state="idle") or 0) == 2)
check("the node's heartbeat is there", val("hopper_node_up", node="n1") == 1 and
      val("hopper_node_heartbeat_age_seconds", node="n1") is not None)
check("control connections are counted", (val("hopper_control_connections", node="n1") or 0) >= 1)
check("worker restarts, Redis and store errors, reconnects are exposed",
      all(f in fams for f in ("hopper_worker_restarts_total", "hopper_redis_errors_total", "hopper_store_errors_total",
                              "hopper_redis_reconnects_total")))
check("every family has HELP and TYPE", all(f["help"] is not None and f["type"] != "untyped" for f in fams.values()),
      [k for k, f in fams.items() if f["help"] is None])

bad = ["x 1", "x{a=\"b} 1\n", "# TYPE x counter\nx -1\n", "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
       "x 1\ny 1\nx 2\n", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
       "x abc\n", "1x 1\n", "x{a=\"\\q\"} 1\n"]
refused = 0
for b in bad:
    try:
        promparse.parse(b)
    except promparse.Error:
        refused += 1
check("the parser refuses each of %d broken texts" % len(bad), refused == len(bad), refused)

promtool = shutil.which("promtool")
if promtool:
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    check("promtool check metrics accepts it", p.returncode == 0, p.stdout + p.stderr)
else:
    print("# promtool not installed (Debian's prometheus): checked with the strict parser only")
done()

#!/usr/bin/env bash
# core_batch_cap (issue 10, "batches are capped by bytes as well as by count"): hopperd's loop-turn batches
# (one FCALL hopper_batch per hash tag) never exceed 8 MiB of keys and arguments (unless one operation alone
# is larger) nor 2,000 operations. 60 jobs of ~900 KB claimed in one turn (each claim carries the message
# twice: ~1.8 MB per operation, ~108 MB in all) and 5,000 tiny jobs; the daemon's own counters (stats ->
# local: batches, batch_max_bytes, batch_max_ops) show the largest batch it sent; every job still ends.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --prefetch=5000 || exit 1
local_stat() { ctl --json stats 2>/dev/null | py -c 'import json,sys; print(json.load(sys.stdin)["local"][sys.argv[1]])' "$1"; }
check "pause default" ctl pause default
py - "$SOCK" "$(qkey default queue)" <<'PY'
import json, sys, time, redis
r = redis.Redis(unix_socket_path=sys.argv[1])
p = r.pipeline(transaction=False)
for i in range(1, 61):
    p.lpush(sys.argv[2], json.dumps({"id": "big-%d" % i, "type": "noop", "created_at": time.time(),
                                     "args": {"blob": chr(97 + i % 26) * 900000}}))
p.execute()
PY
b0=$(local_stat batches)
check "resume default" ctl resume default
wait_for "60 big jobs succeeded" 120 all_in_state big- 1 60 succeeded
check "every big job succeeded" all_in_state big- 1 60 succeeded
max=$(local_stat batch_max_bytes)
b1=$(local_stat batches)
note "largest batch: $max bytes, $(local_stat batch_max_ops) ops; $((b1 - b0)) batches for the big jobs"
check_le "no batch over 8 MiB (8,388,608 bytes)" "$max" 8388608
check_ge "the cap was reached (a batch of at least 4 operations' worth, 7 MB)" "$max" 7000000
check_ge "the big jobs' claims and finishes went in many batches (>= 14 for ~108 MB + ~54 MB)" "$((b1 - b0))" 14
check "hopperd is still running" hopperd_alive n1
check_eq "no Redis errors" "$(local_stat redis_errors)" 0

check "pause default" ctl pause default
awk -v now="$(now)" 'BEGIN { for (i = 1; i <= 5000; i++) printf "{\"id\":\"tiny-%d\",\"type\":\"noop\",\"created_at\":%s}\n", i, now }' >"$T/tiny"
push_many default "$T/tiny"
check "resume default" ctl resume default
wait_for "5,000 tiny jobs succeeded" 120 all_in_state tiny- 1 5000 succeeded
check "every tiny job succeeded" all_in_state tiny- 1 5000 succeeded
ops=$(local_stat batch_max_ops)
note "largest batch: $ops operations"
check_le "no batch over 2,000 operations" "$ops" 2000
check_eq "nothing left in flight" "$(rcli LLEN "$(qkey default inflight n1)")" 0
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# rate_limit: "rate_limit" (README "Rate limits and concurrency keys") with three daemons on one Redis.
# - 110 jobs drawing on one 5/s bucket (burst 1), pushed at once: all succeed; their starts (Redis's clock)
#   are never more than one token over 5/s in any 1, 5 or 20 s window, and span at least (110-1)/5 s, while
#   three daemons with two workers each would run them in well under a second unlimited.
# - While they wait the workers stay free: plain jobs pushed behind them, and 20 jobs of another bucket
#   (10/s, burst 5), finish while most of the limited ones still wait.
# - A waiting job shows it: stage rate_limited, a message naming the key, rl_due; `hopperctl queues` counts
#   them (rate_limited) and the stats counter rate_limited counts the deferrals.
# - Buckets are per owner: another owner's jobs with the same key name do not share the bucket.
. "$(dirname "$0")/../lib.sh"

start_redis
for n in n1 n2 n3; do
	start_hopperd "$n" --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1
done

RL='"rate_limit":{"key":"api.example.com","rate":"5/s","burst":1}'
# done_count PREFIX N: how many of PREFIX1..PREFIXN succeeded.
done_count() {
	count_state "$1" 1 "$2" succeeded
}

msgs=()
for i in $(seq 1 110); do msgs+=("$(job_json "rl-$i" noop '{}' "$RL")"); done
rcli LPUSH "$(qkey default queue)" "${msgs[@]}" >/dev/null
T0=$(now)

# A job that waits says why.
stage_is() { [ "$(jfield "$1" stage)" = "$2" ]; }
n_done() { [ "$(count_state "$1" 1 "$2" succeeded)" = "$2" ]; }
wait_for "rl-100 waits for a token" 10 stage_is rl-100 rate_limited
check_eq "a waiting job's stage" "$(jfield rl-100 stage)" rate_limited
check_match "its message names the key" "$(jfield rl-100 message)" 'rate limit api.example.com: starts at'
check "it holds a reserved token (rl_due)" test -n "$(jfield rl-100 rl_due)"
check "it waits in the scheduled set, not in a worker" \
	test -n "$(rcli ZSCORE "$(qkey default scheduled)" "$(jfield rl-100 payload)")"
Q=$(ctl --json queues)
check_ge "hopperctl queues counts the jobs waiting for a token" \
	"$(echo "$Q" | py -c 'import json,sys; print([q for q in json.load(sys.stdin)["queues"] if q["name"]=="default"][0]["rate_limited"])')" 50

# Workers stay free: plain jobs and another bucket's jobs run while the limited ones wait.
plain=()
for i in $(seq 1 12); do plain+=("$(job_json "plain-$i" sleep '{"ms":200}')"); done
for i in $(seq 1 20); do
	plain+=("$(job_json "other-$i" noop '{}' '"rate_limit":{"key":"other","rate":"10/s","burst":5}')")
done
rcli LPUSH "$(qkey default queue)" "${plain[@]}" >/dev/null
wait_for "the plain jobs" 15 n_done plain- 12
wait_for "the other bucket's jobs" 15 n_done other- 20
limited_done=$(done_count rl- 110)
check_eq "plain jobs behind the limited ones all ran" "$(done_count plain- 12)" 12
check_eq "another bucket's jobs all ran" "$(done_count other- 20)" 20
check_le "meanwhile most limited jobs still waited (done then: $limited_done)" "$limited_done" 60

# Buckets are per owner: owner B's jobs named with the same key are not held back by A's backlog.
for i in $(seq 1 5); do
	push_job default "$(job_json "ob-$i" noop '{}' "\"owner\":\"tenant-b\",$RL")"
done
wait_for "owner B's jobs" 10 n_done ob- 5
check_eq "another owner's jobs with the same key name draw from their own bucket" \
	"$(count_state ob- 1 5 succeeded)" 5
check_le "...while the first owner's backlog still waits (done: $(done_count rl- 110))" "$(done_count rl- 110)" 100

wait_for "all limited jobs" 60 n_done rl- 110
check_eq "every limited job succeeded" "$(done_count rl- 110)" 110
job_starts rl- 110 >"$T/starts"
check_eq "each started once (110 start times)" "$(grep -c . "$T/starts")" 110
# The limiter's own schedule is each job's token time (run_at; a job that drew a token due at once has
# none, and counts at its start). Starts lag their tokens by the dispatch (more on a loaded or sanitized
# build), so the start windows allow 5/s over the window plus the largest lag seen, and every job must start
# no earlier than its token.
R=$(py - "$T/starts" <<'PYEOF'
import sys
rows = [tuple(float(v) for v in x.split()) for x in open(sys.argv[1]) if x.strip()]
tokens = sorted(r if r > 0 else s for s, r in rows)
starts = sorted(s for s, _ in rows)
lag = max([s - r for s, r in rows if r > 0] or [0])
early = sum(1 for s, r in rows if r > 0 and s < r - 0.001)
def most(t, w):
    best, j = 0, 0
    for i in range(len(t)):
        while t[i] - t[j] > w:
            j += 1
        best = max(best, i - j + 1)
    return best
out = []
for w in (1, 5, 20):
    out += [most(tokens, w), most(starts, w), int(5 * (w + lag)) + 1]
print(" ".join(str(x) for x in out), "%.3f %.3f %d" % (starts[-1] - starts[0], lag, early))
PYEOF
)
note "tokens / starts / allowed starts in windows of 1, 5, 20 s, span, largest lag, early starts: $R"
read -r t1 s1 a1 t5 s5 a5 t20 s20 a20 span lag early <<<"$R"
check_eq "no job started before its token was due" "$early" 0
check_le "at most 5/s + one token drawn in any 1 s window ($t1)" "$t1" 6
check_le "at most 5/s + one token drawn in any 5 s window ($t5)" "$t5" 26
check_le "at most 5/s + one token drawn in any 20 s window ($t20)" "$t20" 101
check_le "starts in any 1 s window within 5/s + lag $lag ($s1)" "$s1" "$a1"
check_le "starts in any 5 s window within 5/s + lag $lag ($s5)" "$s5" "$a5"
check_le "starts in any 20 s window within 5/s + lag $lag ($s20)" "$s20" "$a20"
check "the 110 starts span at least 21.5 s (109 intervals of 0.2 s): $span" fcmp "$span" '>=' 21.5
check_ge "stats count the deferrals (rate_limited)" "$(stat_count rate_limited)" 100
check_eq "no reserved token is left (rlw)" "$(rcli ZCARD "$(qkey default rlw)")" 0
check_eq "no message is left anywhere" \
	"$(($(llen "$(qkey default queue)") + $(rcli ZCARD "$(qkey default scheduled)")))" 0

for n in n1 n2 n3; do finish_hopperd "$n"; done
end_scenario

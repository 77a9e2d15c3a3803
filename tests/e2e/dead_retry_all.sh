#!/usr/bin/env bash
# dead_retry_all (issue 10, "retry --all runs in bounded chunks"): the dead_retry op walks the dead sets in
# chunks on the daemon. 5,000 dead jobs over two queues and two types: the filters (queue, type, error
# substring, older-than) retry exactly the jobs they match; a full run in chunks of 300 retries each job dead
# when it began exactly once, although the retried jobs die again and new jobs die while it goes on; no
# chunk is slow in Redis's SLOWLOG; each retried job ran once more (SQLite attempts).
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=2 --queues=default,q2 || exit 1
gen() { # PREFIX N TYPE ARGS: N job lines (job_json's shape) in one awk run
	awk -v p="$1" -v n="$2" -v t="$3" -v a="$4" -v now="$(now)" 'BEGIN {
		for (i = 1; i <= n; i++) printf "{\"id\":\"%s%d\",\"type\":\"%s\",\"args\":%s,\"created_at\":%s,\"max_attempts\":1}\n", p, i, t, a, now }'
}
gen da- 4000 fail '{}' >"$T/da"
gen de- 400 fail '{"message":"disk full on /x"}' >"$T/de"
gen dc- 100 crash '{}' >"$T/dc"
gen db- 500 fail '{}' >"$T/db"
push_many default "$T/da" && push_many default "$T/de" && push_many default "$T/dc" && push_many q2 "$T/db"
dead_n() { [ "$(rcli ZCARD "$(qkey "$1" dead)")" = "$2" ]; }
wait_for "4,500 default jobs dead" 120 dead_n default 4500
wait_for "500 q2 jobs dead" 60 dead_n q2 500
check_eq "every da- job dead" "$(count_state da- 1 4000 dead)" 4000

dead_again() { # QUEUE N: the dead set of QUEUE holds N entries and no job of it runs or waits
	dead_n "$1" "$2" && [ "$(rcli LLEN "$(qkey "$1" queue)")" = 0 ] &&
		[ "$(ctl stats --json | py -c 'import json,sys; print(json.load(sys.stdin)["running"])')" = 0 ]
}

# --- scope: the run's cursor names the last entry examined (maybe another owner's job): admin only ---
SUBMITTER=$(ctl token create sub --owner alice --scopes submit,read 2>/dev/null | grep '^hop_')
out=$(HOPPER_TOKEN=$SUBMITTER ctl dead retry --all 2>&1)
check_match "a submit-scoped token may not run dead retry --all" "$out" 'forbidden|admin'
check_eq "... and it retried nothing" "$(rcli ZCARD "$(qkey default dead)")" 4500

# --- filters ---
out=$(ctl dead retry --all --queue q2 2>&1)
check_eq "--queue q2: exactly its 500" "$out" "retried 500 dead jobs"
check_eq "default's dead set untouched" "$(rcli ZCARD "$(qkey default dead)")" 4500
wait_for "q2's jobs dead again" 60 dead_again q2 500
out=$(ctl dead retry --all --type crash 2>&1)
check_eq "--type crash: exactly the 100" "$out" "retried 100 dead jobs"
wait_for "the crash jobs dead again" 90 dead_again default 4500
out=$(ctl dead retry --all --error "disk full" 2>&1)
check_eq "--error 'disk full': exactly the 400" "$out" "retried 400 dead jobs"
wait_for "the de- jobs dead again" 60 dead_again default 4500
out=$(ctl dead retry --all --older-than 3600 2>&1)
check_eq "--older-than 3600: none is that old" "$out" "retried 0 dead jobs"
out=$(ctl dead retry --all --queue q2 --type crash 2>&1)
check_eq "--queue q2 --type crash: none matches both" "$out" "retried 0 dead jobs"
check_eq "de- jobs ran twice each" "$(sql n1 "select count(*) from attempts where job_id like 'de-%'")" 800
check_eq "da- jobs ran once each so far" "$(sql n1 "select count(*) from attempts where job_id like 'da-%'")" 4000
check "dead_retry refuses a forged cursor" bash -c "! HOME=$T $HOPPERCTL --socket $CTL_SOCK dead_retry --cursor 'default|x|1|a|zz' >/dev/null 2>&1"

# --- the full run, in chunks, while the retried jobs die again and new ones die ---
rcli CONFIG SET slowlog-log-slower-than 100000 >/dev/null
rcli SLOWLOG RESET >/dev/null
gen dn- 300 fail '{}' >"$T/dn"
py - "$CTL_SOCK" "$HOPPER_ROOT/client" "$T" >"$T/run.out" 2>&1 <<'PY' &
import os, sys, time
sock, client_dir, T = sys.argv[1:4]
sys.path.insert(0, client_dir)
import hopper
c = hopper.Client(socket=sock)
total, chunks, cursor = 0, 0, None
while True:
    r = c.call("dead_retry", limit=300, cursor=cursor)
    total += r["retried"]
    chunks += 1
    cursor = r.get("cursor")
    if chunks == 1:  # the run has begun: now 300 new jobs die (the test pushes them), then it goes on
        open(os.path.join(T, "go"), "w").close()
        while not os.path.exists(os.path.join(T, "dn.dead")):
            time.sleep(0.05)
    if cursor is None:
        break
    time.sleep(0.05)  # the retried jobs run and die again meanwhile
print("total", total, "chunks", chunks)
PY
runpid=$!
wait_for "the run's first chunk" 30 test -e "$T/go"
push_many default "$T/dn"
wait_for "300 new jobs dead" 60 all_in_state dn- 1 300 dead
touch "$T/dn.dead"
wait "$runpid"
check_eq "the run ended cleanly" "$?" 0
note "$(cat "$T/run.out")"
read -r _ total _ chunks < <(grep '^total' "$T/run.out")
check_eq "the run retried exactly the 5,000 jobs dead when it began" "${total:-}" 5000
check_ge "in chunks of at most 300 (at least 17 calls)" "${chunks:-0}" 17
wait_for "everything dead again" 240 dead_again default 4800
wait_for "q2 dead again" 60 dead_again q2 500
check_eq "new deaths not retried: each dn- job ran once" \
	"$(sql n1 "select count(*) from attempts where job_id like 'dn-%'")" 300
check_eq "each da- job ran exactly twice" \
	"$(sql n1 "select count(*) from (select job_id from attempts where job_id like 'da-%' group by job_id having count(*) = 2)")" 4000
check_eq "each db- job ran exactly 3 times (--queue q2 run, full run)" \
	"$(sql n1 "select count(*) from (select job_id from attempts where job_id like 'db-%' group by job_id having count(*) = 3)")" 500
check_eq "each de- job ran exactly 3 times (--error run, full run)" \
	"$(sql n1 "select count(*) from (select job_id from attempts where job_id like 'de-%' group by job_id having count(*) = 3)")" 400
check_eq "every job dead again, nothing lost (default: 4,000 + 400 + 100 + 300)" "$(rcli ZCARD "$(qkey default dead)")" 4800
check_eq "no dead_retry or dead_scan call in the SLOWLOG (100 ms)" \
	"$(rcli SLOWLOG GET 100 | grep -c 'hopper_dead_')" 0
# A second full run (through libhopper: hopperctl) finds every job again, once: 5,300 dead now.
out=$(ctl dead retry --all --chunk 1000 2>&1)
check_eq "a second run: all 5,300, once each" "$out" "retried 5300 dead jobs"
check_eq "hopper.py dead_retry_all with a filter matching none" \
	"$(py -c "import sys; sys.path.insert(0, '$HOPPER_ROOT/client'); import hopper; print(hopper.Client(socket='$CTL_SOCK').dead_retry_all(type='nosuch'))")" 0
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# unique_jobs: "unique" locks (README "Unique jobs and debounce") with three daemons on one Redis.
# - A race: 50 concurrent submits of one unique key (hopperctl batches and Python clients on all three control
#   sockets, and raw LPUSHes): exactly one job runs; every control submit answers with its id (unique_of),
#   every raw duplicate ends cancelled with duplicate_of naming it; the lock is released when it finishes.
# - until "started": a second submit while the holder waits gets its id; once it runs, a new job is admitted.
# - until "finished": the lock holds while the holder runs and while it waits for a retry; released at the end.
#   A dead unique job retried (retry, dead retry --all) takes its lock again; while another live job holds it,
#   retry is refused (conflict) and dead retry --all leaves it dead.
# - until "ttl": the lock outlives the job and ends with its TTL.
# - kill -9 of the daemon running a unique job: it runs again once, elsewhere; the lock holds meanwhile and is
#   released (not leaked) when it ends.
. "$(dirname "$0")/../lib.sh"

start_redis
for n in n1 n2 n3; do
	start_hopperd "$n" --workers=2 --lease-s=3 --heartbeat-s=1 --poll-ms=50 || exit 1
done

# sub SOCKET JOB_JSON: one submit over SOCKET (hopperctl --json, a batch of one): prints the reply.
sub() {
	printf '[%s]' "$2" >"$T/sub.$$.$BASHPID.json"
	HOME=$T "$HOPPERCTL" --socket "$T/$1.sock" --json submit --file "$T/sub.$$.$BASHPID.json"
}
# sub_id SOCKET JOB_JSON: the id the submit answered with.
sub_id() {
	sub "$@" | py -c 'import json, sys; print(json.load(sys.stdin)["ids"][0])'
}
# lock_of ID: the unique lock's key name, from the job hash's flow field.
lock_of() {
	jfield "$1" flow | cut -f3
}
# ran ID: how many attempt rows the three execution logs hold for the job (attempt > 0).
ran() {
	local n t=0
	for n in n1 n2 n3; do
		n=$(sql "$n" "SELECT count(*) FROM attempts WHERE job_id = '$1' AND attempt > 0")
		t=$((t + ${n:-0}))
	done
	echo "$t"
}
uj() { # ID TYPE ARGS UNIQUE-JSON
	job_json "$1" "$2" "$3" "\"unique\":$4"
}

# --- the race: 50 submits of one key at once ---
# Locks are scoped per owner: the raw pushes name the owner the control submits get (peer credentials, uid 0).
U='{"key":"upload-123","until":"finished"}'
cat >"$T/race.py" <<'PYEOF'
import sys, threading, json
sys.path.insert(0, sys.argv[1])
from hopper import Client
tdir, n, unique = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
out = [None] * n
def one(i):
    with Client(socket="%s/n%d.sock" % (tdir, 1 + i % 3)) as c:
        r = c.submit(job={"id": "race-py-%d" % i, "type": "sleep", "args": {"ms": 1500}, "unique": unique})
        out[i] = "%s %s %s" % (r["id"], r.get("unique_of", "-"), r.get("duplicate", False))
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(out))
PYEOF
py "$T/race.py" "$HOPPER_ROOT/client" "$T" 15 "$U" >"$T/race.py.out" 2>"$T/race.py.err" &
pids=($!)
for i in $(seq 1 20); do
	sub "n$((1 + i % 3))" "$(uj "race-ctl-$i" sleep '{"ms":1500}' "$U")" >"$T/race.ctl.$i" 2>&1 &
	pids+=($!)
done
for i in $(seq 1 15); do
	push_job default "$(job_json "race-raw-$i" sleep '{"ms":1500}' "\"owner\":\"uid:0\",\"unique\":$U")" &
	pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the daemons are this shell's children too
H=$(cat "$T"/race.ctl.* "$T/race.py.out" | py -c '
import sys, json
ids = set()
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"): ids.update(json.loads(line)["ids"])
    elif line: ids.add(line.split()[0])
print(" ".join(sorted(ids)))')
check_eq "race: all 35 control submits answered (hopperctl 20, python 15)" \
	"$(($(cat "$T"/race.ctl.* | grep -c '"ids"') + $(grep -c . "$T/race.py.out")))" 35
check_match "race: every control submit answered with one id" "$H" '^[a-z0-9-]+$'
wait_for "race: the holder $H ran" 60 state_is "$H" succeeded
wait_for "race: 15 raw pushes admitted" 30 sh -c "[ \$(redis-cli -s '$SOCK' ZCARD '$(qkey default jobs)') -ge 16 ]"
raw_dups=0
raw_ok=1
for i in $(seq 1 15); do
	id=race-raw-$i
	[ "$id" = "$H" ] && continue
	wait_for "raw $id ended" 30 state_is "$id" cancelled || raw_ok=0
	[ "$(jfield "$id" duplicate_of)" = "$H" ] && raw_dups=$((raw_dups + 1))
done
check_eq "race: raw duplicates ended cancelled" "$raw_ok" 1
check_eq "race: each raw duplicate names the holder (duplicate_of)" "$raw_dups" "$(seq 1 15 | grep -vcx "${H#race-raw-}")"
check_match "race: a raw duplicate's error names the holder and key" "$(jfield race-raw-1 error)$(jfield race-raw-2 error)" \
	"duplicate of job $H \\(unique key upload-123\\)"
succ=0
for id in $(rcli ZRANGE "$(qkey default jobs)" 0 -1); do
	case $id in race-*) [ "$(jstate "$id")" = succeeded ] && succ=$((succ + 1)) ;; esac
done
check_eq "race: exactly one job succeeded" "$succ" 1
sleep 0.5
total=0
for n in n1 n2 n3; do
	total=$((total + $(sql "$n" "SELECT count(*) FROM attempts WHERE job_id LIKE 'race-%' AND attempt > 0")))
done
check_eq "race: exactly one attempt ran, on all three daemons together" "$total" 1
check_eq "race: the python clients saw unique_of = holder (or were it)" \
	"$(awk -v h="$H" '$1 == h && ($2 == h || $2 == "-") { n++ } END { print n + 0 }' "$T/race.py.out")" 15
check_eq "race: hopperctl batches list the index as unique" \
	"$(cat "$T"/race.ctl.* | grep -c '"unique": *\[0\]')" "$(seq 1 20 | grep -vcx "${H#race-ctl-}")"
check "race: the lock is released after the holder finished" key_gone "$(lock_of "$H")"
check_ge "stats: unique_duplicates counted" "$(stat_count unique_duplicates)" 34

# --- until started ---
S='{"key":"k-started","until":"started"}'
A=$(sub_id n1 "$(job_json st-a sleep '{"ms":1500}' "\"unique\":$S,\"run_at\":$(awk -v n="$(now)" 'BEGIN { printf "%.3f", n + 2 }')")")
check_eq "started: the first is admitted" "$A" st-a
check_eq "started: a second while it waits answers with its id" "$(sub_id n2 "$(uj st-b noop '{}' "$S")")" st-a
check "started: the second has no hash" test -z "$(jstate st-b)"
check_eq "started: the lock names the holder" "$(rcli GET "$(lock_of st-a)")" st-a
wait_for "started: st-a runs" 30 state_is st-a running
check_eq "started: once it runs, a new job is admitted" "$(sub_id n3 "$(uj st-c noop '{}' "$S")")" st-c
wait_for "started: st-c succeeded" 30 state_is st-c succeeded
wait_for "started: st-a succeeded" 30 state_is st-a succeeded

# --- until finished, with a retry in between ---
F='{"key":"k-finished"}'
check_eq "finished: admitted" "$(sub_id n1 "$(job_json fi-a fail '{"message":"once"}' "\"max_attempts\":2,\"backoff_s\":2,\"unique\":$F")")" fi-a
wait_for "finished: fi-a retrying" 30 state_is fi-a retrying
check_eq "finished: while it waits for its retry, a second answers with its id" \
	"$(sub_id n2 "$(uj fi-b noop '{}' "$F")")" fi-a
wait_for "finished: fi-a ends" 30 state_is fi-a dead
check "finished: the lock went with its end" key_gone "$(lock_of fi-a)"
check_eq "finished: then a new job is admitted" "$(sub_id n3 "$(uj fi-c noop '{}' "$F")")" fi-c
wait_for "finished: fi-c succeeded" 30 state_is fi-c succeeded

# --- retry of a dead unique job: it takes its lock again; refused while another live job holds it ---
hc() { HOME=$T "$HOPPERCTL" --socket "$T/n1.sock" "$@"; }
check_eq "retry: fi-a (dead, lock free) is retried" "$(hc retry fi-a >/dev/null 2>&1; echo $?)" 0
check_eq "retry: it holds its unique lock again" "$(rcli GET "$(lock_of fi-a)")" fi-a
check_eq "retry: a submit of its key answers with its id" "$(sub_id n2 "$(uj fi-e noop '{}' "$F")")" fi-a
wait_for "retry: fi-a ends again" 40 state_is fi-a dead
check "retry: its lock went with its end" key_gone "$(lock_of fi-a)"
check_eq "retry: a new holder fi-d is admitted" "$(sub_id n3 "$(uj fi-d sleep '{"ms":4000}' "$F")")" fi-d
st=0; out=$(hc retry fi-a 2>&1) || st=$?
check_eq "retry: while fi-d holds the key, retrying fi-a is refused (conflict, 11)" "$st" 11
check_match "... saying who holds it" "$out" 'unique key is held by job fi-d'
check_eq "... and fi-a stays dead" "$(jstate fi-a)" dead
hc dead retry --all >/dev/null 2>&1
check_eq "dead retry --all leaves it dead while fi-d holds the key" "$(jstate fi-a)" dead
check_eq "... and fi-d keeps the lock" "$(rcli GET "$(lock_of fi-d)")" fi-d
wait_for "retry: fi-d succeeded" 30 state_is fi-d succeeded
hc dead retry --all >/dev/null 2>&1
check_match "dead retry --all retries it once the key is free, and it takes the lock" \
	"$(jstate fi-a) $(rcli GET "$(lock_of fi-a)")" '^(queued|running|retrying) fi-a$'
wait_for "retry: fi-a ends a third time" 40 state_is fi-a dead

# --- until ttl ---
L='{"key":"k-ttl","until":"ttl","ttl_s":3}'
check_eq "ttl: admitted" "$(sub_id n1 "$(uj tt-a noop '{}' "$L")")" tt-a
wait_for "ttl: tt-a succeeded" 30 state_is tt-a succeeded
check_eq "ttl: after it ended, the lock still answers with its id" "$(sub_id n2 "$(uj tt-b noop '{}' "$L")")" tt-a
check_match "ttl: the batch reply lists it as a duplicate by unique lock" \
	"$(sub n2 "$(uj tt-b2 noop '{}' "$L")")" '"duplicates": *\[0\], *"unique": *\[0\]'
wait_for "ttl: the lock expires" 10 key_gone "$(lock_of tt-a)"
check_eq "ttl: then a new job is admitted" "$(sub_id n3 "$(uj tt-c noop '{}' "$L")")" tt-c

# --- hopperctl submit --unique ---
c1=$(HOME=$T "$HOPPERCTL" --socket "$T/n1.sock" submit noop --id cli-a --unique '{"key":"k-cli","until":"ttl","ttl_s":30}')
c2=$(HOME=$T "$HOPPERCTL" --socket "$T/n2.sock" submit noop --id cli-b --unique '{"key":"k-cli","until":"ttl","ttl_s":30}')
check_eq "hopperctl --unique: the first prints its id" "$c1" cli-a
check_eq "hopperctl --unique: the second prints the holder's" "$c2" cli-a
check_match "hopperctl --unique: a bad spec is a clear admission error" \
	"$(HOME=$T "$HOPPERCTL" --socket "$T/n1.sock" submit noop --unique '{"key":"k","until":"never"}' 2>&1)" \
	"'until' must be started, finished or ttl"

# --- kill -9 of the daemon running a unique job ---
K='{"key":"k-kill"}'
check_eq "kill: admitted" "$(sub_id n1 "$(uj ki-a sleep '{"ms":3000}' "$K")")" ki-a
wait_for "kill: ki-a runs" 30 state_is ki-a running
victim=$(jfield ki-a node)
kill9_hopperd "$victim"
note "killed $victim, which ran ki-a"
alive=n1
[ "$victim" = n1 ] && alive=n2
check_eq "kill: while it is lost, a second submit answers with its id" "$(sub_id "$alive" "$(uj ki-b noop '{}' "$K")")" ki-a
check_eq "kill: the lock is kept" "$(rcli GET "$(lock_of ki-a)")" ki-a
wait_for "kill: ki-a runs again on another daemon" 60 sh -c "[ \"\$(redis-cli -s '$SOCK' HGET '$(jkey ki-a)' attempt)\" = 2 ]"
check_eq "kill: during its second run, a submit still answers with its id" \
	"$(sub_id "$alive" "$(uj ki-c noop '{}' "$K")")" ki-a
wait_for "kill: ki-a succeeded" 60 state_is ki-a succeeded
check_eq "kill: it stalled once" "$(jfield ki-a stalls)" 1
check "kill: it ran on another daemon" test "$(jfield ki-a node)" != "$victim"
check "kill: the lock is released, not leaked" key_gone "$(lock_of ki-a)"
check_eq "kill: then a new job is admitted" "$(sub_id "$alive" "$(uj ki-d noop '{}' "$K")")" ki-d
wait_for "kill: ki-d succeeded" 30 state_is ki-d succeeded

for n in n1 n2 n3; do
	[ "$n" = "$victim" ] || finish_hopperd "$n"
done
end_scenario

#!/usr/bin/env bash
# shared_workflows: stored workflows are one set for every daemon on one Redis (issue #16 item 1). A workflow
# put through a runs through b; replaced through b, a shows the new one; removed through b, a no longer has
# it; with Redis down the caches still show (and list) them; a Redis that comes back empty removes nothing
# from the caches; hopperd --migrate-shared copies an old SQLite's workflows (refusing to clobber a set that
# holds some unless --force).
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd a --workers=1 || exit 1
start_hopperd b --workers=1 || exit 1
ctl_on() { local n=$1; shift; CTL_SOCK=$T/$n.sock ctl "$@"; }
shows() { ctl_on "$1" workflow show "$2" 2>/dev/null | grep -q "$3"; }
gone() { ! ctl_on "$1" workflow show "$2" >/dev/null 2>&1; }

cat >"$T/pause.json" <<'J'
{"name": "pause", "steps": [{"id": "wait", "type": "delay", "params": {"ms": 10}}]}
J
ctl_on a workflow put "$T/pause.json" --description first >/dev/null
check_eq "workflow put through a exits 0" "$?" 0
entry=$(rcli HGET "$(gkey workflows)" pause)
check_match "Redis holds it" "$entry" '"description":"first"'
c1=$(printf '%s' "$entry" | grep -o '"created_at":[0-9.e+]*')
wait_for "b has pause" 5 shows b pause first
check "b shows the workflow put through a" shows b pause first
check_eq "b's cache row is shared" "$(sql b "SELECT shared FROM workflows WHERE name='pause'")" 1
ctl_on b workflow run pause --id wf-1 --wait >"$T/run.out"
check_eq "workflow run pause through b --wait exits 0" "$?" 0
check_match "... the run succeeded" "$(cat "$T/run.out")" 'state +succeeded'

ctl_on b workflow put "$T/pause.json" --description second >/dev/null
check_eq "replaced through b" "$?" 0
wait_for "a sees the replacement" 5 shows a pause second
check "a shows the replacement" shows a pause second
check_eq "... the first creation time kept" "$(rcli HGET "$(gkey workflows)" pause | grep -o '"created_at":[0-9.e+]*')" "$c1"

cat >"$T/other.json" <<'J'
{"name": "other", "steps": [{"id": "wait", "type": "delay", "params": {"ms": 10}}]}
J
ctl_on a workflow put "$T/other.json" >/dev/null
wait_for "b has other" 5 shows b other other
ctl_on b workflow rm other >/dev/null
check_eq "removed through b" "$?" 0
wait_for "other gone from a" 5 gone a other
check "a no longer has it" gone a other
check_eq "... nor Redis" "$(rcli HEXISTS "$(gkey workflows)" other)" 0

# A write with no notice reaches the caches through the version check.
rcli HSET "$(gkey workflows)" quiet \
	'{"name":"quiet","definition":"{\"name\":\"quiet\",\"steps\":[{\"id\":\"w\",\"type\":\"delay\",\"params\":{\"ms\":1}}]}","owner":"uid:0","active":true,"created_at":1,"updated_at":1}' >/dev/null
rcli INCR "$(gkey shared_ver)" >/dev/null
wait_for "a has quiet" 8 shows a quiet quiet
check "a has a workflow written without a notice (periodic check)" shows a quiet quiet

# Redis down: the caches still answer.
stop_redis
check "Redis down: a still shows pause" shows a pause second
check_match "... and lists it" "$(ctl_on a workflow list 2>/dev/null)" 'pause'
ctl_on a workflow put "$T/other.json" >/dev/null 2>"$T/put.err"
check "... a put is refused while Redis is down" grep -qi "unreachable" "$T/put.err"
_launch_redis
wait_for "b reports the empty set" 15 grep -q "Redis holds no shared workflows" "$T/b.log"
check "a Redis back empty is reported" grep -q "Redis holds no shared workflows" "$T/b.log"
check "... and removes nothing from the caches" shows b pause second

# An old SQLite's workflows (shared = 0): copied by --migrate-shared.
py -c 'import sqlite3, sys; a = sqlite3.connect(sys.argv[1]); b = sqlite3.connect(sys.argv[2]); a.backup(b)' \
	"$T/a.db" "$T/old.db"
sqlite3 "$T/old.db" "UPDATE workflows SET shared = 0; DELETE FROM tokens"
n_old=$(sqlite3 "$T/old.db" "SELECT count(*) FROM workflows")
check_ge "the old SQLite holds workflows" "$n_old" 2
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared 2>"$T/mig.err"
check_eq "--migrate-shared copies them: exit 0" "$?" 0
check "... saying how many" grep -q "copied $n_old stored workflows" "$T/mig.err"
check_eq "Redis holds them" "$(rcli HLEN "$(gkey workflows)")" "$n_old"
ctl_on b workflow run pause --id wf-2 --wait >/dev/null
check_eq "after the migration pause runs through b" "$?" 0
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared 2>"$T/mig2.err"
check_eq "a second --migrate-shared refuses (exit 1)" "$?" 1
check "... saying Redis holds workflows already" grep -q "already holds $n_old stored workflows" "$T/mig2.err"
"$HOPPERD" --redis-unix="$SOCK" --db-path="$T/old.db" --worker-path="$WORKER" --migrate-shared --force 2>"$T/mig3.err"
check_eq "--force: exit 0" "$?" 0

finish_hopperd a
finish_hopperd b
end_scenario

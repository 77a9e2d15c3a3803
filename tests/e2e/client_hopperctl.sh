#!/usr/bin/env bash
# client_hopperctl: hopperctl against a real daemon over the Unix socket and over encrypted TCP: the
# bootstrap of the first admin token by peer credentials, every subcommand with --json output parsed, the
# human tables, exit codes mapped from the protocol's error codes (forbidden, not_found, conflict,
# auth_failed, bad_request, no connection, --wait-timeout), credentials from --token, $HOPPER_TOKEN,
# --token-file and the default file (refused when group or others can read it), revocation, and
# submit --wait: live progress on a terminal, the job's outcome as exit status.
. "$(dirname "$0")/../lib.sh"

PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" || exit 1
WAIT_S=$((60 * TIME_SCALE))

# jget EXPR: evaluates a Python expression over the JSON object on stdin (bound to j); empty on error.
jget() {
	py -c '
import json, sys
try:
    j = json.loads(sys.stdin.readline())
    v = eval(sys.argv[1])
except Exception as e:
    v = "ERR:%s" % e
print(v if not isinstance(v, bool) else str(v).lower())' "$1"
}

# tcp ARGS: hopperctl over TCP (a token must be given).
tcp() {
	HOME=$T "$HOPPERCTL" --host "127.0.0.1:$PORT" "$@"
}

# --- bootstrap: peer credentials (root) make the first admin token, shown once ---
out=$(ctl --json token create admin --scopes admin 2>"$T/err")
st=$?
check_eq "token create by peer credentials exits 0" "$st" 0
ADMIN=$(printf '%s\n' "$out" | jget 'j["token"]')
check_match "the secret has the token form" "$ADMIN" '^hop_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$'
out=$(ctl token create reader --scopes read --owner alice 2>"$T/err")
check_eq "token create (human): stdout is the secret alone" "$(printf '%s\n' "$out" | wc -l):$(printf '%s' "$out" | grep -Ec '^hop_')" 1:1
check_match "token create (human): stderr says it is shown once" "$(cat "$T/err")" 'only time'
READER=$out
ctl token create alice-sub --scopes submit,read --owner alice >"$T/alice.tok" 2>/dev/null
ALICE=$(cat "$T/alice.tok")
ctl token create admin --scopes read >/dev/null 2>&1
check_eq "token create of an existing name exits 11 (conflict)" "$?" 11
ctl token create x --scopes bogus >/dev/null 2>&1
check_eq "token create with an unknown scope exits 2" "$?" 2

out=$(ctl --json token list)
check_eq "token list --json names the three tokens" \
	"$(printf '%s\n' "$out" | jget '",".join(sorted(t["name"] for t in j["tokens"]))')" admin,alice-sub,reader
check_eq "token list never shows a secret" "$(printf '%s' "$out" | grep -c "${READER#hop_????????????_}")" 0
check_match "token list (human) is a table" "$(ctl token list)" '^NAME +TOKEN ID +OWNER'

# --- every op, over both transports, as admin ---
for tr in unix tcp; do
	if [ "$tr" = unix ]; then
		C() { ctl --token "$ADMIN" "$@"; }
	else
		C() { tcp --token "$ADMIN" "$@"; }
	fi
	check_eq "$tr: ping --json" "$(C --json ping | jget 'j["pong"]')" true
	out=$(C --json submit noop --queue nobody-$tr --id q-$tr)
	check_eq "$tr: submit --json: queued" "$(printf '%s\n' "$out" | jget 'j["id"] + "/" + j["state"]')" "q-$tr/queued"
	check_eq "$tr: status --json: queued, owned by admin" \
		"$(C --json status q-$tr | jget 'j["state"] + "/" + j["owner"]')" queued/admin
	check_match "$tr: status (human)" "$(C status q-$tr)" '^state +queued'
	check_eq "$tr: list --queue --json finds it" \
		"$(C --json list --queue nobody-$tr | jget '[x["id"] for x in j["jobs"]]')" "['q-$tr']"
	check_match "$tr: list (human) is a table" "$(C list --queue nobody-$tr)" "^ID +TYPE.*"$'\n'"q-$tr +noop"
	check_eq "$tr: queues --json: the configured queue" \
		"$(C --json queues | jget '[q["name"] for q in j["queues"] if q["name"] == "default"]')" "['default']"
	check_eq "$tr: stats --json has counters and a pool" "$(C --json stats | jget '"counters" in j and "pool" in j')" true
	check_eq "$tr: pause --json" "$(C --json pause nobody-$tr | jget 'j["paused"]')" true
	check_eq "$tr: queues shows the paused queue with its job" \
		"$(C --json queues | jget '[(q["length"], q["paused"]) for q in j["queues"] if q["name"] == "nobody-'$tr'"]')" \
		"[(1, True)]"
	check_match "$tr: queues (human) is a table" "$(C queues)" '^NAME +LENGTH +SCHEDULED +INFLIGHT +PAUSED'
	check_eq "$tr: resume --json" "$(C --json resume nobody-$tr | jget 'j["paused"]')" false
	check_eq "$tr: cancel a queued job" "$(C --json cancel q-$tr | jget 'j["state"] + "/" + j["was"]')" cancelled/queued
	C cancel q-$tr >/dev/null 2>&1
	check_eq "$tr: cancel again exits 11 (conflict)" "$?" 11
	C retry q-$tr >/dev/null 2>&1
	check_eq "$tr: retry of a cancelled job exits 11 (conflict)" "$?" 11
	C status no-such-job >/dev/null 2>&1
	check_eq "$tr: status of an unknown job exits 10" "$?" 10

	out=$(C submit sleep --args '{"ms":400}' --wait --wait-timeout "$WAIT_S" 2>&1)
	st=$?
	check_eq "$tr: submit --wait of a succeeding job exits 0" "$st" 0
	sid=$(printf '%s\n' "$out" | head -n 1)
	check_match "$tr: submit --wait prints the final state" "$out" '^state +succeeded'
	check_eq "$tr: the job hash agrees" "$(jstate "$sid")" succeeded
	C --json watch "$sid" >"$T/w.$tr"
	check_eq "$tr: watch of a finished job exits 0" "$?" 0
	check_eq "$tr: watch --json ends with the succeeded state" "$(tail -n 1 "$T/w.$tr" | jget 'j["state"]')" succeeded
	check_ge "$tr: watch --json replays several events" "$(wc -l <"$T/w.$tr")" 3
	check_match "$tr: logs shows the attempt" "$(C logs "$sid")" 'succeeded'
	check_eq "$tr: logs --json: one attempt" "$(C --json logs "$sid" | jget 'len(j["attempts"])')" 1

	out=$(C submit fail '{"message":"nope"}' --max-attempts 1 --wait --wait-timeout "$WAIT_S" 2>&1)
	check_eq "$tr: submit --wait of a failing job exits 1" "$?" 1
	fid=$(printf '%s\n' "$out" | head -n 1)
	check_eq "$tr: it is dead" "$(jstate "$fid")" dead
	check_match "$tr: dead lists it with its error" "$(C dead | grep -F "$fid")" 'nope'
	check_eq "$tr: list --state dead --json has it" \
		"$(C --json list --state dead | jget '"'"$fid"'" in [x["id"] for x in j["jobs"]]')" true
	check_eq "$tr: retry of the dead job: queued again" "$(C --json retry "$fid" | jget 'j["state"]')" queued
	wait_for "$fid dead again" 30 state_is "$fid" dead
done

# --- watch of several jobs on one connection ---
w1=$(ctl submit sleep '{"ms":300}') w2=$(ctl submit sleep '{"ms":500}')
ctl --json watch "$w1" "$w2" --timeout "$WAIT_S" >"$T/w2.out"
check_eq "watch of two jobs exits 0 when both succeed" "$?" 0
check_eq "watch of two jobs: events of both, each ending succeeded" \
	"$(py -c '
import json, sys
last = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    last[e["job"]] = e["state"]
print(sorted(last.items()) == sorted([(sys.argv[2], "succeeded"), (sys.argv[3], "succeeded")]))' "$T/w2.out" "$w1" "$w2")" True

# --- exit codes ---
out=$(ctl --token "$READER" submit noop 2>&1)
check_eq "a read-only token cannot submit: exit 9 (forbidden)" "$?" 9
check_match "... and says forbidden" "$out" forbidden
ctl --token "$ALICE" status q-unix >/dev/null 2>&1
check_eq "alice cannot see admin's job: exit 10 (not_found)" "$?" 10
aid=$(ctl --token "$ALICE" submit noop --queue nobody-alice 2>/dev/null)
check_eq "alice sees her own job" "$(ctl --token "$ALICE" --json status "$aid" | jget 'j["owner"]')" alice
ctl --token "$ALICE" submit noop --owner bob >/dev/null 2>&1
check_eq "alice cannot submit for another owner: exit 9" "$?" 9
ctl --token hop_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ping >/dev/null 2>&1
check_eq "an unknown token: exit 7 (auth_failed)" "$?" 7
ctl --token not-a-token ping >/dev/null 2>&1
check_eq "a malformed token: exit 2" "$?" 2
HOME=$T "$HOPPERCTL" --socket "$T/no-such.sock" ping >/dev/null 2>&1
check_eq "no daemon: exit 15" "$?" 15
ctl frobnicate >/dev/null 2>&1
check_eq "an unknown command: exit 2" "$?" 2
ctl list --limit 0 >/dev/null 2>&1
check_eq "list --limit 0 is refused before sending: exit 2" "$?" 2
ctl list --state bogus >/dev/null 2>&1
check_eq "list --state bogus: the daemon's bad_request, exit 2" "$?" 2
ctl submit noop --queue nobody-wait --wait --wait-timeout 1 >/dev/null 2>&1
check_eq "submit --wait on a job nobody runs: exit 16 after --wait-timeout" "$?" 16
ctl watch q-unix --timeout 5 >/dev/null 2>&1
check_eq "watch of a cancelled job exits 1" "$?" 1
tcp ping >/dev/null 2>&1
check_eq "TCP without a token: exit 2" "$?" 2

# --- credentials: environment, token files ---
check_eq "HOPPER_TOKEN is used" "$(HOPPER_TOKEN=$ALICE ctl --json status "$aid" | jget 'j["owner"]')" alice
printf '%s\n' "$ALICE" >"$T/alice.file"
chmod 644 "$T/alice.file"
out=$(ctl --token-file "$T/alice.file" ping 2>&1)
check_eq "a token file readable by others is refused: exit 2" "$?" 2
check_match "... saying why" "$out" 'group or others'
chmod 640 "$T/alice.file"
ctl --token-file "$T/alice.file" ping >/dev/null 2>&1
check_eq "a token file readable by the group is refused" "$?" 2
chmod 600 "$T/alice.file"
check_eq "a 0600 token file is used" "$(ctl --token-file "$T/alice.file" --json status "$aid" | jget 'j["owner"]')" alice
check_eq "a token file over TCP" "$(tcp --token-file "$T/alice.file" --json status "$aid" | jget 'j["owner"]')" alice
mkdir -p "$T/.config/hopper"
printf '%s\n' "$ALICE" >"$T/.config/hopper/token"
chmod 600 "$T/.config/hopper/token"
check_eq "the default token file (~/.config/hopper/token) is used" \
	"$(ctl --json status "$aid" | jget 'j["owner"]')" alice
chmod 604 "$T/.config/hopper/token"
ctl ping >/dev/null 2>&1
check_eq "the default token file readable by others is refused" "$?" 2
rm -f "$T/.config/hopper/token"

# --- revocation ---
check_eq "token revoke --json" "$(ctl --json token revoke reader | jget 'j["name"]')" reader
tcp --token "$READER" --json queues >/dev/null 2>&1
check_eq "a revoked token: exit 7 (over TCP)" "$?" 7
check_eq "token list shows it revoked" \
	"$(ctl --json token list | jget '[t["revoked_at"] is not None for t in j["tokens"] if t["name"] == "reader"]')" "[True]"

# --- help from the catalogue ---
check_match "help lists every op" "$(ctl help)" 'token revoke.*'
check_match "help of one op names its scope and options" "$(ctl help list)" 'needs scope: read'
for op in ping submit status watch cancel retry list logs queues stats pause resume "token create" "token list" \
	"token revoke"; do
	# shellcheck disable=SC2086
	ctl help $op >/dev/null 2>&1 || not_ok "help $op" "exit $?"
done
ok "help of every op exits 0"

# --- submit --wait on a terminal: a progress bar and colours; piped: none ---
script -qefc "HOME=$T $HOPPERCTL --socket $CTL_SOCK submit sleep --args '{\"ms\":800}' --wait" /dev/null >"$T/tty.out" 2>&1
st=$?
check_eq "submit --wait on a terminal exits 0" "$st" 0
check_match "a progress bar is drawn" "$(cat "$T/tty.out")" '\[#+\.*\] +[0-9]+%'
check_match "it reaches 100%" "$(cat "$T/tty.out")" '\[#{24}\] 100%'
check_ge "colours on a terminal" "$(grep -c $'\033\\[3' "$T/tty.out")" 1
out=$(ctl submit sleep --args '{"ms":100}' --wait 2>&1)
check_eq "no escape codes when piped" "$(printf '%s' "$out" | grep -c $'\033')" 0

finish_hopperd n1
end_scenario

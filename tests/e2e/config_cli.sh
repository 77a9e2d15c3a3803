#!/usr/bin/env bash
# config_cli: hopperd's command line: --check-config accepts a good file and rejects a bad line naming
# file:line, --version prints the version, an unknown flag is a usage error; every option of the example
# file parses.
. "$(dirname "$0")/../lib.sh"

cat >"$T/good.conf" <<CONF
# a good file
redis_unix = $T/redis.sock
node_id = cfg-node   # trailing comment
workers = 2
lease_s = 3.5
heartbeat_s = 1
queues = high:3,default:1
queue_mode = weighted

log_level = debug
CONF
out=$("$HOPPERD" --check-config --config="$T/good.conf" 2>&1)
check_eq "--check-config accepts a good file" "$?" 0
out=$("$HOPPERD" -n -c "$T/good.conf" 2>&1)
check_eq "-n -c accepts a good file" "$?" 0
out=$("$HOPPERD" --check-config --config="$HOPPER_ROOT/daemon/hopperd.conf.example" 2>&1)
check_eq "--check-config accepts the example file" "$?" 0
out=$("$HOPPERD" --check-config --config="$T/good.conf" --workers=3 --lease_s=2 2>&1)
check_eq "--check-config accepts flags with dashes or underscores" "$?" 0

check_bad() { # NAME LINE-NUMBER FILE-CONTENT
	printf '%s\n' "$3" >"$T/bad.conf"
	local out st
	out=$("$HOPPERD" --check-config --config="$T/bad.conf" 2>&1)
	st=$?
	check "$1: --check-config exits non-zero" test "$st" -ne 0
	check_match "$1: the error names file:line" "$out" "bad\\.conf:$2\\b"
}
check_bad "a non-numeric value" 3 "# bad
node_id = x
workers = banana"
check_bad "an unknown option" 2 "workers = 2
no_such_option = 1"
check_bad "a line without =" 1 "this is not an option line"
check_bad "a value out of range" 2 "
lease_s = -5"

out=$("$HOPPERD" --check-config --config="$T/good.conf" --workers=banana 2>&1)
check "a bad flag value is rejected" test "$?" -ne 0
out=$("$HOPPERD" --check-config --config="$T/no-such-file.conf" 2>&1)
check "a missing config file is rejected" test "$?" -ne 0

out=$("$HOPPERD" --version 2>&1)
st=$?
check_eq "--version exits 0" "$st" 0
check_match "--version prints a version" "$out" '[0-9]+\.[0-9]+'
out=$("$HOPPERD" -V 2>&1)
check_eq "-V exits 0" "$?" 0

out=$("$HOPPERD" --no-such-flag 2>&1)
st=$?
check "an unknown flag exits non-zero" test "$st" -ne 0
check_match "an unknown flag prints usage" "$out" 'usage'
out=$("$HOPPERD" --help 2>&1)
check_eq "--help exits 0" "$?" 0
check_match "--help lists the options" "$out" 'redis-unix|redis_unix'

# hopperctl: a bad command line is a usage error (exit 2).
out=$("$HOPPERCTL" --no-such-flag 2>&1)
check_eq "hopperctl: an unknown flag exits 2" "$?" 2
out=$("$HOPPERCTL" no-such-command 2>&1)
check_eq "hopperctl: an unknown command exits 2" "$?" 2
end_scenario

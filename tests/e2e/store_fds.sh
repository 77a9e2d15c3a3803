#!/usr/bin/env bash
# store_fds: a worker process holds fds 0-2 and its socket (fd 3) and nothing else, even when hopperd
# inherited a stray fd above 1023 without close-on-exec (the old exec closed only 4..1023); the execution
# log's files are close-on-exec in hopperd, and the worker's socket is a socket.
. "$(dirname "$0")/../lib.sh"

# A stray fd hopperd inherits: above 1023 and not close-on-exec (bash opens it so).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 2048 ]; then
	not_ok "raise the fd limit" "the hard limit is $hard; this scenario needs 2048"
	end_scenario
fi
ulimit -n 2048
STRAY=1500
eval "exec $STRAY>\"\$T/stray\""

start_redis
start_hopperd n1 --workers=1 || exit 1
eval "exec $STRAY>&-"
hpid=${HD_PID[n1]}
check "hopperd really inherited the stray fd $STRAY" test -e "/proc/$hpid/fd/$STRAY"

push_job default "$(job_json fd-sleep sleep '{"ms":20000}' '"timeout_s":60')"
wait_for "fd-sleep running" 30 state_is fd-sleep running
wpid=$(jfield fd-sleep worker_pid)
check_match "the running job names its worker" "$wpid" '^[1-9][0-9]*$'
fds=$(ls "/proc/$wpid/fd" 2>/dev/null | sort -n | tr '\n' ' ')
check_eq "the worker's fds are 0-2 and its socket only" "$fds" "0 1 2 3 "
check_match "fd 3 is its socket" "$(readlink "/proc/$wpid/fd/3")" '^socket:'

# The SQLite files hopperd holds (database, WAL, shared memory) carry O_CLOEXEC (02000000 in fdinfo's flags).
n=0 bad=
for f in /proc/"$hpid"/fd/*; do
	target=$(readlink "$f")
	case $target in
	"$T"/n1.db*) ;;
	*) continue ;;
	esac
	n=$((n + 1))
	flags=$(awk '/^flags:/ { print $2 }' "/proc/$hpid/fdinfo/${f##*/}")
	[ $((8#$flags & 8#2000000)) -ne 0 ] || bad="$bad ${f##*/}:$target"
done
check_ge "hopperd holds its SQLite files" "$n" 2
check_eq "every SQLite fd of hopperd is close-on-exec" "$bad" ""

ctl cancel fd-sleep >/dev/null 2>&1 || rcli PUBLISH "${HP}control" '{"op":"cancel","id":"fd-sleep"}' >/dev/null
wait_for "fd-sleep ends" 30 state_is fd-sleep cancelled
finish_hopperd n1
end_scenario

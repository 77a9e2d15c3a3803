#!/usr/bin/env bash
# store_full: hopperd's SQLite log on a file system that fills up (a small tmpfs). While it is full every
# job still runs to its terminal state in Redis (Redis holds the truth), the daemon logs the disk-full error
# once, not once per batch, and stays up; once space returns it says so and writes rows again.
. "$(dirname "$0")/../lib.sh"

start_redis
FS=$T/full
if ! mount_tmpfs "$FS" 3m; then
	not_ok "mount a small tmpfs for the log" "mount -t tmpfs failed (this scenario needs root)"
	end_scenario
fi
start_hopperd n1 --workers=2 --db-path="$FS/n1.db" --backoff-base-s=0.1 --backoff-max-s=0.2 || exit 1
DB=$FS/n1.db

for i in 1 2 3; do push_job default "$(job_json before-$i noop)"; done
wait_for "rows before the disk fills" 30 sql_is "$DB" "SELECT count(*) FROM attempts WHERE job_id LIKE 'before-%' AND state = 'succeeded'" 3
check_eq "rows are written while there is space" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE job_id LIKE 'before-%' AND state = 'succeeded'")" 3

# Fill the file system to the last block.
dd if=/dev/zero of="$FS/filler" bs=16k 2>/dev/null
check_eq "the file system is full" "$(df --output=avail "$FS" | tail -1 | tr -d ' ')" 0

N=40
: >"$T/jobs"
for i in $(seq 1 $N); do
	case $((i % 4)) in
	0) job_json full-$i fail '{"message":"no"}' '"max_attempts":2' ;;
	1) job_json full-$i sleep '{"ms":100}' ;;
	*) job_json full-$i noop ;;
	esac >>"$T/jobs"
	echo >>"$T/jobs"
done
push_many default "$T/jobs"
terminal_all() {
	[ $(($(count_state full- 1 $N succeeded) + $(count_state full- 1 $N dead))) = "$N" ]
}
wait_for "all $N jobs terminal while the disk is full" 60 terminal_all
check "every job reached its terminal state on a full disk" terminal_all
check_eq "the failing ones are dead, the others succeeded" "$(job_states full- 1 $N | tr '\n' ' ')" \
	"dead=10 succeeded=30 "
check "hopperd is still running" hopperd_alive n1
wait_for "the disk-full line" 10 grep -q 'disk full' "$T/n1.log"
check_eq "the disk-full error is logged once, not per batch" "$(grep -c 'store: .*disk full' "$T/n1.log")" 1
# The store's counters are in the stats op (and hopperctl stats): the disk-full batches and the rows lost.
stat_store() { ctl --json stats 2>/dev/null | py -c 'import json,sys; print(json.load(sys.stdin)["store"][sys.argv[1]])' "$1"; }
check_ge "stats counts the disk-full errors" "$(stat_store errors_full)" 1
check_ge "stats counts the rows dropped (at least one per job run while full)" "$(stat_store rows_dropped)" $N
written_full=$(stat_store rows_written)
check_eq "no row of the jobs run while full reached the file" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE job_id LIKE 'full-%'")" 0

# Space returns: the next batches commit, and the daemon says it writes again.
rm -f "$FS/filler"
for i in 1 2 3; do push_job default "$(job_json after-$i noop)"; done
wait_for "rows after space returned" 30 sql_is "$DB" "SELECT count(*) FROM attempts WHERE job_id LIKE 'after-%' AND state = 'succeeded'" 3
check_eq "rows are written again once there is space" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE job_id LIKE 'after-%' AND state = 'succeeded'")" 3
check_ge "stats: rows_written moved once space returned" "$(stat_store rows_written)" $((written_full + 3))
check_match "hopperctl stats shows the store counters" "$(ctl stats 2>&1)" 'rows_dropped'
check_match "the daemon logs that it writes again, with the count it dropped" \
	"$(grep 'store: writing again' "$T/n1.log")" 'writing again; [1-9][0-9]* rows were dropped'
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# celery_priority: ten tasks sent with priorities 9..0 before hopperd starts run in kombu's order: bucket 0
# (priorities 0-2), then 3, 6, 9, first-in first-out within a bucket. A kombu global_keyprefix is honoured.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
export TIME_SCALE
relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" prio_send
check_eq "kombu bucket lists (queue, queue SEP 3, SEP 6, SEP 9)" \
	"$(rcli LLEN celery) $(rcli LLEN "$(printf 'celery\x06\x163')") $(rcli LLEN "$(printf 'celery\x06\x166')") $(rcli LLEN "$(printf 'celery\x06\x169')")" \
	"3 3 3 1"
start_hopperd n1 --workers=1 --queues=celery --celery-queues=celery --celery-tasks="t.noop=noop" || exit 1
relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" prio_check
# The execution log's row order is the order the worker took them (one worker). Sent: priority 9 first.
wait_for "10 attempt rows" 15 sql_is n1 "SELECT count(*) FROM attempts" 10
declare -A prio=()
p=9
for id in $(rcli LRANGE test:prio 0 -1); do
	prio[$id]=$p
	p=$((p - 1))
done
order=""
for id in $(sql n1 "SELECT job_id FROM attempts ORDER BY id"); do
	order="$order ${prio[$id]:-?}"
done
check_eq "priorities: run in kombu's order (buckets 0, 3, 6, 9; FIFO within one)" "$order" " 2 1 0 5 4 3 8 7 6 9"
finish_hopperd n1

# kombu's global_keyprefix: the Celery lists and result keys carry it; hopperd reads and writes the same.
start_hopperd n2 --workers=1 --queues=pq --celery-queues=pq --celery-tasks="t.noop=noop" --celery-prefix=app1: ||
	exit 1
id=$("$HOPPERCTL" --redis-unix "$SOCK" celery send t.noop --queue pq --celery-prefix app1: --kwargs '{"n":1}')
check_match "hopperctl celery send prints the task id" "$id" '^[0-9a-f-]{36}$'
wait_for "prefixed result" 20 key_exists "app1:celery-task-meta-$id"
check_match "result under the prefix" "$(rcli GET "app1:celery-task-meta-$id")" '"status": "SUCCESS"'
check_eq "nothing left on the prefixed list" "$(rcli LLEN app1:pq)" 0
finish_hopperd n2
end_scenario

#!/usr/bin/env bash
# celery_tasks: a stock Celery app (Debian's python3-celery) sends tasks by send_task, delay, chains, links,
# countdown/eta and expires, as pickle, unmapped and garbage; hopperd runs them as hopper jobs and
# AsyncResult reads the results, PROGRESS and exceptions from the Redis result backend.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
out=$("$HOPPERD" --check-config --queues=default --celery-queues=celery 2>&1)
check_match "config: a Celery queue must also be a hopper queue" "$out" "celery_queues: 'celery' must also be listed"
out=$("$HOPPERD" --check-config --celery-tasks="t.x=no.such.type" 2>&1)
check_match "config: a mapped job type must exist" "$out" "unknown job type 'no.such.type'"
out=$("$HOPPERD" --check-config --celery-tasks="justaname" 2>&1)
check_match "config: a malformed mapping is refused" "$out" "TASK=TYPE"
start_hopperd n1 --workers=2 --queues=celery,default --celery-queues=celery \
	--celery-tasks="t.noop=noop t.sleep=sleep:ms t.after=sleep:prev t.fail=fail:message" \
	--celery-result-expires=3600 --celery-track-started=1 --max-attempts=2 --backoff-base-s=0.1 || exit 1

export TIME_SCALE
relay py "$HOPPER_ROOT/tests/celery/cases.py" "$SOCK" basic progress failure chain refused eta expires

check "hopperd survived every message" hopperd_alive n1
check_eq "no Celery message left in hopperd's inflight list" "$(rcli LLEN "$(gkey celery:inflight n1)")" 0
check_eq "no Celery message left on the queue" "$(rcli LLEN celery)" 0
wait_for "execution-log rows" 15 sql_is n1 "SELECT count(*) > 10 FROM attempts WHERE queue='celery'" 1
check_eq "Celery jobs are in the SQLite execution log" \
	"$(sql n1 "SELECT count(*) > 10 FROM attempts WHERE queue='celery' AND state='succeeded'")" 1
finish_hopperd n1
end_scenario

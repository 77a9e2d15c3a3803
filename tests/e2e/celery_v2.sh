#!/usr/bin/env bash
# celery_v2: what a stock Celery app (Debian's python3-celery) meets in hopperd beyond plain tasks:
# oversized and broken messages get a prompt FAILURE under their own id; hopperctl cancel of a queued or
# running Celery task reads REVOKED (TaskRevokedError); the Python side is tests/celery/v2.py.
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/celery/relay.sh"
require_binaries

start_redis
start_hopperd n1 --workers=2 --queues=celery,default --celery-queues=celery --kill-grace-s=1 \
	--celery-tasks="t.noop=noop t.sleep=sleep:ms t.fail=fail:message" --max-attempts=2 --backoff-base-s=0.1 || exit 1

export TIME_SCALE HOPPERCTL CTL_SOCK T
relay py "$HOPPER_ROOT/tests/celery/v2.py" "$SOCK" big cancel

check "hopperd survived every message" hopperd_alive n1
finish_hopperd n1
end_scenario

#!/usr/bin/env bash
# web_sse_resume: the event ids of GET /v1/jobs/ID/events name the events themselves ("<at_ms>-<hash>"), so
# Last-Event-ID resumes exactly after that event, and when the daemon trimmed it from the job's event list
# (events_max 10 here, jobs of ~50 events) the stream says so with "event: lost" before going on, never
# skipping silently: after the job ended and while it runs, against an uninterrupted stream of the same job
# (tests/web/sse_resume_test.py).
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/web/lib.sh"

start_redis
start_hopperd n1 --workers=2 --queues=q --events-max=10 || exit 1
ALICE=$(ctl token create alice --scopes submit,read,cancel --owner alice 2>/dev/null)
ADMIN=$(ctl token create root --scopes admin 2>/dev/null)
start_web || exit 1
ALICE=$ALICE ADMIN=$ADMIN WEB=$WEB SCENARIO=$SCENARIO PYTHONPATH=$HOPPER_ROOT/tests/web \
	/usr/bin/python3 "$HOPPER_ROOT/tests/web/sse_resume_test.py"
check_eq "the resume checks passed" "$?" 0
check "hopperd still serves" ctl ping
stop_web
check_eq "hopper-web exits 0 on SIGTERM" "$?" 0
end_scenario

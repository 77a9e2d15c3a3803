#!/usr/bin/env bash
# big_job: a job whose args are close to the 1 MiB message limit is larger than a socket buffer; it must
# still reach its worker whole and succeed (a short write once made hopperd replace worker after worker).
# A message over the limit goes to the dead list with the reason.
. "$(dirname "$0")/../lib.sh"

start_redis
start_hopperd n1 --workers=1 || exit 1
py - "$SOCK" <<'PY'
import json, sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1])
r.lpush("hopper:{default}:queue", json.dumps({"id": "big-1", "type": "noop", "args": {"blob": "x" * 900000}}))
r.lpush("hopper:{default}:queue", json.dumps({"id": "big-2", "type": "noop", "args": {"blob": "y" * 1100000}}))
PY
wait_for "the 900 KB job succeeded" 30 state_is big-1 succeeded
check_eq "it took one attempt" "$(jfield big-1 attempt)" 1
one_dead() { [ "$(dead_count)" = 1 ]; }
wait_for "the 1.1 MB message is dead" 30 one_dead
check_eq "one dead entry" "$(dead_count)" 1
check_match "its error names the limit" "$(dead_entries | py -c 'import json,sys; print(json.loads(sys.stdin.readline())["error"])')" \
	"over the 1048576-byte limit"
check "it made no job hash" key_gone "$(qkey default job big-2)"
check "no worker was replaced for it" bash -c "! grep -q 'cannot send it a job' '$T/n1.log'"
finish_hopperd n1
end_scenario

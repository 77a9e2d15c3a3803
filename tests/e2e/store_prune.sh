#!/usr/bin/env bash
# store_prune: pruning a large execution log (300,000 old attempts with a log line each: 600,000 rows) goes
# in bounded steps between which the loop serves: while old rows are part-way deleted, jobs keep finishing
# and the control socket answers; the prune finishes, keeps the recent and running rows, and says how much
# it deleted. (One big DELETE on the loop thread, as before, deletes all at once and serves nothing meanwhile.)
. "$(dirname "$0")/../lib.sh"

OLD=300000
start_redis
start_hopperd n1 --workers=2 || exit 1 # creates the schema
stop_hopperd n1
sql n1 "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $OLD)
	INSERT INTO attempts (job_id, type, queue, attempt, state, started_at, finished_at)
	SELECT 'old-' || i, 'noop', 'default', 1, 'succeeded', 1000 + i * 0.001, 1000.5 + i * 0.001 FROM n;
	INSERT INTO attempt_events (attempt_id, at, kind, level, message)
	SELECT id, started_at, 'log', 'info', 'an old line' FROM attempts;
	INSERT INTO attempts (job_id, type, queue, attempt, state, started_at, finished_at)
	VALUES ('recent', 'noop', 'default', 1, 'succeeded', $(now) - 60, $(now) - 59); COMMIT"
check_eq "the old log is in place" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'old-%'")" $OLD

# Jobs waiting before the daemon starts, so they run while it prunes.
N=300
: >"$T/jobs"
for i in $(seq 1 $N); do
	job_json pj-$i sleep '{"ms":20}' >>"$T/jobs"
	echo >>"$T/jobs"
done
push_many default "$T/jobs"
start_hopperd n1 --workers=2 --log-retention-days=1 --log-prune-chunk=500 || exit 1

# Samples: old rows left, jobs succeeded, whether the control socket answered.
: >"$T/samples"
for ((k = 0; k < 600 * TIME_SCALE; k++)); do
	left=$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'old-%'")
	done_n=$(count_state pj- 1 $N succeeded)
	ping=0
	if ctl ping >/dev/null 2>&1; then ping=1; fi
	echo "$left $done_n $ping" >>"$T/samples"
	[ "$left" = 0 ] && break
	sleep 0.1
done
note "samples (old rows left, jobs done, ping): $(tr '\n' ',' <"$T/samples" | head -c 600)"
# Two samples both taken part-way through the prune, with jobs finished between them.
check_eq "jobs finished while the prune was part-way (between two samples with old rows partly deleted)" \
	"$(awk -v old=$OLD '$1 > 0 && $1 < old { if (seen && $2 > d) ok = 1; if (!seen) d = $2; seen = 1 }
		END { print ok + 0 }' "$T/samples")" 1
check_ge "the control socket answered part-way through" \
	"$(awk -v old=$OLD '$1 > 0 && $1 < old && $3 == 1 { n++ } END { print n + 0 }' "$T/samples")" 1
wait_for "the prune's log line" 30 grep -q 'pruned [0-9]* execution-log rows' "$T/n1.log"
check_eq "the prune finished: no old attempt left" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id LIKE 'old-%'")" 0
check_eq "nor their events" "$(sql n1 "SELECT count(*) FROM attempt_events WHERE message = 'an old line'")" 0
check_eq "the recent row is kept" "$(sql n1 "SELECT count(*) FROM attempts WHERE job_id = 'recent'")" 1
check_match "it logs the rows it deleted, once" "$(grep -c "pruned $((2 * OLD)) execution-log rows" "$T/n1.log")" '^1$'
wait_for "all jobs done" 60 all_in_state pj- 1 $N succeeded
check "every job succeeded" all_in_state pj- 1 $N succeeded
finish_hopperd n1
end_scenario

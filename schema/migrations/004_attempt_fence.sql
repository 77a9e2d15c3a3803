-- 004_attempt_fence: the execution log is exact (issue #10, item 8). Applied with PRAGMA user_version = 4 by
-- daemon/store/store.c.
--
-- One row per attempt, whatever ended it. Besides the outcomes a job's attempts have always had (succeeded,
-- failed, retrying, dead, cancelled, requeued), an attempt may now end:
--   superseded  its fencing token was refused: another claim owns the job (this daemon's lease lapsed), so
--               its outcome was recorded here and not applied in Redis;
--   reaped      its owner was declared dead and the job taken back (a row an earlier, killed process of this
--               daemon left 'running' is marked so at start).
-- created_at is the job's real creation time (its Redis hash's), NULL where unknown.

-- The attempt's fencing token, handed out by the claim and carried by every later write of the attempt
-- (schema/redis-keys.md). With it a checker proves "never two live non-superseded attempts of one job at the
-- same time" across the logs of all daemons. NULL for rows written before 004 and for messages that never
-- became a job.
ALTER TABLE attempts ADD COLUMN fence INTEGER;

-- At start the daemon marks the attempts an earlier run left 'running' (store_reap_running): a small partial
-- index finds them without reading the whole log.
CREATE INDEX attempts_running ON attempts(state) WHERE state = 'running';

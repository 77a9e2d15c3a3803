-- 005_attempt_owner: each attempt row records the owner of its job (security, issue 11). The control
-- socket's logs op returns a non-admin only the rows of its own owner, so a job id reused after the earlier
-- job's Redis hash expired does not show the earlier owner's attempts, log lines or step rows. Rows written
-- before this migration have no owner: only admin sees them.
ALTER TABLE attempts ADD COLUMN owner TEXT;

-- 017_workflows_shared: the workflows table becomes this node's cache of the deployment's stored workflows
-- in Redis (P{@}:workflows, daemon/shared.c). shared = 1: the row came from (or was written to) Redis, and it
-- goes when Redis no longer has it; shared = 0: a workflow of this node's own from before, still run here by
-- name, kept for hopperd --migrate-shared.
ALTER TABLE workflows ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;

-- 002_workflows: workflow.run step records and stored workflows (issue #5). Applied with
-- PRAGMA user_version = 2 by daemon/store/store.c.

-- One row per step execution of a workflow.run attempt (each retry of a step is its own row), written when
-- the worker reports it (FRAME_STEP). Outputs and errors arrive masked; output is an excerpt.
CREATE TABLE workflow_steps (
	id INTEGER PRIMARY KEY,
	attempt_id INTEGER REFERENCES attempts(id) ON DELETE CASCADE, -- the job attempt (NULL if its row was lost)
	job_id TEXT NOT NULL,
	step_id TEXT NOT NULL,
	type TEXT,
	step_attempt INTEGER,  -- 1-based try of this step within the job attempt; 0 for a skipped step
	run_attempt INTEGER,   -- the job attempt number
	state TEXT NOT NULL,   -- succeeded, failed, filtered, skipped, stopped
	started_at REAL,
	finished_at REAL,
	duration_ms REAL,
	output TEXT,           -- JSON text, cut to an excerpt
	error TEXT
);
-- "the steps of job X" (hopperctl logs) and the cascade from attempts.
CREATE INDEX workflow_steps_job_id ON workflow_steps(job_id);
CREATE INDEX workflow_steps_attempt_id ON workflow_steps(attempt_id);

-- Stored workflows, run by name: a workflow.run job with args.workflow = name.
CREATE TABLE workflows (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT,
	definition TEXT NOT NULL, -- JSON text, validated when stored
	owner TEXT,
	active INTEGER NOT NULL DEFAULT 1,
	created_at REAL,
	updated_at REAL
);

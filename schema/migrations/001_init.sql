-- 001_init: the execution log. daemon/store/store.c applies this file and sets PRAGMA user_version = 1 in the same
-- transaction, so it sets no version itself. Times are Unix seconds as REAL, like every hopper timestamp.

-- One row per attempt to run a job, written when the attempt starts (state 'running') and updated when it
-- ends. Redis holds a job's current state and forgets it after result_ttl_s; this table is the history.
CREATE TABLE attempts (
	id INTEGER PRIMARY KEY,
	job_id TEXT NOT NULL,
	type TEXT,
	queue TEXT,
	attempt INTEGER,      -- 1-based; 0 for a message that never became a job (malformed)
	state TEXT NOT NULL,  -- 'running' until finished, then the attempt's outcome
	node TEXT,            -- the daemon's node id
	worker_pid INTEGER,
	created_at REAL,      -- when the job was submitted
	started_at REAL,
	finished_at REAL,     -- NULL while running, so prune never touches a running attempt
	duration_ms REAL,     -- computed from started_at at finish, so readers need no arithmetic
	error TEXT,
	result TEXT           -- the handler's result, JSON text
);
-- "history of job X" (hopperctl) looks attempts up by job id.
CREATE INDEX attempts_job_id ON attempts(job_id);
-- Pruning deletes by age.
CREATE INDEX attempts_finished_at ON attempts(finished_at);

-- Log lines and progress events of an attempt, in arrival order. They go when their attempt goes (the store
-- opens every connection with foreign_keys=ON, which ON DELETE CASCADE needs).
CREATE TABLE attempt_events (
	id INTEGER PRIMARY KEY,
	attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
	at REAL NOT NULL,
	kind TEXT NOT NULL CHECK(kind IN ('log', 'progress')),
	level TEXT,        -- log lines: 'error', 'warn', 'info', 'debug'
	progress INTEGER,  -- progress events: 0-100; NULL on log lines
	stage TEXT,
	message TEXT
);
-- Reading an attempt's events, and the cascade on delete, both look events up by attempt.
CREATE INDEX attempt_events_attempt_id ON attempt_events(attempt_id);

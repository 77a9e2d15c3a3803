-- 003_tokens: control-socket credentials (schema/control-protocol.md, "Tokens"). A token is
-- hop_<id>_<secret>; only hash = BLAKE2b-256(secret) is stored, never the secret. Times are Unix seconds.
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,         -- 12 lowercase hex chars, public (logs, token.list, the TCP hello)
	name TEXT NOT NULL UNIQUE,   -- chosen by the admin; token.revoke NAME
	owner TEXT NOT NULL,         -- recorded in the jobs this token submits; non-admins see only their owner's
	scopes TEXT NOT NULL,        -- comma-separated: submit,read,cancel,admin
	hash BLOB NOT NULL CHECK(length(hash) = 32),
	created_at REAL NOT NULL,
	last_used_at REAL,           -- updated at most once a minute per token (group commit, not per request)
	revoked_at REAL              -- NULL while valid; revoked rows stay for the audit trail
);

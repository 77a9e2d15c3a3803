-- 006_webhooks: webhooks of stored workflows (hopper-web, issue #13). Applied with PRAGMA user_version = 6
-- by daemon/store/store.c.

-- One webhook per stored workflow: POST /webhook/<token> on hopper-web runs it. The token is the URL's
-- random path part (32 random bytes, base64url): whoever knows the URL may trigger the workflow, so rotate
-- it to cut off a leaked one. secret is the shared HMAC-SHA256 key of signature 'github' or 'stripe' (NULL
-- for 'none'); it never leaves the daemon (hopper-web sends the raw body, the daemon verifies).
CREATE TABLE webhooks (
	token TEXT PRIMARY KEY,
	workflow TEXT NOT NULL UNIQUE,
	signature TEXT NOT NULL DEFAULT 'none', -- none, github (X-Hub-Signature-256), stripe (Stripe-Signature)
	secret TEXT,
	created_at REAL
);

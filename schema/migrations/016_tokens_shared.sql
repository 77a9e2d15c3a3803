-- 016_tokens_shared: the tokens table becomes this node's cache of the deployment's shared set in Redis
-- (P{@}:tokens, daemon/shared.c). shared = 1: the row came from (or was written to) Redis; once the cache
-- holds such rows only they authenticate. shared = 0: a token of this node's own from before (or one Redis
-- no longer has); kept so that hopperd --migrate-shared can copy it. (016: issue #16's number, clear of the
-- numbers other subsystems reserve.)
ALTER TABLE tokens ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;

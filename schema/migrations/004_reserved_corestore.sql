-- 004 is reserved for the corestore branch (its attempts change). This placeholder only keeps the numbering
-- whole (daemon/store.c applies 1, 2, 3... in order) until that branch's 004 replaces it at the merge.
SELECT 1;

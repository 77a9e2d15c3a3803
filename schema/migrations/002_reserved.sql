-- 002_reserved: a placeholder in branch ctl only. Migration 002 belongs to another branch; store.c insists
-- on contiguous numbers, so this empty step keeps 003 applicable here. The merge replaces this file by the
-- real 002 (drop this one).
SELECT 1;

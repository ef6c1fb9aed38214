-- record_audit --
-- One mutating call.
INSERT INTO audit_log (api_key_id, action, target, status, client, detail)
VALUES ($1, $2, $3, $4, $5, $6)

-- list_audit --
-- The audit log, newest first, keyset-paginated on id.
SELECT id, at, api_key_id, action, target, status, client, detail
FROM audit_log
WHERE $1::bigint IS NULL OR id < $1
ORDER BY id DESC
LIMIT $2

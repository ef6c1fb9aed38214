-- insert_key --
-- A new API key; only the hash of its secret is stored.
INSERT INTO api_keys (id, name, prefix, secret_hash, scopes, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, prefix, scopes, created_at, expires_at

-- key_by_prefix --
-- The key a presented secret claims to be.
SELECT id, secret_hash, scopes, expires_at, revoked_at, last_used_at
FROM api_keys WHERE prefix = $1

-- touch_key --
-- Record use, at most once a minute per key so that reads do not all become writes.
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')

-- list_keys --
-- Every key, newest first, without secrets; keyset-paginated on created_at and id.
SELECT id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at
FROM api_keys
WHERE $1::uuid IS NULL
   OR (created_at, id) < (SELECT created_at, id FROM api_keys WHERE id = $1)
ORDER BY created_at DESC, id DESC
LIMIT $2

-- get_key --
-- One key, without its secret.
SELECT id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at
FROM api_keys WHERE id = $1

-- revoke_key --
-- Refused from the very next request on, in every API process (each checks Postgres).
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
RETURNING id

-- claim_idempotency_key --
-- Take a key for a request about to run; a key left unfinished for an hour (its process
-- died) may be taken again. Returns a row only if this request now owns the key.
INSERT INTO idempotency_keys (api_key_id, key, method, path, request_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (api_key_id, key) DO UPDATE
SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
    created_at = now()
WHERE idempotency_keys.status IS NULL
  AND idempotency_keys.created_at < now() - interval '1 hour'
RETURNING key

-- get_idempotency_key --
-- What an earlier request with this key asked and answered.
SELECT method, path, request_hash, status, content_type, response
FROM idempotency_keys WHERE api_key_id = $1 AND key = $2

-- finish_idempotency_key --
-- Keep the response to replay.
UPDATE idempotency_keys
SET status = $3, content_type = $4, response = $5, request_hash = coalesce(request_hash, $6)
WHERE api_key_id = $1 AND key = $2

-- release_idempotency_key --
-- The request failed in a way a retry may fix: forget the key.
DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND status IS NULL

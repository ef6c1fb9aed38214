-- to_seal --
-- The next recipients after ($1, $2) whose contacts are in plaintext (imported before they
-- were sealed) or sealed under another key than the current one (whose values begin with $3).
SELECT campaign_id, id, external_id, email, phone, contact_sealed FROM recipients
WHERE (campaign_id, id) > ($1, $2)
  AND (email IS NOT NULL OR phone IS NOT NULL
       OR (contact_sealed IS NOT NULL
           AND substring(contact_sealed FROM 1 FOR octet_length($3::bytea)) <> $3::bytea))
ORDER BY campaign_id, id
LIMIT $4

-- store_sealed --
-- Sealed contacts and their keyed hashes in place of what was there; no plaintext is left.
UPDATE recipients r
SET contact_sealed = s.sealed, email_hash = s.email_hash, phone_hash = s.phone_hash,
    email = NULL, phone = NULL
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[])
    AS s(campaign_id, id, sealed, email_hash, phone_hash)
WHERE r.campaign_id = s.campaign_id AND r.id = s.id

-- lock_for_preparing --
-- The campaign row, if it is sending, still being prepared, and nobody else holds it.
SELECT prepared_through FROM campaigns
WHERE id = $1 AND state = 'sending' AND prepared_through IS NOT NULL
FOR NO KEY UPDATE SKIP LOCKED

-- claim_batch --
-- Take up to $3 due pending deliveries of one campaign and channel under a lease of $5 s,
-- for worker $7: the claim's row says whose batch it is and how far it was handed over.
WITH picked AS (
    SELECT id FROM deliveries
    WHERE campaign_id = $1 AND channel = $2 AND status = 'pending' AND shared_with IS NULL
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE deliveries d
    SET status = 'sending', claim = $4, lease_until = now() + make_interval(secs => $5),
        attempts = d.attempts + 1, updated_at = now()
    FROM picked
    WHERE d.campaign_id = $1 AND d.id = picked.id
    RETURNING d.id, d.recipient_id, d.verification_code, d.attempts
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, $2, v.status, $6, v.sign * (SELECT count(*) FROM moved)
    FROM (VALUES ('pending', -1), ('sending', 1)) AS v(status, sign)
    WHERE EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), claimed AS (
    INSERT INTO claims (claim, campaign_id, channel, worker_id, lease_until)
    SELECT $4, $1, $2, $7, now() + make_interval(secs => $5)
    WHERE EXISTS (SELECT 1 FROM moved)
)
SELECT m.id, m.verification_code, m.attempts, r.external_id, r.contact_sealed, r.email,
       r.phone, r.locale,
       r.vars::text AS vars,
       -- Every account of the recipient's contact group (contact dedupe), NULL when alone.
       (SELECT array_agg(gr.external_id ORDER BY gr.id)
        FROM contact_groups me
        JOIN contact_groups g ON g.campaign_id = $1 AND g.channel = $2 AND g.lead = me.lead
        JOIN recipients gr ON gr.campaign_id = $1 AND gr.id = g.recipient_id
        WHERE me.campaign_id = $1 AND me.channel = $2 AND me.recipient_id = m.recipient_id
       ) AS accounts
FROM moved m JOIN recipients r ON r.campaign_id = $1 AND r.id = m.recipient_id
ORDER BY m.id

-- channel_work --
-- What is left on one channel's sends: anything due now, the earliest retry, anything in
-- flight.
SELECT
    EXISTS (SELECT 1 FROM deliveries
            WHERE campaign_id = $1 AND channel = $2 AND status = 'pending'
              AND shared_with IS NULL
              AND (next_attempt_at IS NULL OR next_attempt_at <= now())) AS due,
    (SELECT min(next_attempt_at) FROM deliveries
     WHERE campaign_id = $1 AND channel = $2 AND status = 'pending'
       AND shared_with IS NULL) AS next_at,
    EXISTS (SELECT 1 FROM deliveries
            WHERE campaign_id = $1 AND channel = $2 AND status = 'sending') AS in_flight

-- create_import_staging --
-- Where one upload's validated rows land (COPY) before they are merged in one statement.
CREATE TEMP TABLE import_staging (
    line integer, external_id text, contact_sealed bytea, email_hash bytea, phone_hash bytea,
    locale text, vars jsonb
) ON COMMIT DROP

-- merge_import --
-- Move one staged chunk into the campaign in file order, so the first occurrence of an
-- external id wins; later ones and ids the campaign already has are duplicates (left out).
-- first_id is the smallest id given to this chunk: ids only grow within a session.
WITH inserted AS (
    INSERT INTO recipients (campaign_id, id, external_id, contact_sealed, email_hash, phone_hash,
                            locale, vars)
    SELECT $1, nextval('recipients_id_seq'), external_id, contact_sealed, email_hash, phone_hash,
           locale, vars
    FROM import_staging
    ORDER BY line
    ON CONFLICT (external_id, campaign_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM inserted) AS inserted,
       (SELECT min(id) FROM inserted) AS first_id,
       (SELECT count(*) FROM import_staging) AS staged

-- duplicate_lines --
-- The staged lines that merge_import left out (run only when it left some out): a repeat
-- within the chunk, or an id stored before this chunk (ids below its first_id, $2).
SELECT line FROM (
    SELECT s.line, s.external_id,
           row_number() OVER (PARTITION BY s.external_id ORDER BY s.line) AS rn
    FROM import_staging s
) AS s
WHERE s.rn > 1
   OR NOT EXISTS (SELECT 1 FROM recipients r
                  WHERE r.external_id = s.external_id AND r.campaign_id = $1 AND r.id >= $2)
ORDER BY line
LIMIT $3

-- create_deliveries --
-- One chunk of the campaign's deliveries: for up to $4 recipients after recipient id $3, one
-- pending delivery per channel in $2 the recipient has an address for, each with its code.
-- A recipient that already has one on a channel (a fallback SMS) keeps it.
WITH chunk AS (
    SELECT id, (email_hash IS NOT NULL OR email IS NOT NULL) AS has_email,
           (phone_hash IS NOT NULL OR phone IS NOT NULL) AS has_phone
    FROM recipients
    WHERE campaign_id = $1 AND id > $3
    ORDER BY id
    LIMIT $4
), progress AS (
    -- A short chunk is the last: then every recipient has its deliveries (NULL).
    SELECT CASE WHEN count(*) < $4 THEN NULL ELSE max(id) END AS prepared_through,
           count(*)::int AS recipients
    FROM chunk
), made AS (
    INSERT INTO deliveries (campaign_id, id, recipient_id, channel, verification_code)
    SELECT $1, nextval('deliveries_id_seq'), c.id, ch, new_verification_code()
    FROM chunk c CROSS JOIN unnest($2::text[]) AS ch
    WHERE CASE WHEN ch = 'email' THEN c.has_email ELSE c.has_phone END
    ORDER BY c.id, ch
    ON CONFLICT (campaign_id, recipient_id, channel) DO NOTHING
    RETURNING channel
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, channel, 'pending', $5, count(*) FROM made GROUP BY channel
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), moved AS (
    UPDATE campaigns SET prepared_through = progress.prepared_through
    FROM progress WHERE id = $1
)
SELECT progress.recipients, (SELECT count(*) FROM made)::int AS made, progress.prepared_through
FROM progress

-- reachable --
-- Whether any recipient of the campaign has an address for one of the channels $2.
SELECT EXISTS (
    SELECT 1 FROM recipients
    WHERE campaign_id = $1
      AND (('email' = ANY($2::text[]) AND (email_hash IS NOT NULL OR email IS NOT NULL))
           OR ('sms' = ANY($2::text[]) AND (phone_hash IS NOT NULL OR phone IS NOT NULL))))

-- lock_for_preparing --
-- The campaign row, if it is sending, still being prepared, and nobody else holds it.
SELECT prepared_through FROM campaigns
WHERE id = $1 AND state = 'sending' AND prepared_through IS NOT NULL
FOR NO KEY UPDATE SKIP LOCKED

-- add_fallback --
-- Recipients among $2 whose email failed for good get an SMS instead (the campaign's fallback).
WITH made AS (
    INSERT INTO deliveries (campaign_id, id, recipient_id, channel, verification_code)
    SELECT $1, nextval('deliveries_id_seq'), d.recipient_id, 'sms', new_verification_code()
    FROM deliveries d
    JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
    WHERE d.campaign_id = $1 AND d.id = ANY($2::bigint[]) AND d.channel = 'email'
      AND d.status = 'failed' AND (r.phone_hash IS NOT NULL OR r.phone IS NOT NULL)
    ON CONFLICT (campaign_id, recipient_id, channel) DO NOTHING
    RETURNING 1
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, 'sms', 'pending', $3, count(*) FROM made HAVING count(*) > 0
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
)
SELECT count(*)::int FROM made

-- claim_batch --
-- Take up to $3 due pending deliveries of one campaign and channel under a lease of $5 s.
WITH picked AS (
    SELECT id FROM deliveries
    WHERE campaign_id = $1 AND channel = $2 AND status = 'pending'
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
)
SELECT m.id, m.verification_code, m.attempts, r.external_id, r.contact_sealed, r.email,
       r.phone, r.locale,
       r.vars::text AS vars
FROM moved m JOIN recipients r ON r.campaign_id = $1 AND r.id = m.recipient_id
ORDER BY m.id

-- record_results --
-- A batch's outcomes in one statement. A status that a provider callback already advanced
-- is kept; a claim that is no longer ours (lease reclaimed) is left alone. An uncertain
-- attempt (no answer after handing the message over) is retried and flagged.
WITH r AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::double precision[])
        AS r(id, outcome, provider_message_id, error, retry_in)
), cur AS (
    SELECT d.id, d.channel, d.status AS was, d.attempts, r.outcome,
           r.provider_message_id, r.error, r.retry_in
    FROM deliveries d JOIN r ON d.id = r.id
    WHERE d.campaign_id = $1 AND d.claim = $7
    FOR UPDATE OF d
), decided AS (
    SELECT cur.*, CASE
        WHEN was <> 'sending' THEN was
        WHEN outcome = 'sent' THEN 'sent'
        WHEN outcome = 'permanent' THEN 'failed'
        WHEN outcome IN ('transient', 'uncertain') AND attempts >= $8 THEN 'failed'
        WHEN (SELECT state FROM campaigns WHERE id = $1) = 'cancelled' THEN 'cancelled'
        ELSE 'pending' END AS becomes
    FROM cur
), moved AS (
    UPDATE deliveries d SET
        status = x.becomes,
        claim = NULL,
        lease_until = NULL,
        attempts = CASE WHEN x.outcome IN ('throttled', 'released') THEN d.attempts - 1
                        ELSE d.attempts END,
        next_attempt_at = CASE WHEN x.becomes = 'pending'
                               THEN now() + make_interval(secs => x.retry_in) END,
        possible_duplicate = d.possible_duplicate OR x.outcome = 'uncertain',
        provider_message_id = coalesce(d.provider_message_id, x.provider_message_id),
        last_error = coalesce(x.error, d.last_error),
        sent_at = CASE WHEN x.outcome = 'sent' THEN coalesce(d.sent_at, now()) ELSE d.sent_at END,
        failed_at = CASE WHEN x.becomes = 'failed' AND x.was <> 'failed' THEN now()
                         ELSE d.failed_at END,
        updated_at = now()
    FROM decided x
    WHERE d.campaign_id = $1 AND d.id = x.id
    RETURNING d.id, d.channel, x.was, x.becomes, x.outcome, d.provider_message_id, x.error
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, channel, status, $9, sum(n) FROM (
        SELECT channel, becomes AS status, 1 AS n FROM moved WHERE becomes <> was
        UNION ALL
        SELECT channel, was, -1 FROM moved WHERE becomes <> was
    ) AS delta
    GROUP BY channel, status
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, provider_message_id, detail)
    SELECT $1, id, CASE WHEN outcome = 'sent' THEN 'sent' ELSE becomes END,
           provider_message_id, error
    FROM moved
    -- A receipt that overtook the worker's record already logged the final status; a late
    -- "sent" after it would read as the delivery moving backwards.
    WHERE (outcome = 'sent' AND was = 'sending') OR (becomes <> was AND outcome <> 'released')
)
SELECT becomes AS status, count(*)::int AS n FROM moved GROUP BY becomes

-- reclaim_expired --
-- Deliveries whose worker's lease ran out go back to pending, flagged: the provider may
-- have accepted them before the worker died.
WITH moved AS (
    UPDATE deliveries
    SET status = 'pending', claim = NULL, lease_until = NULL, possible_duplicate = true,
        next_attempt_at = NULL, updated_at = now()
    WHERE campaign_id = $1 AND status = 'sending' AND lease_until < now()
    RETURNING id, channel
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, m.channel, v.status, $2, v.sign * count(*)
    FROM moved m CROSS JOIN (VALUES ('pending', 1), ('sending', -1)) AS v(status, sign)
    GROUP BY m.channel, v.status, v.sign
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, detail)
    SELECT $1, id, 'pending', 'lease expired: the provider may have accepted it' FROM moved
)
SELECT count(*)::int FROM moved

-- cancel_pending --
-- Every delivery not yet handed to a provider is cancelled.
WITH moved AS (
    UPDATE deliveries
    SET status = 'cancelled', claim = NULL, next_attempt_at = NULL, updated_at = now()
    WHERE campaign_id = $1 AND status = 'pending'
    RETURNING id, channel
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, m.channel, v.status, $2, v.sign * count(*)
    FROM moved m CROSS JOIN (VALUES ('cancelled', 1), ('pending', -1)) AS v(status, sign)
    GROUP BY m.channel, v.status, v.sign
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, detail)
    SELECT $1, id, 'cancelled', 'campaign cancelled' FROM moved
)
SELECT count(*)::int FROM moved

-- channel_work --
-- What is left on one channel: anything due now, the earliest retry, anything in flight.
SELECT
    EXISTS (SELECT 1 FROM deliveries
            WHERE campaign_id = $1 AND channel = $2 AND status = 'pending'
              AND (next_attempt_at IS NULL OR next_attempt_at <= now())) AS due,
    (SELECT min(next_attempt_at) FROM deliveries
     WHERE campaign_id = $1 AND channel = $2 AND status = 'pending') AS next_at,
    EXISTS (SELECT 1 FROM deliveries
            WHERE campaign_id = $1 AND channel = $2 AND status = 'sending') AS in_flight

-- apply_receipts --
-- Providers' final receipts for one campaign ($1, so only its partition is read), in bulk:
-- each moves its delivery forward from pending, sending or sent only, so a terminal status
-- is never overwritten and replays change nothing. A receipt naming another message than
-- the one recorded for the delivery is ignored.
WITH r AS (
    SELECT $1::uuid AS campaign_id, r.*
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])
        AS r(id, status, provider_message_id, error)
), cur AS (
    SELECT d.campaign_id, d.id, d.channel, d.status AS was, r.status AS becomes,
           r.provider_message_id, r.error
    FROM deliveries d
    JOIN r ON d.id = r.id
    WHERE d.campaign_id = $1
      AND d.status IN ('pending', 'sending', 'sent')
      AND (d.provider_message_id IS NULL OR d.provider_message_id = r.provider_message_id)
    ORDER BY d.id
    FOR UPDATE OF d
), moved AS (
    UPDATE deliveries d SET
        status = cur.becomes,
        provider_message_id = coalesce(d.provider_message_id, cur.provider_message_id),
        last_error = coalesce(cur.error, d.last_error),
        sent_at = coalesce(d.sent_at, now()),
        delivered_at = CASE WHEN cur.becomes = 'delivered' THEN now() ELSE d.delivered_at END,
        failed_at = CASE WHEN cur.becomes = 'failed' THEN now() ELSE d.failed_at END,
        next_attempt_at = NULL,
        updated_at = now()
    FROM cur
    WHERE d.campaign_id = $1 AND d.id = cur.id
    RETURNING d.campaign_id, d.id, d.channel, cur.was, cur.becomes, cur.provider_message_id,
              cur.error
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT campaign_id, channel, status, $6, sum(n) FROM (
        SELECT campaign_id, channel, becomes AS status, 1 AS n FROM moved
        UNION ALL
        SELECT campaign_id, channel, was, -1 FROM moved
    ) AS delta
    GROUP BY campaign_id, channel, status
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, provider_message_id, detail)
    SELECT campaign_id, id, becomes, provider_message_id, error FROM moved
)
SELECT count(*)::int FROM moved

-- list_deliveries --
-- One page of a campaign's deliveries, keyset-paginated on the delivery id.
SELECT d.id, r.external_id AS recipient_external_id, d.channel, d.status, d.attempts,
       d.provider_message_id, d.last_error, d.sent_at, d.delivered_at, d.updated_at,
       d.possible_duplicate
FROM deliveries d
JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
WHERE d.campaign_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::text IS NULL OR d.channel = $3)
  AND ($4::bigint IS NULL OR d.id > $4)
ORDER BY d.id
LIMIT $5

-- report_rows --
-- Every delivery of a campaign with its final status, the time of each transition, and
-- the ledger link of its latest event (its chain, position and hash in the campaign's ledger).
SELECT r.external_id, d.channel, d.status, d.attempts, d.provider_message_id,
       d.last_error, d.possible_duplicate, c.launched_at AS queued_at, d.sent_at,
       d.delivered_at, d.failed_at, d.updated_at, e.shard AS ledger_chain, e.seq AS ledger_seq,
       encode(e.hash, 'hex') AS ledger_hash
FROM deliveries d
JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
JOIN campaigns c ON c.id = d.campaign_id
LEFT JOIN LATERAL (
    SELECT shard, seq, hash FROM delivery_events
    WHERE campaign_id = d.campaign_id AND delivery_id = d.id AND seq IS NOT NULL
    ORDER BY at DESC, seq DESC LIMIT 1
) AS e ON true
WHERE d.campaign_id = $1
ORDER BY d.id

-- recipient_deliveries --
-- Every delivery to one account across campaigns, newest campaign first.
SELECT c.id AS campaign_id, c.name AS campaign_name, c.incident_ref, d.channel, d.status,
       d.attempts, d.sent_at, d.delivered_at, d.updated_at, d.last_error
FROM recipients r
JOIN deliveries d ON d.campaign_id = r.campaign_id AND d.recipient_id = r.id
JOIN campaigns c ON c.id = r.campaign_id
WHERE r.external_id = $1
ORDER BY c.seq DESC, d.channel
LIMIT $2

-- verify_code --
-- Whether a code belongs to a notice this service sent; reveals no personal data.
SELECT c.name AS campaign, d.channel, d.sent_at
FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
WHERE d.verification_code = $1
  AND (d.sent_at IS NOT NULL OR d.status IN ('sending', 'sent', 'delivered'))
LIMIT 1

-- reserve_recipient_ids --
-- Ids for $1 new recipients, increasing, for an upload's chunk to COPY with its rows.
SELECT array_agg(nextval('recipients_id_seq') ORDER BY n) AS ids FROM generate_series(1, $1) AS n

-- awaiting_receipts --
-- SMS sent at least $1 seconds ago (or last checked that long ago) with no final receipt,
-- oldest first, at most $2: the reconciler asks the provider about them.
SELECT campaign_id, id, provider_message_id
FROM deliveries
WHERE channel = 'sms' AND status = 'sent'
  AND coalesce(receipt_checked_at, sent_at) < now() - make_interval(secs => $1)
  AND provider_message_id IS NOT NULL
ORDER BY coalesce(receipt_checked_at, sent_at)
LIMIT $2

-- mark_receipts_checked --
-- The provider had no final word yet on these; ask again after the grace period.
UPDATE deliveries SET receipt_checked_at = now()
WHERE campaign_id = $1 AND id = ANY($2::bigint[]) AND status = 'sent'

-- expire_idempotency_keys --
-- Keys are kept for a day.
DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'

-- active_campaigns --
-- Campaigns the reconciler looks after.
SELECT id, state, channels, rate_limit_per_second, extract(epoch FROM now()) AS now
FROM campaigns WHERE state IN ('sending', 'paused', 'cancelled') AND
      (state <> 'cancelled' OR completed_at > now() - interval '1 hour')

-- reopen_unfinished --
-- Campaigns completed within the hour that have pending deliveries again (a fallback SMS
-- for a bounce that came after the last send, or one added while the campaign completed)
-- send again; they complete once those are settled.
UPDATE campaigns c SET state = 'sending', completed_at = NULL
WHERE c.state = 'completed' AND c.completed_at > now() - interval '1 hour'
  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id AND d.status = 'pending')
RETURNING c.id

-- live_workers --
-- Workers that beat within the last $1 seconds.
SELECT id FROM workers WHERE beat_at > now() - make_interval(secs => $1)

-- forget_claims --
-- Claims past their lease with nothing left in flight (a worker that died after its last
-- slice, before it dropped the claim) are forgotten.
DELETE FROM claims c
WHERE c.lease_until < now()
  AND NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.campaign_id = c.campaign_id AND d.claim = c.claim
                    AND d.status = 'sending')

-- forget_workers --
-- Workers silent for an hour that hold no claim are forgotten.
DELETE FROM workers w
WHERE w.beat_at < now() - interval '1 hour'
  AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.worker_id = w.id)

-- reclaim_lost --
-- Batches of campaign $1 whose lease ran out, or (when $3: the judge's own beats are
-- steady) whose worker has not beaten for $2 seconds, are taken back. Deliveries up to the
-- claim's mark may have reached the provider: they are flagged possible_duplicate and sent
-- again, or, on a cancelled campaign, recorded as what they may be, sent. The rest were
-- never handed over: back to pending unflagged, the attempt not counted.
WITH lost AS (
    DELETE FROM claims c
    WHERE c.campaign_id = $1
      AND (c.lease_until < now()
           OR ($3 AND NOT EXISTS (SELECT 1 FROM workers w
                                  WHERE w.id = c.worker_id
                                    AND w.beat_at > now() - make_interval(secs => $2))))
    RETURNING c.claim, coalesce(c.handed_through, 0) AS handed_through
), campaign AS (
    SELECT state = 'cancelled' AS cancelled FROM campaigns WHERE id = $1
), locked AS (
    -- In id order, as receipts and recording lock them.
    SELECT d.id, l.handed_through
    FROM deliveries d JOIN lost l ON d.claim = l.claim
    WHERE d.campaign_id = $1 AND d.status = 'sending'
    ORDER BY d.id
    FOR UPDATE OF d
), moved AS (
    UPDATE deliveries d
    SET status = CASE WHEN d.id <= l.handed_through AND (SELECT cancelled FROM campaign)
                      THEN 'sent' ELSE 'pending' END,
        claim = NULL, lease_until = NULL, next_attempt_at = NULL,
        possible_duplicate = d.possible_duplicate OR d.id <= l.handed_through,
        attempts = CASE WHEN d.id <= l.handed_through THEN d.attempts ELSE d.attempts - 1 END,
        last_error = CASE WHEN d.id <= l.handed_through
                          THEN 'outcome unknown: the worker stopped after handing it over'
                          ELSE d.last_error END,
        updated_at = now()
    FROM locked l
    WHERE d.campaign_id = $1 AND d.id = l.id AND d.status = 'sending'
    RETURNING d.id, d.channel, d.status, d.id <= l.handed_through AS handed
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, channel, status, $4, sum(n) FROM (
        SELECT channel, status, 1 AS n FROM moved
        UNION ALL
        SELECT channel, 'sending', -1 FROM moved
    ) AS delta
    GROUP BY channel, status
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, detail)
    SELECT $1, id, status, 'worker lost after handing it over: the provider may have it'
    FROM moved WHERE handed  -- the others were never handed over: nothing happened to them
)
SELECT count(*)::int AS reclaimed, count(*) FILTER (WHERE handed)::int AS flagged FROM moved

-- reclaim_expired --
-- Deliveries left sending past their lease with no claim row to say how far they got (the
-- claim predates it): back to pending, all flagged, as the provider may have any of them.
WITH moved AS (
    UPDATE deliveries d
    SET status = 'pending', claim = NULL, lease_until = NULL, possible_duplicate = true,
        next_attempt_at = NULL, updated_at = now()
    WHERE d.campaign_id = $1 AND d.status = 'sending' AND d.lease_until < now()
      AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.claim = d.claim)
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

-- record_progress --
-- The reconciler's samples of finished deliveries, from which the API reads the send rate.
UPDATE campaigns SET progress_samples = $2::jsonb WHERE id = $1

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

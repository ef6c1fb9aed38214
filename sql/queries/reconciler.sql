-- expire_idempotency_keys --
-- Keys are kept for a day.
DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'

-- active_campaigns --
-- Campaigns the reconciler looks after.
SELECT id, state, channels, rate_limit_per_second, progress_at, progress_done
FROM campaigns WHERE state IN ('sending', 'paused', 'cancelled') AND
      (state <> 'cancelled' OR completed_at > now() - interval '1 hour')

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

-- record_progress --
-- The reconciler's sample of finished deliveries, from which the send rate is derived.
UPDATE campaigns
SET rate_per_second = $2, progress_at = now(), progress_done = $3
WHERE id = $1

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

-- seconds_since --
-- Seconds from $1 to now, by the database's clock (the one that wrote progress_at).
SELECT extract(epoch FROM now() - $1::timestamptz)

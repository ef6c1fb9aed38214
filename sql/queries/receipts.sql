-- apply_receipts --
-- Providers' final receipts for one campaign ($1, so only its partition is read), in bulk:
-- each moves its delivery forward from pending, sending or sent only, so a terminal status
-- is never overwritten and replays change nothing. A receipt naming another message than
-- the one recorded for the delivery is ignored. Returns the ids of the emails it failed
-- (a bounce after the relay accepted the message): candidates for the SMS fallback.
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
SELECT coalesce(array_agg(id) FILTER (WHERE channel = 'email' AND becomes = 'failed'), '{}')
FROM moved

-- add_fallback --
-- Recipients among $2 whose email failed for good get an SMS instead, when campaign $1 falls
-- back to SMS and was not cancelled. One each at most, however often asked (a replayed
-- bounce adds nothing), and only to a recipient with a phone; counted as pending. Returns
-- the SMS made.
WITH campaign AS (
    SELECT id FROM campaigns
    WHERE id = $1 AND fallback->>'email_failed' = 'sms' AND state <> 'cancelled'
), made AS (
    INSERT INTO deliveries (campaign_id, id, recipient_id, channel, verification_code)
    SELECT $1, nextval('deliveries_id_seq'), d.recipient_id, 'sms', new_verification_code()
    FROM deliveries d
    JOIN campaign c ON c.id = d.campaign_id
    JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
    WHERE d.campaign_id = $1 AND d.id = ANY($2::bigint[]) AND d.channel = 'email'
      AND d.status = 'failed' AND (r.phone_hash IS NOT NULL OR r.phone IS NOT NULL)
    ON CONFLICT (campaign_id, recipient_id, channel) DO NOTHING
    RETURNING id
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, 'sms', 'pending', $3, count(*) FROM made HAVING count(*) > 0
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
)
SELECT coalesce(array_agg(id), '{}') FROM made

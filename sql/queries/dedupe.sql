-- group_contacts --
-- At launch: per channel in $2, the recipients of campaign $1 that share a contact (its keyed
-- hash: no plaintext is read) and a locale with another, each with the group's first
-- recipient, its lead. One pass over the campaign's recipients, sorted once.
INSERT INTO contact_groups (campaign_id, channel, recipient_id, lead)
SELECT $1, channel, id, lead
FROM (
    SELECT ch AS channel, r.id, min(r.id) OVER w AS lead, count(*) OVER w AS size
    FROM recipients r CROSS JOIN unnest($2::text[]) AS ch
    WHERE r.campaign_id = $1
      AND CASE WHEN ch = 'email' THEN r.email_hash ELSE r.phone_hash END IS NOT NULL
    WINDOW w AS (PARTITION BY ch, CASE WHEN ch = 'email' THEN r.email_hash ELSE r.phone_hash END,
                              r.locale)
) AS g
WHERE size > 1
ON CONFLICT DO NOTHING

-- analyze_groups --
-- The groups' statistics, refreshed once they are written: a claim looks each of its rows up
-- in them, and a table the planner believes empty is read whole for every lookup.
ANALYZE contact_groups

-- link_chunk --
-- The deliveries just created on channels $5 for recipients $2 < id <= $3 (NULL: all after
-- $2) whose recipient shares its contact with an earlier lead now point at the lead's send
-- (the channels lead the range in the groups' key, so only the chunk's groups are read). The sends
-- are locked first, in id order: a send being recorded right now either commits before (and
-- the caller's follow copies its outcome) or waits until these followers are visible to it.
-- Returns the sends, for the caller to follow.
WITH followers AS (
    SELECT g.channel, g.recipient_id, g.lead
    FROM contact_groups g
    WHERE g.campaign_id = $1 AND g.channel = ANY($5::text[])
      AND g.recipient_id > $2 AND ($3::bigint IS NULL OR g.recipient_id <= $3)
      AND g.recipient_id <> g.lead
), sends AS (
    SELECT DISTINCT l.channel, l.recipient_id, coalesce(l.shared_with, l.id) AS send
    FROM deliveries l JOIN (SELECT DISTINCT channel, lead FROM followers) f
        ON l.recipient_id = f.lead AND l.channel = f.channel
    WHERE l.campaign_id = $1
), locked AS (
    SELECT d.id FROM deliveries d
    WHERE d.campaign_id = $1 AND d.id IN (SELECT send FROM sends)
    ORDER BY d.id
    FOR SHARE OF d
), linked AS (
    UPDATE deliveries d SET shared_with = s.send
    FROM followers f JOIN sends s ON s.recipient_id = f.lead AND s.channel = f.channel
    WHERE d.campaign_id = $1 AND d.recipient_id = f.recipient_id AND d.channel = f.channel
      AND d.shared_with IS NULL AND d.status = 'pending' AND d.id <> s.send
      AND (SELECT count(*) FROM locked) >= 0  -- every send locked first
    RETURNING d.channel, s.send
), counted AS (
    INSERT INTO merged_counts (campaign_id, channel, shard, n)
    SELECT $1, channel, $4, count(*) FROM linked GROUP BY channel
    ON CONFLICT (campaign_id, channel, shard) DO UPDATE SET n = merged_counts.n + EXCLUDED.n
)
SELECT coalesce(array_agg(DISTINCT send), '{}') FROM linked

-- link_fallback --
-- Fallback SMS just created ($2) for recipients that share a phone: each points at its
-- group's send, the earliest SMS of the group that is not itself shared, locked first (see
-- link_chunk). Returns the sends, for the caller to follow.
WITH made AS (
    SELECT d.id, g.lead
    FROM deliveries d
    JOIN contact_groups g ON g.campaign_id = $1 AND g.channel = 'sms'
                         AND g.recipient_id = d.recipient_id
    WHERE d.campaign_id = $1 AND d.id = ANY($2::bigint[])
), sends AS (
    SELECT m.lead, min(d.id) AS send
    FROM (SELECT DISTINCT lead FROM made) m
    JOIN contact_groups g ON g.campaign_id = $1 AND g.channel = 'sms' AND g.lead = m.lead
    JOIN deliveries d ON d.campaign_id = $1 AND d.channel = 'sms'
                     AND d.recipient_id = g.recipient_id AND d.shared_with IS NULL
    GROUP BY m.lead
), locked AS (
    SELECT d.id FROM deliveries d
    WHERE d.campaign_id = $1 AND d.id IN (SELECT send FROM sends)
    ORDER BY d.id
    FOR SHARE OF d
), linked AS (
    UPDATE deliveries d SET shared_with = s.send
    FROM made m JOIN sends s ON s.lead = m.lead
    WHERE d.campaign_id = $1 AND d.id = m.id AND d.id <> s.send
      AND d.shared_with IS NULL AND d.status = 'pending'
      AND (SELECT count(*) FROM locked) >= 0  -- every send locked first
    RETURNING s.send
), counted AS (
    INSERT INTO merged_counts (campaign_id, channel, shard, n)
    SELECT $1, 'sms', $3, count(*) FROM linked HAVING count(*) > 0
    ON CONFLICT (campaign_id, channel, shard) DO UPDATE SET n = merged_counts.n + EXCLUDED.n
)
SELECT coalesce(array_agg(DISTINCT send), '{}') FROM linked

-- follow_sends --
-- The deliveries that share the sends $2 take the outcome each send has now: sent,
-- delivered, failed, suppressed or cancelled, with its provider reference, error and flag,
-- each change in the ledger naming the send. Only forward: a follower's final status is never
-- overwritten, and a send back to pending for a retry leaves its followers pending. Run in
-- the transaction that moved the sends (they are locked), so no other writer races it.
-- Returns the emails among them that failed, for the SMS fallback.
WITH cur AS (
    SELECT f.id, f.channel, f.status AS was, s.id AS send, s.status AS becomes,
           s.provider_message_id, s.last_error, s.possible_duplicate, s.sent_at,
           s.delivered_at, s.failed_at
    FROM deliveries f
    JOIN deliveries s ON s.campaign_id = $1 AND s.id = f.shared_with
    -- IS NOT NULL, said outright: the planner cannot infer it from "= ANY" of a parameter,
    -- and only with it may it read the small index of shared deliveries, not the partition.
    WHERE f.campaign_id = $1 AND f.shared_with IS NOT NULL
      AND f.shared_with = ANY($2::bigint[])
      AND f.status IN ('pending', 'sent') AND f.status <> s.status
      AND s.status IN ('sent', 'delivered', 'failed', 'suppressed', 'cancelled')
    ORDER BY f.id
    FOR UPDATE OF f
), moved AS (
    UPDATE deliveries d SET
        status = cur.becomes,
        provider_message_id = cur.provider_message_id,
        last_error = cur.last_error,
        possible_duplicate = cur.possible_duplicate,
        sent_at = cur.sent_at,
        delivered_at = cur.delivered_at,
        failed_at = cur.failed_at,
        next_attempt_at = NULL,
        updated_at = now()
    FROM cur
    WHERE d.campaign_id = $1 AND d.id = cur.id
    RETURNING d.id, d.channel, cur.was, cur.becomes, cur.send, cur.provider_message_id
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, channel, status, $3, sum(n) FROM (
        SELECT channel, becomes AS status, 1 AS n FROM moved
        UNION ALL
        SELECT channel, was, -1 FROM moved
    ) AS delta
    GROUP BY channel, status
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, provider_message_id, detail)
    SELECT $1, id, becomes, provider_message_id, 'shares the send of delivery ' || send
    FROM moved
)
SELECT coalesce(array_agg(id) FILTER (WHERE channel = 'email' AND becomes = 'failed'), '{}')
FROM moved

-- unfollowed_sends --
-- The sends of campaign $1 that have followers still waiting for an outcome (pending or sent).
SELECT coalesce(array_agg(DISTINCT shared_with), '{}')
FROM deliveries
WHERE campaign_id = $1 AND shared_with IS NOT NULL AND status IN ('pending', 'sent')

-- merged_counts --
-- Per channel, how many deliveries share another's send instead of being sent.
SELECT channel, sum(n)::bigint AS n FROM merged_counts WHERE campaign_id = $1 GROUP BY channel

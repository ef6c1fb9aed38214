-- record_results --
-- A slice of a batch's outcomes in one statement. A status that a provider callback already
-- advanced is kept; a claim that is no longer ours (reclaimed) is left alone. An uncertain
-- attempt (no answer after handing the message over) is retried and flagged; on a cancelled
-- campaign it is recorded as what it may be, sent (flagged), as is any delivery an earlier
-- attempt left flagged.
WITH r AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::double precision[])
        AS r(id, outcome, provider_message_id, error, retry_in)
), cur AS (
    SELECT d.id, d.channel, d.status AS was, d.attempts, d.possible_duplicate, r.outcome,
           r.provider_message_id, r.error, r.retry_in
    FROM deliveries d JOIN r ON d.id = r.id
    WHERE d.campaign_id = $1 AND d.claim = $7
    -- Rows are locked in id order, as receipts lock them: two orders could deadlock.
    ORDER BY d.id
    FOR UPDATE OF d
), decided AS (
    SELECT cur.*, CASE
        WHEN was <> 'sending' THEN was
        WHEN outcome = 'sent' THEN 'sent'
        WHEN outcome = 'permanent' THEN 'failed'
        WHEN outcome IN ('transient', 'uncertain') AND attempts >= $8 THEN 'failed'
        WHEN (SELECT state FROM campaigns WHERE id = $1) = 'cancelled' THEN
            CASE WHEN outcome = 'uncertain' OR possible_duplicate THEN 'sent'
                 ELSE 'cancelled' END
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
           provider_message_id,
           coalesce(error, CASE
               WHEN becomes = 'cancelled' THEN 'campaign cancelled'
               WHEN becomes = 'sent' AND outcome <> 'sent'
                   THEN 'campaign cancelled; an earlier attempt may have reached the provider'
               END)
    FROM moved
    -- A receipt that overtook the worker's record already logged the final status; a late
    -- "sent" after it would read as the delivery moving backwards. A message held back
    -- because the campaign paused goes back to pending unlogged: nothing happened to it.
    WHERE (outcome = 'sent' AND was = 'sending')
       OR (becomes <> was AND NOT (outcome = 'released' AND becomes = 'pending'))
)
SELECT becomes AS status, count(*)::int AS n FROM moved GROUP BY becomes

-- hand_over --
-- Before deliveries of claim $1 up to id $2 go to a provider: the mark that says they may
-- have. No row when the claim was reclaimed (the batch is no longer this worker's); else
-- the campaign's state, so that a pause or cancel is felt before the next chunk.
UPDATE claims c SET handed_through = $2
WHERE c.claim = $1
RETURNING (SELECT state FROM campaigns WHERE id = c.campaign_id)

-- drop_claim --
-- The batch is recorded: its claim is done.
DELETE FROM claims WHERE claim = $1

-- insert_campaign --
-- A new campaign in draft; its partitions are created in the same transaction.
INSERT INTO campaigns (id, name, incident_ref, channels, default_locale, default_region,
                       variables, templates, rate_limit_per_second, fallback, created_by,
                       sms_max_segments)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb, $11, $12)
RETURNING *

-- create_partitions --
-- One partition per campaign of every per-campaign table, and the ledger's chains.
SELECT create_campaign_partitions($1), open_ledger_chains($1)

-- get_campaign --
-- One campaign by id.
SELECT * FROM campaigns WHERE id = $1

-- lock_campaign --
-- One campaign, locked for a state change.
SELECT * FROM campaigns WHERE id = $1 FOR UPDATE

-- list_campaigns --
-- Newest first, keyset-paginated on the creation sequence ($1 NULL for the first page).
SELECT * FROM campaigns
WHERE $1::bigint IS NULL OR seq < $1
ORDER BY seq DESC
LIMIT $2

-- campaign_counts --
-- Delivery counts by channel and status, summed over the counter shards (never count(*)).
SELECT channel, status, sum(n)::bigint AS n
FROM delivery_counts WHERE campaign_id = $1
GROUP BY channel, status

-- set_campaign_state --
-- Move a campaign to a new state if it is in one of the given states.
UPDATE campaigns
SET state = $2,
    launched_at = CASE WHEN $2 = 'sending' THEN coalesce(launched_at, now()) ELSE launched_at END,
    completed_at = CASE WHEN $2 IN ('completed', 'cancelled') THEN now() ELSE completed_at END
WHERE id = $1 AND state = ANY($3::text[])
RETURNING *

-- add_recipient_count --
-- Keep the campaign's recipient total current after an upload.
UPDATE campaigns SET recipients = recipients + $2 WHERE id = $1

-- complete_if_done --
-- A sending campaign with all its deliveries created and none left pending or in flight is
-- completed. One EXISTS per status, so that each reads its own partial index and stops at
-- the first row.
UPDATE campaigns c SET state = 'completed', completed_at = now()
WHERE c.id = $1 AND c.state = 'sending' AND c.prepared_through IS NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = $1 AND d.status = 'pending')
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = $1 AND d.status = 'sending')
RETURNING id

-- active_campaigns --
-- Campaigns the reconciler looks after.
SELECT id, state, channels, rate_limit_per_second, progress_at, progress_done
FROM campaigns WHERE state IN ('sending', 'paused', 'cancelled') AND
      (state <> 'cancelled' OR completed_at > now() - interval '1 hour')

-- record_progress --
-- The reconciler's sample of finished deliveries, from which the send rate is derived.
UPDATE campaigns
SET rate_per_second = $2, progress_at = now(), progress_done = $3
WHERE id = $1

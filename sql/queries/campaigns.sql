-- insert_campaign --
-- A new campaign in draft; its partitions are created in the same transaction.
INSERT INTO campaigns (id, name, incident_ref, channels, default_locale, default_region,
                       variables, templates, rate_limit_per_second, fallback, created_by,
                       sms_max_segments, discovered_at, jurisdictions, rule_versions, facts,
                       dedupe_contacts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb, $11, $12, $13, $14,
        $15::jsonb, $16::jsonb, $17)
RETURNING *

-- create_partitions --
-- One partition per campaign of every per-campaign table, and the ledger's chains.
SELECT create_campaign_partitions($1), open_ledger_chains($1)

-- update_draft --
-- A draft's editable fields, changed together; no row when the campaign is not a draft.
UPDATE campaigns
SET name = $2, templates = $3::jsonb, facts = $4::jsonb, discovered_at = $5,
    jurisdictions = $6, rule_versions = $7::jsonb, rate_limit_per_second = $8,
    sms_max_segments = $9, dedupe_contacts = $10
WHERE id = $1 AND state = 'draft'
RETURNING *

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

-- cancel_pending --
-- Every send not yet handed to a provider is cancelled. One that an earlier attempt may
-- have handed over without an answer (flagged possible_duplicate) is recorded as what it may
-- be: sent, still flagged. Deliveries that share a send are left to follow it.
WITH moved AS (
    UPDATE deliveries
    SET status = CASE WHEN possible_duplicate THEN 'sent' ELSE 'cancelled' END,
        claim = NULL, next_attempt_at = NULL, updated_at = now()
    WHERE campaign_id = $1 AND status = 'pending' AND shared_with IS NULL
    RETURNING id, channel, status
), counted AS (
    INSERT INTO delivery_counts (campaign_id, channel, status, shard, n)
    SELECT $1, channel, status, $2, sum(n) FROM (
        SELECT channel, status, 1 AS n FROM moved
        UNION ALL
        SELECT channel, 'pending', -1 FROM moved
    ) AS delta
    GROUP BY channel, status
    ON CONFLICT (campaign_id, channel, status, shard)
    DO UPDATE SET n = delivery_counts.n + EXCLUDED.n
), logged AS (
    INSERT INTO delivery_events (campaign_id, delivery_id, status, detail)
    SELECT $1, id, status,
           CASE WHEN status = 'sent'
                THEN 'campaign cancelled; an earlier attempt may have reached the provider'
                ELSE 'campaign cancelled' END
    FROM moved
)
SELECT count(*)::int FROM moved

-- complete_if_done --
-- A sending campaign with all its deliveries created and no send left pending or in flight
-- is completed (deliveries sharing a send take its outcome with it). One EXISTS per status,
-- so that each reads its own partial index and stops at the first row.
UPDATE campaigns c SET state = 'completed', completed_at = now()
WHERE c.id = $1 AND c.state = 'sending' AND c.prepared_through IS NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.campaign_id = $1 AND d.status = 'pending' AND d.shared_with IS NULL)
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = $1 AND d.status = 'sending')
RETURNING id

-- analyze_deliveries --
-- Refresh the statistics of the campaign's deliveries partition, so the planner knows its size.
SELECT analyze_campaign_partition('deliveries', $1)

-- clock --
-- The database's time in epoch seconds (progress samples are taken by it).
SELECT extract(epoch FROM now())::float8

-- record_launch_override --
-- A launch over missing checklist items: its reason and what was missing, on the campaign and
-- in the ledger (delivery 0 stands for the campaign itself).
WITH kept AS (
    UPDATE campaigns SET launch_override = $2::jsonb WHERE id = $1
)
INSERT INTO delivery_events (campaign_id, delivery_id, status, detail)
VALUES ($1, 0, 'launch_override', $2)

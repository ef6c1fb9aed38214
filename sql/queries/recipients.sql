-- create_import_staging --
-- Where one upload's validated rows land (COPY) before they are merged in one statement.
CREATE TEMP TABLE import_staging (
    line integer, external_id text, contact_sealed bytea, email_hash bytea, phone_hash bytea,
    locale text, vars jsonb
) ON COMMIT DROP

-- reserve_recipient_ids --
-- Ids for $1 new recipients, increasing, for an upload's chunk to COPY with its rows.
SELECT array_agg(nextval('recipients_id_seq') ORDER BY n) AS ids FROM generate_series(1, $1) AS n

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

-- add_recipient_count --
-- Keep the campaign's recipient total current after an upload.
UPDATE campaigns SET recipients = recipients + $2 WHERE id = $1

-- share_campaign --
-- The campaign's state, under a share lock: concurrent uploads proceed, a launch waits.
SELECT state FROM campaigns WHERE id = $1 FOR SHARE

-- merge_work_mem --
-- Room for merge_import's sorts in memory, for this transaction only.
SET LOCAL work_mem = '64MB'

-- empty_import_staging --
-- The staged chunk is merged; the next one starts from an empty table.
TRUNCATE import_staging

-- analyze_recipients --
-- Refresh the statistics of the campaign's recipients partition after a large upload.
SELECT analyze_campaign_partition('recipients', $1)

-- purge_cutoff --
-- The moment before which a finished campaign is old enough to purge ($1 an interval).
SELECT now() - $1::interval

-- purgeable_campaigns --
-- Finished campaigns, completed or cancelled before the cutoff $1, still holding contacts.
SELECT id, state, completed_at, recipients FROM campaigns
WHERE state IN ('completed', 'cancelled') AND completed_at < $1 AND purged_at IS NULL
ORDER BY completed_at

-- recipient_id_range --
-- The span of a campaign's recipient ids, to purge it slice by slice.
SELECT min(id) AS low, max(id) AS high FROM recipients WHERE campaign_id = $1

-- purge_contacts --
-- One slice of a campaign's recipients (ids $2 to $3) loses its contact details and
-- template variables, sealed or not, and their keyed hashes; the account id stays, so the
-- report still says who was told what.
UPDATE recipients
SET email = NULL, phone = NULL, contact_sealed = NULL, email_hash = NULL, phone_hash = NULL,
    vars = '{}'
WHERE campaign_id = $1 AND id >= $2 AND id < $3
  AND (email IS NOT NULL OR phone IS NOT NULL OR contact_sealed IS NOT NULL
       OR email_hash IS NOT NULL OR phone_hash IS NOT NULL OR vars <> '{}')

-- mark_purged --
-- The campaign holds no contact details any more.
UPDATE campaigns SET purged_at = now() WHERE id = $1

-- list_deliveries --
-- One page of a campaign's deliveries, keyset-paginated on the delivery id. A delivery that
-- shares another account's send (contact dedupe) names that account.
SELECT d.id, r.external_id AS recipient_external_id, d.channel, d.status, d.attempts,
       d.provider_message_id, d.last_error, d.sent_at, d.delivered_at, d.updated_at,
       d.possible_duplicate,
       (SELECT sr.external_id FROM deliveries s
        JOIN recipients sr ON sr.campaign_id = s.campaign_id AND sr.id = s.recipient_id
        WHERE s.campaign_id = d.campaign_id AND s.id = d.shared_with) AS shares_send_of
FROM deliveries d
JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
WHERE d.campaign_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::text IS NULL OR d.channel = $3)
  AND ($4::bigint IS NULL OR d.id > $4)
ORDER BY d.id
LIMIT $5

-- report_rows --
-- Every delivery of a campaign with its final status, the time of each transition, and
-- the ledger link of its latest event (its chain, position and hash in the campaign's ledger).
-- A delivery that shares another account's send (contact dedupe) names that account.
SELECT r.external_id, d.channel, d.status, d.attempts, d.provider_message_id,
       d.last_error, d.possible_duplicate, c.launched_at AS queued_at, d.sent_at,
       d.delivered_at, d.failed_at, d.updated_at, e.shard AS ledger_chain, e.seq AS ledger_seq,
       encode(e.hash, 'hex') AS ledger_hash,
       (SELECT sr.external_id FROM deliveries s
        JOIN recipients sr ON sr.campaign_id = s.campaign_id AND sr.id = s.recipient_id
        WHERE s.campaign_id = d.campaign_id AND s.id = d.shared_with) AS shares_send_of
FROM deliveries d
JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
JOIN campaigns c ON c.id = d.campaign_id
LEFT JOIN LATERAL (
    SELECT shard, seq, hash FROM delivery_events
    WHERE campaign_id = d.campaign_id AND delivery_id = d.id AND seq IS NOT NULL
    ORDER BY at DESC, seq DESC LIMIT 1
) AS e ON true
WHERE d.campaign_id = $1
ORDER BY d.id

-- recipient_deliveries --
-- Every delivery to one account across campaigns, newest campaign first.
SELECT c.id AS campaign_id, c.name AS campaign_name, c.incident_ref, d.channel, d.status,
       d.attempts, d.sent_at, d.delivered_at, d.updated_at, d.last_error
FROM recipients r
JOIN deliveries d ON d.campaign_id = r.campaign_id AND d.recipient_id = r.id
JOIN campaigns c ON c.id = r.campaign_id
WHERE r.external_id = $1
ORDER BY c.seq DESC, d.channel
LIMIT $2

-- verify_code --
-- Whether a code belongs to a notice this service sent; reveals no personal data (the
-- locale, one of the campaign's own, only chooses the language of the published notice).
SELECT c.name AS campaign, d.channel, d.sent_at, d.campaign_id, r.locale
FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
LEFT JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
WHERE d.verification_code = $1
  AND (d.sent_at IS NOT NULL OR d.status IN ('sending', 'sent', 'delivered'))
LIMIT 1

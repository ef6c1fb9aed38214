-- rejected_unreachable --
-- The rows refused at the campaign's uploads, in upload and file order: of an account refused
-- more than once only its latest refusal, and none of an account an upload has stored since
-- (it is a recipient now, and listed by failed_unreachable if every channel failed it).
SELECT x.external_id, x.reason, x.line
FROM rejected_rows x
WHERE x.campaign_id = $1
  AND (x.external_id IS NULL OR (
      NOT EXISTS (SELECT 1 FROM rejected_rows later
                  WHERE later.campaign_id = x.campaign_id
                    AND later.external_id = x.external_id AND later.id > x.id)
      AND NOT EXISTS (SELECT 1 FROM recipients r
                      WHERE r.external_id = x.external_id AND r.campaign_id = x.campaign_id)
  ))
ORDER BY x.id

-- failed_unreachable --
-- The recipients all of whose deliveries ended failed or suppressed, in upload order, with
-- each channel's last error (or its status, when it has none). One pass over the campaign's
-- deliveries in recipient order (their unique index), so nothing is held but one recipient.
SELECT r.external_id, f.reason
FROM (
    SELECT d.recipient_id,
           string_agg(d.channel || ': ' || coalesce(d.last_error, d.status), '; '
                      ORDER BY d.channel) AS reason
    FROM deliveries d
    WHERE d.campaign_id = $1
    GROUP BY d.recipient_id
    HAVING bool_and(d.status IN ('failed', 'suppressed'))
) AS f
JOIN recipients r ON r.campaign_id = $1 AND r.id = f.recipient_id
ORDER BY f.recipient_id

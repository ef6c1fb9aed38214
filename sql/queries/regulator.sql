-- regulator_override --
-- The launch override a campaign was launched with, if any (its reason and the items its
-- notice lacked); null for a campaign launched with a complete notice.
SELECT launch_override FROM campaigns WHERE id = $1

-- regulator_sends --
-- The first and last hand-over to a provider, from the ledger's 'sent' events. No index
-- leads with (campaign_id, status, at): this is a min/max over the campaign's own partition
-- of delivery_events (list partitioning prunes the others), one sequential read of it. That
-- is acceptable for a report made once per campaign; an index for it would cost every
-- event write of every campaign.
SELECT min(at) AS first_send, max(at) AS last_send, count(*) AS sends
FROM delivery_events
WHERE campaign_id = $1 AND status = 'sent'

-- regulator_deliveries --
-- The campaign's deliveries in one pass over its partition, by channel, status, whether the
-- delivery shares another's send (a merged contact), and the duplicate flag; failed ones
-- also by the first two words of their last error ("smtp 550", "twilio 21211", "email
-- bounced:", "no address"), which name the cause without any part of a provider's reply
-- text. The service turns those words into a few reason classes.
SELECT channel, status, shared_with IS NOT NULL AS shared, possible_duplicate,
       CASE WHEN status = 'failed'
            THEN split_part(coalesce(last_error, ''), ' ', 1) || ' '
                 || split_part(coalesce(last_error, ''), ' ', 2)
       END AS cause,
       count(*) AS n
FROM deliveries
WHERE campaign_id = $1
GROUP BY 1, 2, 3, 4, 5

-- regulator_unreachable --
-- The people the campaign cannot reach, counted by reason, never listed: the rows refused
-- at upload (as the substitute-notice list counts them: an account refused twice once, an
-- account an upload stored later not at all; see unreachable.sql) and the recipients all of
-- whose deliveries ended failed or suppressed, by what each channel's delivery ended as
-- ("email failed smtp 550" lines, channel order).
SELECT 'rejected' AS source, x.reason AS reason, count(*) AS n
FROM rejected_rows x
WHERE x.campaign_id = $1
  AND (x.external_id IS NULL OR (
      NOT EXISTS (SELECT 1 FROM rejected_rows later
                  WHERE later.campaign_id = x.campaign_id
                    AND later.external_id = x.external_id AND later.id > x.id)
      AND NOT EXISTS (SELECT 1 FROM recipients r
                      WHERE r.external_id = x.external_id AND r.campaign_id = x.campaign_id)
  ))
GROUP BY x.reason
UNION ALL
SELECT 'failed', f.ended, count(*)
FROM (
    SELECT string_agg(
               d.channel || ' ' || d.status || ' '
               || split_part(coalesce(d.last_error, ''), ' ', 1) || ' '
               || split_part(coalesce(d.last_error, ''), ' ', 2),
               E'\n' ORDER BY d.channel) AS ended
    FROM deliveries d
    WHERE d.campaign_id = $1
    GROUP BY d.recipient_id
    HAVING bool_and(d.status IN ('failed', 'suppressed'))
) AS f
GROUP BY f.ended

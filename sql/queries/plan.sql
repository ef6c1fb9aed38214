-- plan_reach --
-- The campaign's people, and how many can be reached on each channel.
SELECT count(*) AS people,
       count(*) FILTER (WHERE email_hash IS NOT NULL OR email IS NOT NULL) AS email,
       count(*) FILTER (WHERE phone_hash IS NOT NULL OR phone IS NOT NULL) AS sms
FROM recipients WHERE campaign_id = $1

-- plan_sharing --
-- Other campaigns sending on channel $1 now: they share its provider's rate.
SELECT count(*) FROM campaigns
WHERE state = 'sending' AND id <> $2
  AND ($1 = ANY(channels) OR ($1 = 'sms' AND fallback->>'email_failed' = 'sms'))

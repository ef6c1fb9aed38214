-- ledger_heads --
-- The head (last position and hash) of each of a campaign's chains.
SELECT shard, seq, hash FROM ledger_heads WHERE campaign_id = $1

-- ledger_events --
-- A campaign's chained events, chain by chain, in order.
SELECT shard, seq, delivery_id, status, at, provider_message_id, detail, hash
FROM delivery_events WHERE campaign_id = $1 AND seq IS NOT NULL
ORDER BY shard, seq

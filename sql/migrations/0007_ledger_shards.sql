-- The ledger chained in several chains per campaign, so that writers do not take turns.
--
-- With one head per campaign, every transaction that wrote events held that head's lock
-- until its commit, and so waited for the commits before it to reach the disk: a campaign's
-- writers went one at a time, however many there were. Now a campaign has eight chains
-- (`shard` 0 to 7). A transaction takes the first chain no other transaction holds, keeps
-- it until it commits, and chains all its events of that campaign there. Eight writers of
-- one campaign commit together; a ninth waits.
--
-- Each chain is what the single chain was: event n+1 of a chain is hashed with event n's
-- hash, the first with 32 zero bytes, and its head (the last seq and hash) lives in
-- ledger_heads. Events written before this migration are chain 0, unchanged, so their
-- campaigns still verify.

ALTER TABLE delivery_events ADD COLUMN shard smallint NOT NULL DEFAULT 0;

DROP INDEX delivery_events_seq;
CREATE INDEX delivery_events_chain ON delivery_events (campaign_id, shard, seq);

ALTER TABLE ledger_heads ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE ledger_heads DROP CONSTRAINT ledger_heads_pkey;
ALTER TABLE ledger_heads ADD PRIMARY KEY (campaign_id, shard);

-- A campaign's eight chains start empty, at 32 zero bytes. They are opened with the campaign
-- (so that its first writers do not wait for each other's heads to be committed), or by the
-- first event of a campaign created before this migration.
CREATE FUNCTION open_ledger_chains(campaign uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO ledger_heads (campaign_id, shard, seq, hash)
    SELECT campaign, s, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'
    FROM generate_series(0, 7) AS s
    ON CONFLICT (campaign_id, shard) DO NOTHING
$$;

SELECT open_ledger_chains(id) FROM campaigns;

-- Row by row. The first event of a campaign in a transaction takes a chain: the first head
-- that no other transaction has locked (opening the campaign's chains if it has none yet), or, when all eight are busy, any one of them, waiting for it. The chain's
-- running head is then kept in a transaction-local setting, so later events (and later
-- statements of the same transaction) continue the same chain without reading the table.
CREATE OR REPLACE FUNCTION chain_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'notifier.ledger_' || replace(NEW.campaign_id::text, '-', '');
    running text := current_setting(name, true);
    head record;
    micros text;
BEGIN
    IF running IS NULL OR running = '' THEN
        SELECT shard, seq, hash INTO head FROM ledger_heads
        WHERE campaign_id = NEW.campaign_id
        ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND NOT EXISTS (SELECT FROM ledger_heads
                                     WHERE campaign_id = NEW.campaign_id) THEN
            PERFORM open_ledger_chains(NEW.campaign_id);
            SELECT shard, seq, hash INTO head FROM ledger_heads
            WHERE campaign_id = NEW.campaign_id
            ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        IF NOT FOUND THEN
            -- All busy. Only a transaction holding none of this campaign's chains waits
            -- here, so two such waiters cannot wait for each other.
            SELECT shard, seq, hash INTO head FROM ledger_heads
            WHERE campaign_id = NEW.campaign_id
              AND shard = (pg_backend_pid() + txid_current()) % 8
            FOR UPDATE;
        END IF;
        NEW.shard := head.shard;
        NEW.seq := head.seq + 1;
        NEW.hash := head.hash;
    ELSE
        NEW.shard := split_part(running, ' ', 1)::smallint;
        NEW.seq := split_part(running, ' ', 2)::bigint + 1;
        NEW.hash := decode(split_part(running, ' ', 3), 'hex');
    END IF;
    micros := ((extract(epoch FROM NEW.at) * 1000000)::bigint)::text;
    -- Inline rather than a function: a call per event would cost more than the hash.
    NEW.hash := sha256(NEW.hash || convert_to(
        '36:' || NEW.campaign_id::text
        || octet_length(NEW.delivery_id::text) || ':' || NEW.delivery_id::text
        || octet_length(NEW.status) || ':' || NEW.status
        || octet_length(micros) || ':' || micros
        || coalesce(octet_length(NEW.provider_message_id) || ':' || NEW.provider_message_id, '~')
        || coalesce(octet_length(NEW.detail) || ':' || NEW.detail, '~'), 'UTF8'));
    PERFORM set_config(name, NEW.shard || ' ' || NEW.seq || ' ' || encode(NEW.hash, 'hex'),
                       true);
    RETURN NEW;
END
$$;

-- After each statement the heads move to the statement's last events. The running values
-- stay: the transaction still holds those heads, so nobody else can have moved them. (A
-- rolled-back savepoint takes back its setting, its events and its head moves together.)
CREATE OR REPLACE FUNCTION advance_heads() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last record;
BEGIN
    FOR last IN
        SELECT DISTINCT ON (campaign_id, shard) campaign_id, shard, seq, hash
        FROM added ORDER BY campaign_id, shard, seq DESC
    LOOP
        UPDATE ledger_heads SET seq = last.seq, hash = last.hash
        WHERE campaign_id = last.campaign_id AND shard = last.shard;
    END LOOP;
    RETURN NULL;
END
$$;

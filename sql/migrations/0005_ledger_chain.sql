-- The ledger made tamper-evident: every event is chained to the one before it in its
-- campaign by a SHA-256 hash, so that changing, removing or reordering any event breaks
-- every hash after it. `notifier ledger verify` recomputes the chain outside the database.
--
-- An event's hash is sha256(previous hash || its fields), each field written as
-- "<length in bytes>:<UTF-8 text>" (or "~" when absent), in this order: campaign id,
-- delivery id, status, time in microseconds since 1970-01-01 UTC, provider message id,
-- detail. The first event of a campaign follows 32 zero bytes.

ALTER TABLE delivery_events ADD COLUMN seq bigint, ADD COLUMN hash bytea;

CREATE INDEX delivery_events_seq ON delivery_events (campaign_id, seq);

-- Each campaign's last link: the writer of the next event locks it, so a campaign's events
-- are chained one after the other however many workers write them.
CREATE TABLE ledger_heads (
    campaign_id uuid PRIMARY KEY,
    seq         bigint NOT NULL,
    hash        bytea NOT NULL
);

-- Chaining, row by row. The first event of a statement locks the campaign's head (held to
-- the end of the transaction, so writers take turns); the running head is then kept in a
-- transaction-local setting, and written back once per statement by the trigger below.
CREATE FUNCTION chain_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'notifier.ledger_' || replace(NEW.campaign_id::text, '-', '');
    running text := current_setting(name, true);
    last_seq bigint;
    last_hash bytea;
    micros text;
BEGIN
    IF running IS NULL OR running = '' THEN
        SELECT seq, hash INTO last_seq, last_hash FROM ledger_heads
        WHERE campaign_id = NEW.campaign_id FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO ledger_heads (campaign_id, seq, hash)
            VALUES (NEW.campaign_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
            ON CONFLICT (campaign_id) DO NOTHING;
            SELECT seq, hash INTO last_seq, last_hash FROM ledger_heads
            WHERE campaign_id = NEW.campaign_id FOR UPDATE;
        END IF;
    ELSE
        last_seq := split_part(running, ' ', 1)::bigint;
        last_hash := decode(split_part(running, ' ', 2), 'hex');
    END IF;
    NEW.seq := last_seq + 1;
    micros := ((extract(epoch FROM NEW.at) * 1000000)::bigint)::text;
    -- Inline rather than a function: a call per event would cost more than the hash.
    NEW.hash := sha256(last_hash || convert_to(
        '36:' || NEW.campaign_id::text
        || octet_length(NEW.delivery_id::text) || ':' || NEW.delivery_id::text
        || octet_length(NEW.status) || ':' || NEW.status
        || octet_length(micros) || ':' || micros
        || coalesce(octet_length(NEW.provider_message_id) || ':' || NEW.provider_message_id, '~')
        || coalesce(octet_length(NEW.detail) || ':' || NEW.detail, '~'), 'UTF8'));
    PERFORM set_config(name, NEW.seq || ' ' || encode(NEW.hash, 'hex'), true);
    RETURN NEW;
END
$$;

CREATE TRIGGER delivery_events_chain
    BEFORE INSERT ON delivery_events
    FOR EACH ROW EXECUTE FUNCTION chain_event();

-- After each statement: the heads move to the statement's last events, and the running
-- values are dropped, so that the next statement starts again from the locked head.
CREATE FUNCTION advance_heads() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last record;
BEGIN
    FOR last IN
        SELECT DISTINCT ON (campaign_id) campaign_id, seq, hash
        FROM added ORDER BY campaign_id, seq DESC
    LOOP
        UPDATE ledger_heads SET seq = last.seq, hash = last.hash
        WHERE campaign_id = last.campaign_id;
        PERFORM set_config('notifier.ledger_' || replace(last.campaign_id::text, '-', ''), '',
                           true);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_events_heads
    AFTER INSERT ON delivery_events
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION advance_heads();

-- TRUNCATE bypasses row triggers; the ledger refuses it too. (A campaign's partition can
-- still be dropped as a whole when its retention ends; its head then tells what was there.)
CREATE TRIGGER delivery_events_no_truncate
    BEFORE TRUNCATE ON delivery_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- The head of the chain is evidence too: it only ever moves forward, one link at a time.
CREATE FUNCTION refuse_head_rewind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq <= OLD.seq THEN
        RAISE EXCEPTION 'ledger_heads only moves forward';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_heads_forward
    BEFORE UPDATE OR DELETE ON ledger_heads
    FOR EACH ROW EXECUTE FUNCTION refuse_head_rewind();

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

CREATE FUNCTION ledger_field(value text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN '\x7e'::bytea
                ELSE convert_to(octet_length(convert_to(value, 'UTF8'))::text || ':', 'UTF8')
                     || convert_to(value, 'UTF8') END
$$;

CREATE FUNCTION chain_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    SELECT seq, hash INTO head FROM ledger_heads
    WHERE campaign_id = NEW.campaign_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO ledger_heads (campaign_id, seq, hash)
        VALUES (NEW.campaign_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        ON CONFLICT (campaign_id) DO NOTHING;
        SELECT seq, hash INTO head FROM ledger_heads
        WHERE campaign_id = NEW.campaign_id FOR UPDATE;
    END IF;
    NEW.seq := head.seq + 1;
    NEW.hash := sha256(
        head.hash
        || ledger_field(NEW.campaign_id::text)
        || ledger_field(NEW.delivery_id::text)
        || ledger_field(NEW.status)
        || ledger_field(((extract(epoch FROM NEW.at) * 1000000)::bigint)::text)
        || ledger_field(NEW.provider_message_id)
        || ledger_field(NEW.detail)
    );
    UPDATE ledger_heads SET seq = NEW.seq, hash = NEW.hash WHERE campaign_id = NEW.campaign_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER delivery_events_chain
    BEFORE INSERT ON delivery_events
    FOR EACH ROW EXECUTE FUNCTION chain_event();

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

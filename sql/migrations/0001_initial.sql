-- The first schema: campaigns, recipients, deliveries, the delivery event ledger, API keys.
-- Recipients, deliveries and events are partitioned by campaign so that one campaign's
-- data can be dropped at once when its retention ends.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE campaigns (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    incident_ref          text NOT NULL,
    state                 text NOT NULL DEFAULT 'draft'
                          CHECK (state IN ('draft', 'sending', 'paused', 'completed', 'cancelled')),
    channels              text[] NOT NULL,
    default_locale        text NOT NULL,
    default_region        text,
    variables             text[] NOT NULL DEFAULT '{}',
    templates             jsonb NOT NULL,
    rate_limit_per_second double precision,
    fallback              jsonb NOT NULL DEFAULT '{}',
    recipients            bigint NOT NULL DEFAULT 0,
    created_by            uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    launched_at           timestamptz,
    completed_at          timestamptz,
    rate_per_second       double precision NOT NULL DEFAULT 0,
    progress_at           timestamptz,
    progress_done         bigint NOT NULL DEFAULT 0,
    seq                   bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);

-- No foreign key to campaigns: a row can only land in its campaign's partition, which exists
-- only while the campaign does, and a per-row key check would cost a third of an import.
CREATE TABLE recipients (
    campaign_id  uuid NOT NULL,
    id           bigint NOT NULL,
    external_id  text NOT NULL,
    email        text,
    phone        text,
    locale       text NOT NULL,
    vars         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, id),
    -- external_id first: the same index finds one account across campaigns.
    UNIQUE (external_id, campaign_id)
) PARTITION BY LIST (campaign_id);

CREATE SEQUENCE recipients_id_seq AS bigint CACHE 1000;

CREATE TABLE deliveries (
    campaign_id          uuid NOT NULL,
    id                   bigint NOT NULL,
    recipient_id         bigint NOT NULL,
    channel              text NOT NULL CHECK (channel IN ('email', 'sms')),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'sending', 'sent', 'delivered',
                                           'failed', 'suppressed', 'cancelled')),
    attempts             integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz,
    lease_until          timestamptz,
    claim                uuid,
    possible_duplicate   boolean NOT NULL DEFAULT false,
    provider_message_id  text,
    last_error           text,
    verification_code    text NOT NULL,
    sent_at              timestamptz,
    delivered_at         timestamptz,
    failed_at            timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, id)
) PARTITION BY LIST (campaign_id);

CREATE SEQUENCE deliveries_id_seq AS bigint CACHE 1000;

-- What workers claim: only the rows still to send, so the index stays small as a campaign drains.
CREATE INDEX deliveries_pending ON deliveries (campaign_id, channel, id) WHERE status = 'pending';
-- Leases to reclaim when a worker died holding them.
CREATE INDEX deliveries_sending ON deliveries (campaign_id, lease_until) WHERE status = 'sending';
-- One delivery per recipient and channel, whatever path (launch, fallback) created it.
CREATE UNIQUE INDEX deliveries_recipient ON deliveries (campaign_id, recipient_id, channel);
CREATE INDEX deliveries_code ON deliveries (verification_code);

-- Counters kept incrementally by every transition, spread over shards so that concurrent
-- writers do not queue on one hot row; a campaign's counts are the sum over its shards.
CREATE TABLE delivery_counts (
    campaign_id uuid NOT NULL,
    channel     text NOT NULL,
    status      text NOT NULL,
    shard       smallint NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (campaign_id, channel, status, shard)
);

-- The append-only ledger: each delivery's transitions with time and provider reference.
CREATE TABLE delivery_events (
    campaign_id          uuid NOT NULL,
    delivery_id          bigint NOT NULL,
    status               text NOT NULL,
    at                   timestamptz NOT NULL DEFAULT clock_timestamp(),
    provider_message_id  text,
    detail               text
) PARTITION BY LIST (campaign_id);

CREATE INDEX delivery_events_delivery ON delivery_events (campaign_id, delivery_id);

-- Each campaign gets its own partition of every per-campaign table.
CREATE FUNCTION create_campaign_partitions(campaign uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(campaign::text, '-', '');
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF recipients FOR VALUES IN (%L)',
                   'recipients_' || suffix, campaign);
    EXECUTE format('CREATE TABLE %I PARTITION OF deliveries FOR VALUES IN (%L)',
                   'deliveries_' || suffix, campaign);
    EXECUTE format('CREATE TABLE %I PARTITION OF delivery_events FOR VALUES IN (%L)',
                   'delivery_events_' || suffix, campaign);
END
$$;

-- The ledger is evidence: it only grows.
CREATE FUNCTION refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'delivery_events is append-only';
END
$$;

CREATE TRIGGER delivery_events_append_only
    BEFORE UPDATE OR DELETE ON delivery_events
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();

-- A verification code: 16 hex digits (64 bits) from the server's cryptographic generator
-- (the random bytes of a version-4 UUID, skipping its fixed version and variant bits).
CREATE FUNCTION new_verification_code() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT upper(encode(substring(b FROM 1 FOR 6) || substring(b FROM 10 FOR 2), 'hex'))
    FROM (SELECT uuid_send(gen_random_uuid()) AS b) AS u
$$;

-- Contact dedupe: accounts that share an email address or a phone number (family accounts,
-- shared numbers) are sent one message per contact and locale, not one per account. Every
-- account keeps its own delivery; the accounts after the first point at the first one's
-- delivery, the shared send, and take its status as it changes.
ALTER TABLE campaigns ADD COLUMN dedupe_contacts boolean NOT NULL DEFAULT true;

-- The delivery (same campaign and channel) whose send this one shares; NULL for a send.
ALTER TABLE deliveries ADD COLUMN shared_with bigint;
CREATE INDEX deliveries_shared ON deliveries (campaign_id, shared_with)
    WHERE shared_with IS NOT NULL;

-- A delivery that shares another's send is never claimed: what workers claim leaves it out.
DROP INDEX deliveries_pending;
CREATE INDEX deliveries_pending ON deliveries (campaign_id, channel, id)
    WHERE status = 'pending' AND shared_with IS NULL;

-- Taken at launch from the keyed contact hashes (no plaintext): per campaign and channel,
-- each recipient of a group of two or more sharing a contact and a locale, and the group's
-- first recipient, its lead, whose delivery is the group's send.
CREATE TABLE contact_groups (
    campaign_id  uuid NOT NULL,
    channel      text NOT NULL,
    recipient_id bigint NOT NULL,
    lead         bigint NOT NULL,
    PRIMARY KEY (campaign_id, channel, recipient_id)
);
CREATE INDEX contact_groups_lead ON contact_groups (campaign_id, channel, lead);

-- How many deliveries share another's send, per channel, spread over shards like
-- delivery_counts so that the writers linking them do not queue on one row.
CREATE TABLE merged_counts (
    campaign_id uuid NOT NULL,
    channel     text NOT NULL,
    shard       smallint NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (campaign_id, channel, shard)
);

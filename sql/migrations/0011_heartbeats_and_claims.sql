-- Workers beat, claims say how far they got: a dead worker's batch is reclaimed in seconds,
-- and only the deliveries it may have handed to a provider are flagged possible_duplicate.

-- One row per worker process; beat_at is moved on every second or so by a thread of the
-- process's own, so a busy event loop does not look like death.
CREATE TABLE workers (
    id          uuid PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    beat_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per batch being sent. A worker moves handed_through forward before it hands a
-- message to a provider: deliveries of the claim with a higher id were provably never
-- handed over. The row goes when the batch is recorded, or when the reconciler reclaims it.
-- No foreign key: its check would share-lock the campaign row from every claim, and a state
-- change (which locks that row, then the pending deliveries) would deadlock with a claim
-- (which locks deliveries, then the campaign row).
CREATE TABLE claims (
    claim           uuid PRIMARY KEY,
    campaign_id     uuid NOT NULL,
    channel         text NOT NULL,
    worker_id       uuid NOT NULL,
    handed_through  bigint,
    lease_until     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claims_campaign ON claims (campaign_id);

-- Rows in flight are found by their claim now, not by their lease.
DROP INDEX deliveries_sending;
CREATE INDEX deliveries_claimed ON deliveries (campaign_id, claim) WHERE status = 'sending';

-- The reconciler's recent samples of finished deliveries, [[epoch seconds, done], ...]: the
-- API reads the send rate over them (and the counts of the moment) when it is asked, instead
-- of a rate the reconciler smoothed up from zero and stored.
ALTER TABLE campaigns
    ADD COLUMN progress_samples jsonb NOT NULL DEFAULT '[]',
    DROP COLUMN rate_per_second,
    DROP COLUMN progress_at,
    DROP COLUMN progress_done;

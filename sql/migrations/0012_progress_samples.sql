-- The reconciler's recent samples of finished deliveries, [[epoch seconds, done], ...],
-- from which the send rate is read over a window instead of smoothed from zero.
ALTER TABLE campaigns
    ADD COLUMN progress_samples jsonb NOT NULL DEFAULT '[]',
    DROP COLUMN progress_at,
    DROP COLUMN progress_done;

-- Deliveries are created in chunks after launch, not all inside the launch request: at 33.7
-- million accounts that request would have created 67 million rows in one transaction.
-- Launch creates the first chunk; dispatch creates the rest, a chunk at a time, ahead of
-- the sending. prepared_through is the last recipient id whose deliveries exist, or NULL
-- once every recipient has them (and for every campaign launched before this migration).
ALTER TABLE campaigns ADD COLUMN prepared_through bigint;

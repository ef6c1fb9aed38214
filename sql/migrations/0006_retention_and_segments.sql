-- When a finished campaign's contact details were removed (`notifier purge`); its ledger,
-- counts and report stay.
ALTER TABLE campaigns ADD COLUMN purged_at timestamptz;

-- The most SMS segments one message of the campaign may take; a longer rendering is not sent.
ALTER TABLE campaigns ADD COLUMN sms_max_segments integer NOT NULL DEFAULT 3
    CHECK (sms_max_segments BETWEEN 1 AND 10);

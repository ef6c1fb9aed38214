-- SMS whose final receipt never came (a callback lost while the API or Postgres was down,
-- or never posted): the reconciler asks the provider for their status. The partial index
-- holds only messages still waiting, so finding them stays cheap at any campaign size.
ALTER TABLE deliveries ADD COLUMN receipt_checked_at timestamptz;

CREATE INDEX deliveries_awaiting_receipt ON deliveries (coalesce(receipt_checked_at, sent_at))
    WHERE channel = 'sms' AND status = 'sent';

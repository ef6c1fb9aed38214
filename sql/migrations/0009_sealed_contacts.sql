-- Contact details encrypted at rest (notifier/sealing.py): a recipient's email address and
-- phone number are stored together, sealed with AES-256-GCM under a key from the service's
-- configuration, plus a keyed hash of each for lookups and for telling, without opening,
-- whether there is one. Rows imported before this migration keep their plaintext columns
-- until `notifier seal` seals them; the plaintext columns are then empty.
ALTER TABLE recipients
    ADD COLUMN contact_sealed bytea,
    ADD COLUMN email_hash bytea,
    ADD COLUMN phone_hash bytea;

COMMENT ON COLUMN recipients.email IS 'plaintext, only in rows imported before sealing; see contact_sealed';
COMMENT ON COLUMN recipients.phone IS 'plaintext, only in rows imported before sealing; see contact_sealed';

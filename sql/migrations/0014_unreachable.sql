-- Upload rows that were refused, kept so that the people they name can be given a substitute
-- notice (a public posting) when they cannot be reached. Only the account id (when the row had
-- a usable one), the reason and where the row was: never its contact details or other values.
-- An upload writes its refused rows in its own transaction, so a cut upload keeps none. The
-- foreign key costs no new lock: an upload already holds its campaign row FOR SHARE.
CREATE TABLE rejected_rows (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    upload_id    uuid NOT NULL,
    line         integer NOT NULL,
    external_id  text,
    reason       text NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, id)
);
-- The latest refusal of an account, and whether a later one replaced it.
CREATE INDEX rejected_rows_account ON rejected_rows (campaign_id, external_id, id)
    WHERE external_id IS NOT NULL;

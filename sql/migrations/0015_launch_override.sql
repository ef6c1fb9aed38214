-- A launch over a notice that lacks items its laws require: allowed only with a reason, kept
-- on the campaign, in the audit log (the detail of the call) and in the ledger.
ALTER TABLE audit_log ADD COLUMN detail text;
ALTER TABLE campaigns ADD COLUMN launch_override jsonb;

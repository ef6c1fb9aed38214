-- The incident behind a campaign: when the company became aware of it, the rule sets whose
-- duties apply (and the version of each it is held to), and the notice's items per locale.
ALTER TABLE campaigns
    ADD COLUMN discovered_at timestamptz,
    ADD COLUMN jurisdictions text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rule_versions jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';

-- Refresh the planner's statistics of one campaign's partition of a per-campaign table.
-- The partition's name is built here with format('%I'), so callers bind the campaign id as
-- a parameter instead of formatting an identifier into their SQL.
CREATE FUNCTION analyze_campaign_partition(parent text, campaign uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF parent NOT IN ('recipients', 'deliveries', 'delivery_events') THEN
        RAISE EXCEPTION '% is not partitioned by campaign', parent;
    END IF;
    EXECUTE format('ANALYZE %I', parent || '_' || replace(campaign::text, '-', ''));
END
$$;

-- The audit log: every mutating call, with the key that made it. It only grows.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    api_key_id   uuid,
    action       text NOT NULL,
    target       text,
    status       integer NOT NULL,
    client       text
);

CREATE INDEX audit_log_key ON audit_log (api_key_id, id);

CREATE FUNCTION refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();

-- Idempotency-Key: the first response to a POST, replayed to retries with the same key.
CREATE TABLE idempotency_keys (
    api_key_id    uuid NOT NULL,
    key           text NOT NULL,
    method        text NOT NULL,
    path          text NOT NULL,
    request_hash  bytea,
    status        integer,
    content_type  text,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

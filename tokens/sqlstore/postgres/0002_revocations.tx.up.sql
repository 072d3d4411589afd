-- The revocation feed resource servers poll (tokens.RevocationLog). Times are unix milliseconds.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    not_before BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
--bun:split
CREATE INDEX revocations_expires_at ON revocations (expires_at);

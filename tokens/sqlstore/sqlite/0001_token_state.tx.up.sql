-- Short-lived token state: one row per key. expires_at is unix milliseconds; rows past it are
-- invisible to the store and removed by Sweep.
CREATE TABLE token_state (
    key        TEXT    PRIMARY KEY,
    value      BLOB,
    counter    INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
--bun:split
CREATE INDEX token_state_expires_at ON token_state (expires_at);

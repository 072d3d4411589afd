-- A user's TOTP enrolment. secret_sealed is the 160-bit seed sealed with AES-GCM under the master
-- key, with the user's id in the associated data: never the seed itself nor its Base32.
-- confirmed_at is NULL while the enrolment is pending; 2FA is on once it is set. last_step is the
-- last accepted RFC 6238 time step: a code is accepted only for a later one, and the step moves
-- by compare-and-swap (UPDATE … WHERE last_step < ?), so that each code works once.
CREATE TABLE user_totp (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed BYTEA NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
--bun:split
-- code_hash is HMAC-SHA256, under the pepper, of the user's id and the normalised code; used_at
-- is set once, by UPDATE … WHERE used_at IS NULL, when the code is spent.
CREATE TABLE user_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

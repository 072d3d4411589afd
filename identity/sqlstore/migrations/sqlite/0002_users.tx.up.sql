-- email_normalized is NFKC + case fold of email, unique among users not deleted (deleted_at is for
-- a later soft delete). permissions is a JSON array of strings. password_hash is an argon2id PHC
-- string, NULL for a user invited but without a password yet.
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT REFERENCES organizations (id),
    email               TEXT NOT NULL,
    email_normalized    TEXT NOT NULL,
    name                TEXT NOT NULL,
    active              BOOLEAN NOT NULL,
    email_verified      BOOLEAN NOT NULL,
    permissions         TEXT NOT NULL,
    password_hash       TEXT,
    password_expired    BOOLEAN NOT NULL DEFAULT FALSE,
    password_changed_at TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    deleted_at          TIMESTAMP
);
--bun:split
CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized) WHERE deleted_at IS NULL;
--bun:split
CREATE INDEX users_org_id ON users (org_id);

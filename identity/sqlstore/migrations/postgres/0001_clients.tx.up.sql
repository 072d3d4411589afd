-- Organizations exist here only as the target of clients.org_id; their API comes later.
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
--bun:split
-- grants and scopes are JSON arrays of strings; secret_hash is HMAC-SHA256, NULL for public clients.
CREATE TABLE clients (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    public              BOOLEAN NOT NULL,
    grants              TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    org_id              TEXT REFERENCES organizations (id),
    access_ttl_seconds  BIGINT NOT NULL DEFAULT 0,
    refresh_ttl_seconds BIGINT NOT NULL DEFAULT 0,
    secret_hash         BYTEA,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX clients_org_id ON clients (org_id);

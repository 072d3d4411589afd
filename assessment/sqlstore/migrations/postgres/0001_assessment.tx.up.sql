-- The platform-wide catalogue of tests. score_schema is the JSON Schema text (draft 2020-12) as
-- the service compacted it. Tests are never deleted, only deactivated.
CREATE TABLE tests (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    version      TEXT NOT NULL,
    score_schema TEXT NOT NULL,
    active       BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
--bun:split
-- One user's result in one test. org_id, user_id, group_id and created_by name identity records
-- but carry no foreign keys: the assessment tables do not depend on identity's migrations running
-- first, and users and groups are only ever soft-deleted, so the ids stay meaningful. scores and
-- answers are JSON text, kept byte for byte. deleted_at marks a soft delete.
CREATE TABLE results (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    test_id     TEXT NOT NULL REFERENCES tests (id),
    group_id    TEXT,
    scores      TEXT NOT NULL,
    answers     TEXT,
    applied_at  TIMESTAMPTZ NOT NULL,
    feedback_at TIMESTAMPTZ,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);
--bun:split
-- The two lists, one index range scan per page (keyset on id, UUIDv7 so creation order).
CREATE INDEX results_by_user ON results (org_id, user_id, id) WHERE deleted_at IS NULL;
--bun:split
CREATE INDEX results_by_group ON results (org_id, group_id, id) WHERE deleted_at IS NULL;

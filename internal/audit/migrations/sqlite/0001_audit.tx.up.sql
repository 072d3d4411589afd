-- One row per audit event; rows are only ever inserted (pruning by age is an operator's job, see
-- docs/audit.md). id is a UUIDv7, so ordering by id is ordering by time. org_id is '' for platform
-- events and subject_id '' when an event is about no one in particular: empty strings rather than
-- NULL keep the (column, id) indexes usable for every query. details is a JSON object of strings.
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    at         TIMESTAMP NOT NULL,
    type       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    org_id     TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    route      TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    details    TEXT NOT NULL
);
--bun:split
CREATE INDEX audit_events_org_id ON audit_events (org_id, id);
--bun:split
CREATE INDEX audit_events_subject_id ON audit_events (subject_id, id);

-- The revocation feed resource servers poll (tokens.RevocationLog). Times are unix milliseconds.
-- AUTOINCREMENT (not a plain rowid) so that a seq is never handed out twice, even after Sweep has
-- deleted the newest rows: a reader's cursor must never skip a later entry.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    not_before INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
--bun:split
CREATE INDEX revocations_expires_at ON revocations (expires_at);

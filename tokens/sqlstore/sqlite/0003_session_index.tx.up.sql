-- Sessions by user (tokens.SessionIndex), for listing: the token store keeps them by sid only.
-- A copy, never the authority. scope and amr are JSON arrays; times are unix milliseconds,
-- auth_time 0 when unknown. Expired rows are hidden and removed by Sweep.
CREATE TABLE session_index (
    sid        TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    org        TEXT    NOT NULL DEFAULT '',
    scope      TEXT    NOT NULL DEFAULT '[]',
    amr        TEXT    NOT NULL DEFAULT '[]',
    auth_time  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
--bun:split
CREATE INDEX session_index_user ON session_index (user_id, created_at);
--bun:split
CREATE INDEX session_index_expires_at ON session_index (expires_at);

-- Groups of users inside one organization. deleted_at marks a soft delete: the group and its
-- links stay, and every query of the store skips it.
CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);
--bun:split
-- The organization's list is a range scan of (org_id, id) over live groups.
CREATE INDEX groups_org_id ON groups (org_id, id) WHERE deleted_at IS NULL;
--bun:split
-- Members and managers are separate links: a manager need not be a member. The primary key makes
-- a second add of the same user a no-op (ON CONFLICT DO NOTHING); the (user_id, group_id) index
-- answers "the groups of a user" in group order.
CREATE TABLE group_members (
    group_id   TEXT NOT NULL REFERENCES groups (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
--bun:split
CREATE INDEX group_members_user_id ON group_members (user_id, group_id);
--bun:split
CREATE TABLE group_managers (
    group_id   TEXT NOT NULL REFERENCES groups (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
--bun:split
CREATE INDEX group_managers_user_id ON group_managers (user_id, group_id);

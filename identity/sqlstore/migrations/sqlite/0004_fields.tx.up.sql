-- Custom fields of an organization's users. type is text, number, date, boolean or choice;
-- options is a JSON array of strings (the choices), [] for the other types.
CREATE TABLE custom_fields (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    required   BOOLEAN NOT NULL,
    options    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
--bun:split
CREATE INDEX custom_fields_org_id ON custom_fields (org_id, id);
--bun:split
-- One value of a custom field for a user, as canonical JSON ("text", 12.5, true, "2026-03-01"),
-- so that a list of users filters on a field with one index lookup. Deleting a field or a user
-- deletes its values.
CREATE TABLE user_field_values (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    field_id TEXT NOT NULL REFERENCES custom_fields (id) ON DELETE CASCADE,
    value    TEXT NOT NULL,
    PRIMARY KEY (user_id, field_id)
);
--bun:split
CREATE INDEX user_field_values_lookup ON user_field_values (field_id, value, user_id);
--bun:split
-- Lists of an organization's live users page by id: one index range scan whatever the page
-- (partial like the lists' own predicate, so the planner takes it even before statistics exist).
CREATE INDEX users_org_id_id ON users (org_id, id) WHERE deleted_at IS NULL;
--bun:split
CREATE UNIQUE INDEX custom_fields_org_name ON custom_fields (org_id, name);
--bun:split
-- name_folded is the name NFKC-normalised and case-folded like email_normalized, written by the
-- store with every name, for case-insensitive search in any script. lower() fills it for rows
-- written before it existed (exact for ASCII names; the next write of the user makes it exact).
ALTER TABLE users ADD COLUMN name_folded TEXT NOT NULL DEFAULT '';
--bun:split
UPDATE users SET name_folded = lower(name);

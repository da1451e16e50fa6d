-- SCIM Groups, per connection, and their membership as a join table: adding or removing one
-- member costs the same in a group of 10 or of 200,000.
CREATE TABLE scim_groups (
    group_id         TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    connection_id    TEXT NOT NULL REFERENCES scim_connections (connection_id) ON DELETE CASCADE,
    display_name     TEXT NOT NULL,
    -- lower(display_name): unique per connection.
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    -- The group as the IdP last wrote it, in canonical form, without id, meta and members.
    attributes       TEXT NOT NULL,
    version          BIGINT NOT NULL DEFAULT 1,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX scim_groups_display_name ON scim_groups (connection_id, display_name_key);
CREATE INDEX scim_groups_external_id ON scim_groups (connection_id, external_id);
CREATE INDEX scim_groups_listing ON scim_groups (connection_id, created_at, group_id);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups (group_id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
-- A user's groups, and `members[value eq "…"]` filters.
CREATE INDEX group_members_member ON group_members (member_id, group_id);

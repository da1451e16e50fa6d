-- Filters on the attributes IdPs and applications search by are answered from indexes
-- (scim::list::plan): each is kept in a column of its own, lowercased as it compares
-- (caseExact: false), with the listing order in the index so that a page of matches is read
-- already in creation order. db::migrate fills them for users stored before this migration.
ALTER TABLE members ADD COLUMN scim_display_name_key TEXT;
ALTER TABLE members ADD COLUMN scim_given_name_key TEXT;
ALTER TABLE members ADD COLUMN scim_family_name_key TEXT;
CREATE INDEX members_scim_display_name ON members (scim_connection_id, scim_display_name_key, created_at, member_id);
CREATE INDEX members_scim_given_name ON members (scim_connection_id, scim_given_name_key, created_at, member_id);
CREATE INDEX members_scim_family_name ON members (scim_connection_id, scim_family_name_key, created_at, member_id);
-- `meta.lastModified gt …`: what changed since a moment.
CREATE INDEX members_scim_last_modified ON members (scim_connection_id, updated_at);
CREATE INDEX scim_groups_last_modified ON scim_groups (connection_id, updated_at);

-- A SCIM user's emails, one row an element (every address, not only the member's own), so
-- that `emails.value eq …` and `emails[type eq "work" and value co …]` use an index. Kept by
-- domain::members with every write of the member; live SCIM users only.
CREATE TABLE member_emails (
    member_id     TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    connection_id TEXT NOT NULL,
    -- lower(value), lower(type); NULL when the element has none.
    value_key     TEXT,
    type_key      TEXT,
    is_primary    BOOLEAN,
    PRIMARY KEY (member_id, position)
);
CREATE INDEX member_emails_value ON member_emails (connection_id, value_key, member_id);

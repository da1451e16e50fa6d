-- Members of organizations, and the SCIM registration of those an IdP manages.
CREATE TABLE members (
    member_id          TEXT PRIMARY KEY NOT NULL,
    organization_id    TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    email_address      TEXT NOT NULL,
    -- lower(email_address) while the member is not deleted, NULL once it is: unique per
    -- organization, and a deleted member's email is free for a new one.
    email_key          TEXT,
    status             TEXT NOT NULL,
    name               TEXT NOT NULL,
    is_breakglass      BOOLEAN NOT NULL DEFAULT FALSE,
    trusted_metadata   TEXT NOT NULL,
    untrusted_metadata TEXT NOT NULL,
    -- SCIM registration: set when an IdP manages the member. A deleted member keeps it for
    -- audit, with scim_user_name_key cleared so the userName is free again.
    scim_connection_id TEXT REFERENCES scim_connections (connection_id) ON DELETE SET NULL,
    scim_user_name     TEXT,
    scim_user_name_key TEXT,
    scim_external_id   TEXT,
    -- The SCIM resource as the IdP last wrote it, in canonical form, without id, meta,
    -- groups, active (derived from status) or password (never stored).
    scim_attributes    TEXT,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX members_email ON members (organization_id, email_key);
CREATE UNIQUE INDEX members_scim_user_name ON members (scim_connection_id, scim_user_name_key);
CREATE INDEX members_scim_external_id ON members (scim_connection_id, scim_external_id);
-- A connection's users in creation order: the order SCIM lists page through.
CREATE INDEX members_scim_listing ON members (scim_connection_id, created_at, member_id);

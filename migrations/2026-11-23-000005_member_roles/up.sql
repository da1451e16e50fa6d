-- Which member holds which role, and from what: `direct` (source_ref ''), `email_domain`
-- (the domain) or `scim_group` (the group id). Removing a source removes exactly what it
-- granted; a role held from several sources stays until the last one goes.
CREATE TABLE member_roles (
    member_id       TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL,
    role_id         TEXT NOT NULL,
    source          TEXT NOT NULL,
    source_ref      TEXT NOT NULL,
    PRIMARY KEY (member_id, role_id, source, source_ref),
    FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, role_id) ON DELETE CASCADE
);
CREATE INDEX member_roles_role ON member_roles (organization_id, role_id, member_id);

-- A SCIM group of a connection grants a role: by the group's id, or by its displayName so
-- that an admin can map a group before the IdP has pushed it.
CREATE TABLE group_role_assignments (
    assignment_id          TEXT PRIMARY KEY NOT NULL,
    organization_id        TEXT NOT NULL,
    connection_id          TEXT NOT NULL REFERENCES scim_connections (connection_id) ON DELETE CASCADE,
    group_id               TEXT REFERENCES scim_groups (group_id) ON DELETE CASCADE,
    group_display_name_key TEXT,
    role_id                TEXT NOT NULL,
    created_at             TIMESTAMP NOT NULL,
    FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, role_id) ON DELETE CASCADE
);
CREATE INDEX group_role_assignments_connection ON group_role_assignments (connection_id);

-- Roles of an organization: the built-in `member` (every active member holds it) and
-- `admin`, and custom ones. Permissions are JSON: [{"resource_id": …, "actions": […]}].
CREATE TABLE roles (
    organization_id TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    role_id         TEXT NOT NULL,
    description     TEXT NOT NULL,
    permissions     TEXT NOT NULL,
    built_in        BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (organization_id, role_id)
);

INSERT INTO roles (organization_id, role_id, description, permissions, built_in, created_at, updated_at)
SELECT organization_id, 'member', 'Held by every active member of the organization.', '[]', TRUE, created_at, created_at
FROM organizations;
INSERT INTO roles (organization_id, role_id, description, permissions, built_in, created_at, updated_at)
SELECT organization_id, 'admin', 'Administers the organization.', '[{"resource_id":"*","actions":["*"]}]', TRUE, created_at, created_at
FROM organizations;

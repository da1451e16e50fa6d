-- One schema for SQLite and PostgreSQL: only types and clauses both accept.
-- Timestamps are UTC without zone (diesel Timestamp); JSON documents are TEXT.

CREATE TABLE organizations (
    organization_id  TEXT PRIMARY KEY NOT NULL,
    slug             TEXT NOT NULL,
    name             TEXT NOT NULL,
    settings         TEXT NOT NULL,
    trusted_metadata TEXT NOT NULL,
    -- The last event sequence number handed out; bumped under this row's lock, so the
    -- organization's events are numbered gap-free in commit order.
    event_sequence   BIGINT NOT NULL DEFAULT 0,
    version          BIGINT NOT NULL DEFAULT 1,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX organizations_slug ON organizations (slug);

-- email_allowed_domains, one row each, so that lookups by domain use an index.
CREATE TABLE organization_domains (
    organization_id TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    PRIMARY KEY (organization_id, domain)
);
CREATE INDEX organization_domains_domain ON organization_domains (domain);

CREATE TABLE scim_connections (
    connection_id     TEXT PRIMARY KEY NOT NULL,
    organization_id   TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    display_name      TEXT NOT NULL,
    identity_provider TEXT NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX scim_connections_organization ON scim_connections (organization_id, connection_id);

-- Only the SHA-256 of a token is kept, with its last four characters for display.
-- state: 'current', or 'next' while a rotation is under way (both authenticate).
CREATE TABLE scim_tokens (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    connection_id   TEXT NOT NULL REFERENCES scim_connections (connection_id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL,
    last_four       TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX scim_tokens_connection_state ON scim_tokens (connection_id, state);

-- The outbox: written in the transaction of the change it describes. Events outlive their
-- organization (no foreign key), so organization.deleted stays readable until retention.
CREATE TABLE events (
    event_id        TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL,
    sequence        BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    source          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    data            TEXT NOT NULL,
    previous        TEXT,
    occurred_at     TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX events_organization_sequence ON events (organization_id, sequence);
CREATE INDEX events_occurred_at ON events (occurred_at);

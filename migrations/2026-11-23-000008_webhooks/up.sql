-- Webhook endpoints: of one organization, or of every organization (organization_id NULL).
-- Each follows the event feed with its own cursor (the last event delivered), so delivery is
-- in feed order, at least once, and survives any process dying: whoever holds the lease
-- resumes from the cursor.
CREATE TABLE webhooks (
    webhook_id             TEXT PRIMARY KEY NOT NULL,
    organization_id        TEXT REFERENCES organizations (organization_id) ON DELETE CASCADE,
    url                    TEXT NOT NULL,
    -- JSON array of event types and prefixes (`member.*`); empty: every type.
    event_types            TEXT NOT NULL,
    -- whsec_…: needed to sign every delivery, so kept; shown once, at creation.
    secret                 TEXT NOT NULL,
    status                 TEXT NOT NULL,
    cursor_position        BIGINT NOT NULL,
    cursor_organization_id TEXT NOT NULL,
    cursor_sequence        BIGINT NOT NULL,
    -- Failed attempts at the event after the cursor, and when to try again.
    attempts               INTEGER NOT NULL,
    next_attempt_at        TIMESTAMP NOT NULL,
    failing_since          TIMESTAMP,
    lease_owner            TEXT,
    lease_until            TIMESTAMP,
    version                BIGINT NOT NULL DEFAULT 1,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL
);
CREATE INDEX webhooks_organization ON webhooks (organization_id, webhook_id);
CREATE INDEX webhooks_due ON webhooks (status, next_attempt_at);

CREATE TABLE webhook_deliveries (
    delivery_id  TEXT PRIMARY KEY NOT NULL,
    webhook_id   TEXT NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    succeeded    BOOLEAN NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    attempted_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, attempted_at, delivery_id);

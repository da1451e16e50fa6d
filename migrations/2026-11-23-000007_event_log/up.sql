-- The feed's order: where an event stands among every organization's events. SQLite has one
-- writer and numbers events one after another. PostgreSQL stores the id of the writing
-- transaction, and readers return only events of transactions older than every transaction
-- still running, so nothing can commit later at a position a reader has already passed
-- (README, Events). Events written before this migration stand first, at 0.
ALTER TABLE events ADD COLUMN log_position BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_log ON events (log_position, organization_id, sequence);
CREATE INDEX events_organization_log ON events (organization_id, log_position, sequence);

-- PostgreSQL: the position of an organization's last event. A new event stands at the
-- greater of its transaction's id and this, so an organization's events never stand in the
-- feed out of their sequence (a transaction may have taken its id before the one that held
-- the organization's lock ahead of it).
ALTER TABLE organizations ADD COLUMN event_log_position BIGINT NOT NULL DEFAULT 0;

-- SQLite: the last position handed out, kept apart from the events so that pruning every
-- event does not start the numbering again.
CREATE TABLE event_log (
    id            INTEGER PRIMARY KEY NOT NULL,
    last_position BIGINT NOT NULL
);
INSERT INTO event_log (id, last_position) VALUES (1, 0);

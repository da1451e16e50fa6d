DROP TABLE event_log;
ALTER TABLE organizations DROP COLUMN event_log_position;
DROP INDEX events_organization_log;
DROP INDEX events_log;
ALTER TABLE events DROP COLUMN log_position;

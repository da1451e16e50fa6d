-- How many users (members not deleted) each connection has, kept by domain::members with
-- every insert and status change: an unfiltered SCIM list answers totalResults from it
-- instead of counting a million rows on every page.
ALTER TABLE scim_connections ADD COLUMN user_count BIGINT NOT NULL DEFAULT 0;
UPDATE scim_connections SET user_count = (
    SELECT COUNT(*) FROM members
    WHERE members.scim_connection_id = scim_connections.connection_id
      AND members.status <> 'deleted'
);

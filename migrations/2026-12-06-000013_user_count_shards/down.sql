ALTER TABLE scim_connections ADD COLUMN user_count BIGINT NOT NULL DEFAULT 0;
UPDATE scim_connections SET user_count = COALESCE((
    SELECT SUM(user_count) FROM scim_connection_user_counts
    WHERE scim_connection_user_counts.connection_id = scim_connections.connection_id
), 0);
DROP TABLE scim_connection_user_counts;

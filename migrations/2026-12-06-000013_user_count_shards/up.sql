-- A connection's user count, kept in shards: every create or deletion of a user added to the
-- one `scim_connections.user_count`, whose row lock (PostgreSQL) every other writer of the
-- connection then waited for until commit: under entra-sync most backends sampled waited
-- there. A change adds to one of 16 rows, picked by the member's id; the count is their sum.
CREATE TABLE scim_connection_user_counts (
    connection_id TEXT NOT NULL REFERENCES scim_connections (connection_id) ON DELETE CASCADE,
    shard         INTEGER NOT NULL,
    user_count    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, shard)
);
INSERT INTO scim_connection_user_counts (connection_id, shard, user_count)
    SELECT connection_id, 0, user_count FROM scim_connections;
ALTER TABLE scim_connections DROP COLUMN user_count;

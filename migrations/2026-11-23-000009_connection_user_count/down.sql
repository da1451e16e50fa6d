ALTER TABLE scim_connections DROP COLUMN user_count;

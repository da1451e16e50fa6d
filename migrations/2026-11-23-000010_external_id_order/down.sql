DROP INDEX scim_groups_external_id;
CREATE INDEX scim_groups_external_id ON scim_groups (connection_id, external_id);
DROP INDEX members_scim_external_id;
CREATE INDEX members_scim_external_id ON members (scim_connection_id, scim_external_id);

DROP INDEX members_scim_status;

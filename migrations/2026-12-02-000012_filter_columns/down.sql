DROP TABLE member_emails;
DROP INDEX scim_groups_last_modified;
DROP INDEX members_scim_last_modified;
DROP INDEX members_scim_family_name;
DROP INDEX members_scim_given_name;
DROP INDEX members_scim_display_name;
ALTER TABLE members DROP COLUMN scim_family_name_key;
ALTER TABLE members DROP COLUMN scim_given_name_key;
ALTER TABLE members DROP COLUMN scim_display_name_key;

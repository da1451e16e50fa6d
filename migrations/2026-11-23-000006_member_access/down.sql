DROP TABLE organization_oauth_tenants;
DROP INDEX members_email_key;
DROP INDEX members_email_domain;
ALTER TABLE members DROP COLUMN email_address_verified;
ALTER TABLE members DROP COLUMN email_domain;

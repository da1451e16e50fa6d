DROP TABLE events;
DROP TABLE scim_tokens;
DROP TABLE scim_connections;
DROP TABLE organization_domains;
DROP TABLE organizations;

-- What the email rules, search and discovery look members up by: the domain of the email,
-- and whether the member proved the address is theirs (an authentication reported to /jit
-- with a verified email, or an accepted invite).
ALTER TABLE members ADD COLUMN email_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN email_address_verified BOOLEAN NOT NULL DEFAULT FALSE;
-- The text after the last '@', in SQL both databases speak: rtrim strips every trailing
-- character but '@', so its length is the position of the last '@'.
UPDATE members SET email_domain = substr(
    lower(email_address),
    length(rtrim(lower(email_address), replace(lower(email_address), '@', ''))) + 1
);
CREATE INDEX members_email_domain ON members (organization_id, email_domain, status);
-- One person's memberships across organizations (discovery, search by email).
CREATE INDEX members_email_key ON members (email_key);

-- allowed_oauth_tenants, one row each, so that discovery finds organizations by tenant.
CREATE TABLE organization_oauth_tenants (
    organization_id TEXT NOT NULL REFERENCES organizations (organization_id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    PRIMARY KEY (organization_id, provider, tenant_id)
);
CREATE INDEX organization_oauth_tenants_tenant ON organization_oauth_tenants (provider, tenant_id);

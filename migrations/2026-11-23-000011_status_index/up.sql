-- `active eq false` (and `active eq true`) narrows a connection's users by status
-- (scim::list::Narrowing::Active): with status in an index that also carries the listing
-- order, the database reads only the matching users, already in creation order.
CREATE INDEX members_scim_status ON members (scim_connection_id, status, created_at, member_id);

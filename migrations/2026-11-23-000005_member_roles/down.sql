DROP TABLE group_role_assignments;
DROP TABLE member_roles;

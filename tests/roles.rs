mod common;

use common::{Db, TestServer};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_has_built_in_roles_and_custom_ones_with_permissions(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let admin = server.admin();
    let roles = format!("/v1/organizations/{}/roles", acme.organization_id);

    let listed = admin.get(&roles).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<&str> = listed.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "member"]);
    assert_eq!(listed.body["roles"][0]["built_in"], true);

    let created = admin
        .post(
            &roles,
            json!({"role_id": "billing", "description": "Pays", "permissions": [
                {"resource_id": "invoices", "actions": ["write", "read"]},
                {"resource_id": "invoices", "actions": ["read"]}
            ]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["role"]["permissions"],
        json!([{"resource_id": "invoices", "actions": ["read", "write"]}])
    );
    assert_eq!(
        admin
            .post(&roles, json!({"role_id": "billing"}))
            .await
            .status,
        409
    );

    let updated = admin
        .patch(
            &format!("{roles}/billing"),
            json!({"permissions": [{"resource_id": "*", "actions": ["*"]}]}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["role"]["description"], "Pays");
    assert_eq!(
        admin.get(&format!("{roles}/billing")).await.body,
        updated.body
    );

    for (body, error_type) in [
        (json!({"role_id": "Bad Id"}), "invalid_role_id"),
        (
            json!({"role_id": "x", "permissions": [{"resource_id": "", "actions": ["read"]}]}),
            "invalid_permissions",
        ),
        (
            json!({"role_id": "x", "permissions": [{"resource_id": "docs", "actions": []}]}),
            "invalid_permissions",
        ),
        (
            json!({"role_id": "x", "grants": []}),
            "invalid_request_body",
        ),
        (json!({"description": "no id"}), "missing_field"),
    ] {
        let refused = admin.post(&roles, body.clone()).await;
        assert_eq!(refused.status, 400, "{body}");
        assert_eq!(refused.body["error_type"], error_type, "{}", refused.text);
    }

    let built_in = admin.delete(&format!("{roles}/admin")).await;
    assert_eq!(built_in.status, 409);
    assert_eq!(built_in.body["error_type"], "built_in_role");
    assert_eq!(admin.delete(&format!("{roles}/billing")).await.status, 200);
    assert_eq!(admin.get(&format!("{roles}/billing")).await.status, 404);

    let events = server.event_types(&acme.organization_id);
    let role_events: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("role."))
        .collect();
    assert_eq!(
        role_events,
        ["role.created", "role.updated", "role.deleted"]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn roles_are_reachable_only_within_their_organization(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let admin = server.admin();
    admin
        .post(
            &format!("/v1/organizations/{}/roles", globex.organization_id),
            json!({"role_id": "secret"}),
        )
        .await;
    let scoped = server.client(Some(&server.jwt(&format!("org:{}", acme.organization_id))));
    let foreign = format!("/v1/organizations/{}/roles", globex.organization_id);
    assert_eq!(scoped.get(&foreign).await.status, 404);
    assert_eq!(scoped.get(&format!("{foreign}/secret")).await.status, 404);
    assert_eq!(
        scoped.delete(&format!("{foreign}/secret")).await.status,
        404
    );
    assert_eq!(
        admin
            .get(&format!(
                "/v1/organizations/{}/roles/secret",
                acme.organization_id
            ))
            .await
            .status,
        404
    );
    assert_eq!(
        scoped
            .post(
                &format!("/v1/organizations/{}/roles", acme.organization_id),
                json!({"role_id": "mine"})
            )
            .await
            .status,
        201
    );
}

fn patch(operations: serde_json::Value) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

/// The roles `GET …/members/{id}` reports, as (role, source type) pairs, sorted.
async fn roles_of(
    server: &TestServer,
    organization_id: &str,
    member_id: &str,
) -> Vec<(String, String)> {
    let member = server
        .admin()
        .get(&format!(
            "/v1/organizations/{organization_id}/members/{member_id}"
        ))
        .await;
    assert_eq!(member.status, 200, "{}", member.text);
    let mut roles: Vec<(String, String)> = member.body["member"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|role| {
            role["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |source| {
                    (
                        role["role_id"].as_str().unwrap().to_string(),
                        source["type"].as_str().unwrap().to_string(),
                    )
                })
        })
        .collect();
    roles.sort();
    roles
}

/// An organization with an `engineer` role and its SCIM user ada, member of its group
/// Engineering (no group mapped to a role yet): the tenant, ada's id and the group's.
async fn ada_in_engineering(server: &TestServer) -> (common::Tenant, String, String) {
    let acme = server.new_organization("acme").await;
    let org = &acme.organization_id;
    server
        .admin()
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "engineer"}),
        )
        .await;
    let idp = acme.scim();
    let ada = idp
        .post("/Users", json!({"userName": "ada@acme.test"}))
        .await
        .id();
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "Engineering", "members": [{"value": ada}]}),
        )
        .await
        .id();
    (acme, ada, group)
}

/// The group-role assignments of the tenant's connection.
fn assignments_of(tenant: &common::Tenant) -> String {
    format!(
        "/v1/organizations/{}/scim-connections/{}/group-role-assignments",
        tenant.organization_id, tenant.connection_id
    )
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn group_roles_follow_membership_mappings_and_lifecycle(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let org = acme.organization_id.clone();
    let admin = server.admin();
    let idp = acme.scim();
    let assignments = assignments_of(&acme);
    admin
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "engineer"}),
        )
        .await;

    // Mapped by name before the IdP pushes the group.
    let by_name = admin
        .post(
            &assignments,
            json!({"group_display_name": "Engineering", "role_ids": ["engineer"]}),
        )
        .await;
    assert_eq!(by_name.status, 201, "{}", by_name.text);
    let by_name_id = by_name.body["group_role_assignments"][0]["assignment_id"]
        .as_str()
        .unwrap()
        .to_string();

    let ada = idp
        .post("/Users", json!({"userName": "ada@acme.test"}))
        .await
        .id();
    let bob = idp
        .post("/Users", json!({"userName": "bob@acme.test"}))
        .await
        .id();
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "ENGINEERING", "members": [ada.clone()]}),
        )
        .await
        .id();
    assert_eq!(
        roles_of(&server, &org, &ada).await,
        pairs(&[("engineer", "scim_group"), ("member", "implicit")])
    );
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        pairs(&[("member", "implicit")])
    );

    idp.patch(
        &format!("/Groups/{group}"),
        patch(json!([
            {"op": "add", "path": "members", "value": [{"value": bob}]},
            {"op": "remove", "path": format!("members[value eq \"{ada}\"]")}
        ])),
    )
    .await;
    assert_eq!(
        roles_of(&server, &org, &ada).await,
        pairs(&[("member", "implicit")])
    );
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        pairs(&[("engineer", "scim_group"), ("member", "implicit")])
    );
    let holders = admin
        .get(&format!("/v1/organizations/{org}/roles/engineer/members"))
        .await;
    assert_eq!(holders.body["member_ids"], json!([bob]));

    // Deactivation revokes everything and says what; reactivation re-derives.
    idp.patch(
        &format!("/Users/{bob}"),
        patch(json!([{"op": "replace", "path": "active", "value": "False"}])),
    )
    .await;
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        Vec::<(String, String)>::new()
    );
    let deactivated = server
        .events(&org)
        .into_iter()
        .find(|(_, kind, _, _)| kind == "member.deactivated")
        .unwrap();
    assert_eq!(deactivated.2["roles_revoked"][0]["role_id"], "engineer");
    idp.patch(
        &format!("/Users/{bob}"),
        patch(json!([{"op": "replace", "path": "active", "value": "True"}])),
    )
    .await;
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        pairs(&[("engineer", "scim_group"), ("member", "implicit")])
    );

    // A second source for the same role; removing one source keeps the role.
    let by_id = admin
        .post(
            &assignments,
            json!({"group_id": group, "role_ids": ["engineer"]}),
        )
        .await;
    assert_eq!(by_id.status, 201, "{}", by_id.text);
    assert_eq!(
        admin
            .delete(&format!("{assignments}/{by_name_id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        pairs(&[("engineer", "scim_group"), ("member", "implicit")])
    );
    assert_eq!(
        admin.get(&assignments).await.body["group_role_assignments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting the role takes it from every member, with an event each.
    assert_eq!(
        admin
            .delete(&format!("/v1/organizations/{org}/roles/engineer"))
            .await
            .status,
        200
    );
    assert_eq!(
        roles_of(&server, &org, &bob).await,
        pairs(&[("member", "implicit")])
    );
    assert!(admin.get(&assignments).await.body["group_role_assignments"]
        .as_array()
        .unwrap()
        .is_empty());
    let (_, kind, data, _) = server
        .events(&org)
        .into_iter()
        .rev()
        .find(|(_, kind, _, _)| kind.starts_with("member."))
        .unwrap();
    assert_eq!(kind, "member.roles_changed");
    assert_eq!(data["removed"][0]["role_id"], "engineer");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_mapping_must_name_a_group_of_its_connection_and_real_roles(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let globex = server.new_organization("globex").await;
    let foreign_group = globex
        .scim()
        .post("/Groups", json!({"displayName": "Theirs"}))
        .await
        .id();
    let admin = server.admin();
    let org = &acme.organization_id;
    admin
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "engineer"}),
        )
        .await;
    let assignments = assignments_of(&acme);
    for (body, error_type) in [
        (
            json!({"group_id": foreign_group, "role_ids": ["engineer"]}),
            "invalid_group_id",
        ),
        (
            json!({"group_display_name": "Eng", "role_ids": ["nope"]}),
            "invalid_role_ids",
        ),
        (
            json!({"group_display_name": "Eng", "role_ids": ["member"]}),
            "invalid_role_ids",
        ),
        (
            json!({"group_display_name": "Eng", "role_ids": []}),
            "invalid_role_ids",
        ),
        (
            json!({"group_display_name": "Eng", "group_id": "x", "role_ids": ["engineer"]}),
            "invalid_group",
        ),
        (json!({"role_ids": ["engineer"]}), "invalid_group"),
    ] {
        let refused = admin.post(&assignments, body.clone()).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        assert_eq!(
            refused.body["error_type"], error_type,
            "{body}: {}",
            refused.text
        );
    }
    let crossed = format!(
        "/v1/organizations/{org}/scim-connections/{}/group-role-assignments",
        globex.connection_id
    );
    assert_eq!(admin.get(&crossed).await.status, 404);
    let other_member =
        format!("/v1/organizations/{org}/members/member-00000000-0000-0000-0000-000000000000");
    assert_eq!(admin.get(&other_member).await.status, 404);
}

/// A small deterministic generator, so that a failing sequence can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn after_any_sequence_of_changes_roles_equal_roles_derived_from_scratch(#[case] db: Db) {
    use std::collections::{BTreeMap, BTreeSet};
    let server = TestServer::start(db).await;
    for seed in [7_u64, 42, 1_000_003] {
        let tenant = server.new_organization(&format!("seed-{seed}")).await;
        let org = tenant.organization_id.clone();
        let admin = server.admin();
        let idp = tenant.scim();
        let assignments = assignments_of(&tenant);
        let role_ids = ["r1", "r2", "r3"];
        for role in role_ids {
            admin
                .post(
                    &format!("/v1/organizations/{org}/roles"),
                    json!({"role_id": role}),
                )
                .await;
        }
        let mut users: Vec<(String, bool)> = Vec::new();
        for n in 0..4 {
            let id = idp
                .post("/Users", json!({"userName": format!("u{n}@s{seed}.test")}))
                .await
                .id();
            users.push((id, true));
        }
        let names = ["alpha", "beta", "gamma"];
        let mut groups: Vec<(String, String, BTreeSet<String>)> = Vec::new();
        for name in &names[..2] {
            let id = idp.post("/Groups", json!({"displayName": name})).await.body["id"]
                .as_str()
                .unwrap()
                .to_string();
            groups.push((id, name.to_string(), BTreeSet::new()));
        }
        // (assignment id, group id or lowercased name, role)
        let mut mappings: Vec<(String, Result<String, String>, String)> = Vec::new();
        let mut rng = Lcg(seed);
        for _ in 0..40 {
            match rng.below(7) {
                0 | 1 => {
                    let (group, user) = (rng.below(groups.len()), rng.below(users.len()));
                    let (group_id, _, members) = &mut groups[group];
                    let user_id = users[user].0.clone();
                    let op = if members.contains(&user_id) {
                        "remove"
                    } else {
                        "add"
                    };
                    let body = if op == "add" {
                        patch(
                            json!([{"op": "add", "path": "members", "value": [{"value": user_id}]}]),
                        )
                    } else {
                        patch(
                            json!([{"op": "remove", "path": format!("members[value eq \"{user_id}\"]")}]),
                        )
                    };
                    assert_eq!(
                        idp.patch(&format!("/Groups/{group_id}"), body).await.status,
                        204
                    );
                    if op == "add" {
                        members.insert(user_id);
                    } else {
                        members.remove(&user_id);
                    }
                }
                2 => {
                    let role = role_ids[rng.below(role_ids.len())].to_string();
                    let (target, body) = if rng.below(2) == 0 {
                        let group_id = groups[rng.below(groups.len())].0.clone();
                        (
                            Ok(group_id.clone()),
                            json!({"group_id": group_id, "role_ids": [role]}),
                        )
                    } else {
                        let name = names[rng.below(names.len())];
                        (
                            Err(name.to_string()),
                            json!({"group_display_name": name.to_uppercase(), "role_ids": [role]}),
                        )
                    };
                    let created = admin.post(&assignments, body).await;
                    assert_eq!(created.status, 201, "{}", created.text);
                    let id = created.body["group_role_assignments"][0]["assignment_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    mappings.push((id, target, role));
                }
                3 if !mappings.is_empty() => {
                    let (id, _, _) = mappings.remove(rng.below(mappings.len()));
                    assert_eq!(
                        admin.delete(&format!("{assignments}/{id}")).await.status,
                        200
                    );
                }
                4 => {
                    let user = rng.below(users.len());
                    users[user].1 = !users[user].1;
                    let value = if users[user].1 { "True" } else { "False" };
                    let body = patch(json!([{"op": "replace", "path": "active", "value": value}]));
                    assert_eq!(
                        idp.patch(&format!("/Users/{}", users[user].0), body)
                            .await
                            .status,
                        200
                    );
                }
                5 => {
                    let group = rng.below(groups.len());
                    let free: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| !groups.iter().any(|(_, g, _)| g == n))
                        .collect();
                    if let Some(name) = free.first() {
                        let body =
                            patch(json!([{"op": "replace", "value": {"displayName": name}}]));
                        assert_eq!(
                            idp.patch(&format!("/Groups/{}", groups[group].0), body)
                                .await
                                .status,
                            204
                        );
                        groups[group].1 = name.to_string();
                    }
                }
                _ => {}
            }
        }
        for (user_id, active) in &users {
            let mut expected: BTreeMap<String, ()> = BTreeMap::new();
            if *active {
                expected.insert("member".into(), ());
                for (group_id, name, members) in &groups {
                    if !members.contains(user_id) {
                        continue;
                    }
                    for (_, target, role) in &mappings {
                        let names_group = match target {
                            Ok(id) => id == group_id,
                            Err(mapped_name) => mapped_name == name,
                        };
                        if names_group {
                            expected.insert(role.clone(), ());
                        }
                    }
                }
            }
            let mut actual: Vec<String> = roles_of(&server, &org, user_id)
                .await
                .into_iter()
                .map(|(role, _)| role)
                .collect();
            actual.dedup();
            let expected: Vec<String> = expected.into_keys().collect();
            assert_eq!(actual, expected, "seed {seed}, user {user_id}");
        }
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_user_the_idp_deletes_loses_every_grant_and_the_event_says_which(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let acme = server.new_organization("acme").await;
    let org = acme.organization_id.clone();
    let admin = server.admin();
    let idp = acme.scim();
    for role in ["engineer", "staff"] {
        admin
            .post(
                &format!("/v1/organizations/{org}/roles"),
                json!({"role_id": role}),
            )
            .await;
    }
    let mapped = admin
        .patch(
            &format!("/v1/organizations/{org}"),
            json!({"rbac_email_implicit_role_assignments": [{"domain": "acme.test", "role_id": "staff"}]}),
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);
    admin
        .post(
            &assignments_of(&acme),
            json!({"group_display_name": "Engineering", "role_ids": ["engineer"]}),
        )
        .await;
    let ada = idp
        .post("/Users", json!({"userName": "ada@acme.test"}))
        .await
        .id();
    let group = idp
        .post(
            "/Groups",
            json!({"displayName": "Engineering", "members": [{"value": ada}]}),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.text);
    assert_eq!(
        roles_of(&server, &org, &ada).await,
        pairs(&[
            ("engineer", "scim_group"),
            ("member", "implicit"),
            ("staff", "email_domain")
        ])
    );

    assert_eq!(idp.delete(&format!("/Users/{ada}")).await.status, 204);
    assert_eq!(server.count_rows("member_roles"), 0);
    for role in ["engineer", "staff"] {
        let holders = admin
            .get(&format!("/v1/organizations/{org}/roles/{role}/members"))
            .await;
        assert_eq!(holders.body["member_ids"], json!([]), "{role}");
    }
    let events = server.events(&org);
    let deleted = events
        .iter()
        .position(|(_, kind, _, _)| kind == "member.deleted")
        .unwrap();
    // What follows it: the user left its group, and so lost the group's role and the rest.
    let after: Vec<&str> = events[deleted + 1..]
        .iter()
        .map(|(_, kind, _, _)| kind.as_str())
        .collect();
    assert_eq!(after, ["group.members_removed", "member.roles_changed"]);
    let (_, _, data, _) = &events[deleted + 2];
    let mut removed: Vec<&str> = data["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|grant| grant["role_id"].as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["engineer", "staff"]);
}

/// A group-role mapping made while a member of the group is being deleted waits for the
/// deletion and grants the deleted member nothing.
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn a_mapping_that_waited_for_a_members_deletion_grants_it_nothing(#[case] db: Db) {
    use diesel::connection::SimpleConnection;

    let server = TestServer::start(db).await;
    let (acme, ada, group) = ada_in_engineering(&server).await;
    let org = acme.organization_id.clone();
    let admin = server.admin();
    let mut other = server.begin_deleting_user(&ada);
    let mapping = {
        let admin = admin.clone();
        let path = assignments_of(&acme);
        actix_rt::spawn(async move {
            admin
                .post(&path, json!({"group_id": group, "role_ids": ["engineer"]}))
                .await
        })
    };
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !mapping.is_finished(),
        "the mapping waits for the other write"
    );
    other.batch_execute("COMMIT").unwrap();
    let mapped = mapping.await.unwrap();
    assert_eq!(mapped.status, 201, "{}", mapped.text);
    let holders = admin
        .get(&format!("/v1/organizations/{org}/roles/engineer/members"))
        .await;
    assert_eq!(holders.body["member_ids"], json!([]));
    assert_eq!(server.count_rows("member_roles"), 0);
}

/// A group write that removes a member being deleted neither waits for the deletion nor
/// deadlocks with it: it holds the membership row the deletion needs, so it must not wait
/// for the member's row (PostgreSQL; SQLite has one writer, and the removal waits its turn).
#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn removing_a_member_being_deleted_from_a_mapped_group_does_not_deadlock(#[case] db: Db) {
    use diesel::connection::SimpleConnection;

    let server = TestServer::start(db).await;
    let (acme, ada, group) = ada_in_engineering(&server).await;
    let admin = server.admin();
    let idp = acme.scim();
    let mapped = admin
        .post(
            &assignments_of(&acme),
            json!({"group_id": group, "role_ids": ["engineer"]}),
        )
        .await;
    assert_eq!(mapped.status, 201, "{}", mapped.text);
    // Another writer begins deleting the user: its row locked, nothing else yet.
    let mut other = server.begin_locking_user(&ada);
    let removing = {
        let idp = idp.clone();
        let path = format!("/Groups/{group}");
        let member = format!("members[value eq \"{ada}\"]");
        actix_rt::spawn(async move {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": member}]});
            idp.patch(&path, body).await
        })
    };
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let finished_first = removing.is_finished();
    // The deletion goes on: it needs the membership row the removal held. Had the removal
    // waited for the member's row, PostgreSQL would now find a deadlock and abort one of them
    // (after its `deadlock_timeout`). Either way the other transaction ends before asserting,
    // so that a failure does not leave it open and the server waiting on it.
    let deletion = other.batch_execute(&format!(
        "UPDATE members SET status = 'deleted' WHERE member_id = '{ada}'; \
         DELETE FROM group_members WHERE member_id = '{ada}'; \
         DELETE FROM member_roles WHERE member_id = '{ada}'; COMMIT"
    ));
    if deletion.is_err() {
        other.batch_execute("ROLLBACK").unwrap();
    }
    let removed = removing.await.unwrap();
    if db == Db::Postgres {
        assert!(
            finished_first,
            "the removal does not wait for the member's row"
        );
    }
    deletion.unwrap();
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(server.count_rows("group_members"), 0);
    assert_eq!(server.count_rows("member_roles"), 0);
}

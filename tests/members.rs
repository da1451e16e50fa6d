//! Members through the management API: manual provisioning, invites, JIT, discovery, search,
//! email-domain rules and tenancy, on both databases.

mod common;

use common::{Client, Db, TestServer};
use rstest::rstest;
use serde_json::{json, Value};

/// Creates an organization with these settings; returns its id.
async fn organization(admin: &Client, slug: &str, settings: Value) -> String {
    let mut body = json!({"organization_name": slug, "organization_slug": slug});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let created = admin.post("/v1/organizations", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["organization"]["organization_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn role_ids(member: &Value) -> Vec<String> {
    member["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|role| role["role_id"].as_str().unwrap().to_string())
        .collect()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn members_are_created_updated_deleted_and_reactivated_by_api(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let org = organization(&admin, "acme", json!({})).await;
    let members = format!("/v1/organizations/{org}/members");
    admin
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "billing"}),
        )
        .await;

    let created = admin
        .post(
            &members,
            json!({"email_address": "Ada@Acme.test", "name": "Ada", "roles": ["billing"],
                   "untrusted_metadata": {"theme": "dark"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let member = &created.body["member"];
    let id = member["member_id"].as_str().unwrap().to_string();
    assert_eq!(member["status"], "active");
    assert_eq!(member["email_address_verified"], false);
    assert_eq!(member["scim_registration"], Value::Null);
    assert_eq!(role_ids(member), ["member", "billing"]);
    assert_eq!(member["roles"][1]["sources"], json!([{"type": "direct"}]));

    // One member per email in the organization, whatever the case.
    let duplicate = admin
        .post(&members, json!({"email_address": "ada@ACME.test"}))
        .await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.text);
    assert_eq!(duplicate.body["error_type"], "email_taken");
    for bad in [
        json!({}),
        json!({"email_address": "not-an-email"}),
        json!({"email_address": "a@b.test", "roles": ["nope"]}),
        json!({"email_address": "a@b.test", "roles": ["member"]}),
        json!({"email_address": "a@b.test", "colour": "red"}),
    ] {
        let refused = admin.post(&members, bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
    }
    // A refused create writes nothing.
    let search = admin.post(&format!("{members}/search"), json!({})).await;
    assert_eq!(
        search.body["results_metadata"]["total"], 1,
        "{}",
        search.text
    );

    let updated = admin
        .patch(
            &format!("{members}/{id}"),
            json!({"name": "Ada Lovelace", "roles": [], "email_address": "ada@lovelace.test",
                   "untrusted_metadata": {"theme": null, "lang": "en"}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["member"]["name"], "Ada Lovelace");
    assert_eq!(updated.body["member"]["email_address"], "ada@lovelace.test");
    assert_eq!(
        updated.body["member"]["untrusted_metadata"],
        json!({"lang": "en"})
    );
    assert_eq!(role_ids(&updated.body["member"]), ["member"]);

    let deleted = admin.delete(&format!("{members}/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let tombstone = admin.get(&format!("{members}/{id}")).await;
    assert_eq!(tombstone.body["member"]["status"], "deleted");
    assert_eq!(role_ids(&tombstone.body["member"]), Vec::<String>::new());
    // Its email is free: a new member takes it, so the tombstone cannot come back.
    let again = admin
        .post(&members, json!({"email_address": "ada@lovelace.test"}))
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    let refused = admin
        .put(&format!("{members}/{id}/reactivate"), json!({}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["error_type"], "email_taken");
    let new_id = again.body["member"]["member_id"].as_str().unwrap();
    admin.delete(&format!("{members}/{new_id}")).await;
    let back = admin
        .put(&format!("{members}/{id}/reactivate"), json!({}))
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.body["member"]["status"], "active");

    let types = server.event_types(&org);
    assert!(types.ends_with(&["member.deleted".into(), "member.reactivated".into(),]));
    assert!(types.contains(&"member.roles_changed".to_string()));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_idp_owns_the_email_and_status_of_the_members_it_manages(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let admin = server.admin();
    let user = tenant
        .scim()
        .post(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "grace@acme.test"}),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.text);
    let id = user.body["id"].as_str().unwrap();
    let member = format!("/v1/organizations/{}/members/{id}", tenant.organization_id);

    let email = admin
        .patch(&member, json!({"email_address": "other@acme.test"}))
        .await;
    assert_eq!(email.status, 409, "{}", email.text);
    assert_eq!(email.body["error_type"], "scim_managed_member");
    assert!(email.body["error_message"]
        .as_str()
        .unwrap()
        .contains(&tenant.connection_id));
    assert_eq!(admin.delete(&member).await.status, 409);
    // The profile fields the IdP does not own can change.
    let named = admin
        .patch(&member, json!({"trusted_metadata": {"seat": 7}}))
        .await;
    assert_eq!(named.status, 200, "{}", named.text);
    assert_eq!(
        named.body["member"]["scim_registration"]["user_name"],
        "grace@acme.test"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn invites_follow_email_invites(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    // (email_invites, email, expected status, expected reason)
    let cases = [
        ("ALL_ALLOWED", "x@anywhere.test", 200, None),
        ("RESTRICTED", "x@acme.test", 200, None),
        (
            "RESTRICTED",
            "x@anywhere.test",
            403,
            Some("domain_not_allowed"),
        ),
        (
            "NOT_ALLOWED",
            "x@acme.test",
            403,
            Some("invites_not_allowed"),
        ),
    ];
    for (n, (policy, email, status, reason)) in cases.into_iter().enumerate() {
        let org = organization(
            &admin,
            &format!("invites-{n}"),
            json!({"email_invites": policy, "email_allowed_domains": ["acme.test"]}),
        )
        .await;
        let invited = admin
            .post(
                &format!("/v1/organizations/{org}/members/invite"),
                json!({"email_address": email, "invited_by": "member-admin"}),
            )
            .await;
        assert_eq!(invited.status, status, "{policy} {email}: {}", invited.text);
        assert_eq!(invited.body["reason"].as_str(), reason, "{}", invited.text);
        if status == 403 {
            assert_eq!(server.event_types(&org), ["organization.created"]);
        }
    }

    let org = organization(&admin, "acme", json!({})).await;
    let invite = format!("/v1/organizations/{org}/members/invite");
    let first = admin
        .post(
            &invite,
            json!({"email_address": "lin@acme.test", "name": "Lin", "invited_by": "member-admin"}),
        )
        .await;
    assert_eq!(first.body["member"]["status"], "invited");
    let id = first.body["member"]["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Inviting again re-sends (a second member.invited) and keeps the same member.
    let second = admin
        .post(&invite, json!({"email_address": "LIN@acme.test"}))
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["member"]["member_id"], id.as_str());
    let invited_events: Vec<Value> = server
        .events(&org)
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "member.invited")
        .map(|(_, _, data, _)| data)
        .collect();
    assert_eq!(invited_events.len(), 2);
    assert_eq!(invited_events[0]["email_address"], "lin@acme.test");
    assert_eq!(invited_events[0]["invite"]["organization_slug"], "acme");
    assert_eq!(invited_events[0]["invite"]["invited_by"], "member-admin");

    let accepted = admin
        .post(
            &format!("/v1/organizations/{org}/members/{id}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["member"]["status"], "active");
    assert_eq!(accepted.body["member"]["email_address_verified"], true);
    let again = admin
        .post(
            &format!("/v1/organizations/{org}/members/{id}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 409);
    // An active member is not invited again.
    let active = admin
        .post(&invite, json!({"email_address": "lin@acme.test"}))
        .await;
    assert_eq!(active.status, 409, "{}", active.text);
    assert_eq!(active.body["error_type"], "member_exists");
}

/// Who exists before the authentication.
#[derive(Clone, Copy, Debug)]
enum Existing {
    Nobody,
    Active,
    Breakglass,
    Invited,
    Pending,
    Inactive,
    Deleted,
}

/// Puts a member with `email` in the organization in the given state.
async fn arrange(server: &TestServer, admin: &Client, org: &str, email: &str, existing: Existing) {
    let members = format!("/v1/organizations/{org}/members");
    let created = match existing {
        Existing::Nobody => return,
        Existing::Active | Existing::Deleted => {
            admin.post(&members, json!({"email_address": email})).await
        }
        Existing::Breakglass => {
            admin
                .post(
                    &members,
                    json!({"email_address": email, "is_breakglass": true}),
                )
                .await
        }
        Existing::Pending => {
            admin
                .post(
                    &members,
                    json!({"email_address": email, "create_member_as_pending": true}),
                )
                .await
        }
        Existing::Invited => {
            admin
                .post(
                    &format!("{members}/invite"),
                    json!({"email_address": email}),
                )
                .await
        }
        Existing::Inactive => {
            let connection = admin
                .post(
                    &format!("/v1/organizations/{org}/scim-connections"),
                    json!({"identity_provider": "okta"}),
                )
                .await;
            let token = connection.body["bearer_token"].as_str().unwrap();
            let scim = server.client(Some(token)).with_bearer(token);
            let scim = Client {
                base: format!("{}/scim/v2", scim.base),
                ..scim
            };
            scim.post(
                "/Users",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": email, "active": false}),
            )
            .await
        }
    };
    assert!(created.status < 300, "{existing:?}: {}", created.text);
    if let Existing::Deleted = existing {
        let id = created.body["member"]["member_id"].as_str().unwrap();
        assert_eq!(admin.delete(&format!("{members}/{id}")).await.status, 200);
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn jit_follows_the_organization_rules(#[case] db: Db) {
    use Existing::*;
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let email_restricted = json!({"email_jit_provisioning": "RESTRICTED"});
    let nothing_allowed =
        json!({"sso_jit_provisioning": "NOT_ALLOWED", "email_jit_provisioning": "NOT_ALLOWED"});
    let magic = |email: &str, verified: bool| json!({"email": email, "email_verified": verified, "method": "email_magic_link"});
    let sso = |email: &str, connection: &str| {
        json!({"email": email, "email_verified": false, "method": "sso",
               "sso_connection_id": connection})
    };
    let oauth = |email: &str, provider: &str, tenant: Option<&str>| {
        json!({"email": email, "email_verified": true, "method": "oauth",
               "oauth_provider": provider, "oauth_tenant_id": tenant})
    };
    // (settings, existing member, request, expected status, reason when refused)
    let cases: Vec<(Value, Existing, Value, u16, Option<&str>)> = vec![
        // Email: RESTRICTED needs a verified address on an allowed domain.
        (
            json!({}),
            Nobody,
            magic("a@acme.test", true),
            403,
            Some("jit_not_allowed"),
        ),
        (
            email_restricted.clone(),
            Nobody,
            magic("a@acme.test", true),
            201,
            None,
        ),
        (
            email_restricted.clone(),
            Nobody,
            magic("a@ACME.test", true),
            201,
            None,
        ),
        (
            email_restricted.clone(),
            Nobody,
            magic("a@acme.test", false),
            403,
            Some("email_not_verified"),
        ),
        (
            email_restricted.clone(),
            Nobody,
            magic("a@other.test", true),
            403,
            Some("domain_not_allowed"),
        ),
        (
            email_restricted.clone(),
            Nobody,
            json!({"email": "a@acme.test", "email_verified": true, "method": "email_otp"}),
            201,
            None,
        ),
        // SSO: by sso_jit_provisioning, whatever the email.
        (json!({}), Nobody, sso("a@other.test", "sso-1"), 201, None),
        (
            json!({"sso_jit_provisioning": "NOT_ALLOWED"}),
            Nobody,
            sso("a@acme.test", "sso-1"),
            403,
            Some("jit_not_allowed"),
        ),
        (
            json!({"sso_jit_provisioning": "RESTRICTED", "sso_jit_provisioning_allowed_connections": ["sso-1"]}),
            Nobody,
            sso("a@acme.test", "sso-1"),
            201,
            None,
        ),
        (
            json!({"sso_jit_provisioning": "RESTRICTED", "sso_jit_provisioning_allowed_connections": ["sso-1"]}),
            Nobody,
            sso("a@acme.test", "sso-2"),
            403,
            Some("jit_not_allowed"),
        ),
        // OAuth: an allowed tenant admits anyone; else the email rule applies.
        (
            email_restricted.clone(),
            Nobody,
            oauth("a@acme.test", "google", None),
            201,
            None,
        ),
        (
            json!({"oauth_tenant_jit_provisioning": "RESTRICTED", "allowed_oauth_tenants": {"slack": ["T1"]}}),
            Nobody,
            oauth("a@other.test", "slack", Some("T1")),
            201,
            None,
        ),
        (
            json!({"oauth_tenant_jit_provisioning": "RESTRICTED", "allowed_oauth_tenants": {"slack": ["T1"]}}),
            Nobody,
            oauth("a@other.test", "slack", Some("T2")),
            403,
            Some("jit_not_allowed"),
        ),
        (
            json!({"oauth_tenant_jit_provisioning": "RESTRICTED", "allowed_oauth_tenants": {"slack": ["T1"]}}),
            Nobody,
            oauth("a@other.test", "github", Some("T1")),
            403,
            Some("jit_not_allowed"),
        ),
        // Auth methods: RESTRICTED refuses other methods, breakglass members excepted.
        (
            json!({"email_jit_provisioning": "RESTRICTED", "auth_methods": "RESTRICTED", "allowed_auth_methods": ["sso"]}),
            Nobody,
            magic("a@acme.test", true),
            403,
            Some("auth_method_not_allowed"),
        ),
        (
            json!({"auth_methods": "RESTRICTED", "allowed_auth_methods": ["sso"]}),
            Active,
            magic("a@acme.test", true),
            403,
            Some("auth_method_not_allowed"),
        ),
        (
            json!({"auth_methods": "RESTRICTED", "allowed_auth_methods": ["sso"]}),
            Breakglass,
            magic("a@acme.test", true),
            200,
            None,
        ),
        (
            json!({"email_jit_provisioning": "RESTRICTED", "auth_methods": "RESTRICTED", "allowed_auth_methods": ["google_oauth"]}),
            Nobody,
            oauth("a@acme.test", "google", None),
            201,
            None,
        ),
        // Existing members: found whatever the JIT settings; invited and pending become
        // active with a verified email (or SSO); inactive ones stay out.
        (
            nothing_allowed.clone(),
            Active,
            magic("a@acme.test", false),
            200,
            None,
        ),
        (
            nothing_allowed.clone(),
            Invited,
            magic("a@acme.test", true),
            200,
            None,
        ),
        (
            nothing_allowed.clone(),
            Invited,
            magic("a@acme.test", false),
            403,
            Some("email_not_verified"),
        ),
        (
            nothing_allowed.clone(),
            Pending,
            sso("a@acme.test", "sso-1"),
            200,
            None,
        ),
        (
            json!({"email_jit_provisioning": "RESTRICTED"}),
            Inactive,
            magic("a@acme.test", true),
            403,
            Some("member_inactive"),
        ),
        (
            json!({}),
            Inactive,
            sso("a@acme.test", "sso-1"),
            403,
            Some("member_inactive"),
        ),
        // A deleted member is a tombstone: JIT creates a new member when the rules allow.
        (
            email_restricted.clone(),
            Deleted,
            magic("a@acme.test", true),
            201,
            None,
        ),
        (
            nothing_allowed.clone(),
            Deleted,
            magic("a@acme.test", true),
            403,
            Some("jit_not_allowed"),
        ),
    ];
    for (n, (settings, existing, request, status, reason)) in cases.into_iter().enumerate() {
        let mut settings = settings;
        settings["email_allowed_domains"] = json!(["acme.test"]);
        let org = organization(&admin, &format!("jit-{n}"), settings.clone()).await;
        arrange(&server, &admin, &org, "a@acme.test", existing).await;
        let events_before = server.event_types(&org).len();
        let answer = admin
            .post(&format!("/v1/organizations/{org}/jit"), request.clone())
            .await;
        let case = format!("case {n}: {settings} {existing:?} {request}");
        assert_eq!(answer.status, status, "{case}: {}", answer.text);
        assert_eq!(
            answer.body["reason"].as_str(),
            reason,
            "{case}: {}",
            answer.text
        );
        if status == 403 {
            assert_eq!(answer.body["error_type"].as_str(), reason, "{case}");
            assert_eq!(
                server.event_types(&org).len(),
                events_before,
                "{case}: refused, yet wrote"
            );
            continue;
        }
        let member = &answer.body["member"];
        assert_eq!(member["status"], "active", "{case}");
        assert_eq!(answer.body["member_created"], status == 201, "{case}");
        assert_eq!(
            member["email_address_verified"],
            request["email_verified"].as_bool().unwrap() || matches!(existing, Invited),
            "{case}"
        );
        if status == 201 {
            let created = server
                .event_sources(&org)
                .into_iter()
                .find(|(kind, _, subject)| {
                    kind == "member.created" && subject == member["member_id"].as_str().unwrap()
                })
                .expect("member.created recorded");
            assert_eq!(created.1, "jit", "{case}");
        }
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn discovery_lists_memberships_and_what_the_person_may_join(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let open =
        json!({"email_jit_provisioning": "RESTRICTED", "email_allowed_domains": ["acme.test"]});
    let member_of = organization(&admin, "member-of", json!({})).await;
    let invited_to = organization(&admin, "invited-to", json!({})).await;
    let joinable = organization(&admin, "joinable", open.clone()).await;
    let unproven = organization(&admin, "unproven", open.clone()).await;
    let closed = organization(
        &admin,
        "closed",
        json!({"email_allowed_domains": ["acme.test"]}),
    )
    .await;
    organization(
        &admin,
        "tenant",
        json!({"oauth_tenant_jit_provisioning": "RESTRICTED", "allowed_oauth_tenants": {"slack": ["T9"]}}),
    )
    .await;
    let deprovisioned = organization(&admin, "deprovisioned", open.clone()).await;

    arrange(
        &server,
        &admin,
        &member_of,
        "ada@acme.test",
        Existing::Active,
    )
    .await;
    arrange(
        &server,
        &admin,
        &invited_to,
        "ada@acme.test",
        Existing::Invited,
    )
    .await;
    arrange(
        &server,
        &admin,
        &deprovisioned,
        "ada@acme.test",
        Existing::Inactive,
    )
    .await;
    // `joinable` has an active member who proved an acme.test address; `unproven` has one who
    // did not, so it is not offered (a claimed domain alone is no proof).
    let jit = |org: &str| format!("/v1/organizations/{org}/jit");
    let proven = admin
        .post(
            &jit(&joinable),
            json!({"email": "bob@acme.test", "email_verified": true, "method": "email_otp"}),
        )
        .await;
    assert_eq!(proven.status, 201, "{}", proven.text);
    arrange(
        &server,
        &admin,
        &unproven,
        "bob@acme.test",
        Existing::Active,
    )
    .await;
    arrange(&server, &admin, &closed, "bob@acme.test", Existing::Active).await;
    admin
        .post(
            &jit(&deprovisioned),
            json!({"email": "bob@acme.test", "email_verified": true, "method": "email_otp"}),
        )
        .await;

    let discover = |body: Value| {
        let admin = admin.clone();
        async move {
            let found = admin.post("/v1/discovery", body).await;
            assert_eq!(found.status, 200, "{}", found.text);
            found.body["discovered_organizations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["organization"]["organization_slug"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                        d["membership"]["type"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        discover(json!({"email": "ADA@acme.test", "email_verified": true})).await,
        pairs(&[
            ("member-of", "active_member"),
            ("invited-to", "invited_member"),
            ("joinable", "eligible_to_join_by_email_domain"),
        ])
    );
    // Unverified: memberships only.
    assert_eq!(
        discover(json!({"email": "ada@acme.test", "email_verified": false})).await,
        pairs(&[
            ("member-of", "active_member"),
            ("invited-to", "invited_member")
        ])
    );
    assert_eq!(
        discover(
            json!({"email": "eve@elsewhere.test", "email_verified": true,
                        "oauth_provider": "slack", "oauth_tenant_id": "T9"})
        )
        .await,
        pairs(&[("tenant", "eligible_to_join_by_oauth_tenant")])
    );
    // Discovery reads across organizations: an organization's own JWT may not.
    let scoped = server.client(Some(&server.jwt(&format!("org:{member_of}"))));
    let refused = scoped
        .post(
            "/v1/discovery",
            json!({"email": "ada@acme.test", "email_verified": true}),
        )
        .await;
    assert_eq!(refused.status, 403);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn search_combines_filters_and_pages_by_cursor(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let admin = server.admin();
    let org = tenant.organization_id.clone();
    let members = format!("/v1/organizations/{org}/members");
    admin
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "billing"}),
        )
        .await;
    for (email, extra) in [
        ("ann@acme.test", json!({"roles": ["billing"]})),
        ("bob@acme.test", json!({"is_breakglass": true})),
        ("cy@beta.test", json!({"create_member_as_pending": true})),
        ("dee_x@beta.test", json!({})),
        ("eve@gamma.test", json!({})),
    ] {
        let mut body = extra;
        body["email_address"] = json!(email);
        assert_eq!(admin.post(&members, body).await.status, 201);
    }
    let gone = admin
        .post(&members, json!({"email_address": "gone@acme.test"}))
        .await;
    let gone_id = gone.body["member"]["member_id"].as_str().unwrap();
    admin.delete(&format!("{members}/{gone_id}")).await;
    tenant
        .scim()
        .post(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "scim@acme.test"}),
        )
        .await;

    let search = |query: Value| {
        let admin = admin.clone();
        let path = format!("{members}/search");
        async move {
            let found = admin.post(&path, json!({"query": query})).await;
            assert_eq!(found.status, 200, "{query}: {}", found.text);
            let mut emails: Vec<String> = found.body["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["email_address"].as_str().unwrap().to_string())
                .collect();
            emails.sort();
            assert_eq!(found.body["results_metadata"]["total"], emails.len());
            emails
        }
    };
    let and = |operands: Value| json!({"operator": "AND", "operands": operands});
    let or = |operands: Value| json!({"operator": "OR", "operands": operands});
    let op = |name: &str, value: Value| json!({"filter_name": name, "filter_value": value});

    assert_eq!(
        search(and(json!([op(
            "member_email_domains",
            json!(["ACME.test"])
        )])))
        .await,
        ["ann@acme.test", "bob@acme.test", "scim@acme.test"]
    );
    assert_eq!(
        search(and(json!([
            op("member_email_domains", json!(["acme.test"])),
            op("is_breakglass", json!(false))
        ])))
        .await,
        ["ann@acme.test", "scim@acme.test"]
    );
    assert_eq!(
        search(or(json!([
            op("roles", json!(["billing"])),
            op("statuses", json!(["pending"]))
        ])))
        .await,
        ["ann@acme.test", "cy@beta.test"]
    );
    // LIKE wildcards in the text are literal.
    assert_eq!(
        search(and(json!([op("member_email_fuzzy", json!("E_X"))]))).await,
        ["dee_x@beta.test"]
    );
    assert_eq!(
        search(and(json!([op(
            "member_emails",
            json!(["EVE@gamma.test", "nobody@x.test"])
        )])))
        .await,
        ["eve@gamma.test"]
    );
    assert_eq!(
        search(and(json!([op(
            "scim_connection_ids",
            json!([tenant.connection_id])
        )])))
        .await,
        ["scim@acme.test"]
    );
    // Deleted members only when asked for.
    assert_eq!(
        search(and(json!([op("statuses", json!(["deleted"]))]))).await,
        ["gone@acme.test"]
    );
    assert_eq!(
        search(and(json!([op("roles", json!(["member"]))])))
            .await
            .len(),
        5
    );

    for bad in [
        json!({"query": and(json!([op("colour", json!(["red"]))]))}),
        json!({"query": and(json!([op("member_ids", json!([]))]))}),
        json!({"query": {"operator": "XOR", "operands": []}}),
        json!({"limit": 1001}),
        json!({"cursor": "%%%"}),
    ] {
        let refused = admin.post(&format!("{members}/search"), bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
    }

    // Cursor paging visits every live member once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 2});
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = admin.post(&format!("{members}/search"), body).await;
        assert_eq!(page.body["results_metadata"]["total"], 6);
        for member in page.body["members"].as_array().unwrap() {
            seen.push(member["member_id"].as_str().unwrap().to_string());
        }
        match page.body["results_metadata"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (6, 6));

    // Organization search.
    let beta = organization(
        &admin,
        "beta-corp",
        json!({"email_allowed_domains": ["beta.test"]}),
    )
    .await;
    let found = admin
        .post(
            "/v1/organizations/search",
            json!({"query": or(json!([
                op("allowed_domains", json!(["beta.test"])),
                op("organization_name_fuzzy", json!("CM"))
            ]))}),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let mut ids: Vec<&str> = found.body["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["organization_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![org.as_str(), beta.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let by_member = admin
        .post(
            "/v1/organizations/search",
            json!({"query": and(json!([op("member_emails", json!(["Ann@acme.test"]))]))}),
        )
        .await;
    assert_eq!(
        by_member.body["organizations"][0]["organization_id"],
        org.as_str()
    );
    assert_eq!(by_member.body["results_metadata"]["total"], 1);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn email_domains_grant_roles_however_the_member_arrived(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let admin = server.admin();
    let org = tenant.organization_id.clone();
    let members = format!("/v1/organizations/{org}/members");
    admin
        .post(
            &format!("/v1/organizations/{org}/roles"),
            json!({"role_id": "staff"}),
        )
        .await;
    let api = admin
        .post(&members, json!({"email_address": "ann@acme.test"}))
        .await;
    let api_id = api.body["member"]["member_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Mapping a domain grants the role to the members already there.
    let mapped = admin
        .patch(
            &format!("/v1/organizations/{org}"),
            json!({"rbac_email_implicit_role_assignments": [{"domain": "ACME.test", "role_id": "staff"}]}),
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);
    let ann = admin.get(&format!("{members}/{api_id}")).await;
    assert_eq!(
        ann.body["member"]["roles"][1],
        json!({"role_id": "staff", "sources": [{"type": "email_domain", "domain": "acme.test"}]})
    );

    // SCIM users on the domain get it; moving off the domain loses it.
    let user = tenant
        .scim()
        .post(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bo@acme.test"}),
        )
        .await;
    let user_id = user.body["id"].as_str().unwrap().to_string();
    let bo = admin.get(&format!("{members}/{user_id}")).await;
    assert_eq!(role_ids(&bo.body["member"]), ["member", "staff"]);
    let moved = tenant
        .scim()
        .patch(
            &format!("/Users/{user_id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "bo@elsewhere.test"}]}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    let bo = admin.get(&format!("{members}/{user_id}")).await;
    assert_eq!(role_ids(&bo.body["member"]), ["member"]);
    // Moving back onto it, and being deactivated and reactivated, each re-derive it (the
    // PATCH reads the settings in its UPDATE).
    let scim_patch = |operations: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
    let back = tenant
        .scim()
        .patch(
            &format!("/Users/{user_id}"),
            scim_patch(json!([{"op": "replace", "path": "userName", "value": "bo@acme.test"}])),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let bo = admin.get(&format!("{members}/{user_id}")).await;
    assert_eq!(role_ids(&bo.body["member"]), ["member", "staff"]);
    for (active, expected) in [("False", vec![]), ("True", vec!["member", "staff"])] {
        let toggled = tenant
            .scim()
            .patch(
                &format!("/Users/{user_id}"),
                scim_patch(json!([{"op": "replace", "path": "active", "value": active}])),
            )
            .await;
        assert_eq!(toggled.status, 200, "{}", toggled.text);
        let bo = admin.get(&format!("{members}/{user_id}")).await;
        assert_eq!(role_ids(&bo.body["member"]), expected, "active {active}");
    }
    // The IdP adopting the member the API created keeps its domain's role.
    let adopted = tenant
        .scim()
        .post(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@acme.test"}),
        )
        .await;
    assert_eq!(adopted.status, 201, "{}", adopted.text);
    assert_eq!(adopted.body["id"], api_id.as_str());
    let ann = admin.get(&format!("{members}/{api_id}")).await;
    assert_eq!(role_ids(&ann.body["member"]), ["member", "staff"]);

    // JIT and invites arrive the same way.
    admin
        .patch(
            &format!("/v1/organizations/{org}"),
            json!({"email_jit_provisioning": "RESTRICTED", "email_allowed_domains": ["acme.test"]}),
        )
        .await;
    let jit = admin
        .post(
            &format!("/v1/organizations/{org}/jit"),
            json!({"email": "cy@acme.test", "email_verified": true, "method": "email_otp"}),
        )
        .await;
    assert_eq!(role_ids(&jit.body["member"]), ["member", "staff"]);
    let invited = admin
        .post(
            &format!("{members}/invite"),
            json!({"email_address": "di@acme.test"}),
        )
        .await;
    // Invited members hold no roles until they accept.
    assert_eq!(role_ids(&invited.body["member"]), Vec::<String>::new());
    let invited_id = invited.body["member"]["member_id"].as_str().unwrap();
    let accepted = admin
        .post(&format!("{members}/{invited_id}/accept"), json!({}))
        .await;
    assert_eq!(role_ids(&accepted.body["member"]), ["member", "staff"]);

    // Unknown roles and `member` are refused; deleting the role drops the mapping.
    for bad in [json!("nope"), json!("member")] {
        let refused = admin
            .patch(
                &format!("/v1/organizations/{org}"),
                json!({"rbac_email_implicit_role_assignments": [{"domain": "acme.test", "role_id": bad}]}),
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.text);
    }
    assert_eq!(
        admin
            .delete(&format!("/v1/organizations/{org}/roles/staff"))
            .await
            .status,
        200
    );
    let organization = admin.get(&format!("/v1/organizations/{org}")).await;
    assert_eq!(
        organization.body["organization"]["rbac_email_implicit_role_assignments"],
        json!([])
    );
    let ann = admin.get(&format!("{members}/{api_id}")).await;
    assert_eq!(role_ids(&ann.body["member"]), ["member"]);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn scim_may_be_restricted_to_the_allowed_domains(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let tenant = server.new_organization("acme").await;
    let admin = server.admin();
    let org = &tenant.organization_id;
    let needs_domains = admin
        .patch(
            &format!("/v1/organizations/{org}"),
            json!({"scim_email_domain_policy": "RESTRICTED"}),
        )
        .await;
    assert_eq!(needs_domains.status, 400, "{}", needs_domains.text);
    admin
        .patch(
            &format!("/v1/organizations/{org}"),
            json!({"scim_email_domain_policy": "RESTRICTED", "email_allowed_domains": ["acme.test"]}),
        )
        .await;
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    let refused = tenant
        .scim()
        .post("/Users", user("x@contractor.test"))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.body["scimType"], "invalidValue");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("contractor.test") && detail.contains("scim_email_domain_policy"),
        "{detail}"
    );
    let ok = tenant.scim().post("/Users", user("x@ACME.test")).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let id = ok.body["id"].as_str().unwrap();
    let moved = tenant
        .scim()
        .put(&format!("/Users/{id}"), user("x@contractor.test"))
        .await;
    assert_eq!(moved.status, 400, "{}", moved.text);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
#[actix_rt::test]
async fn an_organization_scope_reaches_no_other_organizations_members(#[case] db: Db) {
    let server = TestServer::start(db).await;
    let admin = server.admin();
    let ours = organization(&admin, "ours", json!({})).await;
    let theirs = organization(
        &admin,
        "theirs",
        json!({"email_jit_provisioning": "RESTRICTED", "email_allowed_domains": ["theirs.test"]}),
    )
    .await;
    let created = admin
        .post(
            &format!("/v1/organizations/{theirs}/members"),
            json!({"email_address": "x@theirs.test"}),
        )
        .await;
    let their_member = created.body["member"]["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    let scoped = server.client(Some(&server.jwt(&format!("org:{ours}"))));

    let theirs_members = format!("/v1/organizations/{theirs}/members");
    let attempts = [
        scoped
            .get(&format!("{theirs_members}/{their_member}"))
            .await,
        scoped
            .patch(
                &format!("{theirs_members}/{their_member}"),
                json!({"name": "x"}),
            )
            .await,
        scoped
            .delete(&format!("{theirs_members}/{their_member}"))
            .await,
        scoped
            .post(&theirs_members, json!({"email_address": "y@theirs.test"}))
            .await,
        scoped
            .post(&format!("{theirs_members}/search"), json!({}))
            .await,
        scoped
            .post(
                &format!("{theirs_members}/invite"),
                json!({"email_address": "y@theirs.test"}),
            )
            .await,
        scoped
            .post(
                &format!("/v1/organizations/{theirs}/jit"),
                json!({"email": "y@theirs.test", "email_verified": true, "method": "email_otp"}),
            )
            .await,
        // Their member id through our organization's path.
        scoped
            .get(&format!("/v1/organizations/{ours}/members/{their_member}"))
            .await,
        scoped
            .patch(
                &format!("/v1/organizations/{ours}/members/{their_member}"),
                json!({"name": "x"}),
            )
            .await,
    ];
    for attempt in attempts {
        assert_eq!(attempt.status, 404, "{}", attempt.text);
    }
    assert_eq!(
        scoped.post("/v1/members/search", json!({})).await.status,
        403
    );
    // Organization search answers only with our own.
    let found = scoped.post("/v1/organizations/search", json!({})).await;
    assert_eq!(found.body["results_metadata"]["total"], 1, "{}", found.text);
    assert_eq!(
        found.body["organizations"][0]["organization_id"],
        ours.as_str()
    );
    // Their organization saw nothing but its own writes.
    assert_eq!(
        server.event_types(&theirs),
        ["organization.created", "member.created"]
    );
    // The cross-organization search, for an admin, sees both.
    let all = admin
        .post(
            "/v1/members/search",
            json!({"organization_ids": [ours, theirs]}),
        )
        .await;
    assert_eq!(all.body["results_metadata"]["total"], 1, "{}", all.text);
}

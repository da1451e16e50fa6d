//! `scim_users::create_many`, the set-based path of `scimd connection import-users`: a batch
//! ends exactly as the same documents created one by one, each in its own savepoint, would
//! leave it — outcomes, members, their emails, roles, the connection's user count and the
//! events — on both databases; and a batch that meets a user another writer committed after it
//! looked falls back to one by one instead of failing.

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rstest::rstest;
use serde_json::{json, Map, Value};

use common::{Db, TestDatabase};
use scimd::db::schema::{events, member_emails, member_roles};
use scimd::db::{self, DbConn};
use scimd::domain::connections::Tenant;
use scimd::domain::members::{self, Member, MemberStatus, ScimRegistration};
use scimd::domain::organizations::{
    EmailRoleAssignment, OrganizationFields, ScimEmailDomainPolicy,
};
use scimd::domain::provisioning::{self, MemberFields};
use scimd::domain::{now, roles, scim_users, Actor};
use scimd::error::Error;

/// An organization on `acme.test` only (RESTRICTED), one connection, a member no IdP manages
/// yet (`existing@`), a user the connection already has (`taken@`); with `roles`, every
/// `acme.test` address is granted the admin role.
fn seed(conn: &mut DbConn, roles: bool) -> Tenant {
    db::write(conn, |tx| {
        let actor = Actor::cli();
        let tenant = common::organization_with_connection(
            tx,
            OrganizationFields {
                organization_name: Some("Acme".into()),
                organization_slug: Some("acme".into()),
                email_allowed_domains: Some(vec!["acme.test".into()]),
                scim_email_domain_policy: Some(ScimEmailDomainPolicy::Restricted),
                rbac_email_implicit_role_assignments: roles.then(|| {
                    vec![EmailRoleAssignment {
                        domain: "acme.test".into(),
                        role_id: roles::ADMIN.into(),
                    }]
                }),
                ..Default::default()
            },
        )?;
        provisioning::create(
            tx,
            &actor,
            &tenant.organization_id,
            MemberFields {
                email_address: Some("existing@acme.test".into()),
                name: Some("Existing".into()),
                ..Default::default()
            },
        )?;
        scim_users::create(tx, &tenant, &actor, &json!({"userName": "taken@acme.test"}))?;
        Ok::<_, Error>(tenant)
    })
    .expect("seed")
}

/// New users, bad documents, repeats within the batch, an adoption and conflicts, interleaved.
fn documents() -> Vec<Value> {
    let user = |user_name: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": {"givenName": "Given", "familyName": user_name},
            "emails": [{"value": user_name, "type": "work", "primary": true},
                       {"value": format!("home.{user_name}"), "type": "home"}],
        })
    };
    let mut documents = vec![
        user("ada@acme.test"),
        json!({"userName": "no-email"}),
        json!({"userName": "bob@acme.test", "active": false, "externalId": "b-1"}),
        user("ADA@acme.test"),
        json!({"userName": "carol", "emails": [{"value": "Bob@acme.test"}]}),
        user("existing@acme.test"),
        user("taken@acme.test"),
        user("dave@elsewhere.test"),
        json!({"userName": 7}),
    ];
    documents.extend((0..30).map(|n| user(&format!("user{n}@acme.test"))));
    documents.push(user("user3@acme.test"));
    documents
}

/// What the organization ends as, ids and instants aside: members (with their emails and
/// roles), the connection's user count, and its events as (type, the email of the member it is
/// about, if any), in order
/// of type and email since a batch numbers its new users before its one-by-one ones.
#[derive(Debug, PartialEq)]
struct State {
    members: BTreeMap<String, MemberState>,
    user_count: i64,
    events: Vec<(String, String)>,
}

fn state(conn: &mut DbConn, tenant: &Tenant) -> State {
    use scimd::db::schema::members as table;
    let rows: Vec<(String, String, String, String, Option<String>, i64)> = table::table
        .filter(table::organization_id.eq(&tenant.organization_id))
        .select((
            table::member_id,
            table::email_address,
            table::status,
            table::name,
            table::scim_attributes,
            table::version,
        ))
        .load(conn)
        .unwrap();
    let mut emails = BTreeMap::new();
    let mut members = BTreeMap::new();
    for (id, email, status, name, attributes, version) in rows {
        let email_rows = member_emails::table
            .filter(member_emails::member_id.eq(&id))
            .count()
            .get_result::<i64>(conn)
            .unwrap() as usize;
        let roles: Vec<String> = member_roles::table
            .filter(member_roles::member_id.eq(&id))
            .order(member_roles::role_id.asc())
            .select(member_roles::role_id)
            .load(conn)
            .unwrap();
        emails.insert(id, email.clone());
        members.insert(
            email,
            MemberState {
                status,
                name,
                scim_attributes: attributes,
                version,
                email_rows,
                roles,
            },
        );
    }
    let user_count =
        scimd::domain::members::user_count(conn, &tenant.connection_id).unwrap() as i64;
    let mut events: Vec<(String, String)> = events::table
        .filter(events::organization_id.eq(&tenant.organization_id))
        .select((events::event_type, events::subject_id))
        .load::<(String, String)>(conn)
        .unwrap()
        .into_iter()
        .map(|(kind, subject)| (kind, emails.get(&subject).cloned().unwrap_or_default()))
        .collect();
    events.sort();
    State {
        members,
        user_count,
        events,
    }
}

/// A member, by email: what the batch must get right.
#[derive(Debug, PartialEq)]
struct MemberState {
    status: String,
    name: String,
    scim_attributes: Option<String>,
    version: i64,
    email_rows: usize,
    roles: Vec<String>,
}

/// Each outcome as text: the user's email, or the error.
fn outcome_text(outcome: &Result<Member, Error>) -> String {
    match outcome {
        Ok(member) => format!("ok {} {:?}", member.email_address, member.status),
        Err(error) => format!("error {error}"),
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite, false)]
#[case::sqlite_with_roles(Db::Sqlite, true)]
#[case::postgres(Db::Postgres, false)]
#[case::postgres_with_roles(Db::Postgres, true)]
fn a_batch_ends_as_the_same_users_created_one_by_one(#[case] db: Db, #[case] roles: bool) {
    let documents = documents();
    let actor = Actor::cli();
    let run = |batch: bool| {
        let database = TestDatabase::new(db);
        let pool = database.migrated_pool(2);
        let mut conn = pool.get().unwrap();
        let tenant = seed(&mut conn, roles);
        let outcomes = db::write(&mut conn, |tx| {
            if batch {
                scim_users::create_many(tx, &tenant, &actor, &documents)
            } else {
                Ok(documents
                    .iter()
                    .map(|document| {
                        db::savepoint(tx, |savepoint| {
                            scim_users::create(savepoint, &tenant, &actor, document)
                        })
                    })
                    .collect())
            }
        })
        .unwrap();
        let outcomes: Vec<String> = outcomes.iter().map(outcome_text).collect();
        let sequences: Vec<(i64, i64)> = events::table
            .filter(events::organization_id.eq(&tenant.organization_id))
            .order(events::sequence.asc())
            .select((events::sequence, events::log_position))
            .load(&mut *conn)
            .unwrap();
        (outcomes, state(&mut conn, &tenant), sequences)
    };
    let (batch_outcomes, batch_state, sequences) = run(true);
    let (single_outcomes, single_state, _) = run(false);
    assert_eq!(batch_outcomes, single_outcomes);
    assert_eq!(batch_state, single_state);

    // The outcomes are the ones each document deserves, not merely the same wrong ones.
    let failed: Vec<usize> = batch_outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| outcome.starts_with("error"))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(failed, [1, 3, 4, 6, 7, 8, 39], "{batch_outcomes:#?}");
    assert!(
        batch_outcomes[3].contains("already taken"),
        "{}",
        batch_outcomes[3]
    );
    assert!(
        batch_outcomes[4].contains("bob@acme.test"),
        "{}",
        batch_outcomes[4]
    );
    assert!(
        batch_outcomes[7].contains("RESTRICTED"),
        "{}",
        batch_outcomes[7]
    );
    assert_eq!(batch_state.user_count, 1 + 2 + 1 + 30);
    let adopted = &batch_state.members["existing@acme.test"];
    assert_eq!(adopted.version, 2, "adopted, not created: {adopted:?}");
    assert!(batch_state
        .events
        .contains(&("member.scim_linked".into(), "existing@acme.test".into())));
    let ada = &batch_state.members["ada@acme.test"];
    assert_eq!(ada.email_rows, 2, "both of ada's emails are indexed");
    let granted: &[&str] = if roles { &["admin"] } else { &[] };
    assert_eq!(ada.roles, granted, "acme.test's implicit role");
    assert!(
        batch_state.members["bob@acme.test"].roles.is_empty(),
        "inactive: no grants"
    );

    // The batch's events are numbered gap-free, their positions never going down.
    let numbers: Vec<i64> = sequences.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(numbers, (1..=sequences.len() as i64).collect::<Vec<_>>());
    assert!(sequences.windows(2).all(|pair| pair[0].1 <= pair[1].1));
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_batch_with_a_taken_key_writes_none_of_it(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(2);
    let mut conn = pool.get().unwrap();
    let tenant = seed(&mut conn, false);
    let before = state(&mut conn, &tenant);
    let member = |email: &str| Member {
        member_id: format!("member-{}", uuid::Uuid::new_v4()),
        organization_id: tenant.organization_id.clone(),
        email_address: email.into(),
        email_address_verified: false,
        status: MemberStatus::Active,
        name: String::new(),
        is_breakglass: false,
        trusted_metadata: Map::new(),
        untrusted_metadata: Map::new(),
        scim_registration: Some(ScimRegistration {
            connection_id: tenant.connection_id.clone(),
            user_name: email.into(),
            external_id: None,
            attributes: Map::from_iter([("userName".to_string(), json!(email))]),
        }),
        created_at: now(),
        updated_at: now(),
        version: 1,
    };
    let batch = [member("new@acme.test"), member("taken@acme.test")];
    let taken = db::write(&mut conn, |tx| {
        Ok::<_, Error>(
            db::savepoint(tx, |savepoint| {
                members::insert_many(savepoint, &Actor::cli(), &batch, "member.created")
            })
            .expect_err("taken@ is the connection's already"),
        )
    })
    .expect("the transaction outlives its failed savepoint");
    assert!(matches!(taken, Error::Conflict { .. }), "{taken:?}");
    assert_eq!(state(&mut conn, &tenant), before);
}

/// PostgreSQL only: SQLite has one writer, so nothing commits between a batch's look at the
/// taken keys and its insert.
#[test]
fn a_batch_that_meets_a_user_committed_after_it_looked_falls_back_to_one_by_one() {
    let database = TestDatabase::new(Db::Postgres);
    let pool = database.migrated_pool(3);
    let mut conn = pool.get().unwrap();
    let tenant = seed(&mut conn, false);
    let (inserted, go) = (mpsc::channel(), mpsc::channel::<()>());
    let rival = {
        let (pool, tenant) = (pool.clone(), tenant.clone());
        let (inserted, go) = (inserted.0, go.1);
        std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            db::write(&mut conn, |tx| {
                scim_users::create(
                    tx,
                    &tenant,
                    &Actor::cli(),
                    &json!({"userName": "race@acme.test"}),
                )?;
                inserted.send(()).unwrap();
                go.recv().unwrap();
                Ok::<_, Error>(())
            })
            .unwrap();
        })
    };
    inserted.1.recv().unwrap();
    let batch = {
        let (pool, tenant) = (pool.clone(), tenant.clone());
        std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            let documents: Vec<Value> = ["first@acme.test", "race@acme.test", "last@acme.test"]
                .iter()
                .map(|user_name| json!({"userName": user_name}))
                .collect();
            db::write(&mut conn, |tx| {
                scim_users::create_many(tx, &tenant, &Actor::cli(), &documents)
            })
            .unwrap()
        })
    };
    // The batch did not see the rival's uncommitted user; it now waits on its unique key.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 =
            diesel::sql_query("SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted")
                .get_result::<Count>(&mut *conn)
                .unwrap()
                .n;
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch never waited for the rival's insert"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    go.0.send(()).unwrap();
    rival.join().unwrap();
    let outcomes: Vec<String> = batch.join().unwrap().iter().map(outcome_text).collect();
    assert!(outcomes[0].starts_with("ok first@"), "{outcomes:?}");
    assert!(outcomes[1].contains("already taken"), "{outcomes:?}");
    assert!(outcomes[2].starts_with("ok last@"), "{outcomes:?}");
    let state = state(&mut conn, &tenant);
    assert_eq!(state.user_count, 1 + 3);
    assert_eq!(
        state
            .events
            .iter()
            .filter(|(kind, _)| kind == "member.created")
            .count(),
        1 + 1 + 3
    );
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

//! Property: a list filtered in the database (index equality, SQL narrowing, then Rust)
//! answers exactly what evaluating the filter in memory on every user answers, for generated
//! filters over data full of case variants, JSON escapes and LIKE wildcards — on both
//! databases.

mod common;

use std::collections::BTreeSet;

use common::{Db, TestDatabase};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rstest::rstest;
use serde_json::json;

use scimd::db;
use scimd::domain::connections::{self, ConnectionFields, Tenant};
use scimd::domain::organizations::{self, OrganizationFields};
use scimd::domain::{scim_users, Actor, Window};
use scimd::scim::filter::Filter;
use scimd::scim::resource::ResourceRules;
use scimd::scim::schema::USER_RESOURCE;

/// Values the users hold and the filters compare with: case variants, a quote, a backslash,
/// LIKE's wildcards, non-ASCII text, and fragments of them.
const WORDS: &[&str] = &[
    "Ada",
    "ada",
    "ADA",
    "O\"Hara",
    "o\"hara",
    "50%",
    "5_0",
    "back\\slash",
    "Zoë",
    "zoë",
    "Hara",
    "ar",
    "a",
    "%",
    "_",
    "\\",
    "\"",
    "acme.test",
    "Ada@acme.test",
];

fn word(n: usize) -> &'static str {
    WORDS[n % WORDS.len()]
}

fn seed(conn: &mut db::DbConn) -> Tenant {
    db::write(conn, |tx| {
        let actor = Actor::cli();
        let organization = organizations::create(
            tx,
            &actor,
            OrganizationFields {
                organization_name: Some("Agreement".into()),
                organization_slug: Some("agreement".into()),
                ..Default::default()
            },
        )?;
        let issued = connections::create(
            tx,
            &actor,
            &organization.organization_id,
            ConnectionFields::default(),
        )?;
        let tenant = Tenant {
            organization_id: organization.organization_id,
            connection_id: issued.connection.connection_id,
        };
        for n in 0..40 {
            let mut user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("u{n}.{}@acme.test", n % 7),
                "name": {"familyName": word(n), "givenName": word(n * 3 + 1)},
                "title": word(n * 5 + 2),
                "emails": [{"value": format!("{}{n}@x.test", word(n * 2).replace(['"', '\\', ' '], "")),
                            "type": if n % 2 == 0 { "work" } else { "home" }}],
                "active": n % 3 != 0,
            });
            if n % 4 == 0 {
                user["displayName"] = json!(word(n + 3));
            }
            scim_users::create(tx, &tenant, &actor, &user)?;
        }
        Ok::<_, scimd::error::Error>(tenant)
    })
    .expect("seed data")
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Generated filters: comparisons on stored attributes, `active`, presence, value paths, and
/// `and`/`or`/`not` over them.
fn filters() -> impl Strategy<Value = String> {
    let attribute = prop::sample::select(vec![
        "userName",
        "name.familyName",
        "name.givenName",
        "title",
        "displayName",
        "emails.value",
        "emails.type",
    ]);
    let op = prop::sample::select(vec!["eq", "ne", "co", "sw", "ew"]);
    let leaf = prop_oneof![
        (attribute, op.clone(), 0..WORDS.len())
            .prop_map(|(a, o, w)| format!("{a} {o} {}", quoted(WORDS[w]))),
        prop::sample::select(vec![
            "active eq true",
            "active eq false",
            "displayName pr",
            "title pr"
        ])
        .prop_map(str::to_string),
        (
            op,
            0..WORDS.len(),
            prop::sample::select(vec!["work", "home", "WORK"])
        )
            .prop_map(|(o, w, t)| format!(
                "emails[type eq {} and value {o} {}]",
                quoted(t),
                quoted(WORDS[w])
            )),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn database_and_memory_agree_on_every_filter(#[case] database: Db) {
    let database = TestDatabase::new(database);
    let pool = db::connect(&database.url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    db::migrate(&mut conn).unwrap();
    let tenant = seed(&mut conn);
    let everything = Window::Index {
        start_index: 1,
        count: 1000,
    };
    let all = scim_users::list(&mut conn, &tenant, "http://x", None, &everything, None)
        .unwrap()
        .items;
    assert_eq!(all.len(), 40);
    drop(conn);
    let rules = ResourceRules(&USER_RESOURCE);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    runner
        .run(&filters(), |text| {
            let filter = Filter::parse(&text).expect("generated filters parse");
            let in_memory: BTreeSet<String> = all
                .iter()
                .filter(|member| {
                    filter.matches(&scim_users::render(member, &[], "http://x"), &rules)
                })
                .map(|member| member.member_id.clone())
                .collect();
            let mut conn = pool.get().unwrap();
            let listed = scim_users::list(
                &mut conn,
                &tenant,
                "http://x",
                Some(&filter),
                &everything,
                None,
            )
            .unwrap();
            let in_database: BTreeSet<String> =
                listed.items.iter().map(|m| m.member_id.clone()).collect();
            prop_assert_eq!(&in_database, &in_memory, "filter {}", text);
            prop_assert_eq!(listed.total as usize, in_memory.len());
            Ok(())
        })
        .unwrap();
}

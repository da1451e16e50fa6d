//! Property: a list filtered in the database (SQL on the filter columns, SQL narrowing, then
//! Rust for what is left) answers exactly what evaluating the filter in memory on every
//! resource answers, for generated filters over data full of case variants, JSON escapes and
//! LIKE wildcards, by index and by cursor — Users and Groups, on both databases.

mod common;

use std::collections::BTreeSet;

use common::{Db, TestDatabase};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rstest::rstest;
use serde_json::json;

use scimd::db;
use scimd::domain::connections::Tenant;
use scimd::domain::organizations::OrganizationFields;
use scimd::domain::{scim_groups, scim_users, Actor, Listed, Seek, Window};
use scimd::scim::filter::Filter;
use scimd::scim::resource::ResourceRules;
use scimd::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

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

/// The seeded connection, its users' and groups' ids in creation order.
struct Seeded {
    tenant: Tenant,
    users: Vec<String>,
    groups: Vec<String>,
}

fn seed(conn: &mut db::DbConn) -> Seeded {
    db::write(conn, |tx| {
        let actor = Actor::cli();
        let tenant = common::organization_with_connection(
            tx,
            OrganizationFields {
                organization_name: Some("Agreement".into()),
                organization_slug: Some("agreement".into()),
                ..Default::default()
            },
        )?;
        let mut users = Vec::new();
        for n in 0..40 {
            let mut user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("u{n}.{}@acme.test", n % 7),
                "name": {"familyName": word(n), "givenName": word(n * 3 + 1)},
                "title": word(n * 5 + 2),
                "emails": [{"value": format!("{}{n}@x.test", word(n * 2).replace(['"', '\\', ' '], "")),
                            "type": if n % 2 == 0 { "work" } else { "home" }}],
            });
            // Some users never had `active` set: `active eq true` is not theirs.
            if n % 5 != 0 {
                user["active"] = json!(n % 3 != 0);
            }
            if n % 4 == 0 {
                user["displayName"] = json!(word(n + 3));
            }
            if n % 3 != 1 {
                user["externalId"] = json!(if n % 6 == 0 { "12345".to_string() } else { word(n + 1).to_string() });
            }
            if n % 3 == 0 {
                user["emails"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"value": format!("{}@Other.test", word(n + 5)), "type": "Work", "primary": n % 2 == 0}));
            }
            users.push(scim_users::create(tx, &tenant, &actor, &user)?.member_id);
        }
        let mut groups = Vec::new();
        for n in 0..12 {
            let members: Vec<_> = users
                .iter()
                .enumerate()
                .filter(|(m, _)| (m + n) % 4 == 0)
                .map(|(_, id)| json!({"value": id}))
                .collect();
            let mut group = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": format!("{} {n}", word(n)),
                "members": members,
            });
            if n % 2 == 0 {
                group["externalId"] = json!(word(n + 2));
            }
            groups.push(scim_groups::create(tx, &tenant, &actor, &group)?.group_id);
        }
        Ok::<_, scimd::error::Error>(Seeded {
            tenant,
            users,
            groups,
        })
    })
    .expect("seed data")
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Instants before, among and after the seeded resources, one finer than a microsecond.
const INSTANTS: &[&str] = &[
    "2000-01-01T00:00:00Z",
    "2100-01-01T00:00:00+02:00",
    "2000-01-01T00:00:00.0000005Z",
];

/// Ids that stand for a seeded resource (`{user:N}`, `{group:N}`), filled in once it exists.
fn with_ids(filter: &str, seeded: &Seeded) -> String {
    let mut filter = filter.to_string();
    for (kind, ids) in [("user", &seeded.users), ("group", &seeded.groups)] {
        for (n, id) in ids.iter().enumerate().rev() {
            filter = filter.replace(&format!("{{{kind}:{n}}}"), id);
        }
    }
    filter
}

fn text_leaf(attributes: Vec<&'static str>) -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["eq", "ne", "co", "sw", "ew", "gt", "le"]);
    (prop::sample::select(attributes), op, 0..WORDS.len())
        .prop_map(|(a, o, w)| format!("{a} {o} {}", quoted(WORDS[w])))
}

fn instant_leaf() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["meta.created", "meta.lastModified"]),
        prop::sample::select(vec!["eq", "ne", "gt", "ge", "lt", "le"]),
        prop::sample::select(INSTANTS.to_vec()),
    )
        .prop_map(|(a, o, at)| format!("{a} {o} {}", quoted(at)))
}

fn combined(leaf: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = String> {
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// Generated User filters: comparisons on columns and on the stored document, `active`,
/// presence and null, value paths on emails, ids, groups and instants, and `and`/`or`/`not`
/// over them.
fn user_filters() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["eq", "ne", "co", "sw", "ew"]);
    let leaf = prop_oneof![
        text_leaf(vec![
            "userName",
            "name.familyName",
            "name.givenName",
            "title",
            "displayName",
            "externalId",
            "emails.value",
            "emails.type",
            "emails",
        ]),
        prop::sample::select(vec![
            "active eq true",
            "active eq false",
            "active ne \"True\"",
            "displayName pr",
            "title pr",
            "externalId pr",
            "emails.value pr",
            "displayName eq null",
            "externalId ne null",
            "externalId eq 12345",
            "emails[primary eq true]",
            "emails[primary ne true]",
            "id eq \"{user:3}\"",
            "id ne \"{user:7}\"",
            "id sw \"member-\"",
            "groups.value eq \"{group:2}\"",
            "groups[value eq \"{group:5}\"]",
            "groups.display pr",
            "name[givenName sw \"a\" or familyName ew \"A\"]",
        ])
        .prop_map(str::to_string),
        instant_leaf(),
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
    combined(leaf)
}

/// Generated Group filters.
fn group_filters() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        text_leaf(vec!["displayName", "externalId"]),
        prop::sample::select(vec![
            "externalId pr",
            "externalId eq null",
            "members.value eq \"{user:4}\"",
            "members[value eq \"{user:9}\"]",
            "members.value ne \"{user:0}\"",
            "members pr",
            "id eq \"{group:1}\"",
        ])
        .prop_map(str::to_string),
        instant_leaf(),
    ];
    combined(leaf)
}

/// Every item of a list, read by cursor `count` at a time: page after page by `nextCursor`,
/// then back again by `previousCursor`, which must give the same pages in reverse; and the
/// page at the end (`Seek::Before(None)`, what follows an empty page) must be the last
/// `count` items.
fn by_cursor<T>(
    mut list: impl FnMut(&Window) -> Listed<T>,
    count: u64,
    id: impl Fn(&T) -> String,
) -> Result<(BTreeSet<String>, u64), TestCaseError> {
    let ids = |page: &Listed<T>| page.items.iter().map(&id).collect::<Vec<_>>();
    let mut pages = Vec::new();
    let mut seek = Seek::After(None);
    let (total, mut back) = loop {
        let page = list(&Window::Cursor { seek, count });
        prop_assert_eq!(page.previous.is_some(), !pages.is_empty(), "previousCursor");
        pages.push(ids(&page));
        match page.next {
            Some(next) => seek = next,
            None => break (page.total, page.previous),
        }
    };
    let mut index = pages.len() - 1;
    while let Some(seek) = back {
        prop_assert!(index > 0, "previousCursor before the first page");
        index -= 1;
        let page = list(&Window::Cursor { seek, count });
        prop_assert_eq!(
            ids(&page),
            pages[index].clone(),
            "page {} read backwards",
            index
        );
        prop_assert!(page.next.is_some(), "a page read backwards leads on");
        back = page.previous;
    }
    prop_assert_eq!(index, 0, "previousCursor led back to the first page");
    let everything = pages.concat();
    let tail = everything.len().saturating_sub(count as usize);
    let at_the_end = list(&Window::Cursor {
        seek: Seek::Before(None),
        count,
    });
    prop_assert_eq!(
        ids(&at_the_end),
        everything[tail..].to_vec(),
        "the last page"
    );
    prop_assert!(at_the_end.next.is_none());
    prop_assert_eq!(at_the_end.previous.is_some(), tail > 0);
    Ok((everything.into_iter().collect(), total))
}

/// The ids of the rendered resources `filter` matches, evaluated in memory.
fn matching(
    rendered: &[(String, serde_json::Value)],
    filter: &Filter,
    rules: &ResourceRules,
) -> BTreeSet<String> {
    rendered
        .iter()
        .filter(|(_, resource)| filter.matches(resource, rules))
        .map(|(id, _)| id.clone())
        .collect()
}

/// That `list` (filtered in the database) finds exactly `in_memory`, with that total, in one
/// page by index and page after page by cursor (`count` at a time).
fn agrees<T>(
    text: &str,
    in_memory: &BTreeSet<String>,
    mut list: impl FnMut(&Window) -> Listed<T>,
    id: impl Fn(&T) -> String,
    count: u64,
) -> Result<(), TestCaseError> {
    let listed = list(&EVERYTHING);
    let in_database: BTreeSet<String> = listed.items.iter().map(&id).collect();
    prop_assert_eq!(&in_database, in_memory, "filter {}", text);
    prop_assert_eq!(listed.total as usize, in_memory.len());
    let (paged, total) = by_cursor(list, count, id)?;
    prop_assert_eq!(&paged, in_memory, "filter {} by cursor", text);
    prop_assert_eq!(total as usize, in_memory.len());
    Ok(())
}

const EVERYTHING: Window = Window::Index {
    start_index: 1,
    count: 1000,
};

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn database_and_memory_agree_on_every_filter(#[case] database: Db) {
    let database = TestDatabase::new(database);
    let pool = database.migrated_pool(2);
    let mut conn = pool.get().unwrap();
    let seeded = seed(&mut conn);
    let tenant = &seeded.tenant;
    let users = scim_users::list(&mut conn, tenant, "http://x", None, &EVERYTHING, None)
        .unwrap()
        .items;
    assert_eq!(users.len(), 40);
    let user_groups = scim_users::groups_of(&mut conn, &users).unwrap();
    let rendered_users: Vec<_> = users
        .iter()
        .map(|user| {
            let groups = user_groups
                .get(&user.member_id)
                .cloned()
                .unwrap_or_default();
            (
                user.member_id.clone(),
                scim_users::render(user, &groups, "http://x"),
            )
        })
        .collect();
    let groups = scim_groups::list(&mut conn, tenant, "http://x", None, &EVERYTHING, None)
        .unwrap()
        .items;
    assert_eq!(groups.len(), 12);
    let rendered_groups: Vec<_> = groups
        .iter()
        .map(|group| {
            let members = scim_groups::members_of(&mut conn, &group.group_id).unwrap();
            (
                group.group_id.clone(),
                scim_groups::render(group, Some(&members), "http://x"),
            )
        })
        .collect();
    // An IdP's lookup is answered by the one statement; a full page is not.
    for (filter, found) in [
        (r#"userName eq "U0.0@acme.test""#, 1),
        (r#"userName eq "nobody@acme.test""#, 0),
        (r#"externalId eq "12345""#, 7),
    ] {
        let filter = Filter::parse(filter).unwrap();
        let (short, groups) =
            scim_users::list_short(&mut conn, tenant, Some(&filter), &EVERYTHING, None)
                .unwrap()
                .expect("a short first page");
        assert_eq!((short.total, short.items.len()), (found, found as usize));
        // Their groups, read as a column of their rows, are those `groups_of` reads.
        let mut read_apart = scim_users::groups_of(&mut conn, &short.items).unwrap();
        for user in &short.items {
            let apart = read_apart.remove(&user.member_id).unwrap_or_default();
            assert_eq!(groups[&user.member_id], apart);
        }
        // A page of exactly its matches is whole too (a lookup with `count=1`); one with
        // more matches than its count needs the count.
        let exact = Window::Index {
            start_index: 1,
            count: found.max(1),
        };
        let listed = scim_users::list_short(&mut conn, tenant, Some(&filter), &exact, None);
        let (listed, _) = listed.unwrap().expect("a page of exactly its matches");
        assert_eq!(listed.total, found);
        if found > 1 {
            let fewer = Window::Index {
                start_index: 1,
                count: found - 1,
            };
            let listed = scim_users::list_short(&mut conn, tenant, Some(&filter), &fewer, None);
            assert!(listed.unwrap().is_none(), "a full page needs the count");
        }
    }
    // Without a filter the count is the connection's counter: the list is read once.
    let unfiltered = scim_users::list_short(&mut conn, tenant, None, &EVERYTHING, None);
    assert!(unfiltered.unwrap().is_none());
    drop(conn);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let user_rules = ResourceRules(&USER_RESOURCE);
    runner
        .run(&user_filters(), |text| {
            let text = with_ids(&text, &seeded);
            let filter = Filter::parse(&text).expect("generated filters parse");
            let mut conn = pool.get().unwrap();
            let in_memory = matching(&rendered_users, &filter, &user_rules);
            // A short first page, when the one statement gives it, is every match.
            for count in [1, 2, 7, 1000] {
                let window = Window::Index {
                    start_index: 1,
                    count,
                };
                let short = scim_users::list_short(&mut conn, tenant, Some(&filter), &window, None)
                    .unwrap();
                if let Some((short, _)) = short {
                    let found: BTreeSet<String> = short
                        .items
                        .iter()
                        .map(|user| user.member_id.clone())
                        .collect();
                    prop_assert_eq!(&found, &in_memory, "filter {} short of {}", text, count);
                    prop_assert_eq!(short.total as usize, in_memory.len());
                }
            }
            agrees(
                &text,
                &in_memory,
                |window| {
                    scim_users::list(&mut conn, tenant, "http://x", Some(&filter), window, None)
                        .unwrap()
                },
                |user| user.member_id.clone(),
                7,
            )
        })
        .unwrap();
    let group_rules = ResourceRules(&GROUP_RESOURCE);
    runner
        .run(&group_filters(), |text| {
            let text = with_ids(&text, &seeded);
            let filter = Filter::parse(&text).expect("generated filters parse");
            let mut conn = pool.get().unwrap();
            agrees(
                &text,
                &matching(&rendered_groups, &filter, &group_rules),
                |window| {
                    scim_groups::list(&mut conn, tenant, "http://x", Some(&filter), window, None)
                        .unwrap()
                },
                |group| group.group_id.clone(),
                5,
            )
        })
        .unwrap();
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn users_stored_before_the_filter_columns_are_found_by_them(#[case] database: Db) {
    use diesel_migrations::MigrationHarness;
    let database = TestDatabase::new(database);
    let pool = database.migrated_pool(2);
    let mut conn = pool.get().unwrap();
    let seeded = seed(&mut conn);
    // Back to the schema before migration 000012, which dropped what it added (and 000013,
    // which folds the user count's shards back into one column), then forward again: the
    // migration fills its columns and email rows for the users already stored, and the
    // count comes through both ways.
    for _ in 0..2 {
        match &mut *conn {
            db::DbConn::Sqlite(inner) => inner.revert_last_migration(db::MIGRATIONS).map(drop),
            db::DbConn::Postgres(inner) => inner.revert_last_migration(db::MIGRATIONS).map(drop),
        }
        .unwrap();
    }
    assert_eq!(
        db::migrate(&mut conn).unwrap(),
        ["20261202000012", "20261206000013"]
    );
    assert_eq!(
        scimd::domain::members::user_count(&mut conn, &seeded.tenant.connection_id).unwrap(),
        40
    );
    let users = scim_users::list(
        &mut conn,
        &seeded.tenant,
        "http://x",
        None,
        &EVERYTHING,
        None,
    )
    .unwrap()
    .items;
    let rules = ResourceRules(&USER_RESOURCE);
    for text in [
        r#"name.familyName eq "ADA""#,
        r#"emails[type eq "work" and value sw "ada"]"#,
        r#"emails.value ew "@other.test""#,
        r#"displayName eq "o\"hara""#,
    ] {
        let filter = Filter::parse(text).unwrap();
        let expected: BTreeSet<String> = users
            .iter()
            .filter(|user| filter.matches(&scim_users::render(user, &[], "http://x"), &rules))
            .map(|user| user.member_id.clone())
            .collect();
        assert!(!expected.is_empty(), "{text} matches some seeded user");
        let listed = scim_users::list(
            &mut conn,
            &seeded.tenant,
            "http://x",
            Some(&filter),
            &EVERYTHING,
            None,
        )
        .unwrap();
        let found: BTreeSet<String> = listed.items.iter().map(|m| m.member_id.clone()).collect();
        assert_eq!(found, expected, "{text}");
    }
}

//! PostgreSQL keeps diesel's prepared statements and may give one a generic plan, made by the
//! tables' sizes when it was first run: a statement whose best plan depends on a table's size
//! must stay an index probe as the table grows from nothing. Counted in the transaction's own
//! statistics (`pg_stat_xact_user_tables`), so the figures are exact, not timings.

mod common;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{json, Value};

use common::{Db, TestDatabase};
use scimd::db::{self, DbConn};
use scimd::domain::connections::Tenant;
use scimd::domain::organizations::OrganizationFields;
use scimd::domain::{scim_groups, scim_users, Actor};
use scimd::error::Error;
use scimd::scim::patch::PatchRequest;

#[derive(QueryableByName)]
struct Read {
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

/// The `group_members` rows this transaction has read so far, by index or by scan.
fn rows_read(tx: &mut DbConn) -> i64 {
    rows_read_of(tx, "group_members")
}

/// The rows of `table` this transaction has read so far, by index or by scan.
fn rows_read_of(tx: &mut DbConn, table: &str) -> i64 {
    diesel::sql_query(
        "SELECT (COALESCE(idx_tup_fetch, 0) + COALESCE(seq_tup_read, 0))::bigint AS rows \
         FROM pg_stat_xact_user_tables WHERE relname = $1 \
         AND schemaname = current_schema()",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .get_result::<Read>(tx)
    .map_or(0, |read| read.rows)
}

fn membership(op: &str, ids: &[String]) -> PatchRequest {
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    PatchRequest::parse(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": op, "path": "members", "value": value}],
    }))
    .unwrap()
}

/// An organization `slug` with a connection and `users` users `user<n>@<slug>.test`.
fn organization_with_users(
    tx: &mut DbConn,
    slug: &str,
    users: usize,
) -> Result<(Tenant, Vec<String>), Error> {
    organization_with(tx, slug, users, |name| json!({ "userName": name }))
}

/// An organization `slug` with a connection and `users` users, each made by `user` of its
/// name `user<n>@<slug>.test`.
fn organization_with(
    tx: &mut DbConn,
    slug: &str,
    users: usize,
    user: impl Fn(&str) -> Value,
) -> Result<(Tenant, Vec<String>), Error> {
    let tenant = common::organization_with_connection(
        tx,
        OrganizationFields {
            organization_name: Some(slug.into()),
            organization_slug: Some(slug.into()),
            ..Default::default()
        },
    )?;
    let documents: Vec<Value> = (0..users)
        .map(|n| user(&format!("user{n}@{slug}.test")))
        .collect();
    let ids = scim_users::create_many(tx, &tenant, &Actor::cli(), &documents)?
        .into_iter()
        .map(|user| user.map(|user| user.member_id))
        .collect::<Result<_, _>>()?;
    Ok((tenant, ids))
}

#[test]
fn membership_reads_stay_index_probes_however_the_group_grew() {
    let database = TestDatabase::new(Db::Postgres);
    // One connection: every statement below runs, and is kept prepared, on it.
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let actor = Actor::cli();
    let (tenant, users, group) = db::write(&mut conn, |tx| {
        let (tenant, users) = organization_with_users(tx, "plans", 2_020)?;
        let group = scim_groups::create(tx, &tenant, &actor, &json!({"displayName": "Grows"}))?;
        Ok::<_, Error>((tenant, users, group.group_id))
    })
    .unwrap();
    let patch = |conn: &mut DbConn, request: PatchRequest| {
        db::write(conn, |tx| {
            scim_groups::patch(tx, &tenant, &actor, &group, None, &request)
        })
        .unwrap()
    };

    // While the group is small, one member at a time, more often than PostgreSQL's five
    // custom plans before it considers a generic one.
    for user in &users[..10] {
        patch(&mut conn, membership("add", std::slice::from_ref(user)));
        patch(&mut conn, membership("remove", std::slice::from_ref(user)));
    }
    // A page of users is answered with each user's groups, read for the page at once.
    let two: Vec<&str> = users[..2].iter().map(String::as_str).collect();
    for _ in 0..10 {
        scim_groups::groups_of(&mut conn, &two).unwrap();
    }
    // Then the group grows to 2,000 members at once.
    patch(&mut conn, membership("add", &users[10..2_010]));

    let page: Vec<&str> = users[10..12].iter().map(String::as_str).collect();
    let read = db::write(&mut conn, |tx| {
        let before = rows_read(tx);
        let groups = scim_groups::groups_of(tx, &page)?;
        assert_eq!(groups.len(), 2, "each of the two is in the group");
        Ok::<_, Error>(rows_read(tx) - before)
    })
    .unwrap();
    assert!(
        read < 50,
        "two users' groups read {read} rows of a group of 2,000"
    );

    let read = db::write(&mut conn, |tx| {
        let before = rows_read(tx);
        let request = membership("add", &users[2_010..2_011]);
        scim_groups::patch(tx, &tenant, &actor, &group, None, &request)?;
        let request = membership("remove", &users[2_010..2_011]);
        scim_groups::patch(tx, &tenant, &actor, &group, None, &request)?;
        Ok::<_, Error>(rows_read(tx) - before)
    })
    .unwrap();
    assert!(
        read < 50,
        "adding and removing one member read {read} rows of a group of 2,000"
    );
}

#[derive(QueryableByName)]
struct Analyzed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    analyzed: bool,
}

/// Without autovacuum (as on this project's CI machine) nothing would ever analyze the tables
/// and replan what was planned while they were empty: scimd does it at start and hourly.
#[test]
fn statistics_are_refreshed_where_autovacuum_would_not() {
    let database = TestDatabase::new(Db::Postgres);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let autovacuum_off = db::autovacuum_off(&mut conn).unwrap();
    db::refresh_statistics(&mut conn).unwrap();
    let analyzed = diesel::sql_query(
        "SELECT last_analyze IS NOT NULL AS analyzed FROM pg_stat_user_tables \
         WHERE relname = 'group_members' AND schemaname = current_schema()",
    )
    .get_result::<Analyzed>(&mut *conn)
    .unwrap()
    .analyzed;
    assert_eq!(
        analyzed, autovacuum_off,
        "analyzed exactly when autovacuum is off"
    );
}

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
}

/// The statements this session keeps prepared, oldest first.
fn prepared(conn: &mut DbConn) -> Vec<String> {
    diesel::sql_query("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        .load::<Prepared>(conn)
        .unwrap()
        .into_iter()
        .map(|prepared| prepared.statement)
        .collect()
}

/// diesel keeps a statement prepared by its text for the connection's life, and PostgreSQL
/// its plans in the backend: filters of ever new shapes must not make either grow without
/// bound. A filter of one test is kept (its shapes are as few as the columns and tests); of
/// the others, the first the process meets, up to a bound, and no later one.
#[test]
fn filters_of_ever_new_shapes_keep_no_statement_prepared() {
    use scimd::domain::Window;
    use scimd::scim::filter::Filter;
    use scimd::scim::sort::Sort;

    let database = TestDatabase::new(Db::Postgres);
    // One connection: every statement below runs, and is kept prepared or not, on it.
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let (tenant, _) = db::write(&mut conn, |tx| organization_with_users(tx, "shapes", 60)).unwrap();
    // As the handler lists: the short answer when there is one, else the list and its count.
    let list = |conn: &mut DbConn, filter: &str, sort: Option<&str>, count: u64| -> u64 {
        let filter = Filter::parse(filter).unwrap();
        let sort = sort.map(|by| Sort::parse(Some(by), None).unwrap().unwrap());
        let window = Window::Index {
            start_index: 1,
            count,
        };
        let short =
            scim_users::list_short(conn, &tenant, Some(&filter), &window, sort.as_ref()).unwrap();
        match short {
            Some((listed, _)) => listed.total,
            None => {
                db::read(conn, |tx| {
                    scim_users::list(tx, &tenant, "", Some(&filter), &window, sort.as_ref())
                })
                .unwrap()
                .total
            }
        }
    };

    // Lookups by userName: one shape, kept prepared once.
    let lookup = |conn: &mut DbConn, n: usize| {
        let filter = format!("userName eq \"user{n}@shapes.test\"");
        assert_eq!(list(conn, &filter, None, 100), 1);
    };
    (0..10).for_each(|n| lookup(&mut conn, n));
    let kept = prepared(&mut conn);
    (10..20).for_each(|n| lookup(&mut conn, n));
    assert_eq!(
        prepared(&mut conn),
        kept,
        "the same shape is the same statement"
    );

    // Filters of two tests, of ever new shapes (columns and operators), each answered by the
    // list (count 1) and by the short answer (count 100): the first shapes the process meets
    // are kept, up to a bound, then no statement more, however many shapes come.
    let columns = [
        "userName",
        "emails.value",
        "externalId",
        "displayName",
        "name.givenName",
    ];
    let tests = [
        "eq \"user1@shapes.test\"",
        "sw \"user1\"",
        "co \"1@\"",
        "ew \".test\"",
        "ne \"x\"",
    ];
    let leaves: Vec<String> = columns
        .iter()
        .flat_map(|column| tests.iter().map(move |test| format!("{column} {test}")))
        .collect();
    let mut shapes = leaves
        .iter()
        .flat_map(|left| leaves.iter().map(move |right| format!("{left} or {right}")));
    let mut list_shapes = |conn: &mut DbConn, how_many: usize| {
        for filter in shapes.by_ref().take(how_many) {
            // The short answer and the list with its count agree.
            let short = list(conn, &filter, None, 100);
            assert_eq!(list(conn, &filter, None, 1), short, "{filter}");
        }
    };
    list_shapes(&mut conn, 100);
    let bounded = prepared(&mut conn);
    assert!(
        bounded.len() - kept.len() <= 4 * 64,
        "the first shapes are kept, within a bound: {}",
        bounded.len() - kept.len()
    );
    list_shapes(&mut conn, 200);
    assert_eq!(
        prepared(&mut conn),
        bounded,
        "no statement kept for a later shape"
    );
    // A sort: each is a shape of its own.
    for sort in [
        "userName",
        "id",
        "externalId",
        "meta.created",
        "meta.lastModified",
    ] {
        let listed = list(&mut conn, "userName sw \"user1\"", Some(sort), 100);
        assert_eq!(listed, 11);
    }
    assert_eq!(
        prepared(&mut conn),
        bounded,
        "no statement kept for a later sort"
    );
}

/// `sw` finds its users through an index on PostgreSQL as on SQLite: the range beside its
/// `LIKE` is in code point order, which an index answers only on a column in the "C"
/// collation, whatever the database's own (`db::migrate` keeps them so). In the database's
/// collation every key of the connection was read.
#[test]
fn starts_with_reads_the_matching_users_only() {
    use scimd::domain::Window;
    use scimd::scim::filter::Filter;

    let database = TestDatabase::new(Db::Postgres);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let (tenant, _) = db::write(&mut conn, |tx| {
        organization_with(
            tx,
            "prefix",
            2_000,
            |name| json!({"userName": name, "emails": [{"value": name, "type": "work"}]}),
        )
    })
    .unwrap();
    db::refresh_statistics_after_load(&mut conn).unwrap();
    // (matches, rows of `table` read) for a filter, listed as the handler lists.
    let list = |conn: &mut DbConn, filter: &str, table: &str| {
        let filter = Filter::parse(filter).unwrap();
        let window = Window::Index {
            start_index: 1,
            count: 100,
        };
        db::read(conn, |tx| {
            let before = rows_read_of(tx, table);
            let listed = scim_users::list(tx, &tenant, "", Some(&filter), &window, None)?;
            Ok::<_, Error>((listed.total, rows_read_of(tx, table) - before))
        })
        .unwrap()
    };
    let checks = [
        ("userName sw \"user1999@\"", "members"),
        ("userName sw \"USER199\"", "members"),
        ("emails.value sw \"user1999@\"", "member_emails"),
    ];
    let check = |conn: &mut DbConn| {
        for (filter, table) in checks {
            let (total, read) = list(conn, filter, table);
            let expected = if filter.contains("USER199") { 11 } else { 1 };
            assert_eq!(total, expected, "{filter}");
            // The matches, each read for the page and for the count, and the index's
            // neighbours: not the connection's 2,000.
            assert!(read <= 50, "{filter} read {read} rows of {table}");
        }
    };
    check(&mut conn);

    // A column a later migration put back in the database's collation is put in "C" again
    // at the next start. (Each step is a process of its own: a change of a column's type
    // fails the statements a running process keeps prepared that return it.)
    conn.batch_execute(
        "ALTER TABLE members ALTER COLUMN scim_user_name_key TYPE text COLLATE \"default\"",
    )
    .unwrap();
    drop((conn, pool));
    let before_the_start = db::connect(&database.url, 1).unwrap();
    let (_, read) = list(
        &mut before_the_start.get().unwrap(),
        "userName sw \"user1999@\"",
        "members",
    );
    assert!(
        read >= 2_000,
        "in the database's collation the range only filters ({read})"
    );
    drop(before_the_start);
    check(&mut database.migrated_pool(1).get().unwrap());
}

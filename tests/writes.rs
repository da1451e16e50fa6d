//! `db::Pool::write`: one transaction a change, on both databases; on SQLite through the one
//! writer connection, which must see what other connections commit, and its background
//! checkpoints.

mod common;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rstest::rstest;

use common::{Db, TestDatabase};
use scimd::db::{self, DbConn};
use scimd::error::Error;

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn counter(conn: &mut DbConn) -> Result<i64, Error> {
    Ok(diesel::sql_query("SELECT n FROM counter WHERE id = 1")
        .get_result::<Number>(conn)?
        .n)
}

fn bump(conn: &mut DbConn) -> Result<i64, Error> {
    diesel::sql_query("UPDATE counter SET n = n + 1 WHERE id = 1").execute(conn)?;
    counter(conn)
}

fn with_counter(db: Db) -> (TestDatabase, db::Pool) {
    let database = TestDatabase::new(db);
    let pool = db::connect(&database.url, 4).expect("database opens");
    pool.get()
        .unwrap()
        .batch_execute(
            "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
             INSERT INTO counter VALUES (1, 0);",
        )
        .unwrap();
    (database, pool)
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn concurrent_writes_each_commit_once_and_a_failed_one_leaves_nothing(#[case] db: Db) {
    let (_database, pool) = with_counter(db);
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for round in 0..25 {
                    pool.write(bump).expect("the write commits");
                    if (thread + round) % 5 == 0 {
                        let failed: Result<(), Error> = pool.write(|tx| {
                            bump(tx)?;
                            Err(Error::invalid("test", "this change is refused"))
                        });
                        assert!(failed.is_err());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 200);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_write_sees_what_another_pool_committed(#[case] db: Db) {
    // Two pools on one database, as two scimd processes would have: each write must start
    // from the other's last commit, whatever its connection kept in its cache.
    let (database, first) = with_counter(db);
    let second = db::connect(&database.url, 2).expect("database opens");
    for round in 0..20 {
        let (writer, other) = if round % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        assert_eq!(writer.write(bump).unwrap(), 2 * round + 1);
        assert_eq!(other.write(bump).unwrap(), 2 * round + 2);
    }
    // A plain pooled connection writing behind the writer's back is seen too.
    db::write(&mut first.get().unwrap(), bump).unwrap();
    assert_eq!(first.write(bump).unwrap(), 42);
}

type Change = fn(&mut DbConn) -> Result<i64, Error>;

/// Runs `changes` each on its own thread while a slow change holds the writer, so that on
/// SQLite they queue and are committed as one group; returns their outcomes in order, after
/// checking that the slow change committed first.
fn queued_behind_a_slow_change(pool: &db::Pool, changes: Vec<Change>) -> Vec<Result<i64, Error>> {
    let slow = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.write(|tx| {
                let n = bump(tx)?;
                std::thread::sleep(Duration::from_millis(300));
                Ok(n)
            })
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let waiting: Vec<_> = changes
        .into_iter()
        .map(|change| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.write(change))
        })
        .collect();
    assert_eq!(slow.join().unwrap().unwrap(), 1);
    waiting
        .into_iter()
        .map(|thread| {
            thread
                .join()
                .expect("a panicking change fails, not its caller")
        })
        .collect()
}

/// Changes that bump the counter and then fail: refused (400), breaking a unique index
/// (409), panicking (500).
const FAILING: [(&str, Change); 3] = [
    ("refused", |tx| {
        bump(tx)?;
        Err(Error::invalid("test", "refused"))
    }),
    ("duplicate", |tx| {
        bump(tx)?;
        diesel::sql_query("INSERT INTO counter VALUES (1, 0)").execute(tx)?;
        Ok(0)
    }),
    ("panics", |tx| {
        bump(tx)?;
        panic!("a change that panics");
    }),
];

/// Checks that the change `name` (`bump`, or one of [`FAILING`]) got its own outcome.
fn assert_own_outcome(name: &str, outcome: &Result<i64, Error>) {
    match name {
        "bump" => assert!(outcome.is_ok(), "{name}: {outcome:?}"),
        "refused" => assert!(matches!(outcome, Err(Error::Invalid { .. })), "{outcome:?}"),
        "duplicate" => assert!(
            matches!(outcome, Err(Error::Conflict { .. })),
            "{outcome:?}"
        ),
        _ => assert!(
            matches!(outcome, Err(Error::Internal(_))),
            "{name}: {outcome:?}"
        ),
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn changes_that_wait_together_succeed_or_fail_each_alone(#[case] db: Db) {
    // While one slow change holds the writer, six more queue and are then committed as one
    // group on SQLite: two succeed, one is refused, one breaks a unique index, one panics,
    // one succeeds after them. Each gets its own outcome; only the successes remain.
    let (_database, pool) = with_counter(db);
    let bumps: (&str, Change) = ("bump", bump);
    let changes = [bumps].into_iter().chain(FAILING).chain([bumps, bumps]);
    let (names, changes): (Vec<&str>, Vec<Change>) = changes.unzip();
    let outcomes = queued_behind_a_slow_change(&pool, changes);
    for (name, outcome) in names.into_iter().zip(outcomes) {
        assert_own_outcome(name, &outcome);
    }
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 4);
    assert_eq!(
        pool.write(bump).unwrap(),
        5,
        "the writer goes on after a panic"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_change_alone_fails_alone(#[case] db: Db) {
    // One write at a time: on SQLite each is a group of one, run in the group's transaction
    // without a savepoint. A failure still rolls back all it did and reaches its caller as
    // its own error, and the writer goes on.
    let (_database, pool) = with_counter(db);
    assert_eq!(pool.write(bump).unwrap(), 1);
    for (name, change) in FAILING {
        assert_own_outcome(name, &pool.write(change));
    }
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 1);
    assert_eq!(pool.write(bump).unwrap(), 2, "the writer goes on");
}

#[test]
fn a_change_whose_savepoint_cannot_be_rolled_back_takes_its_group_with_it() {
    // A change that ends its own savepoint and then fails cannot be undone alone: what it
    // wrote is part of the group's transaction. The group is rolled back whole, and every
    // change in it fails; nothing of it is committed.
    let (_database, pool) = with_counter(Db::Sqlite);
    let changes: Vec<Change> = vec![
        bump,
        |tx| {
            bump(tx)?;
            tx.batch_execute("RELEASE SAVEPOINT diesel_savepoint_1")?;
            Err(Error::invalid("test", "fails after ending its savepoint"))
        },
        bump,
    ];
    for outcome in queued_behind_a_slow_change(&pool, changes) {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 1);
    assert_eq!(pool.write(bump).unwrap(), 2, "the writer goes on");
}

/// A tokio runtime on the calling thread, as each actix worker has.
fn one_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn async_writes_leave_their_thread_free_and_each_get_their_own_outcome(#[case] db: Db) {
    // Every caller on one runtime thread, as the requests of an actix worker are. While a slow
    // write holds the writer, a timer on that thread still fires, and 40 more writes queue
    // (on SQLite, to be committed together): one in five fails, each with its own outcome.
    let (_database, pool) = with_counter(db);
    let runtime = one_thread_runtime();
    let write = |change: Change| {
        let pool = pool.clone();
        tokio::spawn(async move { pool.write_async(change, |_| {}).await })
    };
    let changes: Vec<(&str, Change)> = (0..40)
        .map(|i| match i % 5 {
            4 => FAILING[i / 5 % FAILING.len()],
            _ => ("bump", bump as Change),
        })
        .collect();
    runtime.block_on(async {
        let slow = write(|tx| {
            let n = bump(tx)?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(n)
        });
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            started.elapsed() < Duration::from_millis(250) && !slow.is_finished(),
            "the slow write held its caller's thread for {:?}",
            started.elapsed()
        );
        let queued: Vec<_> = changes.iter().map(|&(_, change)| write(change)).collect();
        assert_eq!(slow.await.unwrap().unwrap(), 1);
        for (&(name, _), task) in changes.iter().zip(queued) {
            assert_own_outcome(name, &task.await.expect("a failing change fails alone"));
        }
    });
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 33);
    assert_eq!(pool.write(bump).unwrap(), 34, "sync and async writes mix");
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_write_whose_caller_went_away_still_commits_and_says_so(#[case] db: Db) {
    // A request cancelled while its write runs (its client hung up) drops the future: the
    // write still commits whole, and what was to run on commit (waking readers of the event
    // feed) still runs.
    let (_database, pool) = with_counter(db);
    let runtime = one_thread_runtime();
    let (told, heard) = std::sync::mpsc::channel();
    runtime.block_on(async {
        let write = pool.write_async(
            |tx| {
                let n = bump(tx)?;
                std::thread::sleep(Duration::from_millis(200));
                Ok(n)
            },
            move |&n| told.send(n).unwrap(),
        );
        let waited = tokio::time::timeout(Duration::from_millis(50), write).await;
        assert!(waited.is_err(), "the caller gave up before the write ended");
    });
    assert_eq!(heard.recv_timeout(Duration::from_secs(10)), Ok(1));
    assert_eq!(db::read(&mut pool.get().unwrap(), counter).unwrap(), 1);
}

/// How many of this process's open files are the SQLite database at `path` or its WAL files.
fn open_files_of(path: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(path))
        .count()
}

#[test]
fn the_last_pool_dropped_closes_the_sqlite_database_and_its_writer() {
    // Each pool has its own writer thread (and checkpoint thread); a process that opens many
    // pools, as the tests do, must not keep their connections open.
    let (database, pool) = with_counter(Db::Sqlite);
    let copy = pool.clone();
    assert_eq!(pool.write(bump).unwrap(), 1);
    drop(pool);
    assert_eq!(copy.write(bump).unwrap(), 2, "a clone keeps the writer");
    assert!(open_files_of(&database.url) > 0);
    drop(copy);
    // The checkpoint thread notices at its next tick, a quarter of a second later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_files_of(&database.url) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} files of the database stayed open after its pool was dropped",
            open_files_of(&database.url)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn sqlite_pages_reach_the_database_file_without_a_checkpoint_in_the_commit() {
    // The writer's commits leave the WAL alone (below a backstop of 64 MiB); the background
    // thread copies it into the database file a quarter of a second later.
    let (database, pool) = with_counter(Db::Sqlite);
    let size = || std::fs::metadata(&database.url).unwrap().len();
    pool.write(|tx| {
        tx.batch_execute("CREATE TABLE filler (body BLOB)")?;
        Ok(())
    })
    .unwrap();
    let before = size();
    for _ in 0..20 {
        pool.write(|tx| {
            tx.batch_execute("INSERT INTO filler VALUES (randomblob(16384))")?;
            Ok(())
        })
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 20 * 16384 {
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {} bytes ({before} before 320 KiB were written)",
            size()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The pool is still open: it was not a last connection closing that checkpointed.
    assert_eq!(pool.write(bump).unwrap(), 1);
}

/// Tells threads to stop when dropped, also when the test fails.
#[derive(Default)]
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many times SQLite has started the WAL at `path` over (its header's checkpoint
/// sequence number).
fn wal_restarts(path: &str) -> u32 {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut wal| wal.read_exact(&mut header))
        .map_or(0, |()| {
            u32::from_be_bytes([header[12], header[13], header[14], header[15]])
        })
}

#[test]
fn under_steady_writes_and_reads_the_sqlite_wal_starts_over_before_its_backstop() {
    // SQLite starts the WAL over only at a write that finds all of it copied into the
    // database. The checkpoint thread alone never gets there while writes go on, so the WAL
    // grew to the writer's 64 MiB backstop; now the writer copies the last frames itself.
    let (database, pool) = with_counter(Db::Sqlite);
    pool.write(|tx| {
        tx.batch_execute("CREATE TABLE filler (body BLOB)")?;
        Ok(())
    })
    .unwrap();
    // The checkpoint thread syncs the database file through SQLite's own handle.
    pool.get()
        .unwrap()
        .batch_execute("SELECT scimd_sync_database_file()")
        .expect("every SQLite connection can sync its database file");
    let wal = format!("{}-wal", database.url);
    let stop = StopOnDrop::default();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.0.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db::read(&mut pool.get().unwrap(), counter).unwrap();
                }
            })
        })
        .collect();
    // Until the WAL has started over three times: without the writer's help the first time
    // is at the backstop, 16,384 frames of 4,120 bytes (64.4 MiB). A start-over that a reader
    // prevents is tried again a quarter of a second later.
    let before = wal_restarts(&wal);
    let mut writes = 0;
    while wal_restarts(&wal) - before < 3 {
        let size = std::fs::metadata(&wal).map_or(0, |wal| wal.len());
        assert!(
            size < 62 << 20 && writes < 50_000,
            "the WAL grew to {size} bytes in {writes} writes, having started over {} times",
            wal_restarts(&wal) - before
        );
        // At most 2,000 writes a second, so that the checkpoint thread's passes, every
        // quarter of a second, are some 10,000 frames apart at most.
        for write in 0..100 {
            pool.write(|tx| {
                tx.batch_execute("INSERT INTO filler VALUES (randomblob(3000))")?;
                Ok(())
            })
            .unwrap();
            if write % 2 == 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writes += 100;
    }
    drop(stop);
    for reader in readers {
        reader.join().unwrap();
    }
}

/// The statements diesel newly kept prepared on a connection (its `CacheQuery` events).
#[derive(Clone, Default)]
struct Kept(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl diesel::connection::Instrumentation for Kept {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
            self.0.lock().unwrap().push(sql.to_string());
        }
    }
}

impl Kept {
    /// How many kept statements number or insert an event, since the last call.
    fn event_statements(&self) -> usize {
        let kept = std::mem::take(&mut *self.0.lock().unwrap());
        kept.iter()
            .filter(|sql| {
                let counter = sql.starts_with("UPDATE")
                    && (sql.contains("event_sequence") || sql.contains("last_position"));
                let insert = sql.replace('`', "\"").starts_with("INSERT INTO \"events\"");
                counter || insert || sql.starts_with("WITH numbered")
            })
            .count()
    }
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn an_event_is_numbered_and_written_by_statements_kept_prepared_or_sent_with_the_commit(
    #[case] db: Db,
) {
    use scimd::db::schema::event_log;
    use scimd::domain::{organizations, Actor};

    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let kept = Kept::default();
    conn.set_instrumentation(kept.clone());

    // diesel prepares every UPDATE afresh and keeps none ...
    for _ in 0..2 {
        diesel::update(event_log::table.find(1))
            .set(event_log::last_position.eq(event_log::last_position))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_eq!(kept.event_statements(), 0);

    // ... but on SQLite the counters that number an event (the organization's sequence, the
    // feed's position) and its INSERT are prepared once, at the connection's first event (here
    // the organization's creation), and reused. On PostgreSQL a change's events are numbered
    // and inserted by a call of a PL/pgSQL function sent with the COMMIT, its values in its
    // text: nothing is kept here (the function keeps its own plan).
    let fields = organizations::OrganizationFields {
        organization_name: Some("Prepared".into()),
        organization_slug: Some("prepared".into()),
        ..Default::default()
    };
    let organization = db::write(&mut conn, |tx| {
        organizations::create(tx, &Actor::cli(), fields)
    })
    .unwrap();
    let at_first_event = match db {
        Db::Sqlite => 3,
        Db::Postgres => 0,
    };
    assert_eq!(kept.event_statements(), at_first_event);
    // An event written early (`record_now`), which must return its place in the feed, is
    // numbered by the same statement with bound values on PostgreSQL, kept from its first use.
    let record = |conn: &mut DbConn| {
        db::write(conn, |tx| {
            let organization_id = &organization.organization_id;
            record_now(tx, organization_id, organization_id)
        })
        .unwrap()
    };
    let first = record(&mut conn);
    assert_eq!(kept.event_statements(), 1 - at_first_event.min(1));
    let second = record(&mut conn);
    assert_eq!(kept.event_statements(), 0, "reused by the next events");
    assert_eq!(first.sequence, 2, "the creation's event is the first");
    assert_eq!(second.sequence, first.sequence + 1);
    assert!(second.log_position > first.log_position);
}

/// An organization created for the event tests below, and a way to record one event for it.
fn organization_named(conn: &mut DbConn, slug: &str) -> String {
    use scimd::domain::{organizations, Actor};

    let fields = organizations::OrganizationFields {
        organization_name: Some(slug.into()),
        organization_slug: Some(slug.into()),
        ..Default::default()
    };
    db::write(conn, |tx| organizations::create(tx, &Actor::cli(), fields))
        .unwrap()
        .organization_id
}

/// The event the tests below record: `organization.updated`, about `subject_id`.
fn updated(subject_id: &str) -> scimd::domain::events::Event<'_> {
    scimd::domain::events::Event {
        event_type: "organization.updated",
        subject_id,
        data: serde_json::json!({}),
        previous: None,
    }
}

fn record(organization_id: &str, subject_id: &str) -> Result<(), Error> {
    let actor = scimd::domain::Actor::cli();
    scimd::domain::events::record(organization_id, &actor, updated(subject_id))
}

/// `record`, written at once (`events::record_now`): its place in the feed.
fn record_now(
    conn: &mut DbConn,
    organization_id: &str,
    subject_id: &str,
) -> Result<scimd::domain::events::FeedCursor, Error> {
    let actor = scimd::domain::Actor::cli();
    scimd::domain::events::record_now(conn, organization_id, &actor, updated(subject_id))
}

/// (organization, sequence, subject) of every event after the organizations' creation, from
/// the table (the feed holds back events while other tests' transactions run on PostgreSQL).
fn recorded_events(conn: &mut DbConn) -> Vec<(String, i64, String)> {
    use scimd::db::schema::events;

    events::table
        .filter(events::event_type.eq("organization.updated"))
        .select((
            events::organization_id,
            events::sequence,
            events::subject_id,
        ))
        .load(conn)
        .unwrap()
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_change_s_events_are_written_with_it_or_not_at_all(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let first = organization_named(&mut conn, "first");
    let second = organization_named(&mut conn, "second");

    // One write records for both organizations, interleaved, and undoes part of its work:
    // what its rolled-back savepoint recorded goes with it; each organization's events take
    // its next numbers, in the order they were recorded.
    db::write(&mut conn, |tx| {
        record(&second, "b1")?;
        record(&first, "a1")?;
        let undone: Result<(), Error> = db::savepoint(tx, |_| {
            record(&first, "undone")?;
            Err(Error::invalid("undone", "rolled back to its savepoint"))
        });
        assert!(undone.is_err());
        db::savepoint(tx, |_| record(&second, "b2"))?;
        record(&first, "a2")
    })
    .unwrap();
    // A write that fails after recording leaves no event and uses up no number.
    let failed: Result<(), Error> = db::write(&mut conn, |_| {
        record(&first, "failed")?;
        Err(Error::invalid("failed", "the whole write fails"))
    });
    assert!(failed.is_err());
    db::write(&mut conn, |_| record(&first, "a3")).unwrap();

    let mut recorded = recorded_events(&mut conn);
    recorded.sort();
    let (a, b) = (first.clone(), second.clone());
    let mut expected: Vec<(String, i64, String)> = vec![
        (a.clone(), 2, "a1".into()),
        (a.clone(), 3, "a2".into()),
        (a, 4, "a3".into()),
        (b.clone(), 2, "b1".into()),
        (b, 3, "b2".into()),
    ];
    expected.sort();
    assert_eq!(
        recorded, expected,
        "sequence 1 is each organization's creation"
    );
}

#[test]
fn an_event_recorded_outside_a_write_is_refused() {
    let refused = record("organization_none", "nowhere").unwrap_err();
    assert!(
        format!("{refused:?}").contains("outside a write"),
        "{refused:?}"
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn an_event_written_early_behind_a_savepoint_is_refused(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "early");
    let refused = db::write(&mut conn, |tx| {
        record(&organization, "pending")?;
        db::savepoint(tx, |tx| record_now(tx, &organization, "early"))
    })
    .unwrap_err();
    assert!(
        format!("{refused:?}").contains("behind a savepoint"),
        "{refused:?}"
    );
    assert_eq!(recorded_events(&mut conn), vec![]);
    // Outside one, it writes what waited before it too, in order.
    let cursor = db::write(&mut conn, |tx| {
        record(&organization, "pending")?;
        record_now(tx, &organization, "early")
    })
    .unwrap();
    assert_eq!(cursor.sequence, 3);
    let mut recorded = recorded_events(&mut conn);
    recorded.sort();
    assert_eq!(
        recorded,
        vec![
            (organization.clone(), 2, "pending".to_string()),
            (organization, 3, "early".to_string())
        ]
    );
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_savepoint_outside_a_write_is_refused(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "outside");
    // Its events would wait on the thread for some later, unrelated write.
    let refused = db::savepoint(&mut conn, |_| record(&organization, "stray")).unwrap_err();
    assert!(
        format!("{refused:?}").contains("outside a write"),
        "{refused:?}"
    );
    db::write(&mut conn, |_| record(&organization, "own")).unwrap();
    let subjects: Vec<String> = recorded_events(&mut conn)
        .into_iter()
        .map(|(_, _, subject)| subject)
        .collect();
    assert_eq!(subjects, ["own"]);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn event_values_are_written_exactly_whatever_characters_they_hold(#[case] db: Db) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use scimd::db::schema::events;

    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "characters");
    // On PostgreSQL an event's values go into the text of the statement sent with the
    // COMMIT: quotes, backslashes, escapes of every kind must come back as they went in.
    let known = [
        "'",
        "\\",
        "\\'",
        "''",
        "E'\\x41'",
        "$$",
        "'); DROP TABLE events; --",
        "\\0 \\u0041 \\n",
        "line\nbreak\ttab\r",
        "ünïcødé ✓ 𝔘",
        "\u{1}\u{7f}",
    ];
    let conn = std::cell::RefCell::new(conn);
    let written_back = |subject: &str| -> Result<(), TestCaseError> {
        let mut conn = conn.borrow_mut();
        db::write(&mut conn, |_| record(&organization, subject)).unwrap();
        let written: String = events::table
            .filter(events::organization_id.eq(&organization))
            .order(events::sequence.desc())
            .select(events::subject_id)
            .first(&mut **conn)
            .unwrap();
        prop_assert_eq!(written.as_str(), subject);
        Ok(())
    };
    for subject in known {
        written_back(subject).unwrap();
    }
    let any_text = any::<String>().prop_filter("NUL cannot be sent", |text| !text.contains('\0'));
    TestRunner::new(Config::with_cases(64))
        .run(&any_text, |subject| written_back(&subject))
        .unwrap();
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_value_with_a_nul_fails_its_write_alone(#[case] db: Db) {
    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "nul");
    // Neither database stores NUL in text; the write fails whole, and the connection is
    // left usable for the next.
    let failed = db::write(&mut conn, |_| record(&organization, "before\0after"));
    assert!(failed.is_err() || db == Db::Sqlite, "{failed:?}");
    db::write(&mut conn, |_| record(&organization, "next")).unwrap();
    let subjects: Vec<String> = recorded_events(&mut conn)
        .into_iter()
        .map(|(_, _, subject)| subject)
        .filter(|subject| !subject.starts_with("before"))
        .collect();
    assert_eq!(subjects, ["next"]);
}

#[test]
fn a_commit_that_fails_takes_the_change_and_its_events_with_it() {
    // Only PostgreSQL can refuse a COMMIT: here a deferred trigger, checked at commit time,
    // rejects a counter above 1. The commit is sent with the events' statement.
    let (database, pool) = with_counter(Db::Postgres);
    drop(pool);
    let pool = database.migrated_pool(2);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "refused");
    conn.batch_execute(
        "CREATE FUNCTION refuse_above_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.n > 1 THEN RAISE EXCEPTION 'counter above one'; END IF;
             RETURN NEW;
         END $$;
         CREATE CONSTRAINT TRIGGER at_commit AFTER UPDATE ON counter
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_above_one();",
    )
    .unwrap();
    let change = |conn: &mut DbConn| {
        record(&organization, "counted")?;
        bump(conn)
    };
    assert_eq!(db::write(&mut conn, change).unwrap(), 1);
    let refused = db::write(&mut conn, change).unwrap_err();
    assert!(
        format!("{refused:?}").contains("counter above one"),
        "{refused:?}"
    );
    // Nothing of the refused write remains: neither its change nor its event.
    assert_eq!(counter(&mut conn).unwrap(), 1);
    let subjects: Vec<String> = recorded_events(&mut conn)
        .into_iter()
        .map(|(_, _, subject)| subject)
        .collect();
    assert_eq!(subjects, ["counted"]);
    // The connection came back out of the transaction: the next write runs, and commits.
    diesel::sql_query("DROP TRIGGER at_commit ON counter")
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(db::write(&mut conn, change).unwrap(), 2);
    drop(conn);
    let mut other = pool.get().unwrap();
    assert_eq!(counter(&mut other).unwrap(), 2);
}

#[rstest]
#[case::sqlite(Db::Sqlite)]
#[case::postgres(Db::Postgres)]
fn a_change_with_many_events_binds_them_instead_of_writing_them_out(#[case] db: Db) {
    use scimd::domain::events::EVENTS_SENT_WITH_THE_COMMIT;

    let database = TestDatabase::new(db);
    let pool = database.migrated_pool(1);
    let mut conn = pool.get().unwrap();
    let organization = organization_named(&mut conn, "many");
    let kept = Kept::default();
    conn.set_instrumentation(kept.clone());
    let record_several = |conn: &mut DbConn, count: usize, prefix: &str| {
        db::write(conn, |_| {
            (0..count).try_for_each(|n| record(&organization, &format!("{prefix}{n:03}")))
        })
        .unwrap();
    };
    // As many as go with the COMMIT on PostgreSQL: in its text, nothing kept ...
    record_several(&mut conn, EVENTS_SENT_WITH_THE_COMMIT, "a");
    let at_most = kept.event_statements();
    // ... one more, and they are bound, by the statement kept prepared.
    record_several(&mut conn, EVENTS_SENT_WITH_THE_COMMIT + 1, "b");
    let beyond = kept.event_statements();
    if db == Db::Postgres {
        assert_eq!((at_most, beyond), (0, 1));
    }
    // Either way every event is written, numbered in the order it was recorded.
    let mut recorded = recorded_events(&mut conn);
    recorded.sort_by_key(|(_, sequence, _)| *sequence);
    let subjects: Vec<String> = recorded.into_iter().map(|(_, _, s)| s).collect();
    let expected: Vec<String> = (0..EVENTS_SENT_WITH_THE_COMMIT)
        .map(|n| format!("a{n:03}"))
        .chain((0..=EVENTS_SENT_WITH_THE_COMMIT).map(|n| format!("b{n:03}")))
        .collect();
    assert_eq!(subjects, expected);
}

//! The database: one connection type over SQLite and PostgreSQL, its pool, the embedded
//! migrations, and the write transaction every change goes through.

pub mod schema;
mod writer;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::domain::events::Outbox;
use crate::error::Error;
use writer::Writer;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Every query in scimd is written once against this type and runs on either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// The connections of one database. On SQLite every write of this process that goes through
/// [`Pool::write`] runs on one connection kept for it, on its own thread, several at a time
/// (`writer.rs`).
#[derive(Clone)]
pub struct Pool {
    connections: diesel::r2d2::Pool<Manager>,
    writer: Option<Arc<Writer>>,
}

impl Pool {
    /// A connection for reading, or for a write through [`write`].
    pub fn get(&self) -> Result<diesel::r2d2::PooledConnection<Manager>, diesel::r2d2::PoolError> {
        self.connections.get()
    }

    /// Runs `change` as one atomic write, as [`write`] does: it takes effect whole when this
    /// returns `Ok`, and not at all when it returns `Err`. On SQLite it runs on the writer
    /// thread, in one transaction with the changes other callers asked for meanwhile, each
    /// behind its own savepoint; this thread waits for it.
    pub fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        match &self.writer {
            Some(writer) => writer.write(change),
            None => panic_as_error(|| write(&mut *self.get()?, change)),
        }
    }

    /// [`Pool::write`] for async callers, which it never blocks: on SQLite the change is
    /// queued for the writer thread, on PostgreSQL it runs on tokio's blocking pool. It is
    /// queued when the future is first polled; a future dropped after that loses only the
    /// outcome, never half of the write. `committed` runs with the change's value once the
    /// write has committed, whether or not anyone still awaits it.
    ///
    /// # Panics
    ///
    /// On PostgreSQL, when polled outside a tokio runtime (actix's is one).
    pub async fn write_async<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T, Error> {
        match &self.writer {
            Some(writer) => writer.write_async(change, committed).await,
            None => {
                let pool = self.clone();
                tokio::task::spawn_blocking(move || {
                    let written = pool.write(change);
                    if let Ok(value) = &written {
                        committed(value);
                    }
                    written
                })
                .await
                .unwrap_or_else(|_| Err(Error::internal("a write was cancelled")))
            }
        }
    }
}

/// Runs `$body` with `$inner` bound to the backend's own connection, for the few statements
/// the multi-backend cannot express (multi-row `INSERT … VALUES`). `$body` is written once and
/// compiled for each backend.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($inner) => $body,
            $crate::db::DbConn::Sqlite($inner) => $body,
        }
    };
}

/// A statement whose SQL is the same every time it runs, kept prepared on its connection.
///
/// diesel prepares every `UPDATE` afresh, since a changeset's `SET` list can vary with its
/// values, and so does any statement with an `IN` list. For a statement whose SQL is fixed
/// (every value a bind parameter, no optional column, no list) that preparing is wasted:
/// 2.1% of the server's CPU under `patch` went to the two counter updates that numbered an
/// event. The cache is keyed by the statement's text, so wrapping a statement
/// whose SQL did vary would still be correct, but would keep one prepared statement per
/// variant for the connection's life: wrap only fixed ones.
///
/// Run it with a method that returns rows (`get_result`, `load`; add a `RETURNING` to an
/// `INSERT`): `execute` hands diesel's statement cache a reference, and a reference's
/// `QueryFragment` forwards `walk_ast` but not `is_safe_to_cache_prepared`, so the statement
/// would be prepared afresh after all (diesel 2.3).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

/// A statement planned afresh at every execution, with the values bound to it.
///
/// PostgreSQL keeps diesel's prepared statements, and after five executions may switch one to
/// a generic plan, made without the values and by the table's size at that moment: a
/// `group_id = $1 AND member_id = ANY($2)` prepared while a group was small went on reading
/// every row of the group (7 ms at 60,000 members, against 0.07 ms for an index probe),
/// until statistics change. Wrap a statement with an `ANY` (or `IN`) list whose best plan
/// depends on the list and on the table's size. Run it with a method that returns rows (see
/// `Prepared`). SQLite plans `IN` lists afresh anyway.
#[derive(Debug, Clone, Copy)]
pub struct Replanned<Q>(pub Q);

/// [`Prepared`] when its flag says so, else a statement diesel decides for by its parts (an
/// SQL literal among them: prepared afresh every time). For a statement whose text varies
/// with its input, kept prepared only while its shapes stay few.
#[derive(Debug, Clone, Copy)]
pub struct PreparedIf<Q>(pub Q, pub bool);

/// A wrapper (its statement in `.0`) that answers diesel's "may this statement be kept
/// prepared?" itself (`$keep`, given the wrapper and the backend), and so is keyed by its SQL
/// text in the statement cache (the only safe key for a statement diesel itself would not
/// cache).
macro_rules! planning {
    ($wrapper:ident, |$this:ident, $backend:ident| $keep:expr) => {
        impl<Q: QueryFragment<DB>, DB: diesel::backend::Backend> QueryFragment<DB> for $wrapper<Q> {
            fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
                self.0.walk_ast(pass)
            }

            fn is_safe_to_cache_prepared(&self, $backend: &DB) -> diesel::QueryResult<bool> {
                let $this = self;
                $keep
            }
        }

        impl<Q> QueryId for $wrapper<Q> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<Q: Query> Query for $wrapper<Q> {
            type SqlType = Q::SqlType;
        }

        impl<Q, Conn> diesel::RunQueryDsl<Conn> for $wrapper<Q> {}
    };
}
planning!(Prepared, |_this, _backend| Ok(true));
planning!(Replanned, |_this, _backend| Ok(false));
planning!(PreparedIf, |this, backend| match this.1 {
    true => Ok(true),
    false => this.0.is_safe_to_cache_prepared(backend),
});

/// Writes sent to PostgreSQL as one statement, `WITH w0 AS (…), w1 AS (…) main`: one round
/// trip where there were one each.
///
/// Each of `before` must be a data-modifying statement (`INSERT`, `UPDATE`, `DELETE`).
/// PostgreSQL runs every one to completion, all in one snapshot: none sees the rows another
/// writes, so they must not depend on each other's effects. Foreign keys are checked once all
/// are done, so a row may refer to one that `main` inserts. They are named `w0`, `w1`, … in
/// order: `main` may read the rows one returns by that name. An error of any fails the whole
/// statement, and its transaction. Whether it is kept prepared is decided by its parts
/// (wrap it in `Prepared` when its text is fixed); it returns what `main` returns.
pub struct Together<'a, M> {
    pub before: Vec<Box<dyn QueryFragment<diesel::pg::Pg> + 'a>>,
    pub main: M,
}

impl<M: QueryFragment<diesel::pg::Pg>> QueryFragment<diesel::pg::Pg> for Together<'_, M> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
        for (n, statement) in self.before.iter().enumerate() {
            out.push_sql(if n == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("w{n} AS ("));
            statement.walk_ast(out.reborrow())?;
            out.push_sql(") ");
        }
        self.main.walk_ast(out)
    }
}

impl<M> QueryId for Together<'_, M> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M: Query> Query for Together<'_, M> {
    type SqlType = M::SqlType;
}

impl<M> diesel::RunQueryDsl<PgConnection> for Together<'_, M> {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Opens connections of the backend the URL names. Unlike the derive's own `establish`,
/// a PostgreSQL URL that fails never falls through to creating a SQLite file of that name.
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    url: String,
}

impl Manager {
    /// `postgres://` or `postgresql://` selects PostgreSQL; anything else is a SQLite path,
    /// with or without a `sqlite://` prefix.
    pub fn new(database_url: &str) -> Self {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Manager {
                backend: Backend::Postgres,
                url: database_url.to_string(),
            }
        } else {
            let path = database_url
                .strip_prefix("sqlite://")
                .unwrap_or(database_url);
            Manager {
                backend: Backend::Sqlite,
                url: path.to_string(),
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url)
                .map(DbConn::Postgres)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                plan_without_bound_values();
                writer::offer_database_sync();
                let mut conn = SqliteConnection::establish(&self.url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; synchronous=NORMAL is durable
                // across process crashes in WAL mode (README: Durability). The busy timeout
                // makes a writer wait for the lock instead of failing.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for
/// every SQLite connection this process opens, before the first one is.
///
/// Without it SQLite 3.50 plans a statement by the values bound to it: a `LIMIT ?` (every
/// diesel `first()` and keyset page), a compared column with STAT4 samples, a `LIKE ?`. It
/// then marks the prepared statement to be compiled again whenever that parameter is bound,
/// which a cached statement is at every execution: under callgrind, 2.6 recompilations and
/// 16% of the instructions of each Entra-style PATCH, `scim_users::get` alone costing
/// 360,000 instructions. Our plans depend on the shape of a query and the statistics, not
/// on its values, so the cache now works as intended. Diesel gives no handle to a
/// connection, so the setting is made by an auto-extension, which SQLite calls with each
/// connection as it opens.
fn plan_without_bound_values() {
    use libsqlite3_sys as ffi;
    use std::os::raw::{c_char, c_int};

    unsafe extern "C" fn enable_qpsg(
        db: *mut ffi::sqlite3,
        _error: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        // SAFETY: SQLite calls this with the connection it is opening; the setting takes an
        // int (1: on) and an optional int pointer for the value read back (none).
        let outcome = unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as c_int,
                std::ptr::null_mut::<c_int>(),
            )
        };
        if outcome != ffi::SQLITE_OK {
            log::warn!("SQLite refused the query planner stability guarantee (code {outcome})");
        }
        // An auto-extension that fails makes the connection fail to open; this one is only
        // an optimisation.
        ffi::SQLITE_OK
    }

    static REGISTER: std::sync::Once = std::sync::Once::new();
    on_every_sqlite_connection(&REGISTER, enable_qpsg, "sets QPSG");
}

/// What SQLite calls with each connection it opens (`sqlite3_auto_extension`).
type AutoExtension = unsafe extern "C" fn(
    *mut libsqlite3_sys::sqlite3,
    *mut *mut std::os::raw::c_char,
    *const libsqlite3_sys::sqlite3_api_routines,
) -> std::os::raw::c_int;

/// Has SQLite call `extension` with every connection this process opens from now on; `once`
/// makes that happen once a process. `what` says what it does, for the log.
fn on_every_sqlite_connection(
    once: &'static std::sync::Once,
    extension: AutoExtension,
    what: &str,
) {
    once.call_once(|| {
        // SAFETY: registers a function with the signature SQLite expects; it stays valid
        // for the life of the process (a plain function).
        let outcome = unsafe { libsqlite3_sys::sqlite3_auto_extension(Some(extension)) };
        if outcome != libsqlite3_sys::SQLITE_OK {
            log::warn!("SQLite refused the auto-extension that {what} (code {outcome})");
        }
    });
}

/// Builds the pool and checks that the database answers.
pub fn connect(database_url: &str, max_size: u32) -> Result<Pool, Error> {
    let manager = Manager::new(database_url);
    let writer = match manager.backend {
        Backend::Sqlite => Some(Writer::start(manager.clone())?),
        Backend::Postgres => None,
    };
    // SQLite takes one writer at a time; more connections only help readers.
    let connections = diesel::r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .test_on_check_out(false)
        .build(manager)
        .map_err(|error| Error::Unavailable(format!("cannot open {database_url}: {error}")))?;
    Ok(Pool {
        connections,
        writer,
    })
}

/// Applies the embedded migrations that have not run yet, and fills what they add for the
/// rows stored before them. Several processes may start at once against one PostgreSQL: an
/// advisory lock lets one migrate while the others wait.
pub fn migrate(conn: &mut DbConn) -> Result<Vec<String>, Error> {
    if let DbConn::Postgres(pg) = conn {
        pg.batch_execute("SELECT pg_advisory_lock(7362836150)")?;
    }
    let applied = apply_migrations(conn);
    if let DbConn::Postgres(pg) = conn {
        pg.batch_execute("SELECT pg_advisory_unlock(7362836150)")?;
    }
    applied
}

/// The text columns SCIM filters range over by code point: `sw` is a range beside its `LIKE`
/// (`filter_sql::prefix_range`), which only an index in code point order can answer. SQLite
/// compares text by code point (BINARY); PostgreSQL in the database's collation, which need
/// not (`en_US.UTF-8`, ICU's; PostgreSQL 15 does not even take `C.UTF-8` for code point
/// order), so on PostgreSQL these columns are kept in the "C" collation. Without it, `sw`
/// read every key of the connection (47 ms at 200,000 users; 1.7 ms in "C"). Equality is the
/// same in every deterministic collation: uniqueness and lookups do not change. The order of
/// a user's `groups` (by display name key) becomes SQLite's.
const CODE_POINT_COLUMNS: [(&str, &str); 8] = [
    ("members", "scim_user_name_key"),
    ("members", "scim_external_id"),
    ("members", "scim_display_name_key"),
    ("members", "scim_given_name_key"),
    ("members", "scim_family_name_key"),
    ("member_emails", "value_key"),
    ("scim_groups", "display_name_key"),
    ("scim_groups", "external_id"),
];

/// Puts the `CODE_POINT_COLUMNS` not yet in the "C" collation in it, a table at a time; at
/// every start, so that a column a later migration recreates is put back. PostgreSQL rebuilds
/// the indexes on each column it changes (about 3 s for 200,000 users, once), holding the
/// table meanwhile; the table's rows are not rewritten.
fn code_point_columns(pg: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::sql_types::{Array, Text};
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let (tables, columns): (Vec<&str>, Vec<&str>) = CODE_POINT_COLUMNS.into_iter().unzip();
    let other: Vec<Column> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT wanted.table_name, wanted.column_name \
             FROM unnest($1, $2) AS wanted (table_name, column_name) \
             JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(wanted.table_name)) \
                 AND a.attname = wanted.column_name \
             JOIN pg_collation c ON c.oid = a.attcollation \
             WHERE c.collname <> 'C' \
             ORDER BY wanted.table_name",
        )
        .bind::<Array<Text>, _>(tables)
        .bind::<Array<Text>, _>(columns),
        pg,
    )?;
    for of_one in other.chunk_by(|a, b| a.table_name == b.table_name) {
        let changes: Vec<String> = of_one
            .iter()
            .map(|column| {
                format!(
                    "ALTER COLUMN {} TYPE text COLLATE \"C\"",
                    column.column_name
                )
            })
            .collect();
        pg.batch_execute(&format!(
            "ALTER TABLE {} {}",
            of_one[0].table_name,
            changes.join(", ")
        ))?;
    }
    Ok(())
}

fn apply_migrations(conn: &mut DbConn) -> Result<Vec<String>, Error> {
    let applied: Result<Vec<String>, _> = match conn {
        DbConn::Postgres(pg) => pg
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect()),
        DbConn::Sqlite(sqlite) => sqlite
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect()),
    };
    let applied = applied.map_err(|error| Error::Internal(format!("migration failed: {error}")))?;
    if let DbConn::Postgres(pg) = conn {
        // What PostgreSQL has that `migrations/` (shared with SQLite) cannot say: the events'
        // numbering function, and the collation of the columns filters range over.
        pg.batch_execute(&crate::domain::events::numbering_function())?;
        code_point_columns(pg)?;
    }
    if applied.iter().any(|version| version == FILTER_COLUMNS) {
        index_stored_users(conn)?;
    }
    Ok(applied)
}

/// The migration that added the filter columns and `member_emails`.
const FILTER_COLUMNS: &str = "20261202000012";

/// Fills what migration 000012 added for the users stored before it, a transaction a batch.
/// It runs before anything serves from the database (under the advisory lock on PostgreSQL):
/// about a minute a million users.
fn index_stored_users(conn: &mut DbConn) -> Result<(), Error> {
    let mut after = String::new();
    while let Some(last) = write(conn, |tx| {
        crate::domain::members::index_stored_users(tx, &after)
    })? {
        after = last;
    }
    Ok(())
}

static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `change` in one write transaction: committed when it returns `Ok`, rolled back when
/// it returns `Err`. On SQLite the transaction takes the write lock at its start
/// (`BEGIN IMMEDIATE`), so two writers never both read and then fail to upgrade their lock.
/// Domain code takes `&mut DbConn` and never commits on its own.
pub fn write<T, E>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    // SQLite admits one writer at a time. Writers of this process queue on a mutex instead of
    // polling the file lock through the busy handler, whose sleeps made write latency spiky
    // under load (BENCHMARKS.md); the busy timeout still covers other processes.
    let _writer = match conn {
        DbConn::Sqlite(sqlite) => {
            let writer = SQLITE_WRITER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            writer
        }
        DbConn::Postgres(pg) => {
            AnsiTransactionManager::begin_transaction(pg)?;
            return run_to_commit(conn, change);
        }
    };
    run_to_end(conn, |tx| with_outbox(tx, change))
}

/// PostgreSQL's `write` once its transaction has begun: `change`, then its events and the
/// `COMMIT` sent as one (`Outbox::write_and_commit`). Numbering the events locks the
/// organization's row until the commit, so every other write of the organization waits from
/// that statement to the commit; with the `COMMIT` in a round trip of its own, that wait
/// included the time the `COMMIT` took to come back from this process, which under load was
/// as long as the commit itself (BENCHMARKS.md, "The commit sent with the events"). A panic or
/// an error rolls the transaction back, unless it ended already: a `COMMIT` that fails ends
/// its transaction too.
fn run_to_commit<T, E>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let outbox = Outbox::open();
        let value = change(&mut *conn)?;
        outbox.write_and_commit(&mut *conn)?;
        Ok(value)
    }));
    let rollback = |conn: &mut DbConn| {
        // diesel follows libpq's transaction status after every statement: once the
        // `COMMIT` ran, failed or not, it knows that no transaction is open.
        let DbConn::Postgres(pg) = conn else {
            return;
        };
        let open = AnsiTransactionManager::transaction_manager_status_mut(pg).transaction_depth();
        if !matches!(open, Ok(None)) {
            let _ = AnsiTransactionManager::rollback_transaction(pg);
        }
    };
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            rollback(conn);
            Err(error)
        }
        Err(panic) => {
            rollback(conn);
            resume_unwind(panic)
        }
    }
}

/// Runs `change`, then writes the events it recorded, as its last statement
/// (`events::Outbox`); discards them when it fails or panics.
fn with_outbox<T, E>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let outbox = Outbox::open();
    let value = change(conn)?;
    outbox.write(conn)?;
    Ok(value)
}

/// Runs `change` behind a savepoint of the open write: released when it returns `Ok`, rolled
/// back to when it returns `Err`, and the events it recorded with it. Domain code that may
/// undo part of its work calls this, never diesel's `transaction`.
pub fn savepoint<T>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, Error>,
) -> Result<T, Error> {
    // Outside a write, the events it kept would wait for some later, unrelated change.
    let outbox = Outbox::behind_savepoint()
        .ok_or_else(|| Error::internal("a savepoint was opened outside a write"))?;
    #[allow(clippy::disallowed_methods)] // this is the savepoint that keeps the outbox right
    let outcome = conn.transaction(change);
    if outcome.is_ok() {
        outbox.keep();
    }
    outcome
}

/// Runs `change` in the transaction (or savepoint) just begun, and ends it as [`finish`]
/// does. A panic rolls it back before it unwinds further, so that no connection goes back to
/// the pool inside a transaction.
fn run_to_end<T, E>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match catch_unwind(AssertUnwindSafe(|| change(&mut *conn))) {
        Ok(outcome) => finish(conn, outcome),
        Err(panic) => {
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            resume_unwind(panic)
        }
    }
}

/// `write`'s outcome, with a panic in it turned into an error: a change that panics fails
/// alone, whichever thread it ran on.
fn panic_as_error<T>(write: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(write))
        .unwrap_or_else(|_| Err(Error::internal("a write panicked")))
}

/// Commits the open transaction when `outcome` is `Ok`, rolls it back when it is `Err`.
fn finish<T, E>(conn: &mut DbConn, outcome: Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match outcome {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The work's error is the one worth reporting; a failed rollback leaves the
            // connection marked broken and the pool discards it.
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            Err(error)
        }
    }
}

/// Runs `query` in one read transaction, so that its several statements (a count and a page)
/// see one snapshot: PostgreSQL's default READ COMMITTED would let each see newer commits.
pub fn read<T, E>(
    conn: &mut DbConn,
    query: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConn::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction(sqlite)?,
        DbConn::Postgres(pg) => AnsiTransactionManager::begin_transaction_sql(
            pg,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    run_to_end(conn, query)
}

/// Refreshes the planner's statistics where nothing else does. SQLite's (`sqlite_stat1`):
/// without them SQLite takes an equality on an index's first column to match about ten rows,
/// so on a connection of 20,000 users it walked the listing index past all of them for
/// `emails.value eq` or `userName eq a or userName eq b` instead of using their indexes
/// (17 ms and 22 ms instead of under one, BENCHMARKS.md). `analysis_limit` samples each
/// index, so this costs milliseconds at a million rows; it runs under the write lock.
/// PostgreSQL's autovacuum keeps its own; where it is off ([`autovacuum_off`]) the tables
/// that grow are analyzed here.
pub fn refresh_statistics(conn: &mut DbConn) -> Result<(), Error> {
    match conn {
        DbConn::Sqlite(_) => write(conn, |tx| {
            tx.batch_execute("PRAGMA analysis_limit = 1000; ANALYZE;")
                .map_err(Error::from)
        }),
        DbConn::Postgres(_) => match autovacuum_off(conn)? {
            true => analyze_postgres(conn),
            false => Ok(()),
        },
    }
}

/// Whether PostgreSQL runs without autovacuum, which would keep the planner's statistics.
pub fn autovacuum_off(conn: &mut DbConn) -> Result<bool, Error> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    match conn {
        DbConn::Sqlite(_) => Ok(false),
        DbConn::Postgres(pg) => Ok(diesel::RunQueryDsl::get_result::<Setting>(
            diesel::sql_query("SELECT current_setting('autovacuum') AS setting"),
            pg,
        )?
        .setting
            == "off"),
    }
}

fn analyze_postgres(conn: &mut DbConn) -> Result<(), Error> {
    conn.batch_execute(
        "ANALYZE members, member_emails, events, scim_connections, scim_groups, group_members, \
         member_roles",
    )
    .map_err(Error::from)
}

/// Statistics after a bulk load (`import-users`), on either database: SQLite's as
/// [`refresh_statistics`] makes them, and on PostgreSQL an `ANALYZE` of the tables an import
/// fills. Autovacuum analyzes a table only after it notices the load, and until then the
/// planner takes the new rows for none: at 300,000 freshly imported users, each batch of a
/// filtered scan sorted 150,000 rows (524 ms instead of 1.3 ms) and `title co` did not finish
/// in two minutes.
pub fn refresh_statistics_after_load(conn: &mut DbConn) -> Result<(), Error> {
    match conn {
        DbConn::Sqlite(_) => refresh_statistics(conn),
        DbConn::Postgres(_) => analyze_postgres(conn),
    }
}

diesel::define_sql_function! {
    /// SQL `lower`. PostgreSQL folds all of Unicode, SQLite only ASCII: compare it with
    /// ASCII text, or accept the difference.
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Holds the row of `table` whose `key` columns have the values given until the write ends
/// (PostgreSQL `FOR NO KEY UPDATE`, the lock an UPDATE of it takes; a write on SQLite holds
/// the database's write lock from its start). A write that reads a row and writes it back
/// takes it first: two such writes at once then run one after the other, and the later no
/// longer writes back what the earlier changed (a lost update). `table` and the columns are
/// names from this code, never from input; the values are bound.
pub fn hold_row(conn: &mut DbConn, table: &str, key: &[(&str, &str)]) -> Result<(), Error> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    let condition: Vec<String> = key
        .iter()
        .zip(1..)
        .map(|((column, _), n)| format!("{column} = ${n}"))
        .collect();
    let statement = format!(
        "SELECT 1 FROM {table} WHERE {} FOR NO KEY UPDATE",
        condition.join(" AND ")
    );
    let mut query = diesel::sql_query(statement).into_boxed::<diesel::pg::Pg>();
    for (_, value) in key {
        query = query.bind::<diesel::sql_types::Text, _>(*value);
    }
    diesel::RunQueryDsl::execute(query, pg)?;
    Ok(())
}

/// `text` as a PostgreSQL escape string constant, `E'…'`, for a statement sent without bound
/// values: `batch_execute`, the only way diesel sends several statements in one round trip.
/// In such a constant a backslash escapes the character after it and a quote is written
/// twice; with those two escaped every other character stands for itself, whatever the
/// server's `standard_conforming_strings` (the client encoding is UTF-8, where no byte of
/// another character reads as `\` or `'`). A NUL cannot be sent at all: libpq takes the
/// statement as a C string, and diesel refuses it with an error before sending anything.
pub fn postgres_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 3);
    literal.push_str("E'");
    for character in text.chars() {
        match character {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("''"),
            other => literal.push(other),
        }
    }
    literal.push('\'');
    literal
}

/// A LIKE pattern (with `\` as its escape) matching text that contains `text` literally.
pub fn contains_pattern(text: &str) -> String {
    format!("%{}%", escape_like(text))
}

/// `text` with LIKE's wildcards and its escape (`\`) escaped: a pattern that matches it
/// literally.
pub fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

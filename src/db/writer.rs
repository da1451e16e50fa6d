//! SQLite's one writer: a connection kept for writing, group commit, and the thread that
//! checkpoints the WAL.
//!
//! SQLite admits one writer at a time, so a process gains nothing by writing on several
//! connections, and loses twice:
//!
//! - A connection drops its whole page cache when it begins a transaction after another
//!   connection committed. With writes spread over the pool every PATCH started cold: 69 page
//!   reads from the file (strace, 8 connections), 23 on the connection kept for writing.
//! - Every commit writes its own copy of the pages all writes share (the organization's event
//!   counter, the last page of the event table and of each of its indexes, the connection's
//!   user count) to the WAL, and takes the lock, syncs its WAL index and so on, once each.
//!
//! So one thread owns that connection, and the changes that wait while a transaction runs are
//! committed together: when one commits, the thread takes every waiting change (up to
//! [`GROUP`]), runs each behind its own savepoint in one transaction, commits, and hands each
//! its outcome. A change that fails is rolled back to its savepoint and fails alone; if the
//! commit fails, every change of the group fails and none took effect. A change alone in its
//! group runs in the transaction itself, which is rolled back if it fails. Each caller still
//! sees one atomic write that is durable when it returns.
//!
//! Callers queue their change on a channel and are answered on another, a request handler
//! without leaving its async worker. Before, each change went to the blocking pool, and the
//! caller that found no transaction running led the next group on its own thread: a PATCH
//! took 5.1 context switches, with every waiting thread woken at the end of each group.
//!
//! The writer's commits never checkpoint, below a backstop: a thread copies the WAL back into
//! the database every [`CHECKPOINT_EVERY`], while writers go on. Before, the commit that
//! crossed 1,000 WAL pages did it, through two `fsync`s, with every other writer queued behind
//! it. Once the WAL is long ([`RESTART_AT_FRAMES`]), that thread has the writer copy the few
//! frames committed since its pass, between two groups, so that the WAL can start over.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::Connection;

use super::{panic_as_error, with_outbox, write, DbConn, Manager};
use crate::error::Error;

/// How often the checkpoint thread copies committed pages back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer still checkpoints in its own commit once the WAL holds this many pages (64 MiB
/// of 4 KiB pages): should the checkpoint thread fall behind, the WAL stays bounded.
const CHECKPOINT_BACKSTOP_PAGES: u32 = 16_384;

/// The checkpoint thread asks the writer to finish its checkpoint once the WAL holds this many
/// frames (16 MiB).
///
/// SQLite starts the WAL over only at a write transaction that finds every frame of it copied
/// into the database, and with no reader left on an older snapshot. Under steady writes the
/// checkpoint thread never gets there: something is committed while it copies. So the WAL
/// grew to the backstop, about once a second under `mixed`, and the commit that crossed it
/// copied 16,384 frames with every write queued behind it: the 50-60 ms groups behind a write
/// p99 of 64 ms. The writer's own pass, between two groups, copies only what was committed
/// since the thread's last pass, and no frame is added while it runs. It also syncs the
/// database file, which SQLite does only at a checkpoint that copies the last frame: 4-15 ms
/// under `mixed`, every quarter of a second.
const RESTART_AT_FRAMES: i32 = 4_096;

/// The most changes one transaction commits together.
const GROUP: usize = 64;

/// The handle to the writer thread. Dropping it (with the last `Pool`) closes the queue: the
/// thread runs what is still queued, closes its connection and ends, and the drop waits for it.
pub(super) struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the writer thread and the checkpoint thread both use.
struct Shared {
    manager: Manager,
    /// Whether anything was committed since the last checkpoint.
    written: AtomicBool,
    /// Set by the checkpoint thread when the WAL should start over: the writer then copies
    /// the last pages itself, between two groups.
    finish_checkpoint: AtomicBool,
}

/// A change waiting for the writer. Run with the connection (or the reason there is none),
/// and told whether it is alone in its group, it returns its [`Reply`] and how it left the
/// group's transaction.
type Job = Box<dyn FnOnce(Result<&mut DbConn, &Error>, Alone) -> (Reply, Left) + Send>;

/// Whether a change is the only one of its group: then it needs no savepoint, for the
/// group's transaction is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Alone(bool);

/// How a change left the group's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// Ready for the next change, or for the commit: the change succeeded, or failed and
    /// was rolled back to its savepoint.
    Clean,
    /// The change was alone and failed: the transaction is rolled back for it.
    Failed,
    /// Its savepoint did not end as it should. The group is rolled back whole, for what the
    /// change did cannot be told apart.
    Unknown,
}

/// Tells a change's caller its outcome, once the group's is known.
type Reply = Box<dyn FnOnce(Group) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Committed,
    RolledBack,
    /// `COMMIT` failed: SQLite may still find the transaction in the WAL when it next opens
    /// the database.
    Unconfirmed,
}

impl Writer {
    /// The writer thread for the database `manager` opens, and its checkpoint thread.
    pub(super) fn start(manager: Manager) -> Result<Arc<Writer>, Error> {
        let shared = Arc::new(Shared {
            manager,
            written: AtomicBool::new(false),
            finish_checkpoint: AtomicBool::new(false),
        });
        let (jobs, queue) = channel();
        let running = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || running.serve(&queue))
            .map_err(|error| Error::Unavailable(format!("cannot start the writer: {error}")))?;
        let writer = Arc::new(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            shared,
        });
        let alive = Arc::downgrade(&writer);
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while_alive(&alive));
        if let Err(error) = spawned {
            log::warn!("no checkpoint thread ({error}); the WAL grows to the backstop");
        }
        Ok(writer)
    }

    /// Runs `change` on the writer thread and waits for its outcome, blocking this thread.
    pub(super) fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (answer, outcome) = sync_channel(1);
        self.submit(change, move |result| {
            // The caller waits for this; it never leaves before its answer.
            let _ = answer.send(result);
        });
        outcome.recv().unwrap_or_else(|_| Err(dropped()))
    }

    /// Queues `change` for the writer thread now, and resolves to its outcome: the caller's
    /// thread is free meanwhile, and is woken once, when the outcome is known. Dropping the
    /// future loses only the outcome: the change still runs, whole or not at all.
    pub(super) fn write_async<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> impl Future<Output = Result<T, Error>> + 'static {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        self.submit(change, move |result| {
            if let Ok(value) = &result {
                committed(value);
            }
            // A caller that went away (its request was cancelled) needs no answer; the write
            // itself is done or undone whole all the same.
            let _ = answer.send(result);
        });
        async move { outcome.await.unwrap_or_else(|_| Err(dropped())) }
    }

    /// Queues `change`, whose outcome `answer` hands its caller once its group's is known.
    fn submit<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        answer: impl FnOnce(Result<T, Error>) + Send + 'static,
    ) {
        let change = move |conn: &mut DbConn| with_outbox(conn, change);
        let job: Job = Box::new(move |conn, alone| {
            // Why it could not run is logged where that happened (`commit`).
            let (result, left) = match conn {
                // SAVEPOINT and RELEASE are two statements diesel prepares afresh each time,
                // and the savepoint keeps a copy of every page the change overwrites.
                Ok(conn) if alone.0 => {
                    let result = panic_as_error(|| change(conn));
                    let left = if result.is_ok() {
                        Left::Clean
                    } else {
                        Left::Failed
                    };
                    (result, left)
                }
                Ok(conn) => in_savepoint(conn, change),
                Err(_) => (Err(not_written()), Left::Clean),
            };
            let reply: Reply = Box::new(move |group| {
                answer(match (result, group) {
                    (Ok(_), Group::RolledBack) => Err(not_written()),
                    (Ok(_), Group::Unconfirmed) => Err(Error::Unavailable(
                        "the database could not confirm this write, which may have been kept: \
                         read the resource before retrying"
                            .into(),
                    )),
                    (result, _) => result,
                })
            });
            (reply, left)
        });
        let refused = match &self.jobs {
            Some(jobs) => jobs.send(job).err().map(|refused| refused.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            log::error!("the writer thread is gone; a write was refused");
            let error = not_written();
            job(Err(&error), Alone(false)).0(Group::RolledBack);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // A job that held the last handle would be dropped on the writer thread itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Shared {
    /// The writer thread: takes the changes waiting (up to [`GROUP`]) and commits them
    /// together, until the queue closes.
    fn serve(&self, queue: &Receiver<Job>) {
        let mut slot = None;
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            group.extend(queue.try_iter().take(GROUP - 1));
            // Each change's own panic is caught where it runs; this is for the writer's code.
            // Its callers are answered by their dropped replies, and what the transaction
            // held is undone by closing its connection.
            if catch_unwind(AssertUnwindSafe(|| self.commit(&mut slot, group))).is_err() {
                log::error!("the writer panicked; its connection is closed and reopened");
                slot = None;
            }
            if self.finish_checkpoint.swap(false, Ordering::AcqRel) {
                if let Some(conn) = &mut slot {
                    match checkpoint(conn) {
                        // Another checkpoint runs (the thread's, or another process's): try
                        // again after the next group.
                        Ok(wal) if wal.busy => {
                            self.finish_checkpoint.store(true, Ordering::Release)
                        }
                        Ok(_) => {}
                        Err(error) => log::warn!("WAL checkpoint failed: {error}"),
                    }
                }
            }
        }
    }

    /// Runs `group` in one transaction on the writer connection, commits, and answers each.
    fn commit(&self, slot: &mut Option<DbConn>, group: Vec<Job>) {
        if slot.is_none() {
            match self.open() {
                Ok(conn) => *slot = Some(conn),
                Err(error) => {
                    log::error!("cannot open the database for writing: {error}");
                    for job in group {
                        job(Err(&error), Alone(false)).0(Group::RolledBack);
                    }
                    return;
                }
            }
        }
        let conn = slot.as_mut().expect("opened above");
        let alone = Alone(group.len() == 1);
        let mut jobs = group.into_iter();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut abandoned = None;
        let committed = write(conn, |tx| {
            for job in jobs.by_ref() {
                let (reply, left) = job(Ok(tx), alone);
                replies.push(reply);
                let left = match left {
                    Left::Clean if !inside_one_transaction(tx) => Left::Unknown,
                    left => left,
                };
                if left != Left::Clean {
                    abandoned = Some(left);
                    return Err(Error::internal(match left {
                        Left::Failed => "the group's one change failed",
                        _ => "a change left the group's transaction in an unknown state",
                    }));
                }
            }
            Ok(())
        });
        let group = match &committed {
            Ok(()) => Group::Committed,
            // Nothing ran (BEGIN failed), or the group was rolled back on purpose.
            Err(_) if abandoned.is_some() || replies.is_empty() => Group::RolledBack,
            Err(_) => Group::Unconfirmed,
        };
        if let Err(error) = &committed {
            // A lone change that failed has its own error, which its caller gets.
            if abandoned != Some(Left::Failed) {
                log::error!(
                    "a group of {} writes was not committed: {error}",
                    replies.len()
                );
            }
            // What had not run yet when the group failed.
            replies.extend(jobs.map(|job| job(Err(error), Alone(false)).0));
        }
        self.written.store(true, Ordering::Release);
        if conn.is_broken() {
            // A failed rollback: open a fresh connection next time.
            *slot = None;
        }
        for reply in replies {
            reply(group);
        }
    }

    fn open(&self) -> Result<DbConn, Error> {
        let mut conn = self
            .manager
            .connect()
            .map_err(|error| Error::Unavailable(format!("cannot open the database: {error}")))?;
        // A savepoint keeps the pages its change overwrites in a sub-journal, which SQLite
        // spills to a temporary file past 64 KiB: a PATCH overwrites about 25 pages. In
        // memory, one connection adding members to a group went from 615–639 to 471–491 µs
        // of server CPU a PATCH (benches/ab.sh group-growth).
        conn.batch_execute(&format!(
            "PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP_PAGES}; PRAGMA temp_store = MEMORY"
        ))?;
        Ok(conn)
    }
}

fn dropped() -> Error {
    Error::internal("a write was dropped without an outcome")
}

fn not_written() -> Error {
    Error::Unavailable(
        "the database could not take this write; nothing of it was kept, retry it".into(),
    )
}

/// Runs `change` behind a savepoint of the open transaction: released when it returns `Ok`,
/// rolled back to when it returns `Err` or panics. Also says whether that savepoint ended
/// as it should: unlike `db::finish`, a failed rollback is not left to the connection's
/// state, which diesel can leave looking whole.
fn in_savepoint<T>(
    conn: &mut DbConn,
    change: impl FnOnce(&mut DbConn) -> Result<T, Error>,
) -> (Result<T, Error>, Left) {
    type Transactions = <DbConn as Connection>::TransactionManager;
    if let Err(error) = Transactions::begin_transaction(conn) {
        return (Err(error.into()), Left::Unknown);
    }
    let outcome = panic_as_error(|| change(&mut *conn));
    let ended = match &outcome {
        Ok(_) => Transactions::commit_transaction(conn),
        Err(_) => Transactions::rollback_transaction(conn),
    };
    let left = if ended.is_ok() {
        Left::Clean
    } else {
        Left::Unknown
    };
    (outcome, left)
}

/// Whether the group's transaction is still open with no savepoint left: what every change
/// must leave behind for the next one to run and the group to commit.
fn inside_one_transaction(conn: &mut DbConn) -> bool {
    let DbConn::Sqlite(sqlite) = conn else {
        return false;
    };
    matches!(
        AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth(),
        Ok(Some(depth)) if depth.get() == 1
    )
}

fn checkpoint_while_alive(alive: &Weak<Writer>) {
    let mut conn = None;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        // Not the `Writer` itself: holding it through a pass would make this thread the one
        // that drops it, should the last `Pool` go meanwhile, and that drop would not wait.
        let Some(writer) = alive.upgrade().map(|writer| Arc::clone(&writer.shared)) else {
            return;
        };
        if !writer.written.swap(false, Ordering::AcqRel) {
            continue;
        }
        let opened = match &mut conn {
            Some(conn) => Ok(conn),
            empty => writer
                .manager
                .connect()
                .map(|opened| empty.insert(opened))
                .map_err(|error| Error::Unavailable(error.to_string())),
        };
        // The second pass copies what was committed during the first, so that the writer's
        // own pass is short.
        let checkpointed = opened.and_then(|conn| {
            let wal = checkpoint(conn)?;
            match wal.frames >= RESTART_AT_FRAMES {
                true => checkpoint(conn),
                false => Ok(wal),
            }
        });
        match checkpointed {
            Ok(wal) if wal.frames >= RESTART_AT_FRAMES => {
                // SQLite syncs the database file only at a checkpoint that copies the last
                // frame, the writer's: it would flush every page copied here, with every
                // write waiting (12-15 ms under `mixed`, 4-6 ms with this).
                let synced = conn.as_mut().map(|conn| {
                    conn.batch_execute(&format!("SELECT {SYNC_FUNCTION}()"))
                        .map_err(Error::from)
                });
                if let Some(Err(error)) = synced {
                    log::warn!("cannot sync the database file: {error}");
                }
                writer.finish_checkpoint.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(error) => {
                log::warn!("WAL checkpoint failed: {error}");
                conn = None;
            }
        }
    }
}

/// What a checkpoint left of the WAL.
#[derive(diesel::QueryableByName)]
struct Wal {
    /// Whether the checkpoint could not run, for another one was running (then `frames` is
    /// -1).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    busy: bool,
    /// The frames in the WAL, checkpointed or not.
    #[diesel(sql_type = diesel::sql_types::Integer, column_name = log)]
    frames: i32,
}

/// A passive checkpoint copies what no reader still needs and waits for no one.
fn checkpoint(conn: &mut DbConn) -> Result<Wal, Error> {
    use diesel::RunQueryDsl;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result(conn)
        .map_err(Error::from)
}

/// The SQL function that syncs the database file of the connection it runs on.
const SYNC_FUNCTION: &str = "scimd_sync_database_file";

/// Gives every SQLite connection this process opens, from now on, the function
/// [`SYNC_FUNCTION`]. It syncs through SQLite's own file handle: a second descriptor of the
/// file would have to be closed some day, and closing any descriptor of a file drops every
/// POSIX lock the process holds on it, SQLite's included.
pub(super) fn offer_database_sync() {
    use libsqlite3_sys as ffi;
    use std::ffi::{c_char, c_int, c_void};

    unsafe extern "C" fn sync_database_file(
        context: *mut ffi::sqlite3_context,
        _argc: c_int,
        _argv: *mut *mut ffi::sqlite3_value,
    ) {
        // SAFETY: SQLite calls this with a live context of the connection running the
        // statement; the file pointer it hands back stays valid while that statement runs,
        // and `xSync` is the file's own method, called as SQLite calls it.
        unsafe {
            let db = ffi::sqlite3_context_db_handle(context);
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let found = ffi::sqlite3_file_control(
                db,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast::<c_void>(),
            );
            let sync = match file.as_ref() {
                Some(file) if found == ffi::SQLITE_OK => {
                    file.pMethods.as_ref().and_then(|methods| methods.xSync)
                }
                _ => None,
            };
            match sync {
                Some(sync) => match sync(file, ffi::SQLITE_SYNC_NORMAL) {
                    ffi::SQLITE_OK => ffi::sqlite3_result_null(context),
                    failed => ffi::sqlite3_result_error_code(context, failed),
                },
                None => ffi::sqlite3_result_error(
                    context,
                    c"the connection has no database file to sync".as_ptr(),
                    -1,
                ),
            }
        }
    }

    unsafe extern "C" fn register(
        db: *mut ffi::sqlite3,
        _error: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        let name = std::ffi::CString::new(SYNC_FUNCTION).expect("no NUL in the name");
        // SAFETY: SQLite calls this with the connection it is opening, and copies the name;
        // the function takes no arguments and no application data. DIRECTONLY keeps it out
        // of triggers and views, which a database file could bring.
        let outcome = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                0,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
                std::ptr::null_mut(),
                Some(sync_database_file),
                None,
                None,
                None,
            )
        };
        if outcome != ffi::SQLITE_OK {
            log::warn!("SQLite refused the function {SYNC_FUNCTION} (code {outcome})");
        }
        // Without it, only the writer's checkpoints are longer.
        ffi::SQLITE_OK
    }

    static REGISTER: std::sync::Once = std::sync::Once::new();
    super::on_every_sqlite_connection(&REGISTER, register, "adds the sync function");
}

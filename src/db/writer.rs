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
//! So the changes that wait while a transaction runs are committed together: the thread that
//! finds no transaction running takes every waiting change (up to [`GROUP`]), runs each
//! behind its own savepoint in one transaction, commits, and hands each its outcome. A change
//! that fails is rolled back to its savepoint and fails alone; if the commit fails, every
//! change of the group fails and none took effect. A change alone in its group runs in the
//! transaction itself, which is rolled back if it fails. Each caller still sees one atomic write
//! that is durable when it returns.
//!
//! The writer's commits never checkpoint, below a backstop: a thread copies the WAL back into
//! the database every [`CHECKPOINT_EVERY`], while writers go on. Before, the commit that
//! crossed 1,000 WAL pages did it, through two `fsync`s, with every other writer queued behind
//! it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::Connection;

use super::{panic_as_error, write, DbConn, Manager};
use crate::error::Error;

/// How often the checkpoint thread copies committed pages back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer still checkpoints in its own commit once the WAL holds this many pages (64 MiB
/// of 4 KiB pages): should the checkpoint thread fall behind, the WAL stays bounded.
const CHECKPOINT_BACKSTOP_PAGES: u32 = 16_384;

/// The most changes one transaction commits together.
const GROUP: usize = 64;

pub(super) struct Writer {
    manager: Manager,
    queue: Mutex<Queue>,
    /// Rung when a group has committed (or failed) and nobody leads any more.
    done: Condvar,
    /// The writer connection; only the leading thread takes it.
    connection: Mutex<Option<DbConn>>,
    /// Whether anything was committed since the last checkpoint.
    written: AtomicBool,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Job>,
    /// Whether a thread is running a group now.
    leading: bool,
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
    /// A writer for the database `manager` opens, and its checkpoint thread.
    pub(super) fn start(manager: Manager) -> Arc<Writer> {
        let writer = Arc::new(Writer {
            manager,
            queue: Mutex::default(),
            done: Condvar::new(),
            connection: Mutex::new(None),
            written: AtomicBool::new(false),
        });
        let alive = Arc::downgrade(&writer);
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while_alive(&alive));
        if let Err(error) = spawned {
            log::warn!("no checkpoint thread ({error}); the WAL grows to the backstop");
        }
        writer
    }

    pub(super) fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (answer, outcome) = sync_channel(1);
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
                let result = match (result, group) {
                    (Ok(_), Group::RolledBack) => Err(not_written()),
                    (Ok(_), Group::Unconfirmed) => Err(Error::Unavailable(
                        "the database could not confirm this write, which may have been kept: \
                         read the resource before retrying"
                            .into(),
                    )),
                    (result, _) => result,
                };
                // The caller waits for this; it never leaves before its answer.
                let _ = answer.send(result);
            });
            (reply, left)
        });
        let mut queue = self.lock_queue();
        queue.waiting.push(job);
        loop {
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(TryRecvError::Disconnected) => {
                    return Err(Error::internal("a write was dropped without an outcome"))
                }
                Err(TryRecvError::Empty) => {}
            }
            if queue.leading {
                queue = self
                    .done
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            queue.leading = true;
            let take = queue.waiting.len().min(GROUP);
            let group: Vec<Job> = queue.waiting.drain(..take).collect();
            drop(queue);
            let leading = Leading(self);
            self.commit(group);
            drop(leading);
            queue = self.lock_queue();
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `group` in one transaction on the writer connection, commits, and answers each.
    fn commit(&self, group: Vec<Job>) {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
        drop(slot);
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

fn not_written() -> Error {
    Error::Unavailable(
        "the database could not take this write; nothing of it was kept, retry it".into(),
    )
}

/// Hands the lead back when the group is done, even if it panicked, and wakes the waiting
/// callers: each either has its answer or leads the next group.
struct Leading<'a>(&'a Writer);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.lock_queue().leading = false;
        self.0.done.notify_all();
    }
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

fn checkpoint_while_alive(writer: &Weak<Writer>) {
    let mut conn = None;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(writer) = writer.upgrade() else {
            return;
        };
        if !writer.written.swap(false, Ordering::AcqRel) {
            continue;
        }
        let checkpointed = match &mut conn {
            Some(conn) => checkpoint(conn),
            empty => writer
                .manager
                .connect()
                .map_err(|error| Error::Unavailable(error.to_string()))
                .and_then(|opened| checkpoint(empty.insert(opened))),
        };
        if let Err(error) = checkpointed {
            log::warn!("WAL checkpoint failed: {error}");
            conn = None;
        }
    }
}

/// A passive checkpoint copies what no reader still needs and waits for no one.
fn checkpoint(conn: &mut DbConn) -> Result<(), Error> {
    conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
        .map_err(Error::from)
}
